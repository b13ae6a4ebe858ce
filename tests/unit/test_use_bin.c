/* Unit tests for semcached's own model file (embed/use_bin.c): the half
 * conversions (exact values, round-to-nearest-even, inf/NaN, subnormals,
 * all 65536 halves), the save/load round trip in float32 and float16
 * against the USE-lite C model it was exported from, the layout documented
 * in use_bin.h, and the loader's refusals (each error must name the file
 * and the problem). The USE-lite model must be installed (make deps);
 * without it these tests fail, they do not skip. */
#include "tap.h"
#include "embed/embed_internal.h"
#include "embed/use.h"
#include "embed/use_bin.h"
#include "common/err.h"
#include "common/hash.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USE_DIR "models/use-lite/dist"

static const char *sentences[] = {
    "How do I reset my password?",
    "What is the capital of France?",
    "The quick brown fox jumps over the lazy dog.",
    "my card still hasn't arrived after two weeks",
    "Wie spät ist es? 日本語のテキスト 😀",
};
#define NSENT (sizeof sentences / sizeof sentences[0])

/* ---- helpers --------------------------------------------------------------- */

static sc_use_model *use_m;

/* This test's temporary directory (sc_test_tmpdir() makes a fresh one). */
static char tmp_cur[256];
static void fresh(void) { snprintf(tmp_cur, sizeof tmp_cur, "%s", sc_test_tmpdir()); }

static const sc_use_model *use_model(void)
{
    if (use_m) return use_m;
    char err[512];
    if (sc_use_model_load(&use_m, USE_DIR, err, sizeof err) != 0) {
        sc_test_fail(__FILE__, __LINE__, "cannot load USE-lite from %s: %s -- run make deps", USE_DIR, err);
        use_m = NULL;
    }
    return use_m;
}

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = fwrite(b, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0) rc = -1;
    return rc;
}

static int copy_vocab(const char *dir)
{
    size_t n;
    uint8_t *b = read_all(USE_DIR "/vocab.json", &n);
    if (!b) return -1;
    char p[600];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    int rc = write_all(p, b, n);
    free(b);
    return rc;
}

/* A model directory dir/sub (made) holding bytes as model.bin and, when
 * vocab, USE-lite's vocab.json. Returns the directory (static buffer). */
static const char *model_dir(const char *sub, const uint8_t *bytes, size_t n, int vocab)
{
    static char d[512];
    char p[600];
    snprintf(d, sizeof d, "%s/%s", tmp_cur, sub);
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/model.bin", d);
    if (bytes && write_all(p, bytes, n) != 0) sc_test_fail(__FILE__, __LINE__, "cannot write %s", p);
    if (vocab && copy_vocab(d) != 0) sc_test_fail(__FILE__, __LINE__, "cannot write %s/vocab.json", d);
    return d;
}

/* USE-lite saved as float16 model.bin, read back into memory once. */
static uint8_t *good16;
static size_t good16_len;

static const uint8_t *good_f16(size_t *len)
{
    if (!good16) {
        const sc_use_model *m = use_model();
        if (!m) return NULL;
        char p[512];
        snprintf(p, sizeof p, "%s/good16.bin", tmp_cur);
        if (sc_use_bin_save(m, p, SC_USE_BIN_F16, "unit-f16") != 0) {
            sc_test_fail(__FILE__, __LINE__, "sc_use_bin_save(%s) failed", p);
            return NULL;
        }
        good16 = read_all(p, &good16_len);
        unlink(p);
    }
    *len = good16_len;
    return good16;
}

/* A private copy of the good float16 file, to damage. */
static uint8_t *good_copy(size_t *len)
{
    const uint8_t *g = good_f16(len);
    if (!g) return NULL;
    uint8_t *b = malloc(*len);
    memcpy(b, g, *len);
    return b;
}

static void rehash(uint8_t *b, size_t len)
{
    wr64(b + 88, sc_hash64(b + SC_USE_BIN_HEADER, len - SC_USE_BIN_HEADER, 0));
}

/* Loading dir must fail with an error naming dir/file and containing want. */
static void refused_at(const char *srcfile, int line, const char *dir, const char *file, const char *want)
{
    sc_use_model *m = (sc_use_model *)&m;
    char name[33], err[512] = "", path[600];
    int rc = sc_use_bin_load(&m, dir, name, err, sizeof err);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (rc == 0) {
        sc_test_fail(srcfile, line, "%s was accepted, expected an error with \"%s\"", dir, want);
        sc_use_model_free(m);
        return;
    }
    if (m != NULL) sc_test_fail(srcfile, line, "*out not NULL after an error");
    if (!strstr(err, path)) sc_test_fail(srcfile, line, "error does not name %s: %s", path, err);
    if (!strstr(err, want)) sc_test_fail(srcfile, line, "error does not say \"%s\": %s", want, err);
}
#define REFUSED(dir, file, want) refused_at(__FILE__, __LINE__, dir, file, want)

static double cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-30);
}

