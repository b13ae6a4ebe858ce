/* The USE-lite forward pass, as read from the TF.js graph in model.json.
 *
 * For a sentence of T token ids (T <= 128, the graph's ClipToMaxLength):
 *   x    = E[id] + (E[id] + timing(pos))      (the graph adds the embedding
 *                                              twice; timing = sin | cos of
 *                                              pos * inv_timescales)
 *   layer 0 (width 256 -> 512), layer 1 (512 -> 512), each:
 *     a    = MHA(LN1(x))  4 heads, q scaled by 1/sqrt(head_dim), softmax
 *            over the sentence's own positions, then the output transform
 *     y    = a + (layer 0: x W_dense + b_dense;  layer 1: x)
 *     out  = y + W2 relu(W1 LN2(y) + b1) + b2
 *   m    = mean over the T positions (divided by max(T, 1))
 *   v    = tanh(m W_t + b_t) / sqrt(max(|.|^2, 1e-12))
 * LN is mean/variance over the last axis with epsilon from the graph.
 * Padding in the TF.js batch is masked with -1e9 (exp gives exactly 0), so
 * computing each sentence on its own positions is the same function.
 *
 * All dense layers run on the token rows of every sentence in the call at
 * once (one product each, use_gemm.c); attention runs per sentence and head
 * straight on the QKV matrix (AVX-512 loops up to 64 tokens, else strided
 * sgemm calls). Biases are broadcast into
 * the output first and the product is accumulated (beta = 1). Scratch is
 * allocated per call, so any number of threads can run this at once. */
#include "embed/use.h"

#include "common/alloc.h"
#include "common/err.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512 1 /* the AVX-512 attention and layer norm below */
#endif

void sc_use_timing_table(sc_use_model *m)
{
    uint32_t half = m->emb_dim / 2;
    for (uint32_t p = 0; p < m->max_len; p++) {
        float *row = m->timing + (size_t)p * m->emb_dim;
        for (uint32_t i = 0; i < half; i++) {
            float t = (float)p * m->inv_timescales[i];
            row[i] = sinf(t);
            row[half + i] = cosf(t);
        }
    }
}

/* Y[r, :] = bias for r < rows. */
static void broadcast(float *y, const float *bias, size_t rows, uint32_t cols)
{
    for (size_t r = 0; r < rows; r++) memcpy(y + r * cols, bias, cols * sizeof(float));
}

/* C[rows, n] += X[rows, k] W (see use_gemm.c). */
static void gemm_acc(const float *x, const sc_use_mat *w, float *c, size_t rows, sc_pair *pair)
{
    sc_use_matmul_pair(w, x, rows, c, pair);
}

#ifdef HAVE_AVX512
/* layer_norm in 16 lanes (n a multiple of 16): 7 % of a 16-token
 * embedding in the scalar loops, whose float sums the compiler may not
 * reorder. */
__attribute__((target("avx512f"))) static void layer_norm_avx512(const float *x, float *y,
                                                                size_t rows, uint32_t n,
                                                                const float *g, const float *b,
                                                                float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        __m512 sum = _mm512_setzero_ps();
        for (uint32_t i = 0; i < n; i += 16) sum = _mm512_add_ps(sum, _mm512_loadu_ps(xr + i));
        __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(sum) / (float)n);
        __m512 var = _mm512_setzero_ps();
        for (uint32_t i = 0; i < n; i += 16) {
            __m512 d = _mm512_sub_ps(_mm512_loadu_ps(xr + i), mean);
            var = _mm512_fmadd_ps(d, d, var);
        }
        __m512 inv = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(var) / (float)n + eps));
        for (uint32_t i = 0; i < n; i += 16) {
            __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), mean), inv);
            _mm512_storeu_ps(yr + i, _mm512_fmadd_ps(_mm512_loadu_ps(g + i), d, _mm512_loadu_ps(b + i)));
        }
    }
}
#endif

