/* The entry record codec: sc_record <-> bytes, version 3 (reads 1 and 2).
 *
 * The encoding is little-endian whatever the host and is laid out so the
 * fixed fields sit at fixed offsets (the store reads expiry, last_hit and
 * the namespace from them without decoding the whole record, and patches
 * hits/last_hit in place). Layout of version 3:
 *
 *   off  size  field
 *     0     4  magic "SCRE"
 *     4     2  version (3)
 *     6     2  flags (bit 0: has exact key; other bits must be 0)
 *     8     8  created          16  8  expires         24  8  last_hit
 *    32     8  hits             40  8  fp
 *    48     4  prompt_tokens    52  4  completion_tokens
 *    56     4  dim
 *    60     2  ns_len           62  2  content_type_len
 *    64     2  model_len        66  2  reserved (0)
 *    68     4  prompt_len       72  4  response_len     76  4  reserved (0)
 *    80    16  exact key (zeros when flag bit 0 is clear)
 *    96  vec   vector, 12-bit codes (below): 4 + 3*ceil(dim/2) bytes
 *       ...    ns, content_type, model, prompt, response (no terminators)
 *   n-8     8  checksum: XXH3-64 (seed 0) of bytes [0, n-8)
 *
 * The vector of version 3: s = max|v[i]| as a float32, then each v[i] as
 * q = round(v[i] * 2047 / s) in [-2047, 2047] (computed in double), stored
 * as the 12-bit u = q + 2048, two to 3 bytes (byte 0: u0 bits 0-7; byte 1:
 * u0 bits 8-11 low, u1 bits 0-3 high; byte 2: u1 bits 4-11), an odd last
 * one paired with 2048. Decoded, v[i] = q * s / 2047: within s/4094 of the
 * stored value, about 1e-4 for a 512-d unit vector, a few 1e-5 on a
 * cosine. 768 + 4 bytes at 512-d, where fp16 took 1,024: a record with a
 * 200-byte answer is ~1.15 KB, and three of them fill a 4 KiB LMDB page
 * where two ~1.4 KB fp16 records did (the store appends new ids with
 * MDB_APPEND, so pages are filled, not split in half).
 *
 * Version 2 (2026-12-06) is the same with the vector as dim*2 bytes of IEEE
 * binary16 (common/half.h); version 1 (until 2026-12) as dim*4 bytes of
 * float32, over LMDB's in-page limit at 512-d. Decode and peek read all
 * three; encode writes any of them (the store writes version 3 and
 * migrates older records in place, store.h). Re-encoding an older record
 * rounds its vector to 12-bit codes, the one change a migration makes.
 *
 * The envelope (magic, version at offset 4, checksum in the last 8 bytes)
 * is kept by every future version, so decode verifies the checksum before
 * it looks at the version: a bit flip anywhere gives SC_ECORRUPT, and only
 * an intact record of another version gives SC_EVERSION. Decode accepts
 * exactly what encode produces (no embedded NULs in the short strings, zero
 * reserved fields), so decode-then-encode reproduces a version-2 record's
 * bytes. */
#include "record.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAGIC_0 'S'
#define MAGIC_1 'C'
#define MAGIC_2 'R'
#define MAGIC_3 'E'
#define FLAG_EXACT 0x0001u
#define HEAD_LEN 96u
#define TRAILER_LEN 8u
#define MIN_LEN (HEAD_LEN + TRAILER_LEN)

enum {
    OFF_VERSION = 4, OFF_FLAGS = 6, OFF_CREATED = 8, OFF_EXPIRES = 16,
    OFF_LAST_HIT = 24, OFF_HITS = 32, OFF_FP = 40, OFF_PTOK = 48,
    OFF_CTOK = 52, OFF_DIM = 56, OFF_NS_LEN = 60, OFF_CT_LEN = 62,
    OFF_MODEL_LEN = 64, OFF_RSV16 = 66, OFF_PROMPT_LEN = 68,
    OFF_RESP_LEN = 72, OFF_RSV32 = 76, OFF_EXACT = 80
};

/* ---------------------------------------------------------------------
 * Little-endian access
 * ------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32);
}

static int host_is_le(void)
{
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
#else
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
#endif
}

static void put_floats(uint8_t *p, const float *v, uint32_t n)
{
    if (host_is_le()) {
        memcpy(p, v, (size_t)n * 4);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        put32(p + 4 * (size_t)i, u);
    }
}

static void get_floats(float *v, const uint8_t *p, uint32_t n)
{
    if (host_is_le()) {
        memcpy(v, p, (size_t)n * 4);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = get32(p + 4 * (size_t)i);
        memcpy(&v[i], &u, 4);
    }
}

/* Vectors are L2-normalised, so |v[i]| <= 1; a larger value (a version-1
 * record could hold any float) is clamped to the largest half rather than
 * turned into an infinity that decode would refuse. */
