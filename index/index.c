/* The index proper: partitions, their storage, locking, tombstones,
 * compaction and search (the kernels live in kernels.c, the FAISS calls in
 * faiss_backend.c).
 *
 * A partition (ns, fp) holds its rows in chunks that never move once
 * allocated: chunk i holds min(1 << i, 16384) rows, so small partitions
 * stay small and appends never copy existing rows. Arrays of 2 MB and
 * more are 2 MB aligned and advised as huge pages (fewer TLB misses, and
 * the hardware prefetcher does not stop every 4 KB during a scan). A row
 * is the vector in fp16 (re-scoring, FAISS rebuilds; half the bytes of
 * fp32, and re-scores within ~1e-4 of fp32's), its scan copy (flat
 * backend: int8, or 4-bit codes and a scale) and its id; a removed row
 * keeps its place with the id UINT64_MAX (a tombstone) until compaction.
 * A global id map gives each id's partition and row, so remove is O(1)
 * and re-adding an id replaces it.
 *
 * Locking: one mutex (wmu) serialises every mutation (a compaction lets it
 * go for its long copy, see compact()); searches never take it. The
 * partition table has a rwlock, held shared by a search only to find its
 * partition and take a reference (a partition is freed by whoever drops
 * its last reference, the table holding one while it is linked), so
 * creating or dropping a partition never waits for a long scan. Each
 * partition has a rwlock that a writer holds exclusively only to publish a
 * row already written outside it, to mark a tombstone, to add one vector
 * to a FAISS index, or to swap in arrays a compaction built outside it.
 * Lock order: wmu, then the table lock, then a partition lock. Both
 * rwlocks prefer writers so that a stream of searches cannot starve adds. */
#include "index/index.h"
#include "index/index_int.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/half.h"
#include "common/pair.h"
#include "common/hash.h"
#include "common/log.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TOMB UINT64_MAX
#define CHUNK_MIN_SHIFT 0            /* first chunk: 1 row (a partition of one entry
                                      * holds one row, not 16: chat turns) */
#define CHUNK_GROW_STEPS 14          /* chunks 0..13 double; from 14 on: 16384 */
#define CHUNK_MAX (1u << (CHUNK_MIN_SHIFT + CHUNK_GROW_STEPS))
#define SMALL_BASE ((((size_t)1 << CHUNK_GROW_STEPS) - 1) << CHUNK_MIN_SHIFT) /* 16383 */
#define HUGE_PAGE ((size_t)2 << 20)
#define SCAN_BLOCK 256
#define FAISS_TRAIN_FIRST 1024
#define IVF_TAIL_MIN 4096            /* unassigned rows tolerated (at least) */
#define IVF_TAIL_DIV 32              /* ... and up to assigned/IVF_TAIL_DIV */
#define IVF_SAMPLE_PER_LIST 64       /* k-means sample: rows per list */
#define IVF_PAR_MIN 65536            /* assignments and list fills split over 2 threads from here */
#define IVF_MAX_LISTS 256

enum { BACKEND_FLAT, BACKEND_FAISS };

typedef struct chunk {
    int8_t *q;                  /* cap*dim int8 rows (flat, 8-bit scan), else NULL */
    uint8_t *c4;                /* cap 4-bit code rows (flat, 4-bit scan), else NULL */
    float *s4;                  /* cap scales of the 4-bit rows */
    uint16_t *hv;               /* cap*dim fp16 rows (common/half.h) */
    uint64_t *ids;              /* cap ids; TOMB = removed */
    uint32_t cap, n;
} chunk;

/* The ANN path of a flat 4-bit partition: an inverted file. Rows
 * [0, assigned) are grouped by their nearest centroid: list l is entries
 * off[l] .. off[l + 1] - 1, each a row number, its 4-bit scan codes and
 * their scale, so a probed list is one contiguous scan (tombstoned rows
 * stay until the next compaction). The IVF holds the only copy of those
 * rows' codes: a chunk whose rows are all assigned lets its own go. Rows
 * from assigned on (added since) are scanned whole from their chunks.
 * Immutable once published: a change builds a new one and swaps it in
 * under the partition's write lock. */
typedef struct ivf {
    uint32_t nlist, nprobe;
    size_t trained;             /* live rows when the centroids were trained */
    size_t assigned;
    int8_t *c8;                 /* nlist*dim int8 centroids (scale 127) */
    uint32_t *off;              /* nlist + 1 */
    uint32_t *rows;             /* off[nlist] row numbers, by list */
    uint8_t *codes;             /* off[nlist] rows of 4-bit codes, by list */
    float *scales;              /* off[nlist] scales */
} ivf;

typedef struct part {
    struct part *next;          /* hash chain */
    char *ns;
    uint64_t fp, hash;
    pthread_rwlock_t lock;
    atomic_size_t refs;         /* the table's (while linked) + searches' */
    chunk *chunks;
    size_t nchunks, chunks_cap;
    size_t rows;                /* rows stored, tombstones included */
    size_t dead;                /* tombstones */
    void *faiss;                /* faiss backend: index holding rows 0..faiss_rows-1 */
    size_t faiss_rows;
    size_t train_next;          /* untrained faiss index: rows at the next attempt */
    ivf *ivf;                   /* flat 4-bit: the ANN path, or NULL (exact scan) */
    int compacting;             /* under wmu: a compaction or IVF build is under way */
    int retired;                /* under wmu: unlinked from the table */
} part;

typedef struct idslot {
    uint64_t id;
    part *p;                    /* NULL = empty slot */
    size_t row;
} idslot;

struct sc_index {
    uint32_t dim;
    int backend;
    uint32_t scan_bits;         /* flat: 8 or 4 */
    char *faiss_desc;
    size_t ann_min;             /* live rows from which a partition uses an IVF */
    uint32_t ann_nprobe;        /* lists probed; 0 = by rule (ivf_nprobe) */
    int bulk;                   /* under wmu: sc_index_bulk_load is on */
    atomic_int stop;            /* sc_index_stop: IVF builds give up */
    pthread_mutex_t wmu;
    pthread_rwlock_t tlock;
    part **buckets;
    size_t nbuckets, nparts;
    idslot *ids;                /* open addressing, linear probing; under wmu */
    size_t ids_cap, ids_n;
    uint64_t vectors, bytes;    /* under wmu */
};

/* ---------------------------------------------------------------------
 * Row geometry
 * ------------------------------------------------------------------- */

static uint32_t chunk_cap(size_t i)
{
    return i < CHUNK_GROW_STEPS ? (uint32_t)1 << (CHUNK_MIN_SHIFT + i) : CHUNK_MAX;
}

static void row_loc(size_t row, size_t *ci, size_t *off)
{
    if (row < SMALL_BASE) {
        size_t x = (row >> CHUNK_MIN_SHIFT) + 1;
        size_t i = (size_t)(63 - __builtin_clzll((unsigned long long)x));
        *ci = i;
        *off = row - ((((size_t)1 << i) - 1) << CHUNK_MIN_SHIFT);
    } else {
        *ci = CHUNK_GROW_STEPS + (row - SMALL_BASE) / CHUNK_MAX;
        *off = (row - SMALL_BASE) % CHUNK_MAX;
    }
}

static size_t chunk_bytes(const sc_index *ix, const chunk *c)
{
    size_t per = (size_t)ix->dim * sizeof(uint16_t) + sizeof(uint64_t);
    if (c->q) per += ix->dim;
    if (c->c4) per += SC_INDEX_I4_BYTES(ix->dim) + sizeof(float);
    return per * c->cap;
}

static void *alloc_aligned(size_t n)
{
    void *p = NULL;
    if (n >= HUGE_PAGE) {
        n = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
        if (posix_memalign(&p, HUGE_PAGE, n) != 0) sc_panic("out of memory (%zu bytes)", n);
        (void)madvise(p, n, MADV_HUGEPAGE);
        return p;
    }
    if (posix_memalign(&p, 64, n ? n : 64) != 0) sc_panic("out of memory (%zu bytes)", n);
    return p;
}

static void chunk_alloc(const sc_index *ix, chunk *c, uint32_t cap)
{
    c->cap = cap;
    c->n = 0;
    c->hv = alloc_aligned((size_t)cap * ix->dim * sizeof(uint16_t));
    int flat = ix->backend == BACKEND_FLAT;
    c->q = flat && ix->scan_bits == 8 ? alloc_aligned((size_t)cap * ix->dim) : NULL;
    c->c4 = flat && ix->scan_bits == 4 ? alloc_aligned((size_t)cap * SC_INDEX_I4_BYTES(ix->dim)) : NULL;
    c->s4 = flat && ix->scan_bits == 4 ? sc_malloc((size_t)cap * sizeof(float)) : NULL;
    c->ids = sc_malloc((size_t)cap * sizeof(uint64_t));
}