/* Embeds s with model m (its own tokenizer), into out[m->out_dim]. */
static int embed_with(const sc_use_model *m, const char *s, float *out)
{
    int32_t *ids = NULL;
    size_t k = 0;
    if (sc_use_encode(m->vocab, s, strlen(s), m->max_len, &ids, &k) != 0) return -1;
    if (k > m->max_len) k = m->max_len;
    uint32_t nt = (uint32_t)k;
    const int32_t *idp = ids;
    int rc = sc_use_forward(m, &idp, &nt, 1, out);
    free(ids);
    return rc;
}

/* The tensors of m in the file order documented in use_bin.h. */
typedef struct tensor {
    const float *p;
    size_t n;
} tensor;

static size_t tensors_of(const sc_use_model *m, tensor *t)
{
    size_t k = 0, E = m->emb_dim;
    t[k++] = (tensor){m->emb, (size_t)m->n_vocab_rows * E};
    t[k++] = (tensor){m->inv_timescales, E / 2};
    for (int l = 0; l < 2; l++) {
        const sc_use_layer *y = &m->layer[l];
        size_t in = y->in, w = y->width, f = y->ffn;
        t[k++] = (tensor){y->ln1_g, in};
        t[k++] = (tensor){y->ln1_b, in};
        t[k++] = (tensor){y->qkv_w, in * 3 * in};
        t[k++] = (tensor){y->qkv_b, 3 * in};
        t[k++] = (tensor){y->out_w, in * w};
        t[k++] = (tensor){y->out_b, w};
        if (l == 0 && in != w) {
            t[k++] = (tensor){y->res_w, in * w};
            t[k++] = (tensor){y->res_b, w};
        }
        t[k++] = (tensor){y->ln2_g, w};
        t[k++] = (tensor){y->ln2_b, w};
        t[k++] = (tensor){y->ffn1_w, w * f};
        t[k++] = (tensor){y->ffn1_b, f};
        t[k++] = (tensor){y->ffn2_w, f * w};
        t[k++] = (tensor){y->ffn2_b, w};
    }
    t[k++] = (tensor){m->tanh_w, (size_t)m->out_dim * m->out_dim};
    t[k++] = (tensor){m->tanh_b, m->out_dim};
    return k;
}

/* ---- half precision ---------------------------------------------------------- */

/* The value of a finite half, computed independently of sc_half_to_float. */
static double half_value(uint16_t h)
{
    int e = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = e == 0 ? ldexp(man, -24) : ldexp(1024 + man, e - 25);
    return h & 0x8000 ? -v : v;
}

SC_TEST(use_bin_half_exact_values)
{
    static const struct { float f; uint16_t h; } v[] = {
        {0.0f, 0x0000},     {1.0f, 0x3c00},         {-1.0f, 0xbc00},      {2.0f, 0x4000},
        {-2.0f, 0xc000},    {0.5f, 0x3800},         {0.25f, 0x3400},      {1.5f, 0x3e00},
        {65504.0f, 0x7bff}, {-65504.0f, 0xfbff},    {0x1p-14f, 0x0400},   {0x1p-24f, 0x0001},
        {0x1p-15f, 0x0200}, {0x3ffp-24f, 0x03ff},   {0x7ffp-10f, 0x3fff}, {1024.0f, 0x6400},
        {2048.0f, 0x6800},  {0.099975586f, 0x2e66}, {3.140625f, 0x4248},  {-0x1p-24f, 0x8001},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        CHECK_EQ_INT(sc_float_to_half(v[i].f), v[i].h);
        CHECK(sc_half_to_float(v[i].h) == v[i].f);
    }
    /* signed zero survives both ways */
    CHECK_EQ_INT(sc_float_to_half(-0.0f), 0x8000);
    CHECK(sc_half_to_float(0x8000) == 0.0f && signbit(sc_half_to_float(0x8000)));
    CHECK(!signbit(sc_half_to_float(0x0000)));
}