static void put_halves(uint8_t *p, const float *v, uint32_t n)
{
    uint16_t h[SC_RECORD_MAX_DIM];
    int clamp = 0;
    for (uint32_t i = 0; i < n; i++) clamp |= !(v[i] <= 65504.0f && v[i] >= -65504.0f);
    if (clamp) {
        for (uint32_t i = 0; i < n; i++) {
            float x = v[i] > 65504.0f ? 65504.0f : v[i] < -65504.0f ? -65504.0f : v[i];
            h[i] = sc_float_to_half(x);
        }
    } else {
        sc_half_encode(h, v, n);
    }
    if (host_is_le()) {
        memcpy(p, h, (size_t)n * 2);
        return;
    }
    for (uint32_t i = 0; i < n; i++) put16(p + 2 * (size_t)i, h[i]);
}

/* The start-up walk decodes every record: F16C (through an aligned copy,
 * record bytes have no alignment) keeps it near the speed of fp32 copies. */
static void get_halves(float *v, const uint8_t *p, uint32_t n)
{
    uint16_t h[SC_RECORD_MAX_DIM];
    if (host_is_le())
        memcpy(h, p, (size_t)n * 2);
    else
        for (uint32_t i = 0; i < n; i++) h[i] = get16(p + 2 * (size_t)i);
    sc_half_decode(v, h, n);
}

/* Version 3's 12-bit codes (see the head of this file). The smallest
 * non-zero scale keeps every decoded value a normal float (s / 2047 >=
 * FLT_MIN), so decode-then-encode gives the same codes; a vector smaller
 * than that, which no embedder produces, is stored as zeros. */
#define CODES12_MIN_SCALE 0x1p-114f

static void put_codes12(uint8_t *p, const float *v, uint32_t n)
{
    float s = 0;
    for (uint32_t i = 0; i < n; i++) s = fabsf(v[i]) > s ? fabsf(v[i]) : s;
    if (s < CODES12_MIN_SCALE) s = 0;
    uint32_t su;
    memcpy(&su, &s, 4);
    put32(p, su);
    p += 4;
    double k = s > 0 ? 2047.0 / (double)s : 0.0;
    for (uint32_t i = 0; i < n; i += 2) {
        uint32_t u0 = (uint32_t)(lrint((double)v[i] * k) + 2048);
        uint32_t u1 = i + 1 < n ? (uint32_t)(lrint((double)v[i + 1] * k) + 2048) : 2048u;
        p[0] = (uint8_t)u0;
        p[1] = (uint8_t)((u0 >> 8) | ((u1 & 0xf) << 4));
        p[2] = (uint8_t)(u1 >> 4);
        p += 3;
    }
}

/* Decodes what put_codes12 wrote; SC_ECORRUPT for codes it never writes
 * (a scale that is negative, not finite or too small, a code of 0, a padding code
 * other than 2048, or no code at +-2047 under a non-zero scale), so that
 * decode-then-encode gives the same bytes. */
static int get_codes12(float *v, const uint8_t *p, uint32_t n)
{
    uint32_t su = get32(p);
    float s;
    memcpy(&s, &su, 4);
    if (!(su == 0 || s >= CODES12_MIN_SCALE) || !isfinite(s)) return SC_ECORRUPT; /* not -0 either */
    p += 4;
    int32_t top = 0;
    for (uint32_t i = 0; i < n; i += 2) {
        int32_t q0 = (int32_t)(p[0] | ((p[1] & 0xfu) << 8)) - 2048;
        int32_t q1 = (int32_t)((p[1] >> 4) | ((uint32_t)p[2] << 4)) - 2048;
        p += 3;
        if (q0 == -2048 || q1 == -2048 || (i + 1 >= n && q1 != 0)) return SC_ECORRUPT;
        v[i] = (float)((double)q0 * (double)s / 2047.0);
        if (i + 1 < n) v[i + 1] = (float)((double)q1 * (double)s / 2047.0);
        top = abs(q0) > top ? abs(q0) : top;
        top = abs(q1) > top ? abs(q1) : top;
    }
    if (s > 0 ? top != 2047 : top != 0) return SC_ECORRUPT;
    return 0;
}

/* Bytes a vector of dim takes in a record of version ver. */
static size_t vec_bytes(unsigned ver, uint32_t dim)
{
    if (ver == 3) return dim ? 4 + 3 * (((size_t)dim + 1) / 2) : 0;
    return (size_t)dim * (ver == 1 ? 4 : 2);
}