static void chunk_free(chunk *c)
{
    free(c->hv);
    free(c->q);
    free(c->c4);
    free(c->s4);
    free(c->ids);
}

/* ---------------------------------------------------------------------
 * Id map: id -> (partition, row). Linear probing with backward-shift
 * deletion. Only touched with wmu held.
 * ------------------------------------------------------------------- */

static size_t id_home(uint64_t id, size_t cap)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static idslot *id_find(sc_index *ix, uint64_t id)
{
    if (!ix->ids_cap) return NULL;
    for (size_t i = id_home(id, ix->ids_cap);; i = (i + 1) & (ix->ids_cap - 1)) {
        idslot *s = &ix->ids[i];
        if (!s->p) return NULL;
        if (s->id == id) return s;
    }
}

static void id_put(sc_index *ix, uint64_t id, part *p, size_t row);

static void id_grow(sc_index *ix)
{
    idslot *old = ix->ids;
    size_t oldcap = ix->ids_cap;
    ix->ids_cap = oldcap ? oldcap * 2 : 64;
    ix->ids = sc_calloc(ix->ids_cap, sizeof(idslot));
    ix->ids_n = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].p) id_put(ix, old[i].id, old[i].p, old[i].row);
    free(old);
}

static void id_put(sc_index *ix, uint64_t id, part *p, size_t row)
{
    if ((ix->ids_n + 1) * 4 > ix->ids_cap * 3) id_grow(ix);
    for (size_t i = id_home(id, ix->ids_cap);; i = (i + 1) & (ix->ids_cap - 1)) {
        idslot *s = &ix->ids[i];
        if (!s->p) {
            *s = (idslot){id, p, row};
            ix->ids_n++;
            return;
        }
        if (s->id == id) {
            s->p = p;
            s->row = row;
            return;
        }
    }
}

static void id_del(sc_index *ix, idslot *s)
{
    size_t mask = ix->ids_cap - 1, i = (size_t)(s - ix->ids);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!ix->ids[j].p) break;
        size_t h = id_home(ix->ids[j].id, ix->ids_cap);
        /* Move j back to i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays) continue;
        ix->ids[i] = ix->ids[j];
        i = j;
    }
    ix->ids[i].p = NULL;
    ix->ids_n--;
}

/* ---------------------------------------------------------------------
 * Partition table (under tlock; lookups shared, changes exclusive)
 * ------------------------------------------------------------------- */

static uint64_t part_hash(const char *ns, uint64_t fp)
{
    return sc_hash64(ns, strlen(ns), fp);
}

static part *part_find(sc_index *ix, const char *ns, uint64_t fp, uint64_t h)
{
    for (part *p = ix->buckets[h & (ix->nbuckets - 1)]; p; p = p->next)
        if (p->hash == h && p->fp == fp && strcmp(p->ns, ns) == 0) return p;
    return NULL;
}

static void rwlock_init(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

static void table_insert(sc_index *ix, part *p)
{
    if (ix->nparts + 1 > ix->nbuckets) {
        size_t nb = ix->nbuckets * 2;
        part **b = sc_calloc(nb, sizeof(part *));
        for (size_t i = 0; i < ix->nbuckets; i++) {
            part *q = ix->buckets[i];
            while (q) {
                part *next = q->next;
                q->next = b[q->hash & (nb - 1)];
                b[q->hash & (nb - 1)] = q;
                q = next;
            }
        }
        free(ix->buckets);
        ix->buckets = b;
        ix->nbuckets = nb;
    }
    part **head = &ix->buckets[p->hash & (ix->nbuckets - 1)];
    p->next = *head;
    *head = p;
    ix->nparts++;
}

static void table_unlink(sc_index *ix, part *p)
{
    for (part **pp = &ix->buckets[p->hash & (ix->nbuckets - 1)]; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            ix->nparts--;
            return;
        }
}

static size_t ivf_bytes(const sc_index *ix, const ivf *v)
{
    if (!v) return 0;
    size_t per = sizeof(uint32_t) + SC_INDEX_I4_BYTES(ix->dim) + sizeof(float);
    return (size_t)v->nlist * (ix->dim + sizeof(uint32_t)) + (size_t)v->off[v->nlist] * per;
}

static void ivf_free(ivf *v)
{
    if (!v) return;
    free(v->c8);
    free(v->off);
    free(v->rows);
    free(v->codes);
    free(v->scales);
    free(v);
}

/* The IVF's arrays for n entries. */
static void ivf_alloc(const sc_index *ix, ivf *v, size_t n)
{
    if (!n) n = 1;
    v->rows = sc_malloc(n * sizeof(uint32_t));
    v->codes = alloc_aligned(n * SC_INDEX_I4_BYTES(ix->dim));
    v->scales = sc_malloc(n * sizeof(float));
}

/* Row (c, off)'s 4-bit codes and scale: its chunk's, or computed again
 * from its fp16 vector when the chunk let them go (an IVF holds them). */
static void row_codes(const sc_index *ix, const chunk *c, size_t off, uint8_t *codes, float *scale)
{
    const size_t rb = SC_INDEX_I4_BYTES(ix->dim);
    if (c->c4) {
        memcpy(codes, c->c4 + off * rb, rb);
        *scale = c->s4[off];
        return;
    }
    float f[SC_INDEX_MAX_DIM];
    sc_half_decode(f, c->hv + off * ix->dim, ix->dim);
    sc_index_quantize_i4(f, codes, ix->dim, scale);
}

static size_t part_bytes(const sc_index *ix, const part *p)
{
    size_t b = 0;
    for (size_t i = 0; i < p->nchunks; i++) b += chunk_bytes(ix, &p->chunks[i]);
    if (p->faiss) b += p->faiss_rows * ix->dim * sizeof(float);
    return b + ivf_bytes(ix, p->ivf);
}

/* Frees a partition nobody references any more. */
static void part_free(part *p)
{
    for (size_t i = 0; i < p->nchunks; i++) chunk_free(&p->chunks[i]);
    free(p->chunks);
    if (p->faiss) sc_index__faiss_free(p->faiss);
    ivf_free(p->ivf);
    pthread_rwlock_destroy(&p->lock);
    free(p->ns);
    free(p);
}

static void part_unref(part *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) part_free(p);
}

/* Partition (ns, fp) with a reference taken (part_unref after), or NULL:
 * it stays alive even if it is dropped from the table meanwhile. */
static part *part_acquire(sc_index *ix, const char *ns, uint64_t fp)
{
    uint64_t h = part_hash(ns, fp);
    pthread_rwlock_rdlock(&ix->tlock);
    part *p = part_find(ix, ns, fp, h);
    if (p) atomic_fetch_add(&p->refs, 1);
    pthread_rwlock_unlock(&ix->tlock);
    return p;
}

/* With wmu held, after p was unlinked from the table: accounting, then the
 * table's reference goes (searches still running keep p alive). */
static void part_retire(sc_index *ix, part *p)
{
    p->retired = 1;
    ix->bytes -= part_bytes(ix, p);
    part_unref(p);
}

/* ---------------------------------------------------------------------
 * Create / destroy
 * ------------------------------------------------------------------- */

int sc_index_create(sc_index **out, const sc_index_opts *opts)
{
    *out = NULL;
    if (!opts || opts->dim == 0 || opts->dim > SC_INDEX_MAX_DIM) return SC_EINVAL;
    int backend;
    if (!opts->backend || strcmp(opts->backend, "flat") == 0)
        backend = BACKEND_FLAT;
    else if (strcmp(opts->backend, "faiss") == 0)
        backend = BACKEND_FAISS;
    else
        return SC_EINVAL;
    const char *desc = opts->faiss_desc && *opts->faiss_desc ? opts->faiss_desc : "Flat";
    if (backend == BACKEND_FAISS) {
        void *probe;
        int rc = sc_index__faiss_new(&probe, opts->dim, desc);
        if (rc) return SC_EINVAL;
        sc_index__faiss_free(probe);
    }
    if (opts->scan_bits != 0 && opts->scan_bits != 8 && opts->scan_bits != 4) return SC_EINVAL;
    sc_index *ix = SC_NEW(sc_index);
    ix->dim = opts->dim;
    ix->scan_bits = opts->scan_bits ? opts->scan_bits : 4;
    ix->backend = backend;
    ix->faiss_desc = sc_strdup(desc);
    ix->ann_min = opts->ann_min_rows == 0 ? SC_INDEX_ANN_MIN_DEFAULT
                : opts->ann_min_rows == UINT32_MAX ? SIZE_MAX : opts->ann_min_rows;
    if (backend != BACKEND_FLAT || ix->scan_bits != 4) ix->ann_min = SIZE_MAX;
    ix->ann_nprobe = opts->ann_nprobe;
    pthread_mutex_init(&ix->wmu, NULL);
    rwlock_init(&ix->tlock);
    ix->nbuckets = 16;
    ix->buckets = sc_calloc(ix->nbuckets, sizeof(part *));
    *out = ix;
    return 0;
}