static void layer_norm(const float *x, float *y, size_t rows, uint32_t n, const float *g,
                       const float *b, float eps)
{
#ifdef HAVE_AVX512
    if (n % 16 == 0 && sc_use_have_avx512()) {
        layer_norm_avx512(x, y, rows, n, g, b, eps);
        return;
    }
#endif
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float sum = 0;
        for (uint32_t i = 0; i < n; i++) sum += xr[i];
        float mean = sum / (float)n, var = 0;
        for (uint32_t i = 0; i < n; i++) {
            float d = xr[i] - mean;
            var += d * d;
        }
        float inv = 1.0f / sqrtf(var / (float)n + eps);
        for (uint32_t i = 0; i < n; i++) yr[i] = g[i] * inv * (xr[i] - mean) + b[i];
    }
}

static void softmax_rows(float *s, uint32_t t)
{
    for (uint32_t r = 0; r < t; r++) {
        float *row = s + (size_t)r * t, mx = row[0], sum = 0;
        for (uint32_t j = 1; j < t; j++) mx = row[j] > mx ? row[j] : mx;
        for (uint32_t j = 0; j < t; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (uint32_t j = 0; j < t; j++) row[j] *= inv;
    }
}

#ifdef HAVE_AVX512
/* Attention of one head for one sentence of t tokens, AVX-512, for the
 * short sentences a cache sees (OpenBLAS spent as long setting up these
 * t x t x head_dim products as computing them: 18 % of a 16-token
 * embedding). head_dim a multiple of 16. */
__attribute__((target("avx512f"))) static void attend_avx512(const float *q, const float *k,
                                                            const float *v, size_t ld, uint32_t t,
                                                            uint32_t dh, float scale, float *scores,
                                                            float *out, size_t ldo)
{
    for (uint32_t i = 0; i < t; i++)
        for (uint32_t j = 0; j < t; j++) {
            __m512 acc = _mm512_setzero_ps();
            for (uint32_t d = 0; d < dh; d += 16)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i * ld + d), _mm512_loadu_ps(k + j * ld + d), acc);
            scores[(size_t)i * t + j] = scale * _mm512_reduce_add_ps(acc);
        }
    softmax_rows(scores, t);
    for (uint32_t i = 0; i < t; i++)
        for (uint32_t d = 0; d < dh; d += 16) {
            __m512 acc = _mm512_setzero_ps();
            for (uint32_t j = 0; j < t; j++)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(scores[(size_t)i * t + j]),
                                      _mm512_loadu_ps(v + j * ld + d), acc);
            _mm512_storeu_ps(out + i * ldo + d, acc);
        }
}
#endif

typedef struct scratch {
    float *h, *qkv, *att, *ffn, *scores;
    sc_pair *pair;          /* this forward may split its products */
} scratch;

/* One transformer layer: x [rows, in] -> y [rows, width]. */
static void run_layer(const sc_use_model *m, const sc_use_layer *L, const float *x, float *y,
                      size_t rows, const uint32_t *ntok, size_t nsent, scratch *s)
{
    uint32_t in = L->in, w = L->width, q3 = 3 * in, dh = L->head_dim;
    layer_norm(x, s->h, rows, in, L->ln1_g, L->ln1_b, m->ln_eps);
    broadcast(s->qkv, L->qkv_b, rows, q3);
    gemm_acc(s->h, &L->qkv, s->qkv, rows, s->pair);
    size_t off = 0;
    for (size_t si = 0; si < nsent; si++) {
        uint32_t t = ntok[si];
        for (uint32_t hh = 0; hh < L->heads && t > 0; hh++) {
            const float *q = s->qkv + off * q3 + hh * dh;
            const float *k = q + in, *v = q + 2 * in;
#ifdef HAVE_AVX512
            if (t <= 64 && dh % 16 == 0 && sc_use_have_avx512()) {
                attend_avx512(q, k, v, q3, t, dh, L->scale, s->scores, s->att + off * in + hh * dh, in);
                continue;
            }
#endif
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)t, (int)t, (int)dh, L->scale,
                        q, (int)q3, k, (int)q3, 0.0f, s->scores, (int)t);
            softmax_rows(s->scores, t);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)t, (int)dh, (int)t, 1.0f,
                        s->scores, (int)t, v, (int)q3, 0.0f, s->att + off * in + hh * dh, (int)in);
        }
        off += t;
    }
    /* y = att W_o + b_o + residual */
    broadcast(y, L->out_b, rows, w);
    if (L->res_w) {
        for (size_t r = 0; r < rows; r++)
            for (uint32_t i = 0; i < w; i++) y[r * w + i] += L->res_b[i];
        gemm_acc(x, &L->res, y, rows, s->pair);
    } else {
        for (size_t r = 0; r < rows * w; r++) y[r] += x[r];
    }
    gemm_acc(s->att, &L->out, y, rows, s->pair);
    /* y += W2 relu(W1 LN(y) + b1) + b2 */
    layer_norm(y, s->h, rows, w, L->ln2_g, L->ln2_b, m->ln_eps);
    broadcast(s->ffn, L->ffn1_b, rows, L->ffn);
    gemm_acc(s->h, &L->ffn1, s->ffn, rows, s->pair);
    for (size_t r = 0; r < rows * L->ffn; r++) s->ffn[r] = s->ffn[r] > 0 ? s->ffn[r] : 0;
    for (size_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < w; i++) y[r * w + i] += L->ffn2_b[i];
    gemm_acc(s->ffn, &L->ffn2, y, rows, s->pair);
}

