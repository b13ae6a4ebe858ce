/* Matrix products of the USE-lite forward pass: C[rows, n] += X[rows, k] W
 * with W a constant weight matrix.
 *
 * For a sentence or two the token count is small (10-40 rows), and
 * OpenBLAS then spends as long re-packing W on every call (sgemm_itcopy)
 * as multiplying: profiling a 16-token sentence showed 40% in the copy and
 * 41% in the kernel. Since W never changes, it is packed once at load into
 * 16-column panels ([n/16][k][16], 64-byte aligned), and small products run
 * an AVX-512 kernel that streams each panel once per block of up to 16
 * rows, with the row block's accumulators in registers. Machines without
 * AVX-512 but with AVX2 and FMA get the same in 8-column panels and blocks
 * of up to 12 rows (12 accumulators in 16 ymm registers), and the int8
 * matrices run there through vpmaddwd on int16-widened int8
 * (small_gemm_i16): a 14-token sentence with semcache-embed went from
 * 4.5-4.9 ms (OpenBLAS) to 2.0-2.2 ms on such a VM (BENCHMARKS.md,
 * Embedder). Large products (more than 128 rows: batches; and machines
 * with neither) use cblas_sgemm on the row-major W.
 * The kernel is checked against cblas_sgemm in tests/unit/test_embed_use.c.
 *
 * int8 (AVX-512 VNNI, the matrices the model marks, see
 * sc_use_model_prepare): W is also kept as int8 with a scale per column,
 * each row of X is quantised to int8 by its own max |x| when the product
 * runs, and vpdpbusd multiplies 4 pairs of bytes per 32-bit lane, four
 * times the multiply-adds of an fp32 FMA per instruction. Activations are
 * fed as unsigned (x + 128) and the column sums of W take the 128 back out.
 * Read-only after packing; any thread. */
#include "embed/use.h"

#include "common/alloc.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

#define PANEL 16


int sc_use_gemm_small_rows = 128; /* rows at or below this use the kernel (measured: >= OpenBLAS up to 128) */

/* Panels are only built where the kernel can run, so sc_use_matmul just
 * checks m->panels. The probe itself is a load of the compiler's CPU
 * model (use_forward.c asks it per layer). */
