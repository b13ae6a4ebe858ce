/* The numeric kernels of the index: int8 quantisation, int8 dot products
 * of one query against many rows, and the fp32 x fp16 dot product used to
 * re-score candidates (fp32 x fp32 for callers that have both in fp32).
 *
 * Each kernel has a portable scalar reference and SIMD versions compiled
 * with per-function target attributes (the global flags stay generic); the
 * best version for this CPU is picked once, at first use, with
 * __builtin_cpu_supports. The int8 kernels are exact integer arithmetic,
 * so every SIMD version must equal the scalar one bit for bit; the unit
 * tests check that. Inputs to the int8 kernels are in [-127, 127] (what
 * sc_index_quantize produces); -128 is never used.
 *
 * AVX-512 VNNI: vpdpbusd multiplies unsigned by signed bytes. Flipping the
 * top bit of a row byte (r ^ 0x80) turns it into the unsigned value r+128,
 * so the instruction yields sum((r+128)*q) = dot(r,q) + 128*sum(q), and the
 * query-only term is subtracted once per row. Tails (dim not a multiple of
 * 64) use masked loads; masked-off query bytes are zero, so they add
 * nothing. AVX2: |q| (unsigned) times sign(q)*r (signed) with vpmaddubsw,
 * pairs never saturate because |q|,|r| <= 127, then vpmaddwd to int32.
 *
 * The 4-bit scan codes (scan_bits = 4, the default) pack a row in 128-dim
 * blocks of 64 bytes: byte j holds dim j in its low nibble and dim 64+j in
 * its high nibble, each as v+8 with v in [-7, 7] (padding: 8). So a mask
 * and a shift give two runs of 64 consecutive dims, already unsigned for
 * vpdpbusd / vpmaddubsw against the int8 query (zero-padded to whole
 * blocks); the +8 comes back out as 8*sum(q). */
#include "index/index.h"
#include "index/index_int.h"
#include "common/err.h"
#include "common/half.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * Scalar references
 * ------------------------------------------------------------------- */

void sc_index_quantize_scalar(const float *v, int8_t *q, size_t dim)
{
    for (size_t i = 0; i < dim; i++) {
        float x = v[i] * 127.0f;
        if (x > 127.0f) x = 127.0f;
        if (x < -127.0f) x = -127.0f;
        if (x != x) x = 0.0f; /* NaN */
        q[i] = (int8_t)_mm_cvtss_si32(_mm_set_ss(x)); /* lrintf, inline */
    }
}

void sc_index_dot_i8_scalar(const int8_t *q, const int8_t *rows, size_t n, size_t dim,
                            int32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const int8_t *r = rows + i * dim;
        int32_t s = 0;
        for (size_t j = 0; j < dim; j++) s += (int32_t)q[j] * (int32_t)r[j];
        out[i] = s;
    }
}

size_t sc_index_quantize_i4_scalar(const float *v, uint8_t *codes, size_t dim, float *scale)
{
    float m = 0;
    for (size_t i = 0; i < dim; i++) {
        float a = fabsf(v[i]);
        if (a > m) m = a;
    }
    size_t nbytes = SC_INDEX_I4_BYTES(dim);
    memset(codes, 0x88, nbytes);
    float k = m > 0 ? 7.0f / m : 0.0f;
    for (size_t i = 0; i < dim; i++) {
        long c = _mm_cvtss_si32(_mm_set_ss(v[i] * k)); /* lrintf, inline */
        if (c > 7) c = 7;
        if (c < -7) c = -7;
        size_t b = i / 128, j = i % 128;
        uint8_t *byte = &codes[b * 64 + (j & 63)];
        uint8_t u = (uint8_t)(c + 8);
        *byte = j < 64 ? (uint8_t)((*byte & 0xf0) | u) : (uint8_t)((*byte & 0x0f) | (u << 4));
    }
    *scale = m;
    return nbytes;
}