void sc_index_destroy(sc_index *ix)
{
    if (!ix) return;
    for (size_t i = 0; i < ix->nbuckets; i++) {
        part *p = ix->buckets[i];
        while (p) {
            part *next = p->next;
            part_free(p);
            p = next;
        }
    }
    free(ix->buckets);
    free(ix->ids);
    free(ix->faiss_desc);
    pthread_rwlock_destroy(&ix->tlock);
    pthread_mutex_destroy(&ix->wmu);
    free(ix);
}

/* ---------------------------------------------------------------------
 * Mutations (all with wmu held)
 * ------------------------------------------------------------------- */

/* Copies vec normalised into dst; SC_EINVAL for zero or non-finite input. */
static int normalise(const float *vec, float *dst, size_t dim)
{
    double s = sc_index__sumsq(vec, dim);
    if (!(s > 0) || !isfinite(s)) return SC_EINVAL;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < dim; i++) dst[i] = vec[i] * inv;
    return 0;
}

static part *part_get_or_create(sc_index *ix, const char *ns, uint64_t fp)
{
    uint64_t h = part_hash(ns, fp);
    part *p = part_find(ix, ns, fp, h); /* wmu held: the table cannot change */
    if (p) return p;
    p = SC_NEW(part);
    p->ns = sc_strdup(ns);
    p->fp = fp;
    p->hash = h;
    p->train_next = FAISS_TRAIN_FIRST;
    atomic_init(&p->refs, 1);
    rwlock_init(&p->lock);
    if (ix->backend == BACKEND_FAISS && sc_index__faiss_new(&p->faiss, ix->dim, ix->faiss_desc)) {
        pthread_rwlock_destroy(&p->lock);
        free(p->ns);
        free(p);
        return NULL;
    }
    pthread_rwlock_wrlock(&ix->tlock);
    table_insert(ix, p);
    pthread_rwlock_unlock(&ix->tlock);
    return p;
}

static void drop_part(sc_index *ix, part *p)
{
    pthread_rwlock_wrlock(&ix->tlock);
    table_unlink(ix, p);
    pthread_rwlock_unlock(&ix->tlock);
    part_retire(ix, p);
}

void (*sc_index__compact_hook)(void);
size_t sc_index__par_min = IVF_PAR_MIN;

/* A chunk array being filled by a compaction. */
typedef struct builder {
    chunk *ch;
    size_t nch, chcap, rows, capsum;
} builder;

/* Appends old row (c, off) to b; returns its new row number. */
static size_t builder_add(const sc_index *ix, builder *b, const chunk *c, size_t off)
{
    const size_t dim = ix->dim;
    if (b->rows == b->capsum) {
        if (b->nch == b->chcap) {
            b->chcap = b->chcap ? b->chcap * 2 : 8;
            b->ch = sc_realloc(b->ch, b->chcap * sizeof(chunk));
        }
        chunk_alloc(ix, &b->ch[b->nch], chunk_cap(b->nch));
        b->capsum += b->ch[b->nch++].cap;
    }
    size_t r = b->rows++, ci, o;
    row_loc(r, &ci, &o);
    chunk *d = &b->ch[ci];
    memcpy(d->hv + o * dim, c->hv + off * dim, dim * sizeof(uint16_t));
    if (c->q) memcpy(d->q + o * dim, c->q + off * dim, dim);
    if (d->c4) row_codes(ix, c, off, d->c4 + o * SC_INDEX_I4_BYTES(dim), &d->s4[o]);
    d->ids[o] = c->ids[off];
    d->n++;
    return r;
}

static chunk *builder_chunk(builder *b, size_t r, size_t *off)
{
    size_t ci;
    row_loc(r, &ci, off);
    return &b->ch[ci];
}

/* First row of chunk i. */
static size_t chunk_base(size_t i)
{
    return i < CHUNK_GROW_STEPS ? (((size_t)1 << i) - 1) << CHUNK_MIN_SHIFT
                                : SMALL_BASE + (i - CHUNK_GROW_STEPS) * (size_t)CHUNK_MAX;
}

/* With p's write lock held, after an IVF covering rows [0, assigned) was
 * swapped in: the chunks wholly inside it let their scan codes go (the
 * IVF has them). The arrays go into *drop, freed by the caller once the
 * lock is released (part_bytes counts what is left). */
static void release_codes(part *p, size_t assigned, void ***drop, size_t *ndrop)
{
    for (size_t i = 0; i < p->nchunks; i++) {
        chunk *c = &p->chunks[i];
        if (!c->c4 || chunk_base(i) + c->cap > assigned) continue;
        *drop = sc_realloc(*drop, (*ndrop + 2) * sizeof(void *));
        (*drop)[(*ndrop)++] = c->c4;
        (*drop)[(*ndrop)++] = c->s4;
        c->c4 = NULL;
        c->s4 = NULL;
    }
}

/* Frees what release_codes took. glibc keeps freed blocks of a few MB in
 * its heap (its mmap threshold grows as big blocks are freed), so the
 * memory would stay resident: it is handed back to the kernel at once. */
static void free_dropped(void **drop, size_t n)
{
    for (size_t i = 0; i < n; i++) free(drop[i]);
    free(drop);
    if (n) malloc_trim(0);
}

/* The IVF of a compacted partition: the same centroids and lists, rows
 * renumbered through newrow (SIZE_MAX: not copied). The copy keeps row
 * order, so the rows assigned before stay a prefix. NULL when there is
 * none or the partition shrank below half the ANN size (exact scan). */
static ivf *ivf_remap(const sc_index *ix, const ivf *v, const size_t *newrow, size_t live)
{
    if (!v || live < ix->ann_min / 2) return NULL;
    ivf *w = SC_NEW(ivf);
    w->nlist = v->nlist;
    w->nprobe = v->nprobe;
    w->trained = v->trained;
    w->c8 = sc_malloc((size_t)v->nlist * ix->dim);
    memcpy(w->c8, v->c8, (size_t)v->nlist * ix->dim);
    w->off = sc_malloc(((size_t)v->nlist + 1) * sizeof(uint32_t));
    ivf_alloc(ix, w, v->off[v->nlist]);
    const size_t rb = SC_INDEX_I4_BYTES(ix->dim);
    size_t k = 0;
    for (uint32_t l = 0; l < v->nlist; l++) {
        w->off[l] = (uint32_t)k;
        for (uint32_t i = v->off[l]; i < v->off[l + 1]; i++) {
            if (newrow[v->rows[i]] == SIZE_MAX) continue;
            w->rows[k] = (uint32_t)newrow[v->rows[i]];
            memcpy(w->codes + k * rb, v->codes + (size_t)i * rb, rb);
            w->scales[k++] = v->scales[i];
        }
    }
    w->off[v->nlist] = (uint32_t)k;
    for (size_t r = 0; r < v->assigned; r++)
        if (newrow[r] != SIZE_MAX) w->assigned = newrow[r] + 1;
    return w;
}

/* Rebuilds p from its live rows: new chunks, a new FAISS index (trained
 * when it needs training and there are enough rows), new row numbers in
 * the id map. Called and returning with wmu held, but the long part runs
 * without it: the rows present at the start are copied (under p's read
 * lock, a block at a time) and the FAISS index built with wmu released, so
 * other writers go on, including on p. Then, with wmu again, what changed
 * meanwhile is carried over (rows removed since: tombstones; rows added
 * since: copied) and the new arrays are swapped in under p's write lock.
 * Searches keep using the old arrays until the swap. One compaction per
 * partition at a time; a partition dropped meanwhile is simply let go. */
