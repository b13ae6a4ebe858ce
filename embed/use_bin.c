/* model.bin reading and writing (layout and checks: use_bin.h), and the
 * "semcache-embed" backend that runs it through the USE-lite forward pass. */
#include "embed/use_bin.h"
#include "embed/embed_internal.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/hash.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BIN_BYTES (256u << 20)
#define MAX_VOCAB_BYTES (16u << 20)
#define MAX_VOCAB_ROWS (1u << 20)

/* ---- layout -------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static float rdf(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}
static void wrf(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    wr32(p, u);
}

/* The tensors of a model in file order: where each lives and how many
 * floats it has. Pointers into m (loader: set from the blob; writer: read). */
typedef struct slot {
    const float **p;
    size_t n;
} slot;

static size_t slots_of(sc_use_model *m, slot *s)
{
    size_t k = 0, E = m->emb_dim;
    s[k++] = (slot){&m->emb, (size_t)m->n_vocab_rows * E};
    s[k++] = (slot){&m->inv_timescales, E / 2};
    for (int l = 0; l < 2; l++) {
        sc_use_layer *y = &m->layer[l];
        size_t in = y->in, w = y->width, f = y->ffn;
        s[k++] = (slot){&y->ln1_g, in};
        s[k++] = (slot){&y->ln1_b, in};
        s[k++] = (slot){&y->qkv_w, in * 3 * in};
        s[k++] = (slot){&y->qkv_b, 3 * in};
        s[k++] = (slot){&y->out_w, in * w};
        s[k++] = (slot){&y->out_b, w};
        if (in != w) {
            s[k++] = (slot){&y->res_w, in * w};
            s[k++] = (slot){&y->res_b, w};
        }
        s[k++] = (slot){&y->ln2_g, w};
        s[k++] = (slot){&y->ln2_b, w};
        s[k++] = (slot){&y->ffn1_w, w * f};
        s[k++] = (slot){&y->ffn1_b, f};
        s[k++] = (slot){&y->ffn2_w, f * w};
        s[k++] = (slot){&y->ffn2_b, w};
    }
    s[k++] = (slot){&m->tanh_w, (size_t)m->out_dim * m->out_dim};
    s[k++] = (slot){&m->tanh_b, m->out_dim};
    return k;
}
#define MAX_SLOTS 40

/* ---- writing ------------------------------------------------------------- */

int sc_use_bin_save(const sc_use_model *mc, const char *path, uint32_t dtype, const char *name)
{
    if (dtype != SC_USE_BIN_F32 && dtype != SC_USE_BIN_F16) return SC_EINVAL;
    sc_use_model *m = (sc_use_model *)mc; /* slots_of only reads through it here */
    int fold = sc_use_vocab_folds(m->vocab);
    size_t name_room = fold ? 28 : 32; /* version 2: the flags take the name's last 4 bytes */
    if (fold && name && strlen(name) >= name_room) return SC_EINVAL;
    slot s[MAX_SLOTS];
    size_t ns = slots_of(m, s), floats = 0, esz = dtype == SC_USE_BIN_F32 ? 4 : 2;
    for (size_t i = 0; i < ns; i++) floats += s[i].n;
    size_t payload = floats * esz;
    uint8_t *buf = sc_calloc(1, SC_USE_BIN_HEADER + payload), *p = buf + SC_USE_BIN_HEADER;
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < s[i].n; j++, p += esz) {
            float v = (*s[i].p)[j];
            if (esz == 4) wrf(p, v);
            else {
                uint16_t h = sc_float_to_half(v);
                p[0] = (uint8_t)h;
                p[1] = (uint8_t)(h >> 8);
            }
        }
    memcpy(buf, SC_USE_BIN_MAGIC, 8);
    wr32(buf + 8, fold ? SC_USE_BIN_VERSION_FLAGS : SC_USE_BIN_VERSION);
    wr32(buf + 12, dtype);
    wr32(buf + 16, m->n_vocab_rows);
    wr32(buf + 20, m->emb_dim);
    wr32(buf + 24, m->out_dim);
    wr32(buf + 28, m->max_len);
    for (int l = 0; l < 2; l++) {
        const sc_use_layer *y = &m->layer[l];
        wr32(buf + 32 + 16 * l, y->in);
        wr32(buf + 36 + 16 * l, y->width);
        wr32(buf + 40 + 16 * l, y->heads);
        wr32(buf + 44 + 16 * l, y->ffn);
        wrf(buf + 64 + 4 * l, y->scale);
    }
    wrf(buf + 72, m->ln_eps);
    wrf(buf + 76, m->l2_eps);
    wr64(buf + 80, payload);
    wr64(buf + 88, sc_hash64(buf + SC_USE_BIN_HEADER, payload, 0));
    snprintf((char *)buf + 96, name_room, "%s", name ? name : "");
    if (fold) wr32(buf + 124, SC_USE_BIN_FOLD);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int rc = SC_EIO;
    if (f) {
        size_t total = SC_USE_BIN_HEADER + payload;
        rc = fwrite(buf, 1, total, f) == total ? 0 : SC_EIO;
        if (fclose(f) != 0) rc = SC_EIO;
        if (!rc && rename(tmp, path) != 0) rc = SC_EIO;
        if (rc) remove(tmp);
    }
    free(buf);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