int sc_use_have_avx512(void)
{
#ifdef HAVE_AVX512_KERNEL
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

_Atomic int sc_use_gemm_int8 = 1;

static int have_avx2(void)
{
#ifdef HAVE_AVX512_KERNEL
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int have_vnni(void)
{
#ifdef HAVE_AVX512_KERNEL
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/* Column j of W quantised to int8 by its max |w|: q[0..k) in -127..127;
 * returns the scale (w ~ q * scale). Both int8 copies (q8, q16) take their
 * values from here, so the VNNI and AVX2 kernels multiply the same
 * integers. */
static float quant_col(const float *w, uint32_t k, uint32_t n, uint32_t j, int8_t *q)
{
    float mx = 0;
    for (uint32_t kk = 0; kk < k; kk++) {
        float a = fabsf(w[(size_t)kk * n + j]);
        if (a > mx) mx = a;
    }
    float sc = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / sc;
    for (uint32_t kk = 0; kk < k; kk++) {
        long v = lrintf(w[(size_t)kk * n + j] * inv);
        q[kk] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return sc;
}

/* The int8 copy of W (see sc_use_mat in use.h). */
static void pack_q8(sc_use_mat *m)
{
    uint32_t k = m->k, n = m->n;
    m->q8 = aligned_alloc(64, (size_t)k * n);
    if (!m->q8) return; /* the fp32 kernels then */
    m->qscale = sc_malloc((size_t)n * sizeof(float));
    m->qsum = sc_malloc((size_t)n * sizeof(int32_t));
    int8_t *q = sc_malloc(k);
    for (uint32_t j = 0; j < n; j++) {
        m->qscale[j] = quant_col(m->w, k, n, j, q);
        int32_t sum = 0;
        uint32_t p = j / PANEL, jj = j % PANEL;
        for (uint32_t kk = 0; kk < k; kk++) {
            m->q8[((size_t)p * (k / 4) + kk / 4) * 64 + jj * 4 + kk % 4] = q[kk];
            sum += q[kk];
        }
        m->qsum[j] = sum;
    }
    free(q);
}

int sc_use_mat_pack_q16(sc_use_mat *m)
{
    uint32_t k = m->k, n = m->n;
    if (m->q16) return 0;
    if (n % 8 != 0 || k % 2 != 0 || !have_avx2()) return -1;
    m->q16 = aligned_alloc(32, ((size_t)k * n * 2 + 31) / 32 * 32);
    if (!m->q16) return -1;
    if (!m->qscale) m->qscale = sc_malloc((size_t)n * sizeof(float));
    int8_t *q = sc_malloc(k);
    for (uint32_t j = 0; j < n; j++) {
        m->qscale[j] = quant_col(m->w, k, n, j, q);
        uint32_t p = j / 8, jj = j % 8;
        for (uint32_t kk = 0; kk < k; kk++)
            m->q16[(((size_t)p * (k / 2) + kk / 2) * 8 + jj) * 2 + kk % 2] = q[kk];
    }
    free(q);
    return 0;
}

/* W as panels of `width` columns, [n/width][k][width], aligned to a
 * panel row; NULL when out of memory (the caller falls back). */
static float *pack_panels(const float *w, uint32_t k, uint32_t n, uint32_t width)
{
    size_t align = width * sizeof(float), bytes = (size_t)k * n * sizeof(float);
    float *panels = aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!panels) return NULL;
    for (uint32_t p = 0; p < n / width; p++)
        for (uint32_t kk = 0; kk < k; kk++)
            memcpy(panels + ((size_t)p * k + kk) * width, w + (size_t)kk * n + (size_t)p * width,
                   width * sizeof(float));
    return panels;
}

void sc_use_mat_pack(sc_use_mat *m, const float *w, uint32_t k, uint32_t n, int int8)
{
    m->k = k;
    m->n = n;
    m->w = w;
    m->panels = NULL;
    m->panels8 = NULL;
    m->q8 = NULL;
    m->qscale = NULL;
    m->qsum = NULL;
    m->q16 = NULL;
    if (int8 && n % PANEL == 0 && k % 4 == 0 && have_vnni()) pack_q8(m);
    else if (int8) sc_use_mat_pack_q16(m); /* AVX2 without VNNI (or a shape VNNI's panels cannot take) */
    if (!sc_use_have_avx512()) {
        sc_use_mat_pack8(m); /* else cblas_sgemm */
        return;
    }
    if (n % PANEL == 0) m->panels = pack_panels(w, k, n, PANEL); /* NULL: sgemm */
}

int sc_use_mat_pack8(sc_use_mat *m)
{
    uint32_t k = m->k, n = m->n;
    if (m->panels8) return 0;
    if (n % 8 != 0 || !have_avx2()) return -1;
    m->panels8 = pack_panels(m->w, k, n, 8);
    return m->panels8 ? 0 : -1;
}

void sc_use_mat_free(sc_use_mat *m)
{
    free(m->panels);
    free(m->panels8);
    m->panels8 = NULL;
    free(m->q16);
    m->q16 = NULL;
    free(m->q8);
    free(m->qscale);
    free(m->qsum);
    m->panels = NULL;
    m->q8 = NULL;
    m->qscale = NULL;
    m->qsum = NULL;
}

#ifdef HAVE_AVX512_KERNEL
/* One block of R rows against one panel: C[r, panel] += X[r, :] W[:, panel]
 * with X given transposed (xt[k][R], rows past `valid` zero), so each
 * broadcast is one register plus a constant offset, and only the first
 * `valid` rows are loaded and stored. */
#define DEFINE_BLOCK(R)                                                                   \
    __attribute__((target("avx512f"))) static void block_##R(                             \
        const float *xt, size_t valid, const float *panel, uint32_t k, float *c,          \
        size_t ldc)                                                                       \
    {                                                                                     \
        __m512 acc[R];                                                                    \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                     \
            (size_t)r < valid ? _mm512_loadu_ps(c + (size_t)r * ldc) : _mm512_setzero_ps(); \
        for (uint32_t kk = 0; kk < k; kk++) {                                             \
            _mm_prefetch((const char *)(panel + (size_t)(kk + 16) * PANEL), _MM_HINT_T0); \
            __m512 w = _mm512_load_ps(panel + (size_t)kk * PANEL);                        \
            const float *xk = xt + (size_t)kk * R;                                        \
            _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                 \
                _mm512_fmadd_ps(_mm512_set1_ps(xk[r]), w, acc[r]);                        \
        }                                                                                 \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) if ((size_t)r < valid)       \
            _mm512_storeu_ps(c + (size_t)r * ldc, acc[r]);                                \
    }
DEFINE_BLOCK(16)
DEFINE_BLOCK(8)
DEFINE_BLOCK(4)

/* Rows go in blocks of 16; the last partial block is padded to 4, 8 or 16
 * rows, whichever is the smallest that holds it. Each block of X is
 * transposed once into xt and reused for every panel. */
__attribute__((target("avx512f"))) static void small_gemm(const sc_use_mat *m, const float *x,
                                                          size_t rows, float *c, uint32_t p0, uint32_t p1)
{
    uint32_t k = m->k, n = m->n;
    float *xt = sc_malloc((size_t)k * 16 * sizeof(float));
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        size_t left = rows - r0, valid = left < 16 ? left : 16;
        size_t R = valid > 8 ? 16 : valid > 4 ? 8 : 4;
        for (uint32_t kk = 0; kk < k; kk++)
            for (size_t r = 0; r < R; r++)
                xt[(size_t)kk * R + r] = r < valid ? x[(r0 + r) * k + kk] : 0.0f;
        float *cb = c + r0 * n;
        for (uint32_t p = p0; p < p1; p++) {
            const float *panel = m->panels + (size_t)p * k * PANEL;
            float *cp = cb + (size_t)p * PANEL;
            if (R == 16) block_16(xt, valid, panel, k, cp, n);
            else if (R == 8) block_8(xt, valid, panel, k, cp, n);
            else block_4(xt, valid, panel, k, cp, n);
        }
    }
    free(xt);
}