SC_TEST(use_bin_half_rounding)
{
    /* ties go to the even neighbour */
    CHECK_EQ_INT(sc_float_to_half(1.0f + 0x1p-11f), 0x3c00);
    CHECK_EQ_INT(sc_float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);
    CHECK_EQ_INT(sc_float_to_half(-(1.0f + 0x1p-11f)), 0xbc00);
    /* just off a tie goes to the nearer one */
    CHECK_EQ_INT(sc_float_to_half(nextafterf(1.0f + 0x1p-11f, 2)), 0x3c01);
    CHECK_EQ_INT(sc_float_to_half(nextafterf(1.0f + 3 * 0x1p-11f, 0)), 0x3c01);
    /* 0.1 -> 0x2e66 (0.0999755859375), 1/3 -> 0x3555 */
    CHECK_EQ_INT(sc_float_to_half(0.1f), 0x2e66);
    CHECK_EQ_INT(sc_float_to_half(1.0f / 3), 0x3555);
    /* rounding up carries into the exponent */
    CHECK_EQ_INT(sc_float_to_half(nextafterf(2.0f, 0)), 0x4000);
    CHECK_EQ_INT(sc_float_to_half(0x7ffp-10f + 0x1p-11f), 0x4000); /* tie, 0x3fff odd -> up */
    /* the top of the range: 65519 stays finite, 65520 (the tie) overflows */
    CHECK_EQ_INT(sc_float_to_half(65519.0f), 0x7bff);
    CHECK_EQ_INT(sc_float_to_half(65520.0f), 0x7c00);
    CHECK_EQ_INT(sc_float_to_half(-65520.0f), 0xfc00);
    CHECK_EQ_INT(sc_float_to_half(nextafterf(65520.0f, 0)), 0x7bff);
    /* subnormals: 2^-25 is the tie between 0 and the smallest -> 0 */
    CHECK_EQ_INT(sc_float_to_half(0x1p-25f), 0x0000);
    CHECK_EQ_INT(sc_float_to_half(-0x1p-25f), 0x8000);
    CHECK_EQ_INT(sc_float_to_half(nextafterf(0x1p-25f, 1)), 0x0001);
    CHECK_EQ_INT(sc_float_to_half(3 * 0x1p-25f), 0x0002); /* tie 1|2 -> 2 */
    CHECK_EQ_INT(sc_float_to_half(5 * 0x1p-25f), 0x0002); /* tie 2|3 -> 2 */
    CHECK_EQ_INT(sc_float_to_half(0x1p-26f), 0x0000);
    CHECK_EQ_INT(sc_float_to_half(FLT_MIN), 0x0000);
    CHECK_EQ_INT(sc_float_to_half(FLT_TRUE_MIN), 0x0000);
    /* the largest subnormal rounds up into the smallest normal */
    CHECK_EQ_INT(sc_float_to_half(0x1p-14f - 0x1p-25f), 0x0400); /* tie 0x3ff|0x400 -> even */
    CHECK_EQ_INT(sc_float_to_half(nextafterf(0x1p-14f - 0x1p-25f, 0)), 0x03ff);
}

SC_TEST(use_bin_half_inf_nan)
{
    CHECK_EQ_INT(sc_float_to_half(INFINITY), 0x7c00);
    CHECK_EQ_INT(sc_float_to_half(-INFINITY), 0xfc00);
    CHECK_EQ_INT(sc_float_to_half(FLT_MAX), 0x7c00);
    CHECK_EQ_INT(sc_float_to_half(-1e10f), 0xfc00);
    CHECK(sc_half_to_float(0x7c00) == INFINITY);
    CHECK(sc_half_to_float(0xfc00) == -INFINITY);
    uint16_t n = sc_float_to_half(NAN), mn = sc_float_to_half(-NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0 && !(n & 0x8000));
    CHECK((mn & 0x7c00) == 0x7c00 && (mn & 0x3ff) != 0 && (mn & 0x8000));
    /* a NaN whose payload lives only in the low float bits stays a NaN */
    uint16_t low = sc_float_to_half(bits_f(0x7f800001u));
    CHECK((low & 0x7c00) == 0x7c00 && (low & 0x3ff) != 0);
    for (uint32_t h = 0x7c01; h <= 0x7fff; h++) {
        CHECK(isnan(sc_half_to_float((uint16_t)h)));
        CHECK(isnan(sc_half_to_float((uint16_t)(h | 0x8000))));
        CHECK(signbit(sc_half_to_float((uint16_t)(h | 0x8000))));
    }
}

SC_TEST(use_bin_half_all_values)
{
    int bad_val = 0, bad_rt = 0, bad_mid = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t x = (uint16_t)h;
        float f = sc_half_to_float(x);
        int exp = (x >> 10) & 0x1f;
        if (exp == 31) {
            /* inf or NaN: class and sign are kept through a round trip */
            uint16_t back = sc_float_to_half(f);
            int nan = (x & 0x3ff) != 0;
            if ((back & 0x8000) != (x & 0x8000) || (back & 0x7c00) != 0x7c00 || ((back & 0x3ff) != 0) != nan)
                bad_rt++;
            continue;
        }
        if ((double)f != half_value(x) || !!signbit(f) != !!(x & 0x8000)) bad_val++;
        if (sc_float_to_half(f) != x) bad_rt++;
        /* every float strictly between two neighbours rounds to the nearer;
         * the midpoint (exact in float) to the even one */
        if ((x & 0x7fff) == 0x7bff) continue;
        float g = sc_half_to_float((uint16_t)(x + 1)), mid = (f + g) / 2;
        if ((double)mid != (half_value(x) + half_value((uint16_t)(x + 1))) / 2) bad_mid++;
        uint16_t even = (x & 1) ? (uint16_t)(x + 1) : x;
        if (sc_float_to_half(mid) != even) bad_mid++;
        if (sc_float_to_half(nextafterf(mid, f)) != x) bad_mid++;
        if (sc_float_to_half(nextafterf(mid, g)) != (uint16_t)(x + 1)) bad_mid++;
    }
    CHECK_EQ_INT(bad_val, 0);
    CHECK_EQ_INT(bad_rt, 0);
    CHECK_EQ_INT(bad_mid, 0);
}