static uint64_t checksum(const uint8_t *p, size_t n)
{
    return XXH3_64bits(p, n);
}

/* ---------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------- */

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

static size_t encoded_size(const sc_record *r, unsigned ver)
{
    return MIN_LEN + vec_bytes(ver, r->dim) + slen(r->ns) + slen(r->content_type) +
           slen(r->model) + (r->prompt ? r->prompt_len : 0) +
           (r->response ? r->response_len : 0);
}

size_t sc_record_encoded_size(const sc_record *r)
{
    return encoded_size(r, SC_RECORD_VERSION);
}

int sc_record_encode(const sc_record *r, uint8_t **out, size_t *len)
{
    return sc_record_encode_version(r, SC_RECORD_VERSION, out, len);
}

int sc_record_encode_version(const sc_record *r, unsigned version, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    size_t ns_len = slen(r->ns), ct_len = slen(r->content_type), model_len = slen(r->model);
    size_t prompt_len = r->prompt ? r->prompt_len : 0;
    size_t resp_len = r->response ? r->response_len : 0;
    if ((r->prompt_len && !r->prompt) || (r->response_len && !r->response)) return SC_EINVAL;
    if (r->dim > SC_RECORD_MAX_DIM || (r->dim && !r->vec)) return SC_EINVAL;
    if (version < 1 || version > SC_RECORD_VERSION) return SC_EINVAL;
    for (uint32_t i = 0; i < r->dim; i++)
        if (!isfinite(r->vec[i])) return SC_EINVAL; /* decode would refuse it */
    if (ns_len > SC_RECORD_MAX_NS || ct_len > SC_RECORD_MAX_SHORT ||
        model_len > SC_RECORD_MAX_SHORT || prompt_len > SC_RECORD_MAX_PROMPT ||
        resp_len > SC_RECORD_MAX_RESPONSE)
        return SC_ETOOBIG;

    size_t n = encoded_size(r, version);
    uint8_t *p = sc_malloc(n);
    p[0] = MAGIC_0; p[1] = MAGIC_1; p[2] = MAGIC_2; p[3] = MAGIC_3;
    put16(p + OFF_VERSION, (uint16_t)version);
    put16(p + OFF_FLAGS, r->has_exact_key ? FLAG_EXACT : 0);
    put64(p + OFF_CREATED, (uint64_t)r->created);
    put64(p + OFF_EXPIRES, (uint64_t)r->expires);
    put64(p + OFF_LAST_HIT, (uint64_t)r->last_hit);
    put64(p + OFF_HITS, r->hits);
    put64(p + OFF_FP, r->fp);
    put32(p + OFF_PTOK, r->prompt_tokens);
    put32(p + OFF_CTOK, r->completion_tokens);
    put32(p + OFF_DIM, r->dim);
    put16(p + OFF_NS_LEN, (uint16_t)ns_len);
    put16(p + OFF_CT_LEN, (uint16_t)ct_len);
    put16(p + OFF_MODEL_LEN, (uint16_t)model_len);
    put16(p + OFF_RSV16, 0);
    put32(p + OFF_PROMPT_LEN, (uint32_t)prompt_len);
    put32(p + OFF_RESP_LEN, (uint32_t)resp_len);
    put32(p + OFF_RSV32, 0);
    if (r->has_exact_key)
        memcpy(p + OFF_EXACT, r->exact_key, SC_RECORD_EXACT_LEN);
    else
        memset(p + OFF_EXACT, 0, SC_RECORD_EXACT_LEN);

    uint8_t *q = p + HEAD_LEN;
    if (r->dim && version == 1)
        put_floats(q, r->vec, r->dim);
    else if (r->dim && version == 2)
        put_halves(q, r->vec, r->dim);
    else if (r->dim)
        put_codes12(q, r->vec, r->dim);
    q += vec_bytes(version, r->dim);
    if (ns_len) memcpy(q, r->ns, ns_len);
    q += ns_len;
    if (ct_len) memcpy(q, r->content_type, ct_len);
    q += ct_len;
    if (model_len) memcpy(q, r->model, model_len);
    q += model_len;
    if (prompt_len) memcpy(q, r->prompt, prompt_len);
    q += prompt_len;
    if (resp_len) memcpy(q, r->response, resp_len);
    q += resp_len;
    put64(q, checksum(p, n - TRAILER_LEN));
    *out = p;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------- */

/* The variable-length field sizes of a record, validated. */
typedef struct layout {
    unsigned version;
    uint32_t dim;
    size_t vec_len;
    size_t ns_len, ct_len, model_len, prompt_len, resp_len;
} layout;

/* Checks the envelope (length, magic, version) and that the declared field
 * sizes are within bounds and add up to exactly n. */
static int check_layout(const uint8_t *p, size_t n, layout *l)
{
    if (!p || n < MIN_LEN) return SC_ECORRUPT;
    if (p[0] != MAGIC_0 || p[1] != MAGIC_1 || p[2] != MAGIC_2 || p[3] != MAGIC_3)
        return SC_ECORRUPT;
    l->version = get16(p + OFF_VERSION);
    if (l->version < 1 || l->version > SC_RECORD_VERSION) return SC_EVERSION;
    uint16_t flags = get16(p + OFF_FLAGS);
    if (flags & ~FLAG_EXACT) return SC_ECORRUPT;
    if (get16(p + OFF_RSV16) != 0 || get32(p + OFF_RSV32) != 0) return SC_ECORRUPT;
    l->dim = get32(p + OFF_DIM);
    l->ns_len = get16(p + OFF_NS_LEN);
    l->ct_len = get16(p + OFF_CT_LEN);
    l->model_len = get16(p + OFF_MODEL_LEN);
    l->prompt_len = get32(p + OFF_PROMPT_LEN);
    l->resp_len = get32(p + OFF_RESP_LEN);
    if (l->dim > SC_RECORD_MAX_DIM || l->ns_len > SC_RECORD_MAX_NS ||
        l->ct_len > SC_RECORD_MAX_SHORT || l->model_len > SC_RECORD_MAX_SHORT ||
        l->prompt_len > SC_RECORD_MAX_PROMPT || l->resp_len > SC_RECORD_MAX_RESPONSE)
        return SC_ECORRUPT;
    /* Every term is bounded above, so this sum cannot overflow a size_t. */
    l->vec_len = vec_bytes(l->version, l->dim);
    size_t want = (size_t)MIN_LEN + l->vec_len + l->ns_len + l->ct_len +
                  l->model_len + l->prompt_len + l->resp_len;
    if (want != n) return SC_ECORRUPT;
    if (!(flags & FLAG_EXACT)) {
        for (int i = 0; i < SC_RECORD_EXACT_LEN; i++)
            if (p[OFF_EXACT + i]) return SC_ECORRUPT;
    }
    return 0;
}

static int verify_checksum(const uint8_t *p, size_t n)
{
    return get64(p + n - TRAILER_LEN) == checksum(p, n - TRAILER_LEN) ? 0 : SC_ECORRUPT;
}

/* Copies a short string that must not contain NUL (encode takes strlen). */
static int dup_cstr(const uint8_t *p, size_t n, char **out)
{
    if (n && memchr(p, 0, n)) return SC_ECORRUPT;
    char *s = sc_malloc(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = sc_malloc(n + 1);
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The envelope and its checksum, then the layout: what every decode
 * checks first. The checksum goes first (see the file comment); it needs
 * only the envelope's length and magic to be sane. */
static int check_sealed(const uint8_t *p, size_t n, layout *l)
{
    if (!p || n < MIN_LEN) return SC_ECORRUPT;
    if (p[0] != MAGIC_0 || p[1] != MAGIC_1 || p[2] != MAGIC_2 || p[3] != MAGIC_3)
        return SC_ECORRUPT;
    if (verify_checksum(p, n) != 0) return SC_ECORRUPT;
    return check_layout(p, n, l);
}

/* The vector of a record laid out as l into vec (l->dim floats), in its
 * version's encoding; SC_ECORRUPT for codes encode never writes or a value
 * that is not finite (encode's callers never store one). */
static int get_vector(const uint8_t *p, const layout *l, float *vec)
{
    const uint8_t *q = p + HEAD_LEN;
    int rc = 0;
    if (l->version == 1)
        get_floats(vec, q, l->dim);
    else if (l->version == 2)
        get_halves(vec, q, l->dim);
    else
        rc = get_codes12(vec, q, l->dim);
    for (uint32_t i = 0; !rc && i < l->dim; i++)
        if (!isfinite(vec[i])) rc = SC_ECORRUPT;
    return rc;
}

/* The fixed fields and the namespace of a record laid out as l. */
static void fill_head(const uint8_t *p, const layout *l, sc_record_head *h)
{
    h->version = get16(p + OFF_VERSION);
    h->created = (int64_t)get64(p + OFF_CREATED);
    h->expires = (int64_t)get64(p + OFF_EXPIRES);
    h->last_hit = (int64_t)get64(p + OFF_LAST_HIT);
    h->hits = get64(p + OFF_HITS);
    h->fp = get64(p + OFF_FP);
    h->dim = l->dim;
    h->has_exact_key = (get16(p + OFF_FLAGS) & FLAG_EXACT) != 0;
    if (h->has_exact_key) memcpy(h->exact_key, p + OFF_EXACT, SC_RECORD_EXACT_LEN);
    memcpy(h->ns, p + HEAD_LEN + l->vec_len, l->ns_len);
    h->ns[l->ns_len] = '\0';
}

int sc_record_decode(const uint8_t *p, size_t n, sc_record *r)
{
    memset(r, 0, sizeof *r);
    layout l;
    int rc = check_sealed(p, n, &l);
    if (rc != 0) return rc;

    uint16_t flags = get16(p + OFF_FLAGS);
    r->created = (int64_t)get64(p + OFF_CREATED);
    r->expires = (int64_t)get64(p + OFF_EXPIRES);
    r->last_hit = (int64_t)get64(p + OFF_LAST_HIT);
    r->hits = get64(p + OFF_HITS);
    r->fp = get64(p + OFF_FP);
    r->prompt_tokens = get32(p + OFF_PTOK);
    r->completion_tokens = get32(p + OFF_CTOK);
    r->has_exact_key = (flags & FLAG_EXACT) != 0;
    if (r->has_exact_key) memcpy(r->exact_key, p + OFF_EXACT, SC_RECORD_EXACT_LEN);

    const uint8_t *q = p + HEAD_LEN;
    r->dim = l.dim;
    if (l.dim) {
        r->vec = sc_malloc((size_t)l.dim * sizeof(float));
        if ((rc = get_vector(p, &l, r->vec)) != 0) goto fail;
    }
    q += l.vec_len;
    if ((rc = dup_cstr(q, l.ns_len, &r->ns)) != 0) goto fail;
    q += l.ns_len;
    if ((rc = dup_cstr(q, l.ct_len, &r->content_type)) != 0) goto fail;
    q += l.ct_len;
    if ((rc = dup_cstr(q, l.model_len, &r->model)) != 0) goto fail;
    q += l.model_len;
    r->prompt = dup_bytes(q, l.prompt_len);
    r->prompt_len = l.prompt_len;
    q += l.prompt_len;
    r->response = dup_bytes(q, l.resp_len);
    r->response_len = l.resp_len;
    return 0;
fail:
    sc_record_clear(r);
    return rc;
}

int sc_record_decode_vector(const uint8_t *p, size_t n, sc_record_head *h, float *vec, uint32_t cap)
{
    memset(h, 0, sizeof *h);
    layout l;
    int rc = check_sealed(p, n, &l);
    if (rc != 0) return rc;
    /* What decode would refuse beyond the layout: a NUL in a short string
     * (dup_cstr's check), a vector that is not finite or codes encode
     * never writes (get_vector). */
    const uint8_t *q = p + HEAD_LEN + l.vec_len;
    if ((l.ns_len && memchr(q, 0, l.ns_len)) || (l.ct_len && memchr(q + l.ns_len, 0, l.ct_len)) ||
        (l.model_len && memchr(q + l.ns_len + l.ct_len, 0, l.model_len)))
        return SC_ECORRUPT;
    fill_head(p, &l, h);
    if (!l.dim) return 0;
    if (l.dim > cap) return SC_ETOOBIG;
    return get_vector(p, &l, vec);
}

void sc_record_clear(sc_record *r)
{
    if (!r) return;
    free(r->ns);
    free(r->prompt);
    free(r->response);
    free(r->content_type);
    free(r->model);
    free(r->vec);
    memset(r, 0, sizeof *r);
}

int sc_record_peek(const uint8_t *p, size_t n, sc_record_head *h)
{
    memset(h, 0, sizeof *h);
    layout l;
    int rc = check_layout(p, n, &l);
    if (rc != 0) return rc;
    fill_head(p, &l, h);
    return 0;
}

int sc_record_patch_hit(uint8_t *p, size_t n, int64_t now)
{
    layout l;
    int rc = check_layout(p, n, &l);
    if (rc != 0) return rc;
    if (verify_checksum(p, n) != 0) return SC_ECORRUPT;
    put64(p + OFF_HITS, get64(p + OFF_HITS) + 1);
    if ((int64_t)get64(p + OFF_LAST_HIT) < now) put64(p + OFF_LAST_HIT, (uint64_t)now);
    put64(p + n - TRAILER_LEN, checksum(p, n - TRAILER_LEN));
    return 0;
}