void sc_index_dot_i4_scalar(const int8_t *q, const uint8_t *codes, size_t n, size_t dim,
                            int32_t *out)
{
    const size_t rb = SC_INDEX_I4_BYTES(dim);
    for (size_t r = 0; r < n; r++) {
        const uint8_t *c = codes + r * rb;
        int32_t s = 0;
        for (size_t i = 0; i < dim; i++) {
            size_t b = i / 128, j = i % 128;
            uint8_t byte = c[b * 64 + (j & 63)];
            int v = (j < 64 ? (byte & 0x0f) : (byte >> 4)) - 8;
            s += v * (int32_t)q[i];
        }
        out[r] = s;
    }
}

static size_t above_scalar(const float *s, size_t m, float thr, uint32_t *idx)
{
    size_t k = 0;
    for (size_t j = 0; j < m; j++)
        if (s[j] > thr) idx[k++] = (uint32_t)j;
    return k;
}

static float dot_f32_scalar(const float *a, const float *b, size_t dim)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= dim; j += 4) {
        s0 += a[j] * b[j];
        s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2];
        s3 += a[j + 3] * b[j + 3];
    }
    for (; j < dim; j++) s0 += a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

static float dot_f16_scalar(const float *a, const uint16_t *b, size_t dim)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= dim; j += 4) {
        s0 += a[j] * sc_half_to_float(b[j]);
        s1 += a[j + 1] * sc_half_to_float(b[j + 1]);
        s2 += a[j + 2] * sc_half_to_float(b[j + 2]);
        s3 += a[j + 3] * sc_half_to_float(b[j + 3]);
    }
    for (; j < dim; j++) s0 += a[j] * sc_half_to_float(b[j]);
    return (s0 + s1) + (s2 + s3);
}

/* Software prefetch distance of the scans, in bytes ahead of the rows
 * being read. Measured on 100k and 1M rows x 512: 2 KB brings the int8
 * scan to (slightly under) the plain streaming-read time of its bytes and
 * the 4-bit scan to its own; 4 KB and more was worse at 1M (4-bit: 1.5x).
 * A prefetch never faults, so running past the last row is harmless. */
#define PF_BYTES 2048

static inline void prefetch_span(const void *p, size_t n)
{
    for (size_t l = 0; l < n; l += 64) _mm_prefetch((const char *)p + PF_BYTES + l, _MM_HINT_T0);
}

/* ---------------------------------------------------------------------
 * AVX2
 * ------------------------------------------------------------------- */

__attribute__((target("avx2"))) static inline int32_t hsum256_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

__attribute__((target("avx2"))) static inline float hsum256_ps(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2"))) static void dot_i8_avx2(const int8_t *q, const int8_t *rows,
                                                        size_t n, size_t dim, int32_t *out)
{
    const size_t full = dim / 32 * 32;
    const __m256i ones = _mm256_set1_epi16(1);
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const int8_t *r0 = rows + i * dim, *r1 = r0 + dim;
        prefetch_span(r0, 2 * dim);
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (size_t j = 0; j < full; j += 32) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + j));
            __m256i qa = _mm256_abs_epi8(qv);
            __m256i v0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(r0 + j)), qv);
            __m256i v1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(r1 + j)), qv);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(qa, v0), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(qa, v1), ones));
        }
        int32_t s0 = hsum256_epi32(a0), s1 = hsum256_epi32(a1);
        for (size_t j = full; j < dim; j++) {
            s0 += (int32_t)q[j] * r0[j];
            s1 += (int32_t)q[j] * r1[j];
        }
        out[i] = s0;
        out[i + 1] = s1;
    }
    for (; i < n; i++) {
        const int8_t *r0 = rows + i * dim;
        __m256i a0 = _mm256_setzero_si256();
        for (size_t j = 0; j < full; j += 32) {
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + j));
            __m256i v0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(r0 + j)), qv);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(qv), v0), ones));
        }
        int32_t s0 = hsum256_epi32(a0);
        for (size_t j = full; j < dim; j++) s0 += (int32_t)q[j] * r0[j];
        out[i] = s0;
    }
}