static void compact(sc_index *ix, part *p)
{
    if (p->compacting) return;
    const size_t dim = ix->dim, snap = p->rows;
    p->compacting = 1;
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&ix->wmu);

    /* Phase 1, without wmu: copy the live rows of [0, snap). */
    builder b = {0};
    size_t *newrow = sc_malloc((snap ? snap : 1) * sizeof(size_t));
    for (size_t r = 0; r < snap; r += SCAN_BLOCK) {
        size_t end = r + SCAN_BLOCK < snap ? r + SCAN_BLOCK : snap;
        pthread_rwlock_rdlock(&p->lock);
        for (size_t x = r; x < end; x++) {
            size_t ci, off;
            row_loc(x, &ci, &off);
            const chunk *c = &p->chunks[ci];
            newrow[x] = c->ids[off] == TOMB ? SIZE_MAX : builder_add(ix, &b, c, off);
        }
        pthread_rwlock_unlock(&p->lock);
    }
    /* p->ivf cannot change while p->compacting is set. */
    ivf *nv = ivf_remap(ix, p->ivf, newrow, b.rows);
    void *fx = NULL;
    size_t frows = 0, copied = b.rows;
    int trained = 0;
    if (ix->backend == BACKEND_FAISS && sc_index__faiss_new(&fx, ix->dim, ix->faiss_desc) == 0) {
        float *all = sc_malloc((copied ? copied : 1) * dim * sizeof(float));
        for (size_t i = 0; i < copied; i++) {
            size_t o;
            sc_half_decode(all + i * dim, builder_chunk(&b, i, &o)->hv + o * dim, dim);
        }
        if (!sc_index__faiss_is_trained(fx) && copied >= p->train_next)
            (void)sc_index__faiss_train(fx, copied, all);
        trained = sc_index__faiss_is_trained(fx);
        if (trained && copied && sc_index__faiss_add(fx, copied, all) == 0) frows = copied;
        free(all);
    }

    if (sc_index__compact_hook) sc_index__compact_hook();

    /* Phase 2, with wmu: carry over what changed, swap. */
    pthread_mutex_lock(&ix->wmu);
    if (p->retired) {
        for (size_t i = 0; i < b.nch; i++) chunk_free(&b.ch[i]);
        free(b.ch);
        free(newrow);
        if (fx) sc_index__faiss_free(fx);
        ivf_free(nv);
        part_unref(p); /* the last reference: frees p */
        return;
    }
    size_t dead = 0;
    for (size_t x = 0; x < snap; x++) {
        if (newrow[x] == SIZE_MAX) continue;
        size_t ci, off;
        row_loc(x, &ci, &off);
        if (p->chunks[ci].ids[off] != TOMB) continue;
        size_t o;
        builder_chunk(&b, newrow[x], &o)->ids[o] = TOMB; /* removed meanwhile */
        dead++;
    }
    for (size_t x = snap; x < p->rows; x++) {
        size_t ci, off;
        row_loc(x, &ci, &off);
        const chunk *c = &p->chunks[ci];
        if (c->ids[off] == TOMB) continue;
        size_t r = builder_add(ix, &b, c, off);
        if (fx && trained && frows == r) {
            float f[SC_INDEX_MAX_DIM];
            sc_half_decode(f, c->hv + off * dim, dim);
            if (sc_index__faiss_add(fx, 1, f) == 0) frows++;
        }
    }
    free(newrow);
    size_t train_next = p->train_next, live = b.rows - dead;
    if (fx && frows < b.rows && live >= train_next) train_next = live * 2; /* retry later */
    size_t oldbytes = part_bytes(ix, p);
    chunk *oldch = p->chunks;
    size_t oldn = p->nchunks;
    void *oldfx = p->faiss;
    ivf *oldv = p->ivf;

    pthread_rwlock_wrlock(&p->lock);
    p->chunks = b.ch;
    p->nchunks = b.nch;
    p->chunks_cap = b.chcap;
    p->rows = b.rows;
    p->dead = dead;
    p->faiss = fx;
    p->faiss_rows = frows;
    p->train_next = train_next;
    p->ivf = nv;
    void **drop = NULL;
    size_t ndrop = 0;
    if (nv) release_codes(p, nv->assigned, &drop, &ndrop);
    pthread_rwlock_unlock(&p->lock);
    free_dropped(drop, ndrop);

    for (size_t i = 0; i < oldn; i++) chunk_free(&oldch[i]);
    free(oldch);
    if (oldfx) sc_index__faiss_free(oldfx);
    ivf_free(oldv);
    ix->bytes = ix->bytes - oldbytes + part_bytes(ix, p);
    for (size_t r = 0; r < b.rows; r++) {
        size_t o;
        uint64_t id = builder_chunk(&b, r, &o)->ids[o];
        if (id != TOMB) id_put(ix, id, p, r);
    }
    p->compacting = 0;
    part_unref(p); /* p is still linked: the table's reference remains */
}

/* Marks row of p removed. */
static void kill_row(sc_index *ix, part *p, size_t row)
{
    size_t ci, off;
    row_loc(row, &ci, &off);
    pthread_rwlock_wrlock(&p->lock);
    p->chunks[ci].ids[off] = TOMB;
    p->dead++;
    pthread_rwlock_unlock(&p->lock);
    ix->vectors--;
}

/* After a removal: drop an empty partition, compact one past 25% dead. */
static void maybe_shrink(sc_index *ix, part *p)
{
    if (p->dead == p->rows)
        drop_part(ix, p);
    else if (p->dead * 4 > p->rows)
        compact(ix, p);
}

/* ---------------------------------------------------------------------
 * The ANN path (flat 4-bit partitions of ann_min live rows and more)
 *
 * A partition reaching ann_min live rows gets an IVF: k-means centroids
 * trained on a sample (ivf.c), every row in the list of its nearest
 * centroid. Rows added later are scanned whole until there are more than
 * max(IVF_TAIL_MIN, assigned / IVF_TAIL_DIV) of them; then they are put
 * into lists with the same centroids. When the live rows have doubled
 * since training, the centroids are trained again (more lists) and every
 * row reassigned. Both run in the thread whose add crossed the line, the
 * way a compaction does: without wmu for the long part (p->compacting
 * keeps compactions and other builds of p out), the new IVF swapped in
 * under p's write lock. sc_index_bulk_load defers all of it to the end of
 * a load (start-up), so a partition is built once, not at every doubling.
 * ------------------------------------------------------------------- */

/* Lists for n live rows: the power of two nearest sqrt(n) / 2, 16..256
 * (128 at 100k rows, 256 from ~200k: lists of 4k rows at 1M). More lists
 * would probe fewer rows for the same recall, but assigning a row costs
 * one dot product per list, and 1M rows must be assigned within the
 * start-up target (BENCHMARKS.md). */
static uint32_t ivf_nlist(size_t n)
{
    double want = sqrt((double)n) / 2;
    uint32_t l = 16;
    while (l < IVF_MAX_LISTS && (double)l * 1.4142 < want) l *= 2;
    return l;
}

/* Lists a search probes: 3/16 of them, at least 8 (bench_index --real:
 * recall@1 and @10 >= 0.99 on real embeddings). */
static uint32_t ivf_nprobe(const sc_index *ix, uint32_t nlist)
{
    uint32_t np = ix->ann_nprobe ? ix->ann_nprobe : nlist * 3 / 16;
    if (np < 8) np = 8;
    return np < nlist ? np : nlist;
}

enum { IVF_NONE, IVF_TAIL, IVF_TRAIN, IVF_DROP };

/* With wmu held: what p's IVF needs now. */
static int ivf_due(const sc_index *ix, const part *p)
{
    if (ix->ann_min == SIZE_MAX || ix->bulk || p->compacting || p->rows > UINT32_MAX || atomic_load(&ix->stop))
        return IVF_NONE;
    size_t live = p->rows - p->dead;
    const ivf *v = p->ivf;
    if (!v) return live >= ix->ann_min && live >= p->train_next ? IVF_TRAIN : IVF_NONE;
    if (live < ix->ann_min / 2) return IVF_DROP;
    if (live >= 2 * v->trained) return IVF_TRAIN;
    size_t tail = p->rows - v->assigned, lim = v->assigned / IVF_TAIL_DIV;
    return tail > (lim > IVF_TAIL_MIN ? lim : IVF_TAIL_MIN) ? IVF_TAIL : IVF_NONE;
}

typedef struct assign_job {
    part *p;
    const sc_index__cents *cents;
    uint32_t dim;
    size_t from, to;
    uint32_t *lid;              /* lid[r - base]: list of row r, UINT32_MAX = tombstone */
    size_t base;
    atomic_int *stop;           /* set: give up (lid is then incomplete) */
} assign_job;