#ifdef __FLT16_MAX__
/* Against the compiler's own float -> _Float16 conversion (IEEE, nearest
 * even) on a sweep of float bit patterns. */
SC_TEST(use_bin_half_vs_compiler)
{
    int bad = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        float f = bits_f((uint32_t)u);
        if (isnan(f)) continue;
        volatile _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, (const void *)&r, 2);
        if (sc_float_to_half(f) != want && bad++ < 5)
            sc_test_fail(__FILE__, __LINE__, "float %a (0x%08x): got 0x%04x, want 0x%04x", (double)f,
                         f_bits(f), sc_float_to_half(f), want);
    }
    CHECK_EQ_INT(bad, 0);
}
#endif

/* ---- save / load ------------------------------------------------------------- */

/* The file round trips and the embedder below compare weights, not
 * kernels: they run the fp32 kernels (sc_use_gemm_int8 = 0), so an fp16
 * file is held to fp16's rounding alone; the int8 kernel has its own tests
 * (test_embed_use.c). */
static void round_trip(uint32_t dtype)
{
    int int8 = sc_use_gemm_int8;
    sc_use_gemm_int8 = 0;
    fresh();
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    const char *dir = model_dir("rt", NULL, 0, 1);
    char p[600];
    snprintf(p, sizeof p, "%s/model.bin", dir);
    const char *nm = dtype == SC_USE_BIN_F32 ? "unit-f32" : "unit-f16";
    CHECK_OK(sc_use_bin_save(m, p, dtype, nm));
    snprintf(p, sizeof p, "%s/model.bin.tmp", dir);
    CHECK(access(p, F_OK) != 0); /* the temporary file was renamed */

    /* the header and the payload are as use_bin.h documents them */
    size_t len;
    snprintf(p, sizeof p, "%s/model.bin", dir);
    uint8_t *b = read_all(p, &len);
    REQUIRE(b != NULL);
    tensor t[40];
    size_t nt = tensors_of(m, t), floats = 0, esz = dtype == SC_USE_BIN_F32 ? 4 : 2;
    for (size_t i = 0; i < nt; i++) floats += t[i].n;
    CHECK_EQ_INT(len, SC_USE_BIN_HEADER + floats * esz);
    CHECK(memcmp(b, "SCEMBED\0", 8) == 0);
    CHECK_EQ_INT(rd32(b + 8), 1);
    CHECK_EQ_INT(rd32(b + 12), dtype);
    CHECK_EQ_INT(rd32(b + 16), m->n_vocab_rows);
    CHECK_EQ_INT(rd32(b + 20), 256);
    CHECK_EQ_INT(rd32(b + 24), 512);
    CHECK_EQ_INT(rd32(b + 28), m->max_len);
    CHECK_EQ_INT(rd32(b + 32), 256);
    CHECK_EQ_INT(rd32(b + 36), 512);
    CHECK_EQ_INT(rd32(b + 44), 1536);
    CHECK_EQ_INT(rd32(b + 48), 512);
    CHECK_EQ_INT(rd64(b + 80), floats * esz);
    CHECK(rd64(b + 88) == sc_hash64(b + SC_USE_BIN_HEADER, len - SC_USE_BIN_HEADER, 0));
    CHECK(strcmp((const char *)b + 96, nm) == 0);
    size_t off = SC_USE_BIN_HEADER, bad = 0;
    for (size_t i = 0; i < nt && off <= len; i++)
        for (size_t j = 0; j < t[i].n && off + esz <= len; j++, off += esz) {
            uint32_t want = esz == 4 ? f_bits(t[i].p[j]) : sc_float_to_half(t[i].p[j]);
            uint32_t got = esz == 4 ? rd32(b + off) : (uint32_t)(b[off] | b[off + 1] << 8);
            bad += got != want;
        }
    CHECK_EQ_INT(bad, 0);
    free(b);

    /* loaded back: same shapes, the same (or half-rounded) weights, the same
     * embeddings as the USE-lite C model */
    sc_use_model *m2 = NULL;
    char name[33], err[512] = "";
    int rc = sc_use_bin_load(&m2, dir, name, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "load: %s", err);
    REQUIRE(rc == 0 && m2 != NULL);
    CHECK(strcmp(name, nm) == 0);
    CHECK_EQ_INT(m2->n_vocab_rows, m->n_vocab_rows);
    CHECK_EQ_INT(m2->out_dim, 512);
    CHECK_EQ_INT(m2->max_len, m->max_len);
    CHECK(m2->ln_eps == m->ln_eps && m2->l2_eps == m->l2_eps);
    CHECK(m2->layer[0].res_w != NULL && m2->layer[1].res_w == NULL);
    for (int l = 0; l < 2; l++) {
        CHECK_EQ_INT(m2->layer[l].heads, m->layer[l].heads);
        CHECK_EQ_INT(m2->layer[l].head_dim, m->layer[l].head_dim);
        CHECK(m2->layer[l].scale == m->layer[l].scale);
    }
    CHECK_EQ_INT(sc_use_vocab_size(m2->vocab), sc_use_vocab_size(m->vocab));
    tensor t2[40];
    CHECK_EQ_INT(tensors_of(m2, t2), nt);
    bad = 0;
    for (size_t i = 0; i < nt; i++)
        for (size_t j = 0; j < t[i].n; j++) {
            float want = esz == 4 ? t[i].p[j] : sc_half_to_float(sc_float_to_half(t[i].p[j]));
            bad += f_bits(t2[i].p[j]) != f_bits(want);
        }
    CHECK_EQ_INT(bad, 0);
    float a[512], c[512];
    double worst = 1;
    for (size_t i = 0; i < NSENT; i++) {
        CHECK_OK(embed_with(m, sentences[i], a));
        CHECK_OK(embed_with(m2, sentences[i], c));
        double cs = cosine(a, c, 512);
        if (cs < worst) worst = cs;
        if (!(cs >= (esz == 4 ? 0.999999 : 0.9999)))
            sc_test_fail(__FILE__, __LINE__, "\"%s\": cosine %.7f", sentences[i], cs);
    }
    printf("# %s round trip: worst cosine to USE-lite %.7f\n", esz == 4 ? "float32" : "float16", worst);
    sc_use_model_free(m2);
    sc_use_gemm_int8 = int8;
}