#define FAIL(...)                                           \
    do {                                                    \
        snprintf(err, errlen, "embedder semcache-embed: " __VA_ARGS__); \
        rc = SC_ECORRUPT;                                   \
        goto done;                                          \
    } while (0)

int sc_use_bin_load(sc_use_model **out, const char *dir, char name[33], char *err, size_t errlen)
{
    return sc_use_bin_load_sum(out, dir, name, NULL, err, errlen);
}

int sc_use_bin_load_sum(sc_use_model **out, const char *dir, char name[33], uint64_t *sum, char *err,
                        size_t errlen)
{
    char path[4096];
    uint8_t *buf = NULL, *vtext = NULL;
    size_t len = 0, vlen = 0;
    sc_use_model *m = NULL;
    *out = NULL;
    snprintf(path, sizeof path, "%s/model.bin", dir);
    int rc = sc_embed_read_file(path, MAX_BIN_BYTES, (char **)&buf, &len, "semcache-embed", "", err, errlen);
    if (rc) return rc;
    if (len < SC_USE_BIN_HEADER) FAIL("%s: %zu bytes, shorter than the %u-byte header (truncated?)", path, len, SC_USE_BIN_HEADER);
    if (memcmp(buf, SC_USE_BIN_MAGIC, 8) != 0) FAIL("%s: not a semcached model file (bad magic)", path);
    uint32_t version = rd32(buf + 8), flags = 0;
    if (version != SC_USE_BIN_VERSION && version != SC_USE_BIN_VERSION_FLAGS)
        FAIL("%s: format version %u, this build reads %u and %u", path, version, SC_USE_BIN_VERSION,
             SC_USE_BIN_VERSION_FLAGS);
    if (version == SC_USE_BIN_VERSION_FLAGS) {
        flags = rd32(buf + 124);
        if (flags & ~SC_USE_BIN_FOLD) FAIL("%s: unknown flags 0x%x in the header", path, flags & ~SC_USE_BIN_FOLD);
        memset(buf + 124, 0, 4); /* the name ends before the flags */
    }
    uint32_t dtype = rd32(buf + 12);
    if (dtype != SC_USE_BIN_F32 && dtype != SC_USE_BIN_F16) FAIL("%s: unknown tensor dtype %u", path, dtype);
    m = SC_NEW(sc_use_model);
    m->n_vocab_rows = rd32(buf + 16);
    m->emb_dim = rd32(buf + 20);
    m->out_dim = rd32(buf + 24);
    m->max_len = rd32(buf + 28);
    for (int l = 0; l < 2; l++) {
        sc_use_layer *y = &m->layer[l];
        y->in = rd32(buf + 32 + 16 * l);
        y->width = rd32(buf + 36 + 16 * l);
        y->heads = rd32(buf + 40 + 16 * l);
        y->ffn = rd32(buf + 44 + 16 * l);
        y->scale = rdf(buf + 64 + 4 * l);
    }
    m->ln_eps = rdf(buf + 72);
    m->l2_eps = rdf(buf + 76);
    /* The forward pass is USE-lite's: 256 -> 512 -> 512, FFN 3x wide. */
    if (m->emb_dim != 256 || m->out_dim != 512 || m->n_vocab_rows < 1 || m->n_vocab_rows > MAX_VOCAB_ROWS ||
        m->max_len < 1 || m->max_len > 4096 || m->layer[0].in != 256 || m->layer[0].width != 512 ||
        m->layer[1].in != 512 || m->layer[1].width != 512)
        FAIL("%s: unexpected shape (vocab %u, dims %u/%u, layers %u->%u, %u->%u, max_len %u)", path,
             m->n_vocab_rows, m->emb_dim, m->out_dim, m->layer[0].in, m->layer[0].width,
             m->layer[1].in, m->layer[1].width, m->max_len);
    for (int l = 0; l < 2; l++) {
        sc_use_layer *y = &m->layer[l];
        if (y->ffn != 3 * y->width || y->heads < 1 || y->heads > 64 || y->in % y->heads != 0 ||
            !(y->scale > 0 && y->scale <= 1))
            FAIL("%s: unexpected shape of layer %d (heads %u, ffn %u, scale %g)", path, l, y->heads, y->ffn,
                 (double)y->scale);
        y->head_dim = y->in / y->heads;
    }
    if (!(m->ln_eps > 0 && m->ln_eps < 1e-2f) || !(m->l2_eps > 0 && m->l2_eps < 1e-3f))
        FAIL("%s: odd epsilon constants", path);
    memcpy(name, buf + 96, 32);
    name[32] = 0;
    /* the name becomes the embedder's id (stored in data dirs, shown in
     * /stats and INFO): plain characters only */
    for (const char *q = name; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
              *q == '.' || *q == '_' || *q == '-'))
            FAIL("%s: the model name in the header has a character outside [A-Za-z0-9._-]", path);
    slot s[MAX_SLOTS];
    size_t ns = slots_of(m, s), floats = 0, esz = dtype == SC_USE_BIN_F32 ? 4 : 2;
    for (size_t i = 0; i < ns; i++) floats += s[i].n;
    uint64_t payload = rd64(buf + 80);
    if (payload != floats * esz)
        FAIL("%s: header says %llu payload bytes, the shapes need %zu", path, (unsigned long long)payload,
             floats * esz);
    if (len != SC_USE_BIN_HEADER + payload)
        FAIL("%s: size %zu bytes, expected %zu (truncated or padded)", path, len,
             (size_t)(SC_USE_BIN_HEADER + payload));
    if (sc_hash64(buf + SC_USE_BIN_HEADER, payload, 0) != rd64(buf + 88))
        FAIL("%s: checksum mismatch (the file is corrupted)", path);
    if (sum) *sum = rd64(buf + 88);
    m->blob = sc_malloc(floats * sizeof(float));
    m->blob_floats = floats;
    const uint8_t *p = buf + SC_USE_BIN_HEADER;
    for (size_t i = 0; i < floats; i++, p += esz) {
        m->blob[i] = esz == 4 ? rdf(p) : sc_half_to_float((uint16_t)(p[0] | p[1] << 8));
        if (!isfinite(m->blob[i])) FAIL("%s: weight %zu is not finite", path, i);
    }
    size_t off = 0;
    for (size_t i = 0; i < ns; i++) {
        *s[i].p = m->blob + off;
        off += s[i].n;
    }
    sc_use_model_prepare(m);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if ((rc = sc_embed_read_file(path, MAX_VOCAB_BYTES, (char **)&vtext, &vlen, "semcache-embed", "", err, errlen)))
        goto done;
    char verr[256];
    if (sc_use_vocab_load(&m->vocab, (const char *)vtext, vlen, verr, sizeof verr))
        FAIL("%s: %s", path, verr);
    sc_use_vocab_set_fold(m->vocab, (flags & SC_USE_BIN_FOLD) != 0);
    if (sc_use_vocab_size(m->vocab) > m->n_vocab_rows)
        FAIL("%s has %u pieces, model.bin only %u embedding rows", path, sc_use_vocab_size(m->vocab),
             m->n_vocab_rows);
    rc = 0;