int sc_use_forward(const sc_use_model *m, const int32_t *const *ids, const uint32_t *ntok,
                   size_t n, float *out)
{
    size_t rows = 0;
    uint32_t tmax = 1;
    for (size_t i = 0; i < n; i++) {
        if (ntok[i] > m->max_len) return SC_EINVAL;
        for (uint32_t j = 0; j < ntok[i]; j++)
            if (ids[i][j] < 0 || (uint32_t)ids[i][j] >= m->n_vocab_rows) return SC_EINVAL;
        rows += ntok[i];
        tmax = ntok[i] > tmax ? ntok[i] : tmax;
    }
    uint32_t e = m->emb_dim, w = m->out_dim, wmax = 512, fmax = 3 * 512;
    size_t r1 = rows ? rows : 1;
    float *xa = sc_malloc(r1 * wmax * sizeof(float)), *xb = sc_malloc(r1 * wmax * sizeof(float));
    scratch s = {
        .h = sc_malloc(r1 * wmax * sizeof(float)),
        .qkv = sc_malloc(r1 * 3 * wmax * sizeof(float)),
        .att = sc_malloc(r1 * wmax * sizeof(float)),
        .ffn = sc_malloc(r1 * fmax * sizeof(float)),
        .scores = sc_malloc((size_t)tmax * tmax * sizeof(float)),
    };
    int own = sc_pair_begin(m->pair);
    s.pair = own ? m->pair : NULL;
    /* x = E[id] + (E[id] + timing(pos)) */
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        for (uint32_t p = 0; p < ntok[i]; p++, r++) {
            const float *emb = m->emb + (size_t)ids[i][p] * e, *tim = m->timing + (size_t)p * e;
            float *x = xa + r * e;
            for (uint32_t k = 0; k < e; k++) x[k] = emb[k] + (emb[k] + tim[k]);
        }
    if (rows > 0) {
        run_layer(m, &m->layer[0], xa, xb, rows, ntok, n, &s);
        run_layer(m, &m->layer[1], xb, xa, rows, ntok, n, &s);
    }
    /* Masked mean per sentence (into s.h as [n, w]), then tanh layer. */
    float *mean = sc_calloc(n * w, sizeof(float));
    r = 0;
    for (size_t i = 0; i < n; i++) {
        float *mi = mean + i * w;
        for (uint32_t p = 0; p < ntok[i]; p++, r++)
            for (uint32_t k = 0; k < w; k++) mi[k] += xa[r * w + k];
        float div = (float)(ntok[i] > 1 ? ntok[i] : 1);
        for (uint32_t k = 0; k < w; k++) mi[k] /= div;
    }
    broadcast(out, m->tanh_b, n, w);
    gemm_acc(mean, &m->tanh_m, out, n, s.pair);
    for (size_t i = 0; i < n; i++) {
        float *o = out + i * w, ss = 0;
        for (uint32_t k = 0; k < w; k++) {
            o[k] = tanhf(o[k]);
            ss += o[k] * o[k];
        }
        float inv = 1.0f / sqrtf(ss > m->l2_eps ? ss : m->l2_eps);
        for (uint32_t k = 0; k < w; k++) o[k] *= inv;
    }
    sc_pair_end(m->pair, own);
    free(mean);
    free(xa);
    free(xb);
    free(s.h);
    free(s.qkv);
    free(s.att);
    free(s.ffn);
    free(s.scores);
    return 0;
}