/* AVX2 + FMA: one block of R rows against one 8-column panel, as
 * block_R above (xt[k][R], rows past `valid` zero). */
#define DEFINE_BLOCK8(R)                                                                  \
    __attribute__((target("avx2,fma"))) static void block8_##R(                           \
        const float *xt, size_t valid, const float *panel, uint32_t k, float *c,          \
        size_t ldc)                                                                       \
    {                                                                                     \
        __m256 acc[R];                                                                    \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                     \
            (size_t)r < valid ? _mm256_loadu_ps(c + (size_t)r * ldc) : _mm256_setzero_ps(); \
        for (uint32_t kk = 0; kk < k; kk++) {                                             \
            _mm_prefetch((const char *)(panel + (size_t)(kk + 16) * 8), _MM_HINT_T0);     \
            __m256 w = _mm256_load_ps(panel + (size_t)kk * 8);                            \
            const float *xk = xt + (size_t)kk * R;                                        \
            _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                 \
                _mm256_fmadd_ps(_mm256_broadcast_ss(xk + r), w, acc[r]);                  \
        }                                                                                 \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) if ((size_t)r < valid)       \
            _mm256_storeu_ps(c + (size_t)r * ldc, acc[r]);                                \
    }
DEFINE_BLOCK8(12)
DEFINE_BLOCK8(8)
DEFINE_BLOCK8(4)

/* Rows in blocks of 12, the last one padded to 4, 8 or 12 rows; every
 * block of X is transposed first, then each panel (k x 8 floats: 16 KiB at
 * k = 512) runs against all the blocks while it is in L1, so W is read
 * from memory once whatever the row count: the weights (10 MB a layer in
 * fp32) do not fit the caches, and reading them once per block of rows
 * made a 14-token sentence memory-bound. */