/* Puts rows [from, to) of p into lists, reading them a block at a time
 * under p's read lock (the rows never move while p->compacting is set;
 * only their ids may turn into tombstones). */
static void *assign_rows(void *arg)
{
    assign_job *j = arg;
    float f[SC_INDEX_MAX_DIM];
    int8_t *q = sc_malloc((size_t)SCAN_BLOCK * j->dim);
    uint32_t at[SCAN_BLOCK], got[SCAN_BLOCK];
    for (size_t r = j->from; r < j->to && !atomic_load(j->stop); r += SCAN_BLOCK) {
        size_t end = r + SCAN_BLOCK < j->to ? r + SCAN_BLOCK : j->to, n = 0;
        pthread_rwlock_rdlock(&j->p->lock);
        for (size_t x = r; x < end; x++) {
            size_t ci, off;
            row_loc(x, &ci, &off);
            const chunk *c = &j->p->chunks[ci];
            if (c->ids[off] == TOMB) {
                j->lid[x - j->base] = UINT32_MAX;
                continue;
            }
            sc_half_decode(f, c->hv + off * j->dim, j->dim);
            sc_index_quantize(f, q + n * j->dim, j->dim);
            at[n++] = (uint32_t)(x - j->base);
        }
        pthread_rwlock_unlock(&j->p->lock);
        sc_index__nearest_rows(j->cents, q, n, got);
        for (size_t i = 0; i < n; i++) j->lid[at[i]] = got[i];
    }
    free(q);
    return NULL;
}

typedef struct fill_job {
    const sc_index *ix;
    part *p;
    ivf *v;
    const uint32_t *lid;        /* lid[r - base], as assign_rows left it */
    size_t base, from, to;
    uint32_t *at;               /* next slot of each list for these rows */
} fill_job;

/* Copies rows [from, to) of p into the slots of their lists (at[]), under
 * p's read lock a block at a time, like assign_rows. */
static void *fill_lists(void *arg)
{
    fill_job *j = arg;
    const size_t rb = SC_INDEX_I4_BYTES(j->ix->dim);
    ivf *v = j->v;
    for (size_t r = j->from; r < j->to; r += SCAN_BLOCK) {
        size_t end = r + SCAN_BLOCK < j->to ? r + SCAN_BLOCK : j->to;
        pthread_rwlock_rdlock(&j->p->lock);
        for (size_t x = r; x < end; x++) {
            uint32_t l = j->lid[x - j->base];
            if (l == UINT32_MAX) continue;
            size_t ci, off, k = j->at[l]++;
            row_loc(x, &ci, &off);
            v->rows[k] = (uint32_t)x;
            row_codes(j->ix, &j->p->chunks[ci], off, v->codes + k * rb, &v->scales[k]);
        }
        pthread_rwlock_unlock(&j->p->lock);
    }
    return NULL;
}

/* Trains centroids on a strided sample of p's live rows [0, snap); NULL
 * when too few rows are left. */
static int8_t *ivf_train(sc_index *ix, part *p, size_t snap, size_t live, uint32_t nlist)
{
    const size_t dim = ix->dim;
    size_t want = (size_t)nlist * IVF_SAMPLE_PER_LIST;
    if (want > live) want = live;
    size_t stride = snap / want ? snap / want : 1, m = 0;
    float *x = sc_malloc(want * dim * sizeof(float));
    for (size_t r = 0; r < snap && m < want; r += SCAN_BLOCK) {
        size_t end = r + SCAN_BLOCK < snap ? r + SCAN_BLOCK : snap;
        pthread_rwlock_rdlock(&p->lock);
        for (size_t i = r; i < end && m < want; i++) {
            if (i % stride) continue;
            size_t ci, off;
            row_loc(i, &ci, &off);
            const chunk *c = &p->chunks[ci];
            if (c->ids[off] != TOMB) sc_half_decode(x + m++ * dim, c->hv + off * dim, dim);
        }
        pthread_rwlock_unlock(&p->lock);
    }
    int8_t *c8 = NULL;
    if (m >= (size_t)nlist * 4) {
        float *cent = sc_malloc((size_t)nlist * dim * sizeof(float));
        if (sc_index__kmeans(x, m, dim, nlist, 0x5eedULL + p->hash, &ix->stop, 2, cent) == 0) {
            c8 = sc_malloc((size_t)nlist * dim);
            for (uint32_t l = 0; l < nlist; l++) sc_index_quantize(cent + (size_t)l * dim, c8 + (size_t)l * dim, dim);
        }
        free(cent);
    }
    free(x);
    return c8;
}

/* Builds p's next IVF (what = IVF_TRAIN or IVF_TAIL) or drops it
 * (IVF_DROP). Called and returning with wmu held; see the section head. */
static void ivf_update(sc_index *ix, part *p, int what)
{
    if (what == IVF_DROP) {
        /* The chunks the lists cover gave their codes to the IVF: a
         * compaction copies the rows with their codes computed again
         * (row_codes), and leaves no IVF below half of ann_min. */
        compact(ix, p);
        return;
    }
    const size_t dim = ix->dim, snap = p->rows, live = p->rows - p->dead;
    const ivf *old = what == IVF_TAIL ? p->ivf : NULL;
    p->compacting = 1;
    atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&ix->wmu);

    ivf *v = SC_NEW(ivf);
    if (old) {
        v->nlist = old->nlist;
        v->trained = old->trained;
        v->c8 = sc_malloc((size_t)old->nlist * dim);
        memcpy(v->c8, old->c8, (size_t)old->nlist * dim);
    } else {
        v->nlist = ivf_nlist(live);
        v->trained = live;
        v->c8 = ivf_train(ix, p, snap, live, v->nlist);
    }
    v->nprobe = ivf_nprobe(ix, v->nlist);
    size_t from = old ? old->assigned : 0;
    uint32_t *lid = NULL;
    if (v->c8) {
        lid = sc_malloc((snap - from ? snap - from : 1) * sizeof(uint32_t));
        sc_index__cents cents;
        sc_index__cents_init(&cents, v->c8, v->nlist, dim);
        assign_job jobs[2] = {{p, &cents, (uint32_t)dim, from, snap, lid, from, &ix->stop},
                              {p, &cents, (uint32_t)dim, snap, snap, lid, from, &ix->stop}};
        pthread_t th;
        int two = 0;
        if (snap - from >= sc_index__par_min) {
            jobs[1].from = jobs[0].to = from + (snap - from) / 2;
            two = pthread_create(&th, NULL, assign_rows, &jobs[1]) == 0;
        }
        assign_rows(&jobs[0]);
        if (two) pthread_join(th, NULL);
        else assign_rows(&jobs[1]);
        sc_index__cents_free(&cents);
    }
    if (v->c8 && atomic_load(&ix->stop)) { /* stopped: lid is incomplete */
        free(lid);
        free(v->c8);
        v->c8 = NULL;
    }
    if (v->c8) {
        /* The lists: the old ones' rows, then the new assignments. */
        v->off = sc_calloc((size_t)v->nlist + 1, sizeof(uint32_t));
        for (size_t r = from; r < snap; r++)
            if (lid[r - from] != UINT32_MAX) v->off[lid[r - from] + 1]++;
        for (uint32_t l = 0; old && l < v->nlist; l++) v->off[l + 1] += old->off[l + 1] - old->off[l];
        for (uint32_t l = 0; l < v->nlist; l++) v->off[l + 1] += v->off[l];
        ivf_alloc(ix, v, v->off[v->nlist]);
        const size_t rb = SC_INDEX_I4_BYTES(dim);
        uint32_t *at = sc_malloc((size_t)v->nlist * sizeof(uint32_t));
        memcpy(at, v->off, (size_t)v->nlist * sizeof(uint32_t));
        for (uint32_t l = 0; old && l < v->nlist; l++) {
            uint32_t n = old->off[l + 1] - old->off[l], k = at[l];
            memcpy(v->rows + k, old->rows + old->off[l], n * sizeof(uint32_t));
            memcpy(v->codes + (size_t)k * rb, old->codes + (size_t)old->off[l] * rb, n * rb);
            memcpy(v->scales + k, old->scales + old->off[l], n * sizeof(float));
            at[l] += n;
        }
        /* The new rows, on two threads past IVF_PAR_MIN: the second half's
         * rows go after the first half's in each list, so the lists come
         * out the same as from one thread. */
        fill_job fj[2] = {{ix, p, v, lid, from, from, snap, at}, {ix, p, v, lid, from, snap, snap, NULL}};
        uint32_t *at2 = NULL;
        if (snap - from >= sc_index__par_min) {
            size_t mid = from + (snap - from) / 2;
            at2 = sc_malloc((size_t)v->nlist * sizeof(uint32_t));
            memcpy(at2, at, (size_t)v->nlist * sizeof(uint32_t));
            for (size_t r = from; r < mid; r++)
                if (lid[r - from] != UINT32_MAX) at2[lid[r - from]]++;
            fj[0].to = fj[1].from = mid;
            fj[1].at = at2;
        }
        pthread_t th;
        int two = at2 && pthread_create(&th, NULL, fill_lists, &fj[1]) == 0;
        fill_lists(&fj[0]);
        if (two) pthread_join(th, NULL);
        else if (at2) fill_lists(&fj[1]);
        free(at2);
        free(at);
        free(lid);
        v->assigned = snap;
    }

    pthread_mutex_lock(&ix->wmu);
    if (!v->c8 || p->retired) {
        ivf_free(v);
        if (!p->retired) {
            p->compacting = 0;
            /* Too few live rows to train on (or sc_index_stop, after which
             * nothing is built again anyway): again at twice as many (a
             * partition with an IVF keeps it, retrained at twice these). */
            p->train_next = 2 * live;
            if (p->ivf) p->ivf->trained = live;
        }
        part_unref(p);
        return;
    }
    ivf *prev = p->ivf;
    void **drop = NULL;
    size_t ndrop = 0, oldbytes = part_bytes(ix, p);
    pthread_rwlock_wrlock(&p->lock);
    p->ivf = v;
    release_codes(p, v->assigned, &drop, &ndrop);
    pthread_rwlock_unlock(&p->lock);
    free_dropped(drop, ndrop);
    ix->bytes = ix->bytes - oldbytes + part_bytes(ix, p);
    ivf_free(prev);
    p->compacting = 0;
    part_unref(p);
}

