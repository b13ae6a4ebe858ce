/* Unit tests for storage/record.c: the entry codec round trip, bounds,
 * truncation at every length, bit-flip detection and the in-place patch. */
#include "tap.h"
#include "common/alloc.h"
#include "common/err.h"
#include "storage/record.h"
#include "common/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Fills r with a record whose fields are all non-trivial. Strings are
 * heap copies so sc_record_clear() can free them. */
static void make_record(sc_record *r, uint32_t dim, size_t resp_len)
{
    memset(r, 0, sizeof *r);
    r->ns = sc_strdup("tenant-é");
    r->fp = 0x0123456789abcdefull;
    const char *prompt = "What is the capital of France? 日本語 😀";
    r->prompt = sc_strdup(prompt);
    r->prompt_len = strlen(prompt);
    r->response = sc_malloc(resp_len + 1);
    for (size_t i = 0; i < resp_len; i++) r->response[i] = (char)('a' + i % 26);
    r->response[resp_len] = '\0';
    r->response_len = resp_len;
    r->content_type = sc_strdup("application/json");
    r->model = sc_strdup("gpt-4o-mini");
    r->created = 1700000000;
    r->expires = -5;
    r->last_hit = 1700000123;
    r->hits = 42;
    r->prompt_tokens = 11;
    r->completion_tokens = 0xfffffffu;
    r->dim = dim;
    r->vec = dim ? sc_malloc(dim * sizeof(float)) : NULL;
    for (uint32_t i = 0; i < dim; i++) r->vec[i] = (float)i / (float)(dim + 1) - 0.5f;
    r->has_exact_key = 1;
    for (int i = 0; i < SC_RECORD_EXACT_LEN; i++) r->exact_key[i] = (uint8_t)(0xa0 + i);
}

/* The vector goes through 12-bit codes (record version 3): b's must be
 * a's rounded to the nearest of 4,095 steps of max|a| / 2047, and so
 * within max|a| / 4094 of it. */
static int vec_is_codes_of(const float *a, const float *b, uint32_t dim)
{
    float s = 0;
    for (uint32_t i = 0; i < dim; i++) s = fabsf(a[i]) > s ? fabsf(a[i]) : s;
    for (uint32_t i = 0; i < dim; i++) {
        double q = s > 0 ? (double)lrint((double)a[i] * (2047.0 / (double)s)) : 0;
        if (b[i] != (float)(q * (double)s / 2047.0)) return 0;
        if (fabs((double)b[i] - (double)a[i]) > (double)s / 4094.0 * (1 + 1e-6) + fabs((double)a[i]) * 0x1p-23) return 0;
    }
    return 1;
}

static int records_equal(const sc_record *a, const sc_record *b)
{
    return strcmp(a->ns, b->ns) == 0 && a->fp == b->fp && a->prompt_len == b->prompt_len &&
           memcmp(a->prompt, b->prompt, a->prompt_len) == 0 &&
           a->response_len == b->response_len &&
           memcmp(a->response, b->response, a->response_len) == 0 &&
           strcmp(a->content_type, b->content_type) == 0 && strcmp(a->model, b->model) == 0 &&
           a->created == b->created && a->expires == b->expires &&
           a->last_hit == b->last_hit && a->hits == b->hits &&
           a->prompt_tokens == b->prompt_tokens &&
           a->completion_tokens == b->completion_tokens && a->dim == b->dim &&
           (a->dim == 0 || vec_is_codes_of(a->vec, b->vec, a->dim)) &&
           a->has_exact_key == b->has_exact_key &&
           memcmp(a->exact_key, b->exact_key, SC_RECORD_EXACT_LEN) == 0;
}

SC_TEST(record_roundtrip_unicode)
{
    sc_record r, d;
    make_record(&r, 512, 300);
    uint8_t *p;
    size_t n;
    CHECK_OK(sc_record_encode(&r, &p, &n));
    CHECK_EQ_INT(n, sc_record_encoded_size(&r));
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK(records_equal(&r, &d));
    CHECK(d.prompt[d.prompt_len] == '\0');
    CHECK(d.response[d.response_len] == '\0');
    /* Re-encoding the decoded record reproduces the bytes. */
    uint8_t *p2;
    size_t n2;
    CHECK_OK(sc_record_encode(&d, &p2, &n2));
    CHECK(n2 == n && memcmp(p, p2, n) == 0);
    free(p);
    free(p2);
    sc_record_clear(&r);
    sc_record_clear(&d);
    CHECK(d.ns == NULL && d.vec == NULL);
}