SC_TEST(use_bin_round_trip_f32) { round_trip(SC_USE_BIN_F32); }
SC_TEST(use_bin_round_trip_f16) { round_trip(SC_USE_BIN_F16); }

SC_TEST(use_bin_save_errors)
{
    fresh();
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    char p[600];
    snprintf(p, sizeof p, "%s/model.bin", tmp_cur);
    CHECK_EQ_INT(sc_use_bin_save(m, p, 3, "x"), SC_EINVAL);
    CHECK_EQ_INT(sc_use_bin_save(m, p, 0, "x"), SC_EINVAL);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/no/such/dir/model.bin", tmp_cur);
    CHECK_EQ_INT(sc_use_bin_save(m, p, SC_USE_BIN_F16, "x"), SC_EIO);
}

/* A folding vocab gives the same ids to a prompt as typed in any case,
 * with or without end punctuation; the flag travels in model.bin. */
static void ids_of(const sc_use_vocab *v, const char *s, size_t max_ids, int32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (sc_use_encode(v, s, strlen(s), max_ids, ids, n) != 0) sc_test_fail(__FILE__, __LINE__, "encode failed");
}

static int same_ids(const sc_use_vocab *v, const char *a, const char *b)
{
    int32_t *x, *y;
    size_t nx, ny;
    ids_of(v, a, 0, &x, &nx);
    ids_of(v, b, 0, &y, &ny);
    int same = nx == ny && (nx == 0 || memcmp(x, y, nx * sizeof *x) == 0);
    free(x);
    free(y);
    return same;
}

SC_TEST(use_bin_fold_tokenizer)
{
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    sc_use_vocab *v = m->vocab;
    CHECK(!sc_use_vocab_folds(v));
    CHECK(!same_ids(v, "What is the capital of France?", "what is the capital of france"));
    sc_use_vocab_set_fold(v, 1);
    CHECK(same_ids(v, "What is the capital of France?", "what is the capital of france"));
    CHECK(same_ids(v, "WHAT IS THE CAPITAL OF FRANCE?!  ", "what is the capital of france"));
    CHECK(same_ids(v, "Straße.", "strasse")); /* full case folding */
    CHECK(same_ids(v, "?!.", ""));
    CHECK(same_ids(v, "What is the capital of France?\n\t", "what is the capital of france"));
    /* only the end: punctuation inside the text stays */
    CHECK(!same_ids(v, "dark mode. on", "dark mode on"));
    CHECK(!same_ids(v, "1.5 km", "15 km"));
    /* a long text goes by prefixes (use_tokenizer.c); a prefix's end is
     * not the text's end, so its first ids are those of the whole text */
    size_t n = 40000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = "Where. Is? It "[i % 14];
    big[n] = 0;
    int32_t *a, *b;
    size_t na, nb;
    ids_of(v, big, 50, &a, &na);
    sc_use_vocab_set_fold(v, 0);
    char *low = malloc(n + 1);
    for (size_t i = 0; i <= n; i++) low[i] = (char)(big[i] >= 'A' && big[i] <= 'Z' ? big[i] + 32 : big[i]);
    ids_of(v, low, 0, &b, &nb);
    CHECK(na >= 50 && nb >= 50 && memcmp(a, b, 50 * sizeof *a) == 0);
    free(a);
    free(b);
    free(big);
    free(low);
    /* ... but when only end punctuation follows a prefix, the whole text's
     * end reaches back into it: the prefix must not be taken */
    sc_use_vocab_set_fold(v, 1);
    const char *head = "what is the capital of france";
    n = strlen(head) + 2 * 20000;
    big = malloc(n + 1);
    memcpy(big, head, strlen(head));
    for (size_t i = strlen(head); i < n; i += 2) memcpy(big + i, " .", 2);
    big[n] = 0;
    ids_of(v, big, 128, &a, &na);
    ids_of(v, big, 0, &b, &nb);
    int32_t *h;
    size_t nh;
    ids_of(v, head, 0, &h, &nh);
    CHECK(na == nh && nb == nh && memcmp(a, h, nh * sizeof *a) == 0 && memcmp(b, h, nh * sizeof *b) == 0);
    free(a);
    free(b);
    free(h);
    free(big);
    sc_use_vocab_set_fold(v, 0);
    CHECK(!sc_use_vocab_folds(v));
}