int sc_index_add(sc_index *ix, const char *ns, uint64_t fp, uint64_t id, const float *vec)
{
    if (!ix || !ns || !vec || id == TOMB) return SC_EINVAL;
    const size_t dim = ix->dim;
    float f[SC_INDEX_MAX_DIM], s4 = 0;
    int8_t q[SC_INDEX_MAX_DIM];
    uint8_t c4[SC_INDEX_I4_BYTES(SC_INDEX_MAX_DIM)];
    if (normalise(vec, f, dim)) return SC_EINVAL;
    if (ix->backend == BACKEND_FLAT && ix->scan_bits == 8) sc_index_quantize(f, q, dim);
    if (ix->backend == BACKEND_FLAT && ix->scan_bits == 4) sc_index_quantize_i4(f, c4, dim, &s4);

    int rc = 0, what;
    pthread_mutex_lock(&ix->wmu);
    part *p = part_get_or_create(ix, ns, fp);
    if (!p) {
        rc = SC_EINVAL;
        goto out;
    }
    idslot *s = id_find(ix, id);
    part *old = NULL;
    if (s) {
        old = s->p;
        size_t oldrow = s->row;
        id_del(ix, s);
        kill_row(ix, old, oldrow);
        if (old == p)
            old = NULL;
        else
            atomic_fetch_add(&old->refs, 1); /* shrunk at the end, see below */
    }

    size_t capsum = 0;
    for (size_t i = 0; i < p->nchunks; i++) capsum += p->chunks[i].cap;
    if (p->rows == capsum) {
        chunk c;
        chunk_alloc(ix, &c, chunk_cap(p->nchunks));
        pthread_rwlock_wrlock(&p->lock);
        if (p->nchunks == p->chunks_cap) {
            p->chunks_cap = p->chunks_cap ? p->chunks_cap * 2 : 1;
            p->chunks = sc_realloc(p->chunks, p->chunks_cap * sizeof(chunk));
        }
        p->chunks[p->nchunks++] = c;
        pthread_rwlock_unlock(&p->lock);
        ix->bytes += chunk_bytes(ix, &c);
    }
    size_t row = p->rows, ci, off;
    row_loc(row, &ci, &off);
    chunk *c = &p->chunks[ci];
    /* The slot is past c->n: no reader looks at it before it is published. */
    sc_half_encode(c->hv + off * dim, f, dim);
    if (c->q) memcpy(c->q + off * dim, q, dim);
    if (c->c4) {
        memcpy(c->c4 + off * SC_INDEX_I4_BYTES(dim), c4, SC_INDEX_I4_BYTES(dim));
        c->s4[off] = s4;
    }
    c->ids[off] = id;

    pthread_rwlock_wrlock(&p->lock);
    c->n++;
    p->rows++;
    if (p->faiss && p->faiss_rows == row && sc_index__faiss_is_trained(p->faiss) &&
        sc_index__faiss_add(p->faiss, 1, f) == 0) {
        p->faiss_rows++;
        ix->bytes += dim * sizeof(float);
    }
    pthread_rwlock_unlock(&p->lock);
    id_put(ix, id, p, row);
    ix->vectors++;
    if (p->dead * 4 > p->rows)
        compact(ix, p); /* re-adds of ids of this partition left tombstones */
    else if (ix->backend == BACKEND_FAISS && p->faiss_rows < p->rows &&
             p->rows - p->dead >= p->train_next)
        compact(ix, p); /* trains the FAISS index (or retries later) */
    else if ((what = ivf_due(ix, p)) != IVF_NONE)
        ivf_update(ix, p, what);
    /* compact() and ivf_update() may have let wmu go for a while: the
     * partition the id came from is held by a reference and may have been
     * dropped meanwhile. */
    if (old) {
        if (!old->retired) maybe_shrink(ix, old);
        part_unref(old);
    }
out:
    pthread_mutex_unlock(&ix->wmu);
    return rc;
}

int sc_index_remove(sc_index *ix, uint64_t id)
{
    if (!ix) return SC_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&ix->wmu);
    idslot *s = id_find(ix, id);
    if (!s) {
        rc = SC_ENOTFOUND;
    } else {
        part *p = s->p;
        size_t row = s->row;
        id_del(ix, s);
        kill_row(ix, p, row);
        maybe_shrink(ix, p);
    }
    pthread_mutex_unlock(&ix->wmu);
    return rc;
}

int sc_index_flush_ns(sc_index *ix, const char *ns)
{
    if (!ix || !ns) return SC_EINVAL;
    pthread_mutex_lock(&ix->wmu);
    part *doomed = NULL;
    pthread_rwlock_wrlock(&ix->tlock);
    for (size_t i = 0; i < ix->nbuckets; i++) {
        part **pp = &ix->buckets[i];
        while (*pp) {
            part *p = *pp;
            if (strcmp(p->ns, ns) == 0) {
                *pp = p->next;
                ix->nparts--;
                p->next = doomed;
                doomed = p;
            } else {
                pp = &p->next;
            }
        }
    }
    pthread_rwlock_unlock(&ix->tlock);
    while (doomed) {
        part *p = doomed;
        doomed = p->next;
        for (size_t i = 0; i < p->nchunks; i++) {
            const chunk *c = &p->chunks[i];
            for (size_t off = 0; off < c->n; off++) {
                if (c->ids[off] == TOMB) continue;
                idslot *s = id_find(ix, c->ids[off]);
                if (s && s->p == p) id_del(ix, s);
            }
        }
        ix->vectors -= p->rows - p->dead;
        part_retire(ix, p);
    }
    pthread_mutex_unlock(&ix->wmu);
    return 0;
}

size_t sc_index_partitions(sc_index *ix, const char *ns, uint64_t *fps, size_t max)
{
    if (!ix || !ns) return 0;
    size_t n = 0;
    pthread_rwlock_rdlock(&ix->tlock);
    for (size_t i = 0; i < ix->nbuckets; i++)
        for (const part *p = ix->buckets[i]; p; p = p->next) {
            if (strcmp(p->ns, ns) != 0) continue;
            if (n < max && fps) fps[n] = p->fp;
            n++;
        }
    pthread_rwlock_unlock(&ix->tlock);
    return n;
}

size_t sc_index_rows(sc_index *ix, const char *ns, uint64_t fp)
{
    if (!ix || !ns) return 0;
    part *p = part_acquire(ix, ns, fp);
    if (!p) return 0;
    pthread_rwlock_rdlock(&p->lock);
    size_t n = p->rows - p->dead;
    pthread_rwlock_unlock(&p->lock);
    part_unref(p);
    return n;
}

