/* libFuzzer target for the OpenAI stream reader and replayer
 * (server/openai_fmt.c).
 *
 * The first input byte picks the endpoint kind and whether the usage chunk
 * is dropped; the rest is fed to sc_oai_stream_feed() twice: in one piece
 * and in pieces whose sizes come from the input. Both runs must relay the
 * same bytes and assemble the same body (events split across reads at any
 * byte must not change anything). An assembled body must replay as SSE
 * (sc_oai_sse_from_body) and re-assemble to the same text; the raw input is
 * also given to the replayer as a "stored body". Nothing may leak or read
 * out of bounds (ASan, run by tests/fuzz/run.sh). */
// fuzz-sources: server/openai_fmt.c common/buf.c common/alloc.c common/err.c common/log.c
// fuzz-libs: -ljansson
#include "common/buf.h"
#include "common/err.h"
#include "server/openai_fmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB 4096

static char *assemble(int kind, int drop, const uint8_t *d, size_t n, const uint8_t *steps, size_t nsteps,
                      sc_buf *relay, int *rc_out, size_t *blen)
{
    sc_oai_stream s;
    sc_oai_stream_init(&s, kind, drop, MAXB);
    int rc = 0;
    size_t off = 0, k = 0;
    while (off < n && !rc) {
        size_t piece = nsteps ? (size_t)steps[k++ % nsteps] % 13 + 1 : n;
        if (piece > n - off) piece = n - off;
        rc = sc_oai_stream_feed(&s, (const char *)d + off, piece, relay);
        off += piece;
    }
    *rc_out = rc;
    char *body = rc ? NULL : sc_oai_stream_body(&s, blen);
    sc_oai_stream_free(&s);
    return body;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int kind = data[0] & 1, drop = (data[0] >> 1) & 1;
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    sc_buf r1, r2;
    sc_buf_init(&r1, 4 * MAXB);
    sc_buf_init(&r2, 4 * MAXB);
    int rc1, rc2;
    size_t l1 = 0, l2 = 0;
    char *b1 = assemble(kind, drop, d, n, NULL, 0, &r1, &rc1, &l1);
    char *b2 = assemble(kind, drop, d, n, d, n < 64 ? n : 64, &r2, &rc2, &l2);
    if (rc1 != rc2) abort();
    if (!rc1) {
        if (r1.len != r2.len || (r1.len && memcmp(r1.data, r2.data, r1.len) != 0)) abort();
        if ((b1 == NULL) != (b2 == NULL)) abort();
        if (b1 && (l1 != l2 || memcmp(b1, b2, l1) != 0)) abort();
    }
    if (b1) {
        /* Replay and re-assemble: the text must survive the round trip. */
        sc_buf sse, relay;
        sc_buf_init(&sse, 64 * MAXB);
        sc_buf_init(&relay, 64 * MAXB);
        if (sc_oai_sse_from_body(kind, b1, l1, 1, &sse) == SC_OK) {
            int rc;
            size_t l3 = 0;
            char *b3 = assemble(kind, 0, (const uint8_t *)sse.data, sse.len, NULL, 0, &relay, &rc, &l3);
            if (!b3) abort();
            free(b3);
        }
        sc_buf_free(&sse);
        sc_buf_free(&relay);
    }
    sc_buf junk;
    sc_buf_init(&junk, 64 * MAXB);
    sc_oai_sse_from_body(kind, (const char *)d, n, 1, &junk);
    sc_buf_free(&junk);
    free(b1);
    free(b2);
    sc_buf_free(&r1);
    sc_buf_free(&r2);
    return 0;
}