SC_TEST(record_roundtrip_empty_and_null)
{
    sc_record r, d;
    memset(&r, 0, sizeof r); /* every string NULL, no vector, no exact key */
    uint8_t *p;
    size_t n;
    CHECK_OK(sc_record_encode(&r, &p, &n));
    CHECK_EQ_INT(n, 104);
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK(strcmp(d.ns, "") == 0 && strcmp(d.model, "") == 0 && d.prompt_len == 0);
    CHECK(d.dim == 0 && d.vec == NULL && !d.has_exact_key);
    sc_record_clear(&d);
    free(p);
}

SC_TEST(record_roundtrip_large_body)
{
    sc_record r, d;
    make_record(&r, SC_RECORD_MAX_DIM, 8u << 20);
    uint8_t *p;
    size_t n;
    CHECK_OK(sc_record_encode(&r, &p, &n));
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK(records_equal(&r, &d));
    free(p);
    sc_record_clear(&d);
    sc_record_clear(&r);
}

SC_TEST(record_bounds_refused)
{
    sc_record r;
    uint8_t *p = NULL;
    size_t n;
    make_record(&r, 4, 10);
    r.dim = SC_RECORD_MAX_DIM + 1;
    CHECK_EQ_INT(sc_record_encode(&r, &p, &n), SC_EINVAL);
    r.dim = 4;
    free(r.ns);
    r.ns = sc_malloc(SC_RECORD_MAX_NS + 2);
    memset(r.ns, 'n', SC_RECORD_MAX_NS + 1);
    r.ns[SC_RECORD_MAX_NS + 1] = '\0';
    CHECK_EQ_INT(sc_record_encode(&r, &p, &n), SC_ETOOBIG);
    r.ns[SC_RECORD_MAX_NS] = '\0'; /* exactly at the bound: fine */
    CHECK_OK(sc_record_encode(&r, &p, &n));
    free(p);
    size_t saved = r.prompt_len;
    r.prompt_len = SC_RECORD_MAX_PROMPT + 1;
    CHECK_EQ_INT(sc_record_encode(&r, &p, &n), SC_ETOOBIG);
    r.prompt_len = saved;
    free(r.vec);
    r.vec = NULL;
    CHECK_EQ_INT(sc_record_encode(&r, &p, &n), SC_EINVAL);
    CHECK(p == NULL);
    sc_record_clear(&r);
}

SC_TEST(record_every_truncation_fails)
{
    sc_record r, d;
    make_record(&r, 16, 50);
    uint8_t *p;
    size_t n;
    REQUIRE(sc_record_encode(&r, &p, &n) == 0);
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        /* Copy into an exact-size heap block so ASan sees any over-read. */
        uint8_t *t = sc_malloc(k ? k : 1);
        memcpy(t, p, k);
        int rc = sc_record_decode(t, k, &d);
        if (rc != SC_ECORRUPT) bad++;
        CHECK(d.ns == NULL);
        sc_record_head h;
        if (sc_record_peek(t, k, &h) == 0) bad++;
        free(t);
    }
    CHECK_EQ_INT(bad, 0);
    /* A longer buffer (trailing garbage) is refused too. */
    uint8_t *t = sc_malloc(n + 1);
    memcpy(t, p, n);
    t[n] = 0;
    CHECK_EQ_INT(sc_record_decode(t, n + 1, &d), SC_ECORRUPT);
    free(t);
    free(p);
    sc_record_clear(&r);
}