void sc_index_bulk_load(sc_index *ix, int on)
{
    pthread_mutex_lock(&ix->wmu);
    ix->bulk = on;
    if (!on) {
        /* References to every partition, then their builds one by one
         * (a build lets wmu go; a partition dropped meanwhile is skipped). */
        pthread_rwlock_rdlock(&ix->tlock);
        part **ps = sc_malloc((ix->nparts ? ix->nparts : 1) * sizeof(part *));
        size_t np = 0;
        for (size_t i = 0; i < ix->nbuckets; i++)
            for (part *p = ix->buckets[i]; p; p = p->next) {
                atomic_fetch_add(&p->refs, 1);
                ps[np++] = p;
            }
        pthread_rwlock_unlock(&ix->tlock);
        for (size_t i = 0; i < np; i++) { /* ivf_due is IVF_NONE once stopped */
            int what;
            if (!ps[i]->retired && (what = ivf_due(ix, ps[i])) != IVF_NONE) ivf_update(ix, ps[i], what);
            part_unref(ps[i]);
        }
        free(ps);
    }
    pthread_mutex_unlock(&ix->wmu);
}

void sc_index_stop(sc_index *ix) { atomic_store(&ix->stop, 1); }

void sc_index_stats_get(sc_index *ix, sc_index_stats *st)
{
    pthread_mutex_lock(&ix->wmu);
    st->partitions = ix->nparts;
    st->vectors = ix->vectors;
    st->bytes = ix->bytes;
    st->ann_partitions = 0;
    pthread_rwlock_rdlock(&ix->tlock);
    for (size_t i = 0; i < ix->nbuckets; i++)
        for (const part *p = ix->buckets[i]; p; p = p->next) st->ann_partitions += p->ivf != NULL;
    pthread_rwlock_unlock(&ix->tlock);
    pthread_mutex_unlock(&ix->wmu);
}

/* ---------------------------------------------------------------------
 * Search (a reference to the partition, its lock held shared)
 * ------------------------------------------------------------------- */

typedef struct cand {
    float s;
    uint64_t id;
    const uint16_t *v;          /* the row's fp16 vector */
} cand;