SC_TEST(use_bin_fold_flag_round_trip)
{
    int int8 = sc_use_gemm_int8;
    sc_use_gemm_int8 = 0;
    fresh();
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    const char *dir = model_dir("fold", NULL, 0, 1);
    char p[600];
    snprintf(p, sizeof p, "%s/model.bin", dir);
    sc_use_vocab_set_fold(m->vocab, 1);
    CHECK_EQ_INT(sc_use_bin_save(m, p, SC_USE_BIN_F16, "a-name-of-28-characters-xxxx"), SC_EINVAL);
    int rc = sc_use_bin_save(m, p, SC_USE_BIN_F16, "unit-fold");
    sc_use_vocab_set_fold(m->vocab, 0);
    CHECK_OK(rc);
    size_t len;
    uint8_t *b = read_all(p, &len);
    REQUIRE(b != NULL);
    CHECK_EQ_INT(rd32(b + 8), SC_USE_BIN_VERSION_FLAGS);
    CHECK_EQ_INT(rd32(b + 124), SC_USE_BIN_FOLD);
    CHECK(strcmp((const char *)b + 96, "unit-fold") == 0);
    free(b);
    sc_use_model *m2 = NULL;
    char name[33], err[512] = "";
    rc = sc_use_bin_load(&m2, dir, name, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "load: %s", err);
    REQUIRE(rc == 0 && m2 != NULL);
    CHECK(strcmp(name, "unit-fold") == 0);
    CHECK(sc_use_vocab_folds(m2->vocab));
    float x[512], y[512];
    CHECK_OK(embed_with(m2, "What is the capital of France?", x));
    CHECK_OK(embed_with(m2, "what is the capital of france", y));
    CHECK(cosine(x, y, 512) > 0.999999);
    sc_use_model_free(m2);
    /* a model saved without folding stays version 1 and does not fold */
    CHECK_OK(sc_use_bin_save(m, p, SC_USE_BIN_F16, "unit-nofold"));
    b = read_all(p, &len);
    REQUIRE(b != NULL);
    CHECK_EQ_INT(rd32(b + 8), SC_USE_BIN_VERSION);
    free(b);
    rc = sc_use_bin_load(&m2, dir, name, err, sizeof err);
    REQUIRE(rc == 0);
    CHECK(!sc_use_vocab_folds(m2->vocab));
    sc_use_model_free(m2);
    sc_use_gemm_int8 = int8;
}

/* ---- refusals ------------------------------------------------------------------ */

SC_TEST(use_bin_refuse_missing_files)
{
    fresh();
    size_t len;
    const uint8_t *g = good_f16(&len);
    REQUIRE(g != NULL);
    const char *d = model_dir("no_model", NULL, 0, 1);
    REFUSED(d, "model.bin", "cannot open");
    d = model_dir("no_vocab", g, len, 0);
    REFUSED(d, "vocab.json", "cannot open");
    /* a damaged vocab.json is named too */
    d = model_dir("bad_vocab", g, len, 0);
    char p[600];
    snprintf(p, sizeof p, "%s/vocab.json", d);
    CHECK(write_all(p, "[[\"a\", 0.5], ", 13) == 0);
    REFUSED(d, "vocab.json", "vocab.json");
    /* the directory itself missing */
    snprintf(p, sizeof p, "%s/nowhere", tmp_cur);
    REFUSED(p, "model.bin", "cannot open");
}

SC_TEST(use_bin_refuse_truncated)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    REFUSED(model_dir("short", b, len - 100, 1), "model.bin", "size");
    REFUSED(model_dir("short_msg", b, len - 100, 1), "model.bin", "truncated");
    REFUSED(model_dir("header", b, 60, 1), "model.bin", "header");
    REFUSED(model_dir("empty", b, 0, 1), "model.bin", "header");
    REFUSED(model_dir("header_only", b, SC_USE_BIN_HEADER, 1), "model.bin", "size");
    uint8_t *big = malloc(len + 2);
    memcpy(big, b, len);
    big[len] = big[len + 1] = 0;
    REFUSED(model_dir("longer", big, len + 2, 1), "model.bin", "size");
    free(big);
    free(b);
}

SC_TEST(use_bin_refuse_checksum)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    size_t at[] = {SC_USE_BIN_HEADER, SC_USE_BIN_HEADER + (len - SC_USE_BIN_HEADER) / 2, len - 1};
    for (size_t i = 0; i < 3; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "flip%zu", i);
        b[at[i]] ^= 0x10;
        REFUSED(model_dir(sub, b, len, 1), "model.bin", "checksum");
        b[at[i]] ^= 0x10;
    }
    b[88] ^= 1; /* the stored checksum itself */
    REFUSED(model_dir("sum", b, len, 1), "model.bin", "checksum");
    free(b);
}