SC_TEST(record_bit_flips_detected)
{
    sc_record r, d;
    make_record(&r, 32, 64);
    uint8_t *p;
    size_t n;
    REQUIRE(sc_record_encode(&r, &p, &n) == 0);
    int undetected = 0;
    /* Every single-bit flip of the record. */
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            p[i] ^= (uint8_t)(1u << b);
            if (sc_record_decode(p, n, &d) != SC_ECORRUPT) {
                undetected++;
                sc_record_clear(&d);
            }
            p[i] ^= (uint8_t)(1u << b);
        }
    }
    CHECK_EQ_INT(undetected, 0);
    /* Random multi-bit corruption. */
    uint64_t x = 88172645463325252ull;
    for (int it = 0; it < 2000; it++) {
        uint8_t *q = sc_malloc(n);
        memcpy(q, p, n);
        int flips = 1 + it % 5;
        for (int f = 0; f < flips; f++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            q[x % n] ^= (uint8_t)(1u << ((x >> 32) % 8));
        }
        int rc = sc_record_decode(q, n, &d);
        if (rc == 0) {
            /* Only possible if the flips cancelled out. */
            if (memcmp(q, p, n) != 0) undetected++;
            sc_record_clear(&d);
        }
        free(q);
    }
    CHECK_EQ_INT(undetected, 0);
    CHECK_OK(sc_record_decode(p, n, &d));
    sc_record_clear(&d);
    free(p);
    sc_record_clear(&r);
}

SC_TEST(record_unknown_version)
{
    sc_record r, d;
    make_record(&r, 0, 5);
    uint8_t *p;
    size_t n;
    REQUIRE(sc_record_encode(&r, &p, &n) == 0);
    /* Version 4 with a valid checksum: SC_EVERSION, not corruption. */
    p[4] = 4;
    /* Re-seal: the checksum is XXH3-64 of all but the last 8 bytes, LE. */
    uint64_t c = XXH3_64bits(p, n - 8);
    for (int i = 0; i < 8; i++) p[n - 8 + i] = (uint8_t)(c >> (8 * i));
    CHECK_EQ_INT(sc_record_decode(p, n, &d), SC_EVERSION);
    sc_record_head h;
    CHECK_EQ_INT(sc_record_peek(p, n, &h), SC_EVERSION);
    /* Version 0 likewise. */
    p[4] = 0;
    c = XXH3_64bits(p, n - 8);
    for (int i = 0; i < 8; i++) p[n - 8 + i] = (uint8_t)(c >> (8 * i));
    CHECK_EQ_INT(sc_record_decode(p, n, &d), SC_EVERSION);
    free(p);
    sc_record_clear(&r);
}

/* Version 1 (fp32 vectors) is still read, exactly; encoding writes
 * version 2, half the vector bytes, and the same fields otherwise. */
SC_TEST(record_reads_version_1)
{
    sc_record r, d, d2;
    make_record(&r, 512, 40);
    uint8_t *p1, *p2;
    size_t n1, n2;
    CHECK_EQ_INT(sc_record_encode_version(&r, 4, &p1, &n1), SC_EINVAL);
    CHECK_EQ_INT(sc_record_encode_version(&r, 0, &p1, &n1), SC_EINVAL);
    REQUIRE(sc_record_encode_version(&r, 1, &p1, &n1) == 0);
    REQUIRE(sc_record_encode(&r, &p2, &n2) == 0);
    CHECK_EQ_INT(n1 - n2, 512 * 4 - (4 + 768));
    sc_record_head h;
    CHECK_OK(sc_record_peek(p1, n1, &h));
    CHECK_EQ_INT(h.version, 1);
    CHECK(strcmp(h.ns, r.ns) == 0);
    CHECK_OK(sc_record_peek(p2, n2, &h));
    CHECK_EQ_INT(h.version, SC_RECORD_VERSION);
    CHECK(strcmp(h.ns, r.ns) == 0);
    CHECK_OK(sc_record_decode(p1, n1, &d));
    CHECK(memcmp(d.vec, r.vec, 512 * sizeof(float)) == 0); /* v1: exact fp32 */
    CHECK_OK(sc_record_decode(p2, n2, &d2));
    CHECK(records_equal(&r, &d2));
    CHECK_OK(sc_record_patch_hit(p1, n1, d.last_hit + 5));
    sc_record_clear(&d);
    CHECK_OK(sc_record_decode(p1, n1, &d));
    CHECK_EQ_INT(d.hits, r.hits + 1);
    /* A v1 record with a flipped vector byte is corrupt, not another version. */
    p1[200] ^= 1;
    sc_record_clear(&d);
    CHECK_EQ_INT(sc_record_decode(p1, n1, &d), SC_ECORRUPT);
    free(p1);
    free(p2);
    sc_record_clear(&r);
    sc_record_clear(&d2);
}