__attribute__((target("avx2"))) static void dot_i4_avx2(const int8_t *q, const uint8_t *codes,
                                                        size_t n, size_t dim, int32_t *out)
{
    const size_t nb = (dim + 127) / 128, rb = nb * 64;
    const __m256i mask = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    int32_t sq = 0;
    for (size_t j = 0; j < dim; j++) sq += q[j];
    const int32_t corr = 8 * sq;
    for (size_t r = 0; r < n; r++) {
        const uint8_t *c = codes + r * rb;
        prefetch_span(c, rb);
        __m256i acc = _mm256_setzero_si256();
        for (size_t b = 0; b < nb; b++) {
            for (size_t h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(c + b * 64 + h * 32));
                __m256i lo = _mm256_and_si256(v, mask);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
                __m256i ql = _mm256_loadu_si256((const __m256i *)(q + b * 128 + h * 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(q + b * 128 + 64 + h * 32));
                __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, ql), _mm256_maddubs_epi16(hi, qh));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
            }
        }
        out[r] = hsum256_epi32(acc) - corr;
    }
}

__attribute__((target("avx2,fma"))) static float dot_f32_avx2(const float *a, const float *b,
                                                              size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= dim; j += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    }
    for (; j + 8 <= dim; j += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    float s = hsum256_ps(_mm256_add_ps(s0, s1));
    for (; j < dim; j++) s += a[j] * b[j];
    return s;
}

__attribute__((target("avx2,fma,f16c"))) static float dot_f16_avx2(const float *a,
                                                                   const uint16_t *b, size_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= dim; j += 16) {
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + j)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + j + 8)));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), b0, s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), b1, s1);
    }
    float s = hsum256_ps(_mm256_add_ps(s0, s1));
    for (; j < dim; j++) s += a[j] * sc_half_to_float(b[j]);
    return s;
}

/* ---------------------------------------------------------------------
 * AVX-512 (VNNI for int8, F for fp32)
 * ------------------------------------------------------------------- */

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

/* The four horizontal sums of a0..a3, minus corr, stored to out[0..3]:
 * a transposing add tree instead of four separate reductions. */
VNNI_TARGET static inline void store4(int32_t *out, __m512i a0, __m512i a1, __m512i a2,
                                      __m512i a3, int32_t corr)
{
    __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
    __m256i v = _mm256_add_epi32(_mm512_castsi512_si256(u), _mm512_extracti64x4_epi64(u, 1));
    __m128i w = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    _mm_storeu_si128((__m128i *)out, _mm_sub_epi32(w, _mm_set1_epi32(corr)));
}

VNNI_TARGET static void dot_i8_vnni(const int8_t *q, const int8_t *rows, size_t n, size_t dim,
                                    int32_t *out)
{
    const size_t full = dim / 64 * 64, tail = dim - full;
    const __mmask64 tm = tail ? (((__mmask64)1 << tail) - 1) : 0;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    int32_t sq = 0;
    for (size_t j = 0; j < dim; j++) sq += q[j];
    const int32_t corr = 128 * sq;
    const __m512i qt = _mm512_maskz_loadu_epi8(tm, q + full);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int8_t *r0 = rows + i * dim, *r1 = r0 + dim, *r2 = r1 + dim, *r3 = r2 + dim;
        prefetch_span(r0, 4 * dim);
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
        for (size_t j = 0; j < full; j += 64) {
            __m512i qv = _mm512_loadu_si512(q + j);
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(r0 + j), bias), qv);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_loadu_si512(r1 + j), bias), qv);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_xor_si512(_mm512_loadu_si512(r2 + j), bias), qv);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(_mm512_loadu_si512(r3 + j), bias), qv);
        }
        if (tail) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, r0 + full), bias), qt);
            a1 = _mm512_dpbusd_epi32(a1, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, r1 + full), bias), qt);
            a2 = _mm512_dpbusd_epi32(a2, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, r2 + full), bias), qt);
            a3 = _mm512_dpbusd_epi32(a3, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, r3 + full), bias), qt);
        }
        store4(out + i, a0, a1, a2, a3, corr);
    }
    for (; i < n; i++) {
        const int8_t *r0 = rows + i * dim;
        __m512i a0 = _mm512_setzero_si512();
        for (size_t j = 0; j < full; j += 64)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_loadu_si512(r0 + j), bias),
                                     _mm512_loadu_si512(q + j));
        if (tail)
            a0 = _mm512_dpbusd_epi32(a0, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tm, r0 + full), bias), qt);
        out[i] = _mm512_reduce_add_epi32(a0) - corr;
    }
}