__attribute__((target("avx2,fma"))) static void small_gemm_avx2(const sc_use_mat *m, const float *x,
                                                                 size_t rows, float *c)
{
    uint32_t k = m->k, n = m->n;
    size_t nb = (rows + 11) / 12;
    float *xt = sc_malloc((size_t)k * 12 * nb * sizeof(float));
    for (size_t b = 0; b < nb; b++) {
        size_t r0 = b * 12, left = rows - r0, valid = left < 12 ? left : 12;
        size_t R = valid > 8 ? 12 : valid > 4 ? 8 : 4;
        float *xb = xt + (size_t)k * 12 * b;
        for (size_t r = 0; r < R; r++) {
            if (r >= valid) { /* padding rows */
                for (uint32_t kk = 0; kk < k; kk++) xb[(size_t)kk * R + r] = 0.0f;
                continue;
            }
            const float *xr = x + (r0 + r) * k;
            for (uint32_t kk = 0; kk < k; kk++) xb[(size_t)kk * R + r] = xr[kk];
        }
    }
    for (uint32_t p = 0; p < n / 8; p++) {
        const float *panel = m->panels8 + (size_t)p * k * 8;
        for (size_t b = 0; b < nb; b++) {
            size_t r0 = b * 12, left = rows - r0, valid = left < 12 ? left : 12;
            const float *xb = xt + (size_t)k * 12 * b;
            float *cp = c + r0 * n + (size_t)p * 8;
            if (valid > 8) block8_12(xb, valid, panel, k, cp, n);
            else if (valid > 4) block8_8(xb, valid, panel, k, cp, n);
            else block8_4(xb, valid, panel, k, cp, n);
        }
    }
    free(xt);
}

/* int8 on AVX2: one block of R rows (their pairs of int16 activations
 * transposed: xt[g][R] as uint32) against one 8-column panel of int16
 * weight pairs; vpmaddwd multiplies and adds each pair exactly (|x|, |w|
 * <= 127: no overflow in int32 for any k this model has). */
#define DEFINE_BLOCK_I16(R)                                                               \
    __attribute__((target("avx2,fma"))) static void block_i16_##R(                        \
        const uint32_t *xt, size_t valid, const int16_t *panel, uint32_t pairs,           \
        const float *xs, const float *ws, float *c, size_t ldc)                           \
    {                                                                                     \
        __m256i acc[R];                                                                   \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_si256(); \
        for (uint32_t g = 0; g < pairs; g++) {                                            \
            _mm_prefetch((const char *)(panel + (size_t)(g + 8) * 16), _MM_HINT_T0);      \
            __m256i w = _mm256_load_si256((const __m256i *)(const void *)(panel + (size_t)g * 16)); \
            const uint32_t *xg = xt + (size_t)g * R;                                      \
            _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                 \
                _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_set1_epi32((int)xg[r]), w)); \
        }                                                                                 \
        __m256 wsv = _mm256_loadu_ps(ws);                                                 \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) if ((size_t)r < valid) {     \
            __m256 d = _mm256_cvtepi32_ps(acc[r]);                                        \
            __m256 sc = _mm256_mul_ps(wsv, _mm256_set1_ps(xs[r]));                        \
            float *cr = c + (size_t)r * ldc;                                              \
            _mm256_storeu_ps(cr, _mm256_fmadd_ps(d, sc, _mm256_loadu_ps(cr)));            \
        }                                                                                 \
    }
DEFINE_BLOCK_I16(12)
DEFINE_BLOCK_I16(8)
DEFINE_BLOCK_I16(4)

/* Quantises every row of X by its own max |x| (as small_gemm_i8), blocks of
 * 12 rows transposed first, then each panel against every block (as
 * small_gemm_avx2). */
