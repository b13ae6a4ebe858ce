/* libFuzzer target for the semcache-embed model loader (embed/use_bin.c):
 * model.bin is a file a user may replace, truncate or corrupt, and the
 * loader must refuse whatever is wrong with a message instead of reading
 * past the buffer, allocating without bound or crashing.
 *
 * Each input is written as model.bin into a temporary directory beside a
 * small valid vocab.json, then sc_use_bin_load() runs on it. Checks: it
 * returns 0 or an error; on error the message names model.bin or
 * vocab.json and no model is returned; on success (only reachable with a
 * payload of the right size and checksum) the model embeds a sentence into
 * a finite unit vector. Seeds: tests/fuzz/corpus/fuzz_use_bin (the header
 * of a real model.bin and the first bytes of its payload).
 */
// fuzz-sources: embed/use_bin.c embed/use_model.c embed/use_tokenizer.c embed/use_gemm.c embed/use_forward.c common/pair.c embed/embed.c common/half.c common/alloc.c common/err.c common/log.c common/hash.c
// fuzz-libs: -ljansson -lutf8proc -lopenblas -lxxhash
#include "embed/embed_internal.h"
#include "embed/use_bin.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* embed.c's backend table: only the loader is exercised here. */
const sc_embed_backend sc_embed_hash_backend = {.name = "hash"};
const sc_embed_backend sc_embed_remote_backend = {.name = "remote"};

static char dir[64];
static char model_path[128];

/* The scratch dir goes when the fuzzer exits (libFuzzer calls exit()). */
static void cleanup(void)
{
    char p[160];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    unlink(p);
    unlink(model_path);
    rmdir(dir);
}

static void setup(void)
{
    if (dir[0]) return;
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > 40) base = "/tmp";
    snprintf(dir, sizeof dir, "%s/fuzz_use_bin.XXXXXX", base);
    if (!mkdtemp(dir)) abort();
    atexit(cleanup);
    /* No helper thread per loaded model (common/pair.h): nothing here embeds
     * while another embedding runs, and the loader is what is fuzzed. */
    setenv("SC_EMBED_PAIR", "0", 1);
    char p[128];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fputs("[[\"<unk>\",0],[\"<s>\",0],[\"</s>\",0],[\"a\",0],[\"b\",0],[\"c\",0],"
          "[\"\\u2581hello\",-1.5],[\"\\u2581\",-2.0],[\"h\",-3],[\"e\",-3],[\"l\",-3],[\"o\",-3]]", f);
    fclose(f);
    snprintf(model_path, sizeof model_path, "%s/model.bin", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    FILE *f = fopen(model_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    sc_use_model *m = (sc_use_model *)1;
    char err[512] = "", name[33];
    int rc = sc_use_bin_load(&m, dir, name, err, sizeof err);
    if (rc) {
        if (m != NULL) abort();
        if (!strstr(err, "model.bin") && !strstr(err, "vocab.json")) {
            fprintf(stderr, "error names no file: %s\n", err);
            abort();
        }
        return 0;
    }
    int32_t ids[2] = {6, 7};
    const int32_t *ip = ids;
    uint32_t n = 2;
    float v[512];
    if (sc_use_forward(m, &ip, &n, 1, v)) abort();
    double ss = 0;
    for (int i = 0; i < 512; i++) {
        if (!isfinite(v[i])) abort();
        ss += (double)v[i] * v[i];
    }
    if (fabs(ss - 1) > 1e-3 && ss > 1e-9) abort();
    sc_use_model_free(m);
    return 0;
}
