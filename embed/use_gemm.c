/* Matrix products of the USE-lite forward pass: C[rows, n] += X[rows, k] W
 * with W a constant weight matrix.
 *
 * For a sentence or two the token count is small (10-40 rows), and
 * OpenBLAS then spends as long re-packing W on every call (sgemm_itcopy)
 * as multiplying: profiling a 16-token sentence showed 40% in the copy and
 * 41% in the kernel. Since W never changes, it is packed once at load into
 * 16-column panels ([n/16][k][16], 64-byte aligned), and small products run
 * an AVX-512 kernel that streams each panel once per block of up to 16
 * rows, with the row block's accumulators in registers. Large products
 * (more than 128 rows: batches; and machines without AVX-512) use
 * cblas_sgemm on the row-major W.
 * The kernel is checked against cblas_sgemm in tests/unit/test_embed_use.c.
 * Read-only after packing; any thread. */
#include "embed/use.h"

#include "common/alloc.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1
#endif

#define PANEL 16


int sc_use_gemm_small_rows = 128; /* rows at or below this use the kernel (measured: >= OpenBLAS up to 128) */

/* Panels are only built where the kernel can run, so sc_use_matmul just
 * checks m->panels (no CPU probing on the request path). */
static int have_avx512(void)
{
#ifdef HAVE_AVX512_KERNEL
    return __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

void sc_use_mat_pack(sc_use_mat *m, const float *w, uint32_t k, uint32_t n)
{
    m->k = k;
    m->n = n;
    m->w = w;
    m->panels = NULL;
    if (n % PANEL != 0 || !have_avx512()) return;
    size_t bytes = (size_t)k * n * sizeof(float);
    m->panels = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!m->panels) return; /* falls back to sgemm */
    for (uint32_t p = 0; p < n / PANEL; p++)
        for (uint32_t kk = 0; kk < k; kk++)
            memcpy(m->panels + ((size_t)p * k + kk) * PANEL, w + (size_t)kk * n + (size_t)p * PANEL,
                   PANEL * sizeof(float));
}

void sc_use_mat_free(sc_use_mat *m)
{
    free(m->panels);
    m->panels = NULL;
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
                                                          size_t rows, float *c)
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
        for (uint32_t p = 0; p < n / PANEL; p++) {
            const float *panel = m->panels + (size_t)p * k * PANEL;
            float *cp = cb + (size_t)p * PANEL;
            if (R == 16) block_16(xt, valid, panel, k, cp, n);
            else if (R == 8) block_8(xt, valid, panel, k, cp, n);
            else block_4(xt, valid, panel, k, cp, n);
        }
    }
    free(xt);
}

#endif

void sc_use_matmul(const sc_use_mat *m, const float *x, size_t rows, float *c, int force)
{
    if (rows == 0) return;
#ifdef HAVE_AVX512_KERNEL
    if (m->panels && force >= 0 &&
        (force > 0 || rows <= (size_t)sc_use_gemm_small_rows)) {
        small_gemm(m, x, rows, c);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)m->n, (int)m->k, 1.0f, x,
                (int)m->k, m->w, (int)m->n, 1.0f, c, (int)m->n);
}