SC_TEST(record_peek_and_patch)
{
    sc_record r, d;
    make_record(&r, 8, 20);
    uint8_t *p;
    size_t n;
    REQUIRE(sc_record_encode(&r, &p, &n) == 0);
    sc_record_head h;
    CHECK_OK(sc_record_peek(p, n, &h));
    CHECK(strcmp(h.ns, r.ns) == 0);
    CHECK(h.expires == r.expires && h.last_hit == r.last_hit && h.hits == 42);
    CHECK(h.fp == r.fp && h.dim == 8 && h.has_exact_key);
    CHECK_OK(sc_record_patch_hit(p, n, 1800000000));
    CHECK_OK(sc_record_patch_hit(p, n, 5)); /* older: last_hit stays */
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK_EQ_INT(d.hits, 44);
    CHECK_EQ_INT(d.last_hit, 1800000000);
    sc_record_clear(&d);
    /* A corrupt record is not re-sealed by a patch. */
    p[100] ^= 1; /* inside the vector */
    CHECK_EQ_INT(sc_record_patch_hit(p, n, 1), SC_ECORRUPT);
    CHECK_EQ_INT(sc_record_decode(p, n, &d), SC_ECORRUPT);
    free(p);
    sc_record_clear(&r);
}

/* A non-finite vector is refused by encode (decode would refuse it), and a
 * decoded vector is always finite: a version-1 record holding a value past
 * the half range re-encodes as version 2 clamped, never as an infinity,
 * and as version 3 unchanged (the scale is a float). */
SC_TEST(record_vector_must_be_finite)
{
    sc_record r, d;
    make_record(&r, 8, 4);
    uint8_t *p;
    size_t n;
    r.vec[3] = NAN;
    CHECK_EQ_INT(sc_record_encode(&r, &p, &n), SC_EINVAL);
    r.vec[3] = INFINITY;
    CHECK_EQ_INT(sc_record_encode_version(&r, 1, &p, &n), SC_EINVAL);
    r.vec[3] = 1e30f;
    REQUIRE(sc_record_encode_version(&r, 1, &p, &n) == 0);
    REQUIRE(sc_record_decode(p, n, &d) == 0);
    free(p);
    CHECK(d.vec[3] == 1e30f);
    REQUIRE(sc_record_encode(&d, &p, &n) == 0);
    sc_record_clear(&d);
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK(d.vec[3] == 1e30f);
    free(p);
    REQUIRE(sc_record_encode_version(&d, 2, &p, &n) == 0);
    sc_record_clear(&d);
    CHECK_OK(sc_record_decode(p, n, &d));
    CHECK(d.vec[3] == 65504.0f);
    free(p);
    sc_record_clear(&d);
    sc_record_clear(&r);
}

/* Version 2 (fp16) is read exactly; re-encoded it becomes version 3 and
 * takes 252 bytes less at 512-d. */
SC_TEST(record_reads_version_2)
{
    sc_record r, d, d3;
    make_record(&r, 512, 40);
    uint8_t *p2, *p3;
    size_t n2, n3;
    REQUIRE(sc_record_encode_version(&r, 2, &p2, &n2) == 0);
    CHECK_OK(sc_record_decode(p2, n2, &d));
    for (uint32_t i = 0; i < 512; i++) CHECK(d.vec[i] == sc_half_to_float(sc_float_to_half(r.vec[i])));
    sc_record_head h;
    CHECK_OK(sc_record_peek(p2, n2, &h));
    CHECK_EQ_INT(h.version, 2);
    REQUIRE(sc_record_encode(&d, &p3, &n3) == 0);
    CHECK_EQ_INT(n2 - n3, 1024 - 772);
    CHECK_OK(sc_record_decode(p3, n3, &d3));
    CHECK(vec_is_codes_of(d.vec, d3.vec, 512));
    free(p2);
    free(p3);
    sc_record_clear(&d);
    sc_record_clear(&d3);
    sc_record_clear(&r);
}