/* Min-heap on s: the root is the weakest candidate kept. */
static void heap_down(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && h[l].s < h[m].s) m = l;
        if (l + 1 < n && h[l + 1].s < h[m].s) m = l + 1;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_up(cand *h, size_t i)
{
    while (i) {
        size_t parent = (i - 1) / 2;
        if (h[parent].s <= h[i].s) return;
        cand t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

static void heap_offer(cand *h, size_t *n, size_t cap, cand c)
{
    if (*n < cap) {
        h[*n] = c;
        heap_up(h, (*n)++);
    } else if (c.s > h[0].s) {
        h[0] = c;
        heap_down(h, cap, 0);
    }
}

static int by_score_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Offers the rows of one scanned block to the heap: scores fs[0..m) of
 * chunk c's rows from off, or (rows not NULL, an IVF list) of the
 * partition's rows rows[0..m). Only scores above the heap's weakest are
 * looked at, and those are found 16 at a time (sc_index__above). */
static void offer_block(const sc_index *ix, const part *p, const chunk *c, size_t off, const uint32_t *rows,
                        const float *fs, size_t m, cand *h, size_t *n, size_t cap)
{
    uint32_t idx[SCAN_BLOCK];
    float thr = *n == cap ? h[0].s : -INFINITY;
    size_t na = sc_index__above(fs, m, thr, idx);
    for (size_t a = 0; a < na; a++) {
        size_t j = idx[a], o = off + j;
        if (*n == cap && fs[j] <= h[0].s) continue; /* the bar rose meanwhile */
        const chunk *rc = c;
        if (rows) { /* an IVF list: score j is row rows[j], wherever it lies */
            size_t ci;
            row_loc(rows[j], &ci, &o);
            rc = &p->chunks[ci];
        }
        uint64_t id = rc->ids[o];
        if (id == TOMB) continue;
        heap_offer(h, n, cap, (cand){fs[j], id, rc->hv + o * ix->dim});
    }
}

/* Int8 scan for the top cap rows, into h (unsorted); returns the count. */
static size_t scan_i8(const sc_index *ix, const part *p, const int8_t *q, cand *h, size_t cap)
{
    const size_t dim = ix->dim;
    int32_t sb[SCAN_BLOCK];
    float fs[SCAN_BLOCK];
    size_t n = 0;
    for (size_t ci = 0; ci < p->nchunks; ci++) {
        const chunk *c = &p->chunks[ci];
        for (size_t off = 0; off < c->n; off += SCAN_BLOCK) {
            size_t m = c->n - off < SCAN_BLOCK ? c->n - off : SCAN_BLOCK;
            sc_index_dot_i8(q, c->q + off * dim, m, dim, sb);
            for (size_t j = 0; j < m; j++) fs[j] = (float)sb[j];
            offer_block(ix, p, c, off, NULL, fs, m, h, &n, cap);
        }
    }
    return n;
}

/* 4-bit scan of rows [from, to): the same with codes and per-row scales,
 * into h which holds n candidates already. q is zero-padded. */
static size_t scan_i4(const sc_index *ix, const part *p, const int8_t *q, size_t from, size_t to,
                      cand *h, size_t n, size_t cap)
{
    const size_t dim = ix->dim, rb = SC_INDEX_I4_BYTES(dim);
    int32_t sb[SCAN_BLOCK];
    float fs[SCAN_BLOCK];
    for (size_t r = from; r < to;) {
        size_t ci, off;
        row_loc(r, &ci, &off);
        const chunk *c = &p->chunks[ci];
        size_t m = c->n - off < SCAN_BLOCK ? c->n - off : SCAN_BLOCK;
        if (m > to - r) m = to - r;
        sc_index_dot_i4(q, c->c4 + off * rb, m, dim, sb);
        for (size_t j = 0; j < m; j++) fs[j] = (float)sb[j] * c->s4[off + j];
        offer_block(ix, p, c, off, NULL, fs, m, h, &n, cap);
        r += m;
    }
    return n;
}

typedef struct list_score {
    int32_t s;
    uint32_t l;
} list_score;

static int by_list_score(const void *a, const void *b)
{
    const list_score *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->l < y->l ? -1 : x->l > y->l;
}

int sc_index__split_off;

/* A flat 4-bit search's scan, in two halves when the search may split
 * (common/pair.h): the IVF's probed lists (ls set; halves: every other
 * list) or the rows of an exact scan (ls NULL; halves: the rows before mid
 * and from mid on), each half into its own heap h[half]. */
typedef struct scan_job {
    const sc_index *ix;
    const part *p;
    const int8_t *q;
    const list_score *ls;
    size_t mid;
    cand *h[2];
    size_t n[2], cap;
} scan_job;

/* Scores the probed lists ls[first], ls[first + step], ... into h. */
static void scan_lists(const scan_job *j, uint32_t first, uint32_t step, cand *h, size_t *n)
{
    const ivf *v = j->p->ivf;
    const size_t dim = j->ix->dim, rb = SC_INDEX_I4_BYTES(dim);
    int32_t sb[SCAN_BLOCK];
    float fs[SCAN_BLOCK];
    for (uint32_t pi = first; pi < v->nprobe; pi += step) {
        size_t e = v->off[j->ls[pi].l + 1];
        for (size_t i = v->off[j->ls[pi].l]; i < e; i += SCAN_BLOCK) {
            size_t m = e - i < SCAN_BLOCK ? e - i : SCAN_BLOCK;
            sc_index_dot_i4(j->q, v->codes + i * rb, m, dim, sb);
            for (size_t t = 0; t < m; t++) fs[t] = (float)sb[t] * v->scales[i + t];
            offer_block(j->ix, j->p, NULL, 0, v->rows + i, fs, m, h, n, j->cap);
        }
    }
}

/* sc_pair_run's halves, into heap `half`. */
static void scan_half(void *arg, int half)
{
    scan_job *j = arg;
    if (j->ls)
        scan_lists(j, (uint32_t)half, 2, j->h[half], &j->n[half]);
    else
        j->n[half] = scan_i4(j->ix, j->p, j->q, half ? j->mid : 0, half ? j->p->rows : j->mid, j->h[half], 0,
                             j->cap);
}

/* Runs j's scan into j->h[0] and returns its candidate count: split with
 * the helper thread when pair lets this search (the second heap merged into
 * the first after), else whole here, in order. */
static size_t scan_split(sc_pair *pair, scan_job *j)
{
    int own = sc_pair_begin(pair);
    if (own) {
        j->h[1] = sc_malloc(j->cap * sizeof(cand));
        sc_pair_run(pair, scan_half, j);
        for (size_t i = 0; i < j->n[1]; i++) heap_offer(j->h[0], &j->n[0], j->cap, j->h[1][i]);
        free(j->h[1]);
    } else if (j->ls) {
        scan_lists(j, 0, 1, j->h[0], &j->n[0]);
    } else {
        j->n[0] = scan_i4(j->ix, j->p, j->q, 0, j->p->rows, j->h[0], 0, j->cap);
    }
    sc_pair_end(pair, own);
    return j->n[0];
}

/* The ANN path: the nprobe lists whose centroids score highest, by a
 * contiguous scan of the IVF's codes, then the unassigned rows scanned
 * whole from their chunks. When it is the only operation in flight
 * (common/pair.h), the process's helper thread scans every other list into
 * a heap of its own, merged here after: the lists' codes stream from
 * memory faster on two cores than on one. */
static size_t scan_ivf(const sc_index *ix, const part *p, const int8_t *q, cand *h, size_t cap)
{
    const ivf *v = p->ivf;
    int32_t cs[SC_INDEX_IVF_MAX_LISTS];
    list_score ls[SC_INDEX_IVF_MAX_LISTS];
    sc_index_dot_i8(q, v->c8, v->nlist, ix->dim, cs);
    for (uint32_t l = 0; l < v->nlist; l++) ls[l] = (list_score){cs[l], l};
    qsort(ls, v->nlist, sizeof ls[0], by_list_score);

    scan_job j = {ix, p, q, ls, 0, {h, NULL}, {0, 0}, cap};
    size_t n = scan_split(v->nprobe >= 2 && !sc_index__split_off ? sc_pair_shared() : NULL, &j);
    return scan_i4(ix, p, q, v->assigned, p->rows, h, n, cap);
}

/* The exact 4-bit scan of a partition whose codes take SPLIT_MIN_BYTES or
 * more (16,384 rows at 512-d), when it is the only operation in flight:
 * the helper scans the second half of the rows into a heap of its own,
 * merged here after, as for the IVF's lists. The scan's time goes with its
 * bytes, waking the helper costs a fixed ~30-40 us: 512-d rows after a
 * pass that evicts the caches, one search at a time (bench_index): 20k
 * rows 228-235 -> 159-166 us, 50k 505-529 -> 324-400 us; below the line,
 * 10k rows were a wash and 5k rows lost (80 -> 89 us) in a build that
 * split them (BENCHMARKS.md, "The exact scan on two cores"). */
#define SPLIT_MIN_BYTES ((size_t)4 << 20)

static size_t scan_i4_all(const sc_index *ix, const part *p, const int8_t *q, cand *h, size_t cap)
{
    int big = p->rows * SC_INDEX_I4_BYTES(ix->dim) >= SPLIT_MIN_BYTES;
    scan_job j = {ix, p, q, NULL, p->rows / 2, {h, NULL}, {0, 0}, cap};
    return scan_split(big && !sc_index__split_off ? sc_pair_shared() : NULL, &j);
}

/* Exact scan over the fp16 rows (FAISS partitions whose index is not
 * usable yet). */
static size_t scan_f16(const sc_index *ix, const part *p, const float *qf, cand *h, size_t cap)
{
    const size_t dim = ix->dim;
    size_t n = 0;
    for (size_t ci = 0; ci < p->nchunks; ci++) {
        const chunk *c = &p->chunks[ci];
        for (size_t off = 0; off < c->n; off++) {
            if (c->ids[off] == TOMB) continue;
            const uint16_t *v = c->hv + off * dim;
            heap_offer(h, &n, cap, (cand){sc_index_dot_f16(qf, v, dim), c->ids[off], v});
        }
    }
    return n;
}

/* FAISS search asking for more results until k live ones came back. */
static int search_faiss(const sc_index *ix, const part *p, const float *qf, size_t k,
                        size_t want, cand **hp, size_t *np)
{
    size_t live = p->rows - p->dead, need = k < live ? k : live;
    size_t kk = want;
    for (;;) {
        if (kk > p->rows) kk = p->rows;
        float *dist = sc_malloc(kk * sizeof(float));
        int64_t *lab = sc_malloc(kk * sizeof(int64_t));
        cand *h = sc_malloc(kk * sizeof(cand));
        int rc = sc_index__faiss_search(p->faiss, qf, kk, dist, lab);
        size_t n = 0;
        for (size_t i = 0; rc == 0 && i < kk; i++) {
            if (lab[i] < 0 || (size_t)lab[i] >= p->rows) continue;
            size_t ci, off;
            row_loc((size_t)lab[i], &ci, &off);
            uint64_t id = p->chunks[ci].ids[off];
            if (id == TOMB) continue;
            h[n++] = (cand){0, id, p->chunks[ci].hv + off * ix->dim};
        }
        free(dist);
        free(lab);
        if (rc || n >= need || kk == p->rows) {
            *hp = h;
            *np = n;
            return rc;
        }
        free(h);
        kk *= 2;
    }
}

/* Exact scores of the candidates (fp32 query against fp16 rows, summed
 * in fp32). Their rows are scattered and usually not cached: the next rows
 * are prefetched while one is scored, so the misses overlap instead of
 * following each other. */
static void rescore(cand *h, size_t nc, const float *qf, size_t dim)
{
    enum { AHEAD = 4 };
    const size_t bytes = dim * sizeof(uint16_t);
    for (size_t i = 0; i < nc && i < AHEAD; i++)
        for (size_t l = 0; l < bytes; l += 64) __builtin_prefetch((const char *)h[i].v + l);
    for (size_t i = 0; i < nc; i++) {
        if (i + AHEAD < nc)
            for (size_t l = 0; l < bytes; l += 64) __builtin_prefetch((const char *)h[i + AHEAD].v + l);
        float sc = sc_index_dot_f16(qf, h[i].v, dim);
        /* Rounding to fp16 can take a dot product just past +-1. */
        h[i].s = sc > 1.0f ? 1.0f : sc < -1.0f ? -1.0f : sc;
    }
}

int sc_index_search(sc_index *ix, const char *ns, uint64_t fp, const float *query, size_t k,
                    sc_index_hit *out, size_t *n)
{
    if (n) *n = 0;
    if (!ix || !ns || !query || !n || (k && !out) || k > SC_INDEX_MAX_K) return SC_EINVAL;
    if (k == 0) return 0;
    const size_t dim = ix->dim;
    float qf[SC_INDEX_MAX_DIM];
    int8_t q8[SC_INDEX_MAX_DIM];
    if (normalise(query, qf, dim)) return SC_EINVAL;
    if (ix->backend == BACKEND_FLAT) sc_index_quantize(qf, q8, dim);
    if (ix->scan_bits == 4) memset(q8 + dim, 0, SC_INDEX_I4_QLEN(dim) - dim);
    size_t want = k * 4 > 32 ? k * 4 : 32;
    if (ix->backend == BACKEND_FLAT && ix->scan_bits == 4) want = k * 8 > 64 ? k * 8 : 64;
    int rc = 0;

    part *p = part_acquire(ix, ns, fp);
    if (!p) return 0;
    pthread_rwlock_rdlock(&p->lock);
    cand stackbuf[256], *h = NULL;
    size_t nc = 0;
    if (ix->backend == BACKEND_FLAT) {
        h = want <= SC_COUNTOF(stackbuf) ? stackbuf : sc_malloc(want * sizeof(cand));
        if (p->ivf)
            nc = scan_ivf(ix, p, q8, h, want);
        else
            nc = ix->scan_bits == 4 ? scan_i4_all(ix, p, q8, h, want) : scan_i8(ix, p, q8, h, want);
    } else if (p->faiss && p->faiss_rows == p->rows && p->rows) {
        rc = search_faiss(ix, p, qf, k, want, &h, &nc);
    } else {
        h = k <= SC_COUNTOF(stackbuf) ? stackbuf : sc_malloc(k * sizeof(cand));
        nc = scan_f16(ix, p, qf, h, k);
    }
    rescore(h, nc, qf, dim);
    if (nc > 1) qsort(h, nc, sizeof(cand), by_score_desc);
    size_t m = nc < k ? nc : k;
    for (size_t i = 0; i < m; i++) out[i] = (sc_index_hit){h[i].id, h[i].s};
    *n = m;
    pthread_rwlock_unlock(&p->lock);
    part_unref(p);
    if (h != stackbuf) free(h);
    return rc;
}