done:
    if (rc) {
        sc_use_model_free(m);
        m = NULL;
    }
    free(buf);
    free(vtext);
    *out = m;
    return rc;
}

/* ---- the backend --------------------------------------------------------- */

static int bin_open(sc_embedder *e, const sc_embedder_opts *o, char *err, size_t errlen)
{
    const char *dir = o->model_dir && o->model_dir[0] ? o->model_dir : SC_EMBED_DEFAULT_MODEL_DIR;
    sc_use_model *m;
    char name[33];
    uint64_t sum = 0;
    int rc = sc_use_bin_load_sum(&m, dir, name, &sum, err, errlen);
    if (rc) return rc;
    openblas_set_num_threads(1);
    e->impl = m;
    e->dim = m->out_dim;
    /* name/1.<checksum> (name/2.<checksum> when it folds: the checksum
     * covers the tensors, not the header): a retrained model.bin under
     * the same name is another embedder to the data dir check (its
     * vectors differ), while the verifier is still found by the name (the
     * part before '/'). */
    snprintf(e->id, sizeof e->id, "%s/%d.%08x", name[0] ? name : "semcache-embed",
             sc_use_vocab_folds(m->vocab) ? 2 : 1, (unsigned)(sum >> 32));
    return 0;
}

static void bin_close(sc_embedder *e) { sc_use_model_free(e->impl); }

static int bin_embedn(sc_embedder *e, const char *const *texts, const size_t *lens, size_t n, float *out)
{
    return sc_use_embedn_model(e, e->impl, texts, lens, n, out);
}

const sc_embed_backend sc_embed_bin_backend = {
    .name = "semcache-embed",
    .open = bin_open,
    .close = bin_close,
    .embedn = bin_embedn,
};