SC_TEST(use_bin_refuse_magic_version_dtype)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    b[0] = 'X';
    REFUSED(model_dir("magic", b, len, 1), "model.bin", "bad magic");
    b[0] = 'S';
    b[7] = '!'; /* the NUL is part of the magic */
    REFUSED(model_dir("magic_nul", b, len, 1), "model.bin", "bad magic");
    b[7] = 0;
    wr32(b + 8, 3);
    REFUSED(model_dir("version", b, len, 1), "model.bin", "version 3");
    wr32(b + 8, 2); /* version 2 has flags; an unknown one is refused */
    wr32(b + 124, 2);
    REFUSED(model_dir("flags", b, len, 1), "model.bin", "unknown flags 0x2");
    wr32(b + 124, 0);
    wr32(b + 8, 0);
    REFUSED(model_dir("version0", b, len, 1), "model.bin", "version 0");
    wr32(b + 8, 1);
    wr32(b + 12, 3);
    REFUSED(model_dir("dtype", b, len, 1), "model.bin", "dtype");
    /* float32 claimed for a float16 payload: the size does not fit */
    wr32(b + 12, SC_USE_BIN_F32);
    REFUSED(model_dir("dtype32", b, len, 1), "model.bin", "payload bytes");
    free(b);
}

SC_TEST(use_bin_refuse_shape)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    static const struct { size_t off; uint32_t v; const char *sub; } c[] = {
        {20, 300, "emb_dim"},     {24, 256, "out_dim"},     {16, 0, "vocab0"},
        {16, 1u << 24, "vocab_huge"}, {28, 0, "max_len0"}, {28, 100000, "max_len_huge"},
        {32, 512, "l0_in"},       {36, 256, "l0_width"},    {48, 256, "l1_in"},
        {40, 3, "heads3"},        {40, 0, "heads0"},        {44, 1024, "ffn"},
        {56, 1000, "heads_many"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        uint32_t old = rd32(b + c[i].off);
        wr32(b + c[i].off, c[i].v);
        REFUSED(model_dir(c[i].sub, b, len, 1), "model.bin", "shape");
        wr32(b + c[i].off, old);
    }
    /* a query scale or epsilon out of range */
    uint32_t old = rd32(b + 64);
    wr32(b + 64, f_bits(NAN));
    REFUSED(model_dir("scale_nan", b, len, 1), "model.bin", "scale");
    wr32(b + 64, f_bits(2.0f));
    REFUSED(model_dir("scale2", b, len, 1), "model.bin", "scale");
    wr32(b + 64, old);
    old = rd32(b + 72);
    wr32(b + 72, f_bits(0.5f));
    REFUSED(model_dir("ln_eps", b, len, 1), "model.bin", "epsilon");
    wr32(b + 72, old);
    free(b);
}

SC_TEST(use_bin_refuse_payload_field)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    uint64_t payload = rd64(b + 80);
    wr64(b + 80, payload + 2);
    REFUSED(model_dir("plus2", b, len, 1), "model.bin", "payload bytes");
    wr64(b + 80, payload - 2);
    REFUSED(model_dir("minus2", b, len, 1), "model.bin", "payload bytes");
    wr64(b + 80, payload + (1ull << 40));
    REFUSED(model_dir("huge", b, len, 1), "model.bin", "payload bytes");
    free(b);
}

SC_TEST(use_bin_refuse_non_finite_weight)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    /* a NaN in the middle of emb, an inf as the very last weight, each
     * with a fresh checksum so only the finiteness check can catch them */
    size_t halves = (len - SC_USE_BIN_HEADER) / 2;
    size_t at[] = {(size_t)m->n_vocab_rows * 256 / 2 + 7, halves - 1};
    uint16_t val[] = {0x7e00, 0xfc00};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *p = b + SC_USE_BIN_HEADER + 2 * at[i];
        uint8_t o0 = p[0], o1 = p[1];
        p[0] = (uint8_t)val[i];
        p[1] = (uint8_t)(val[i] >> 8);
        rehash(b, len);
        char sub[16], want[64];
        snprintf(sub, sizeof sub, "nan%zu", i);
        snprintf(want, sizeof want, "weight %zu is not finite", at[i]);
        REFUSED(model_dir(sub, b, len, 1), "model.bin", want);
        p[0] = o0;
        p[1] = o1;
        rehash(b, len);
    }
    /* the restored copy loads again (the damage was all there was) */
    const char *d = model_dir("restored", b, len, 1);
    sc_use_model *m2 = NULL;
    char name[33], err[512] = "";
    int rc = sc_use_bin_load(&m2, d, name, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "restored copy: %s", err);
    sc_use_model_free(m2);
    free(b);

    /* the same in a float32 file */
    char p[600];
    d = model_dir("f32", NULL, 0, 1);
    snprintf(p, sizeof p, "%s/model.bin", d);
    REQUIRE(sc_use_bin_save(m, p, SC_USE_BIN_F32, "f32") == 0);
    b = read_all(p, &len);
    REQUIRE(b != NULL);
    wr32(b + SC_USE_BIN_HEADER + 4 * 1000, f_bits(INFINITY));
    rehash(b, len);
    REFUSED(model_dir("f32", b, len, 1), "model.bin", "weight 1000 is not finite");
    free(b);
}

