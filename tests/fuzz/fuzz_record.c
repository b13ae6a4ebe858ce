/* libFuzzer target for the record codec (storage/record.c).
 *
 * Decodes the input; when that succeeds, re-encodes the record in the
 * input's version (1, fp32 vectors; 2, fp16; 3, 12-bit codes) and checks the bytes are
 * identical (the codec accepts exactly what it produces), that peek agrees
 * with decode, and that the current encoding decodes to the same record. A fuzzer cannot forge the XXH3 checksum, so
 * each input is also decoded a second time with its last 8 bytes replaced
 * by the right checksum: that reaches the layout and bounds checks behind
 * it. Any crash, sanitizer report or abort is a finding. Built by tests/fuzz/run.sh with clang -fsanitize=fuzzer; with
 * -DFUZZ_STANDALONE it is a plain program (see main() below).
 *
 * fuzz-sources: storage/record.c common/half.c common/alloc.c common/err.c common/log.c
 * fuzz-libs: -lxxhash -lm */
#include "storage/record.h"

#include "common/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_one(const uint8_t *data, size_t size)
{
    sc_record r;
    sc_record_head h;
    int rc = sc_record_decode(data, size, &r);
    int prc = sc_record_peek(data, size, &h);
    /* The start-up walk's decode agrees with the full one. */
    static float vbuf[SC_RECORD_MAX_DIM];
    sc_record_head vh;
    int vrc = sc_record_decode_vector(data, size, &vh, vbuf, SC_RECORD_MAX_DIM);
    if ((vrc == 0) != (rc == 0)) abort();
    if (rc == 0 && (vh.dim != r.dim || vh.fp != r.fp || (r.dim && memcmp(vbuf, r.vec, r.dim * sizeof(float)) != 0)))
        abort();
    if (rc != 0) {
        if (r.ns || r.vec || r.prompt) abort(); /* left empty on error */
        if (rc != SC_ECORRUPT && rc != SC_EVERSION) abort();
        return;
    }
    if (prc != 0 || h.expires != r.expires || h.last_hit != r.last_hit ||
        h.dim != r.dim || strcmp(h.ns, r.ns) != 0)
        abort();
    uint8_t *out;
    size_t n;
    if (sc_record_encode_version(&r, h.version, &out, &n) != 0) abort();
    if (n != size || memcmp(out, data, n) != 0) abort();
    free(out);
    /* The current version: its size is what the store counts, and it
     * decodes to the same record (an older version's vector rounded to
     * 12-bit codes: within max|v| / 4094 of it, or zeros when tiny). */
    if (sc_record_encode(&r, &out, &n) != 0) abort();
    if (sc_record_encoded_size(&r) != n) abort();
    sc_record d;
    if (sc_record_decode(out, n, &d) != 0) abort();
    if (d.dim != r.dim || d.prompt_len != r.prompt_len || d.response_len != r.response_len ||
        memcmp(d.prompt, r.prompt, r.prompt_len) != 0 || strcmp(d.ns, r.ns) != 0)
        abort();
    float s = 0;
    for (uint32_t i = 0; i < r.dim; i++) s = fabsf(r.vec[i]) > s ? fabsf(r.vec[i]) : s;
    for (uint32_t i = 0; i < d.dim; i++) {
        if (h.version == 3 && d.vec[i] != r.vec[i]) abort();
        if (fabs((double)d.vec[i] - (double)r.vec[i]) > (double)s / 4094.0 * (1 + 1e-6) + fabs((double)r.vec[i]) * 0x1p-23 + 0x1p-114)
            abort(); /* half a step, and the decoded value's own float rounding */
    }
    free(out);
    sc_record_clear(&d);
    sc_record_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_one(data, size);
    if (size >= 8) {
        uint8_t *copy = malloc(size);
        memcpy(copy, data, size);
        uint64_t c = XXH3_64bits(copy, size - 8);
        for (int i = 0; i < 8; i++) copy[size - 8 + i] = (uint8_t)(c >> (8 * i));
        check_one(copy, size);
        free(copy);
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
/* Without libFuzzer: run the files given as arguments, or (no arguments or
 * "-n N") N mutations of valid records from a fixed-seed generator;
 * "--seeds DIR" writes valid records to DIR as a seed corpus. */
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint8_t *valid_record(size_t *len)
{
    sc_record r;
    memset(&r, 0, sizeof r);
    char ns[32], prompt[64], model[16];
    float vec[16];
    snprintf(ns, sizeof ns, "ns%u", (unsigned)(next() % 100));
    snprintf(prompt, sizeof prompt, "prompt \xc3\xa9 %llu", (unsigned long long)next());
    snprintf(model, sizeof model, "m%u", (unsigned)(next() % 10));
    r.ns = ns;
    r.prompt = prompt;
    r.prompt_len = strlen(prompt);
    r.response = prompt;
    r.response_len = next() % (r.prompt_len + 1);
    r.model = model;
    r.content_type = (char *)"application/json";
    r.dim = (uint32_t)(next() % 17);
    for (uint32_t i = 0; i < r.dim; i++) vec[i] = (float)(next() % 1000) / 1000.0f;
    r.vec = r.dim ? vec : NULL;
    r.expires = (int64_t)(next() % 3);
    r.hits = next();
    r.has_exact_key = (int)(next() & 1);
    if (r.has_exact_key) memset(r.exact_key, 0x42, sizeof r.exact_key);
    uint8_t *p;
    if (sc_record_encode(&r, &p, len) != 0) abort();
    return p;
}

int main(int argc, char **argv)
{
    long iters = 200000;
    if (argc == 3 && strcmp(argv[1], "-n") == 0) {
        iters = atol(argv[2]);
    } else if (argc == 3 && strcmp(argv[1], "--seeds") == 0) {
        /* Writes a few valid records as a seed corpus into argv[2]. */
        for (int i = 0; i < 8; i++) {
            size_t n;
            uint8_t *p = valid_record(&n);
            char path[512];
            snprintf(path, sizeof path, "%s/seed%d", argv[2], i);
            FILE *f = fopen(path, "wb");
            if (!f || fwrite(p, 1, n, f) != n) { perror(path); return 2; }
            fclose(f);
            free(p);
        }
        return 0;
    } else if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) { perror(argv[i]); return 2; }
            static uint8_t buf[1 << 20];
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, buf, n);
            LLVMFuzzerTestOneInput(copy, n);
            free(copy);
        }
        printf("fuzz_record: %d file(s) ok\n", argc - 1);
        return 0;
    }
    for (long it = 0; it < iters; it++) {
        size_t n;
        uint8_t *p = valid_record(&n);
        /* Mutate: flip bits, truncate, extend, or leave intact. */
        switch (next() % 4) {
        case 0: break;
        case 1: p[next() % n] ^= (uint8_t)(1u << (next() % 8)); break;
        case 2: n = next() % n; break;
        case 3: {
            size_t off = next() % n;
            p[off] = (uint8_t)next();
            break;
        }
        }
        uint8_t *copy = malloc(n ? n : 1); /* exact size, for ASan */
        memcpy(copy, p, n);
        LLVMFuzzerTestOneInput(copy, n);
        free(copy);
        free(p);
    }
    printf("fuzz_record: %ld iterations ok\n", iters);
    return 0;
}
#endif