/* The start-up walk's decode: the same vector and head as the full decode
 * for every version, the same refusals. */
SC_TEST(record_decode_vector_agrees)
{
    for (unsigned ver = 1; ver <= SC_RECORD_VERSION; ver++) {
        sc_record r, d;
        make_record(&r, 300, 50);
        uint8_t *p;
        size_t n;
        REQUIRE(sc_record_encode_version(&r, ver, &p, &n) == 0);
        REQUIRE(sc_record_decode(p, n, &d) == 0);
        float v[300];
        sc_record_head h;
        CHECK_OK(sc_record_decode_vector(p, n, &h, v, 300));
        CHECK(memcmp(v, d.vec, sizeof v) == 0);
        CHECK(h.dim == 300 && h.fp == r.fp && strcmp(h.ns, r.ns) == 0 && h.version == ver);
        CHECK_EQ_INT(sc_record_decode_vector(p, n, &h, v, 299), SC_ETOOBIG);
        p[n / 2] ^= 4;
        CHECK_EQ_INT(sc_record_decode_vector(p, n, &h, v, 300), SC_ECORRUPT);
        free(p);
        sc_record_clear(&d);
        sc_record_clear(&r);
    }
}

/* The 12-bit codes: odd dimensions, a zero vector, the decode-encode
 * round trip byte for byte, and codes encode never writes refused. */
SC_TEST(record_codes12)
{
    static const uint32_t dims[] = {1, 2, 3, 7, 64, 511, 512, 1024};
    for (size_t di = 0; di < SC_COUNTOF(dims); di++) {
        sc_record r, d;
        make_record(&r, dims[di], 10);
        for (uint32_t i = 0; i < dims[di]; i++) r.vec[i] = sinf((float)i * 1.7f + 0.3f) * 0.11f;
        uint8_t *p, *p2;
        size_t n, n2;
        REQUIRE(sc_record_encode(&r, &p, &n) == 0);
        REQUIRE(sc_record_decode(p, n, &d) == 0);
        CHECK(vec_is_codes_of(r.vec, d.vec, dims[di]));
        REQUIRE(sc_record_encode(&d, &p2, &n2) == 0);
        CHECK(n == n2 && memcmp(p, p2, n) == 0);
        free(p2);
        sc_record_clear(&d);
        free(p);
        sc_record_clear(&r);
    }
    sc_record r, d;
    make_record(&r, 5, 10);
    memset(r.vec, 0, 5 * sizeof(float));
    uint8_t *p;
    size_t n;
    REQUIRE(sc_record_encode(&r, &p, &n) == 0);
    REQUIRE(sc_record_decode(p, n, &d) == 0);
    for (int i = 0; i < 5; i++) CHECK(d.vec[i] == 0.0f);
    sc_record_clear(&d);
    /* Re-sealed bad codes (vector at offset 96: scale, then 3 bytes a pair). */
    static const struct { size_t off; uint8_t val; } bad[] = {
        {96 + 3, 0x80},           /* a negative scale */
        {96 + 4 + 8, 0x00},       /* padding code of the odd last one: not 2048 */
    };
    for (size_t b = 0; b < SC_COUNTOF(bad); b++) {
        uint8_t *q = sc_malloc(n);
        memcpy(q, p, n);
        q[bad[b].off] = bad[b].val;
        if (b == 0) q[96 + 0] = 1; /* the zero scale made negative and non-zero */
        uint64_t c = XXH3_64bits(q, n - 8);
        for (int i = 0; i < 8; i++) q[n - 8 + i] = (uint8_t)(c >> (8 * i));
        CHECK_EQ_INT(sc_record_decode(q, n, &d), SC_ECORRUPT);
        free(q);
    }
    free(p);
    sc_record_clear(&r);
}