VNNI_TARGET static void dot_i4_vnni(const int8_t *q, const uint8_t *codes, size_t n, size_t dim,
                                    int32_t *out)
{
    const size_t nb = (dim + 127) / 128, rb = nb * 64;
    const __m512i mask = _mm512_set1_epi8(0x0f);
    int32_t sq = 0;
    for (size_t j = 0; j < dim; j++) sq += q[j];
    const int32_t corr = 8 * sq;
    size_t r = 0;
#define I4_STEP(acc, ptr)                                                                \
    do {                                                                                 \
        __m512i v_ = _mm512_loadu_si512((ptr) + b * 64);                                 \
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(v_, mask), ql);                  \
        acc = _mm512_dpbusd_epi32(acc, _mm512_and_si512(_mm512_srli_epi16(v_, 4), mask), qh); \
    } while (0)
    for (; r + 4 <= n; r += 4) {
        const uint8_t *c0 = codes + r * rb, *c1 = c0 + rb, *c2 = c1 + rb, *c3 = c2 + rb;
        prefetch_span(c0, 4 * rb);
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
        for (size_t b = 0; b < nb; b++) {
            __m512i ql = _mm512_loadu_si512(q + b * 128), qh = _mm512_loadu_si512(q + b * 128 + 64);
            I4_STEP(a0, c0);
            I4_STEP(a1, c1);
            I4_STEP(a2, c2);
            I4_STEP(a3, c3);
        }
        store4(out + r, a0, a1, a2, a3, corr);
    }
    for (; r < n; r++) {
        const uint8_t *c0 = codes + r * rb;
        __m512i a0 = _mm512_setzero_si512();
        for (size_t b = 0; b < nb; b++) {
            __m512i ql = _mm512_loadu_si512(q + b * 128), qh = _mm512_loadu_si512(q + b * 128 + 64);
            I4_STEP(a0, c0);
        }
        out[r] = _mm512_reduce_add_epi32(a0) - corr;
    }
#undef I4_STEP
}

__attribute__((target("avx512f"))) static size_t above_avx512(const float *s, size_t m, float thr,
                                                              uint32_t *idx)
{
    const __m512 t = _mm512_set1_ps(thr);
    __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    size_t k = 0;
    for (size_t j = 0; j < m; j += 16) {
        __mmask16 lm = m - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (m - j)) - 1);
        __mmask16 gt = _mm512_mask_cmp_ps_mask(lm, _mm512_maskz_loadu_ps(lm, s + j), t, _CMP_GT_OQ);
        if (gt) {
            _mm512_mask_compressstoreu_epi32(idx + k, gt, iota);
            k += (size_t)__builtin_popcount(gt);
        }
        iota = _mm512_add_epi32(iota, sixteen);
    }
    return k;
}

__attribute__((target("avx512f"))) static float dot_f32_avx512(const float *a, const float *b,
                                                               size_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= dim; j += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16), s1);
    }
    if (j < dim) {
        size_t rest = dim - j;
        __mmask16 m0 = rest >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rest) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, a + j), _mm512_maskz_loadu_ps(m0, b + j), s0);
        if (rest > 16) {
            __mmask16 m1 = (__mmask16)((1u << (rest - 16)) - 1);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, a + j + 16),
                                 _mm512_maskz_loadu_ps(m1, b + j + 16), s1);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"))) static float dot_f16_avx512(const float *a,
                                                               const uint16_t *b, size_t dim)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= dim; j += 32) {
        __m512 b0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + j)));
        __m512 b1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + j + 16)));
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j), b0, s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + j + 16), b1, s1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; j < dim; j++) s += a[j] * sc_half_to_float(b[j]);
    return s;
}