__attribute__((target("avx2,fma"))) static void small_gemm_i16(const sc_use_mat *m, const float *x,
                                                                size_t rows, float *c)
{
    uint32_t k = m->k, n = m->n, pairs = k / 2;
    size_t nb = (rows + 11) / 12;
    uint32_t *xt = sc_malloc((size_t)pairs * 12 * nb * sizeof(uint32_t));
    float *xs = sc_malloc(12 * nb * sizeof(float));
    for (size_t b = 0; b < nb; b++) {
        size_t r0 = b * 12, left = rows - r0, valid = left < 12 ? left : 12;
        size_t R = valid > 8 ? 12 : valid > 4 ? 8 : 4;
        uint32_t *xb = xt + (size_t)pairs * 12 * b;
        for (size_t r = 0; r < R; r++) {
            if (r >= valid) {
                xs[b * 12 + r] = 0;
                for (uint32_t g = 0; g < pairs; g++) xb[(size_t)g * R + r] = 0;
                continue;
            }
            const float *xr = x + (r0 + r) * k;
            uint32_t k8 = k & ~7u;
            __m256 vmx = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
            for (uint32_t kk = 0; kk < k8; kk += 8)
                vmx = _mm256_max_ps(vmx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xr + kk)));
            float lanes[8], mx = 0;
            _mm256_storeu_ps(lanes, vmx);
            for (int i = 0; i < 8; i++) mx = lanes[i] > mx ? lanes[i] : mx;
            for (uint32_t kk = k8; kk < k; kk++) mx = fabsf(xr[kk]) > mx ? fabsf(xr[kk]) : mx;
            float sc = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / sc;
            /* 8 values at once: vcvtps2dq rounds to nearest even, as lrintf
             * does; each 64-bit lane's pair becomes lo | hi << 16 */
            __m256 vinv = _mm256_set1_ps(inv);
            const __m256i lo16 = _mm256_set1_epi64x(0xffff), idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
            uint32_t g8 = k8 / 2;
            for (uint32_t g = 0; g < g8; g += 4) {
                __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xr + 2 * g), vinv));
                __m256i pr = _mm256_or_si256(_mm256_and_si256(q, lo16), _mm256_slli_epi64(_mm256_srli_epi64(q, 32), 16));
                uint32_t out[8];
                _mm256_storeu_si256((__m256i *)(void *)out, _mm256_permutevar8x32_epi32(pr, idx));
                for (int i = 0; i < 4; i++) xb[(size_t)(g + i) * R + r] = out[i];
            }
            for (uint32_t g = g8; g < pairs; g++) {
                long lo = lrintf(xr[2 * g] * inv), hi = lrintf(xr[2 * g + 1] * inv);
                lo = lo > 127 ? 127 : lo < -127 ? -127 : lo;
                hi = hi > 127 ? 127 : hi < -127 ? -127 : hi;
                xb[(size_t)g * R + r] = (uint32_t)(uint16_t)(int16_t)lo | (uint32_t)(uint16_t)(int16_t)hi << 16;
            }
            xs[b * 12 + r] = sc;
        }
    }
    for (uint32_t p = 0; p < n / 8; p++) {
        const int16_t *panel = m->q16 + (size_t)p * pairs * 16;
        const float *ws = m->qscale + (size_t)p * 8;
        for (size_t b = 0; b < nb; b++) {
            size_t r0 = b * 12, left = rows - r0, valid = left < 12 ? left : 12;
            const uint32_t *xb = xt + (size_t)pairs * 12 * b;
            float *cp = c + r0 * n + (size_t)p * 8;
            if (valid > 8) block_i16_12(xb, valid, panel, pairs, xs + b * 12, ws, cp, n);
            else if (valid > 4) block_i16_8(xb, valid, panel, pairs, xs + b * 12, ws, cp, n);
            else block_i16_4(xb, valid, panel, pairs, xs + b * 12, ws, cp, n);
        }
    }
    free(xs);
    free(xt);
}

/* int8: one block of R rows (their 4-byte groups transposed: xt[g][R] as
 * uint32, the bytes being x quantised + 128) against one panel of 16
 * columns; acc - 128 * qsum is the exact integer dot product, scaled back
 * by the row's and the column's scales. */