/* vocab.json with more pieces than model.bin has embedding rows: the
 * tokenizer could produce ids past the table. */
SC_TEST(use_bin_refuse_vocab_larger_than_rows)
{
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    uint32_t rows = rd32(b + 16), keep = rows - 10;
    size_t cut = (size_t)(rows - keep) * 256 * 2, at = SC_USE_BIN_HEADER + (size_t)keep * 256 * 2;
    memmove(b + at, b + at + cut, len - at - cut);
    len -= cut;
    wr32(b + 16, keep);
    wr64(b + 80, len - SC_USE_BIN_HEADER);
    rehash(b, len);
    REFUSED(model_dir("rows", b, len, 1), "vocab.json", "embedding rows");
    free(b);
}

/* ---- through the public API ---------------------------------------------------- */

SC_TEST(use_bin_embedder_open)
{
    int int8 = sc_use_gemm_int8;
    sc_use_gemm_int8 = 0; /* see round_trip */
    fresh();
    size_t len;
    uint8_t *b = good_copy(&len);
    REQUIRE(b != NULL);
    sc_embedder *e = NULL;
    char err[512] = "", want[600];

    /* a corrupted copy: the error names the file and the problem */
    b[len / 2] ^= 0x40;
    const char *d = model_dir("bad", b, len, 1);
    sc_embedder_opts o = {.name = "semcache-embed", .model_dir = d};
    CHECK(sc_embedder_open(&e, &o, err, sizeof err) != 0);
    snprintf(want, sizeof want, "%s/model.bin", d);
    if (!strstr(err, want) || !strstr(err, "checksum"))
        sc_test_fail(__FILE__, __LINE__, "error does not name %s and the checksum: %s", want, err);
    if (e) sc_embedder_close(e);
    e = NULL;
    b[len / 2] ^= 0x40;

    /* a good copy: 512-d, id "<name in the header>/1", the USE-lite vectors */
    d = model_dir("good", b, len, 1);
    sc_embedder_opts g = {.name = "semcache-embed", .model_dir = d};
    err[0] = 0;
    int rc = sc_embedder_open(&e, &g, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "open %s: %s", d, err);
    REQUIRE(rc == 0 && e != NULL);
    CHECK_EQ_INT(sc_embedder_dim(e), 512);
    CHECK(strncmp(sc_embedder_id(e), "unit-f16/1.", 11) == 0 && strlen(sc_embedder_id(e)) == 19) /* name/1.<checksum> */;
    const sc_use_model *m = use_model();
    REQUIRE(m != NULL);
    const char *texts[NSENT];
    size_t lens[NSENT];
    for (size_t i = 0; i < NSENT; i++) {
        texts[i] = sentences[i];
        lens[i] = strlen(sentences[i]);
    }
    float *out = malloc(sizeof(float) * 512 * NSENT), ref[512];
    CHECK_OK(sc_embed(e, texts, lens, NSENT, out));
    for (size_t i = 0; i < NSENT; i++) {
        CHECK_OK(embed_with(m, sentences[i], ref));
        double cs = cosine(out + 512 * i, ref, 512);
        if (!(cs >= 0.9999)) sc_test_fail(__FILE__, __LINE__, "\"%s\": cosine %.7f", sentences[i], cs);
    }
    free(out);
    sc_embedder_close(e);

    /* no name in the header: the backend's own */
    memset(b + 96, 0, 32);
    d = model_dir("noname", b, len, 1);
    sc_embedder_opts n = {.name = "semcache-embed", .model_dir = d};
    e = NULL;
    rc = sc_embedder_open(&e, &n, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "open %s: %s", d, err);
    if (e) {
        CHECK(strncmp(sc_embedder_id(e), "semcache-embed/1.", 17) == 0);
        sc_embedder_close(e);
    }
    /* the same weights with the FOLD flag embed otherwise: another id */
    wr32(b + 8, SC_USE_BIN_VERSION_FLAGS);
    wr32(b + 124, SC_USE_BIN_FOLD);
    memcpy(b + 96, "unit-f16", 8);
    d = model_dir("folded", b, len, 1);
    sc_embedder_opts f = {.name = "semcache-embed", .model_dir = d};
    e = NULL;
    rc = sc_embedder_open(&e, &f, err, sizeof err);
    if (rc) sc_test_fail(__FILE__, __LINE__, "open %s: %s", d, err);
    if (e) {
        CHECK(strncmp(sc_embedder_id(e), "unit-f16/2.", 11) == 0);
        sc_embedder_close(e);
    }
    free(b);
    sc_use_gemm_int8 = int8;
}