/* ---------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------- */

typedef void (*dot_i8_fn)(const int8_t *, const int8_t *, size_t, size_t, int32_t *);
typedef float (*dot_f32_fn)(const float *, const float *, size_t);
typedef float (*dot_f16_fn)(const float *, const uint16_t *, size_t);
typedef void (*dot_i4_fn)(const int8_t *, const uint8_t *, size_t, size_t, int32_t *);
typedef size_t (*above_fn)(const float *, size_t, float, uint32_t *);

/* ---------------------------------------------------------------------
 * Quantisers, AVX-512 (every add quantises its row; the ANN build every
 * row it assigns). Same operations in the same order as the scalar
 * references, so the same bytes: v*127 (or v*(7/max|v|)), NaN to 0,
 * clamped, rounded to nearest even.
 * ------------------------------------------------------------------- */

__attribute__((target("avx512f,avx512bw"))) static void quantize_avx512(const float *v, int8_t *q,
                                                                         size_t dim)
{
    const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    size_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m512 x = _mm512_mul_ps(_mm512_loadu_ps(v + i), hi);
        x = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x);
        x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(x)));
    }
    if (i < dim) sc_index_quantize_scalar(v + i, q + i, dim - i);
}

/* 16 codes v*k rounded, clamped to [-7, 7], plus 8, as bytes. */
__attribute__((target("avx512f,avx512bw"))) static __m128i codes16(const float *v, __m512 k)
{
    const __m512i lo = _mm512_set1_epi32(-7), hi = _mm512_set1_epi32(7), eight = _mm512_set1_epi32(8);
    __m512i c = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(v), k));
    c = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(c, lo), hi), eight);
    return _mm512_cvtepi32_epi8(c);
}

__attribute__((target("avx512f,avx512bw"))) static size_t quantize_i4_avx512(const float *v, uint8_t *codes,
                                                                              size_t dim, float *scale)
{
    if (dim % 128) return sc_index_quantize_i4_scalar(v, codes, dim, scale);
    __m512 mx = _mm512_setzero_ps();
    for (size_t i = 0; i < dim; i += 16) /* NaN (first operand) keeps mx, as the scalar's a > m */
        mx = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(v + i)), mx);
    float m = _mm512_reduce_max_ps(mx);
    __m512 k = _mm512_set1_ps(m > 0 ? 7.0f / m : 0.0f);
    for (size_t b = 0; b < dim / 128; b++) {
        const float *x = v + b * 128;
        for (size_t j = 0; j < 64; j += 16) {
            __m128i l = codes16(x + j, k), h = codes16(x + 64 + j, k);
            _mm_storeu_si128((__m128i *)(codes + b * 64 + j), _mm_or_si128(l, _mm_slli_epi16(h, 4)));
        }
    }
    *scale = m;
    return SC_INDEX_I4_BYTES(dim);
}

/* Sum of squares in double (the index normalises every vector it takes). */
static double sumsq_scalar(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * v[i];
    return s;
}

__attribute__((target("avx512f"))) static double sumsq_avx512(const float *v, size_t n)
{
    __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(v + i)), y = _mm512_cvtps_pd(_mm256_loadu_ps(v + i + 8));
        a = _mm512_fmadd_pd(x, x, a);
        b = _mm512_fmadd_pd(y, y, b);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a, b)) + sumsq_scalar(v + i, n - i);
}

typedef void (*quant_fn)(const float *, int8_t *, size_t);
typedef size_t (*quant_i4_fn)(const float *, uint8_t *, size_t, float *);

