/* libFuzzer target for OpenAI request validation and context fingerprints
 * (server/fingerprint.c), the parser every proxied request goes through.
 *
 * The input is parsed as JSON (as the proxy does) and given to
 * sc_fp_request() as a chat and as a completion request. The result must
 * be SC_OK (then a prompt is returned, and the same input gives the same
 * fingerprint and prompt again), SC_EINVAL with a non-empty message, or
 * SC_EUNSUPPORTED. Stating a default the request left out (temperature
 * 1.0, top_p 1) must not change the fingerprint. Nothing may leak or read
 * out of bounds. */
// fuzz-sources: server/fingerprint.c common/buf.c common/alloc.c common/err.c common/log.c common/hash.c
// fuzz-libs: -ljansson -lxxhash
#include "common/err.h"
#include "server/fingerprint.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!o) return 0;
    for (int kind = SC_FP_CHAT; kind <= SC_FP_COMPLETION; kind++) {
        uint64_t fp = 0, fp2 = 0;
        char *prompt = NULL, *prompt2 = NULL;
        size_t len = 0, len2 = 0;
        char err[256] = "";
        int rc = sc_fp_request(kind, o, &fp, &prompt, &len, err, sizeof err);
        if (rc == SC_OK) {
            if (!prompt || fp == 0) abort();
            int rc2 = sc_fp_request(kind, o, &fp2, &prompt2, &len2, err, sizeof err);
            if (rc2 != SC_OK || fp2 != fp || len2 != len || memcmp(prompt, prompt2, len) != 0) abort();
            if (!json_object_get(o, "temperature") && !json_object_get(o, "top_p")) {
                json_t *d = json_copy(o);
                json_object_set_new(d, "temperature", json_real(1.0));
                json_object_set_new(d, "top_p", json_integer(1));
                char *p3 = NULL;
                size_t len3 = 0;
                uint64_t fp3 = 0;
                if (sc_fp_request(kind, d, &fp3, &p3, &len3, err, sizeof err) != SC_OK || fp3 != fp)
                    abort();
                free(p3);
                json_decref(d);
            }
        } else if (rc == SC_EINVAL) {
            if (!err[0]) abort();
        } else if (rc != SC_EUNSUPPORTED) {
            abort();
        }
        free(prompt);
        free(prompt2);
    }
    json_decref(o);
    return 0;
}