#define DEFINE_BLOCK_I8(R)                                                                \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void block_i8_##R(      \
        const uint32_t *xt, size_t valid, const int8_t *panel, uint32_t groups,           \
        const float *xs, const float *ws, const int32_t *wsum, float *c, size_t ldc)      \
    {                                                                                     \
        __m512i acc[R];                                                                   \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_si512(); \
        for (uint32_t g = 0; g < groups; g++) {                                           \
            _mm_prefetch((const char *)(panel + (size_t)(g + 8) * 64), _MM_HINT_T0);      \
            __m512i w = _mm512_load_si512((const void *)(panel + (size_t)g * 64));        \
            const uint32_t *xg = xt + (size_t)g * R;                                      \
            _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) acc[r] =                 \
                _mm512_dpbusd_epi32(acc[r], _mm512_set1_epi32((int)xg[r]), w);            \
        }                                                                                 \
        __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)wsum), 7);      \
        __m512 wsv = _mm512_loadu_ps(ws);                                                 \
        _Pragma("GCC unroll 16") for (int r = 0; r < R; r++) if ((size_t)r < valid) {     \
            __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r], corr));                \
            __m512 sc = _mm512_mul_ps(wsv, _mm512_set1_ps(xs[r]));                        \
            float *cr = c + (size_t)r * ldc;                                              \
            _mm512_storeu_ps(cr, _mm512_fmadd_ps(d, sc, _mm512_loadu_ps(cr)));            \
        }                                                                                 \
    }
DEFINE_BLOCK_I8(16)
DEFINE_BLOCK_I8(8)
DEFINE_BLOCK_I8(4)

/* Quantises each row of a block of X (by its max |x|) and runs the panels,
 * like small_gemm. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void small_gemm_i8(
    const sc_use_mat *m, const float *x, size_t rows, float *c, uint32_t p0, uint32_t p1)
{
    uint32_t k = m->k, n = m->n, groups = k / 4;
    uint32_t *xt = sc_malloc((size_t)groups * 16 * sizeof(uint32_t));
    uint8_t *xq = sc_malloc((size_t)k);
    float xs[16];
    for (size_t r0 = 0; r0 < rows; r0 += 16) {
        size_t left = rows - r0, valid = left < 16 ? left : 16;
        size_t R = valid > 8 ? 16 : valid > 4 ? 8 : 4;
        for (size_t r = 0; r < R; r++) {
            if (r >= valid) {
                xs[r] = 0;
                for (uint32_t g = 0; g < groups; g++) xt[(size_t)g * R + r] = 0x80808080u;
                continue;
            }
            const float *xr = x + (r0 + r) * k;
            uint32_t k16 = k & ~15u;
            __m512 vmx = _mm512_setzero_ps();
            for (uint32_t kk = 0; kk < k16; kk += 16)
                vmx = _mm512_max_ps(vmx, _mm512_abs_ps(_mm512_loadu_ps(xr + kk)));
            float mx = _mm512_reduce_max_ps(vmx);
            for (uint32_t kk = k16; kk < k; kk++) mx = fmaxf(mx, fabsf(xr[kk]));
            float sc = mx > 0 ? mx / 127.0f : 1.0f, inv = 1.0f / sc;
            /* vcvtps2dq rounds to nearest even, as lrintf does. */
            __m512 vinv = _mm512_set1_ps(inv);
            __m512i off = _mm512_set1_epi32(128);
            for (uint32_t kk = 0; kk < k16; kk += 16) {
                __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + kk), vinv));
                _mm_storeu_si128((__m128i *)(void *)(xq + kk), _mm512_cvtepi32_epi8(_mm512_add_epi32(q, off)));
            }
            for (uint32_t kk = k16; kk < k; kk++) xq[kk] = (uint8_t)(lrintf(xr[kk] * inv) + 128);
            for (uint32_t g = 0; g < groups; g++) {
                uint32_t v;
                memcpy(&v, xq + 4 * (size_t)g, 4);
                xt[(size_t)g * R + r] = v;
            }
            xs[r] = sc;
        }
        float *cb = c + r0 * n;
        for (uint32_t p = p0; p < p1; p++) {
            const int8_t *panel = m->q8 + (size_t)p * groups * 64;
            float *cp = cb + (size_t)p * PANEL;
            const float *ws = m->qscale + (size_t)p * PANEL;
            const int32_t *wsum = m->qsum + (size_t)p * PANEL;
            if (R == 16) block_i8_16(xt, valid, panel, groups, xs, ws, wsum, cp, n);
            else if (R == 8) block_i8_8(xt, valid, panel, groups, xs, ws, wsum, cp, n);
            else block_i8_4(xt, valid, panel, groups, xs, ws, wsum, cp, n);
        }
    }
    free(xq);
    free(xt);
}