static struct {
    const char *name;
    quant_fn q8;
    quant_i4_fn q4;
    double (*sumsq)(const float *, size_t);
    dot_i8_fn i8;
    dot_f32_fn f32;
    dot_i4_fn i4;
    above_fn above;
    dot_f16_fn f16;
} active = {"scalar", sc_index_quantize_scalar, sc_index_quantize_i4_scalar, sumsq_scalar, sc_index_dot_i8_scalar, dot_f32_scalar, sc_index_dot_i4_scalar, above_scalar,
            dot_f16_scalar};
static pthread_once_t dispatch_once = PTHREAD_ONCE_INIT;

static int cpu_has(const char *name)
{
    __builtin_cpu_init();
    if (strcmp(name, "scalar") == 0) return 1;
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               sc_half_cpu_f16c();
    if (strcmp(name, "avx512vnni") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
    return 0;
}

static void select_kernel(const char *name)
{
    if (strcmp(name, "avx512vnni") == 0) {
        active.name = "avx512vnni";
        active.q8 = quantize_avx512;
        active.q4 = quantize_i4_avx512;
        active.sumsq = sumsq_avx512;
        active.i8 = dot_i8_vnni;
        active.f32 = dot_f32_avx512;
        active.i4 = dot_i4_vnni;
        active.above = above_avx512;
        active.f16 = dot_f16_avx512;
    } else if (strcmp(name, "avx2") == 0) {
        active.name = "avx2";
        active.q8 = sc_index_quantize_scalar;
        active.q4 = sc_index_quantize_i4_scalar;
        active.sumsq = sumsq_scalar;
        active.i8 = dot_i8_avx2;
        active.f32 = dot_f32_avx2;
        active.i4 = dot_i4_avx2;
        active.above = above_scalar;
        active.f16 = dot_f16_avx2;
    } else {
        active.name = "scalar";
        active.q8 = sc_index_quantize_scalar;
        active.q4 = sc_index_quantize_i4_scalar;
        active.sumsq = sumsq_scalar;
        active.i8 = sc_index_dot_i8_scalar;
        active.f32 = dot_f32_scalar;
        active.i4 = sc_index_dot_i4_scalar;
        active.above = above_scalar;
        active.f16 = dot_f16_scalar;
    }
}

static void dispatch_init(void)
{
    if (cpu_has("avx512vnni"))
        select_kernel("avx512vnni");
    else if (cpu_has("avx2"))
        select_kernel("avx2");
    else
        select_kernel("scalar");
}

int sc_index_kernel_force(const char *name)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (!name || strcmp(name, "auto") == 0) {
        dispatch_init();
        return 0;
    }
    if (strcmp(name, "scalar") && strcmp(name, "avx2") && strcmp(name, "avx512vnni"))
        return SC_EINVAL;
    if (!cpu_has(name)) return SC_EUNSUPPORTED;
    select_kernel(name);
    return 0;
}

const char *sc_index_kernel_name(void)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.name;
}

void sc_index_quantize(const float *v, int8_t *q, size_t dim)
{
    pthread_once(&dispatch_once, dispatch_init);
    active.q8(v, q, dim);
}

size_t sc_index_quantize_i4(const float *v, uint8_t *codes, size_t dim, float *scale)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.q4(v, codes, dim, scale);
}

void sc_index_dot_i8(const int8_t *q, const int8_t *rows, size_t n, size_t dim, int32_t *out)
{
    pthread_once(&dispatch_once, dispatch_init);
    active.i8(q, rows, n, dim, out);
}

float sc_index_dot_f32(const float *a, const float *b, size_t dim)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.f32(a, b, dim);
}

float sc_index_dot_f16(const float *a, const uint16_t *b, size_t dim)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.f16(a, b, dim);
}

void sc_index_dot_i4(const int8_t *q, const uint8_t *codes, size_t n, size_t dim, int32_t *out)
{
    pthread_once(&dispatch_once, dispatch_init);
    active.i4(q, codes, n, dim, out);
}

double sc_index__sumsq(const float *v, size_t n)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.sumsq(v, n);
}

size_t sc_index__above(const float *s, size_t m, float thr, uint32_t *idx)
{
    pthread_once(&dispatch_once, dispatch_init);
    return active.above(s, m, thr, idx);
}