#endif

/* The kernel a product runs on (see sc_use_matmul in use.h): one choice
 * for sc_use_matmul and sc_use_matmul_pair, so a split product runs the
 * kernel the unsplit one would. */
enum { K_BLAS, K_I8, K_I16, K_FP, K_AVX2 };

static int pick_kernel(const sc_use_mat *m, size_t rows, int force)
{
#ifdef HAVE_AVX512_KERNEL
    /* int8 for any row count: a batch then embeds each sentence exactly as
     * it would alone (rows are quantised one by one). */
    if (m->q8 && (force == 2 || (force == 0 && sc_use_gemm_int8))) return K_I8;
    if (m->q16 && (force == 4 || (!m->q8 && (force == 2 || (force == 0 && sc_use_gemm_int8))))) return K_I16;
    if (m->panels8 && force == 3) return K_AVX2;
    int small = force >= 0 && (force > 0 || rows <= (size_t)sc_use_gemm_small_rows);
    if (m->panels && small) return K_FP;
    if (m->panels8 && small) return K_AVX2;
#else
    (void)m;
    (void)rows;
    (void)force;
#endif
    return K_BLAS;
}

void sc_use_matmul(const sc_use_mat *m, const float *x, size_t rows, float *c, int force)
{
    if (rows == 0) return;
    switch (pick_kernel(m, rows, force)) {
#ifdef HAVE_AVX512_KERNEL
    case K_I8: small_gemm_i8(m, x, rows, c, 0, m->n / PANEL); return;
    case K_I16: small_gemm_i16(m, x, rows, c); return;
    case K_FP: small_gemm(m, x, rows, c, 0, m->n / PANEL); return;
    case K_AVX2: small_gemm_avx2(m, x, rows, c); return;
#endif
    default:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)m->n, (int)m->k, 1.0f, x,
                    (int)m->k, m->w, (int)m->n, 1.0f, c, (int)m->n);
    }
}

#ifdef HAVE_AVX512_KERNEL
/* One product split by column panels: half 0 takes [0, mid), half 1
 * [mid, np). Both quantise (or transpose) the same rows of X. */
typedef struct split_job {
    const sc_use_mat *m;
    const float *x;
    size_t rows;
    float *c;
    uint32_t mid, np;
    int i8;
} split_job;

static void split_half(void *arg, int half)
{
    const split_job *j = arg;
    uint32_t p0 = half ? j->mid : 0, p1 = half ? j->np : j->mid;
    if (j->i8) small_gemm_i8(j->m, j->x, j->rows, j->c, p0, p1);
    else small_gemm(j->m, j->x, j->rows, j->c, p0, p1);
}
#endif

void sc_use_matmul_pair(const sc_use_mat *m, const float *x, size_t rows, float *c, sc_pair *pair)
{
#ifdef HAVE_AVX512_KERNEL
    /* Only the two AVX-512 kernels take a panel range; the rest run unsplit. */
    int k = rows > 0 ? pick_kernel(m, rows, 0) : K_BLAS;
    uint32_t np = m->n / PANEL;
    if ((k == K_I8 || k == K_FP) && np >= 2 && sc_pair_alone(pair)) {
        split_job j = {m, x, rows, c, np / 2, np, k == K_I8};
        sc_pair_run(pair, split_half, &j);
        return;
    }
#else
    (void)pair;
#endif
    sc_use_matmul(m, x, rows, c, 0);
}
