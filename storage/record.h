/* The entry record and its on-disk codec.
 *
 * A record is what the cache knows about one stored answer. The codec is
 * pure (bytes in, struct out, no I/O), versioned and fixed-endian (little
 * endian on disk whatever the host), so it can be unit-tested and fuzzed.
 * sc_record_decode() validates every length against the input and never
 * reads past it: a corrupt or truncated record gives SC_ECORRUPT (or
 * SC_EVERSION for a format it does not know), never a crash. */
#ifndef SC_RECORD_H
#define SC_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* Version 3 stores the vector as 12-bit codes and a scale (4 + 1.5*dim
 * bytes); version 2, still read, as halves, version 1 as float32
 * (record.c). */
#define SC_RECORD_VERSION 3
#define SC_RECORD_MAX_DIM 8192

/* Bounds on the variable-length fields; encode refuses larger values with
 * SC_ETOOBIG and decode treats them as corruption. */
#define SC_RECORD_MAX_NS 256                 /* bytes, namespace */
#define SC_RECORD_MAX_SHORT 256              /* bytes, content_type and model */
#define SC_RECORD_MAX_PROMPT (1u << 20)      /* 1 MiB */
#define SC_RECORD_MAX_RESPONSE (64u << 20)   /* 64 MiB */
#define SC_RECORD_EXACT_LEN 16               /* same as SC_EXACT_KEY_LEN */

typedef struct sc_record {
    uint64_t id;              /* assigned by the store; not part of the encoding */
    char *ns;                 /* namespace, NUL-terminated */
    uint64_t fp;              /* partition (context) fingerprint */
    char *prompt;             /* the normalised last user message */
    size_t prompt_len;
    char *response;           /* the upstream answer body as stored */
    size_t response_len;
    char *content_type;       /* e.g. "application/json" */
    char *model;              /* may be "" */
    int64_t created;          /* unix seconds */
    int64_t expires;          /* unix seconds, 0 = never */
    int64_t last_hit;         /* unix seconds */
    uint64_t hits;
    uint32_t prompt_tokens;   /* token usage of the stored answer */
    uint32_t completion_tokens;
    uint32_t dim;             /* 0 when the entry has no vector */
    float *vec;               /* dim floats, L2-normalised (stored as
                               * 12-bit codes: a decoded vector is within
                               * max|v|/4094 of the stored one) */
    /* The exact-layer key the entry is filed under (set by sc_store_put from
     * its exact_key argument), so deleting the entry also drops the key. */
    int has_exact_key;
    uint8_t exact_key[SC_RECORD_EXACT_LEN];
} sc_record;

/* The fixed-size part of an encoded record, read without copying the
 * strings or the vector and without verifying the checksum (the store uses
 * it to check expiry, sample last_hit for eviction and match namespaces
 * cheaply). ns is NUL-terminated here. */
typedef struct sc_record_head {
    uint16_t version;
    int64_t created, expires, last_hit;
    uint64_t hits, fp;
    uint32_t dim;
    int has_exact_key;
    uint8_t exact_key[SC_RECORD_EXACT_LEN];
    char ns[SC_RECORD_MAX_NS + 1];
} sc_record_head;

/* Encodes r into a freshly malloc'ed buffer (*out, *len); caller frees. */
int sc_record_encode(const sc_record *r, uint8_t **out, size_t *len);
/* The same in a given format version (1 to SC_RECORD_VERSION; SC_EINVAL
 * otherwise): tests and tools write older records with it to exercise the
 * migration. */
int sc_record_encode_version(const sc_record *r, unsigned version, uint8_t **out, size_t *len);

/* Decodes p[0..n) into r. All pointers in r are fresh allocations owned by
 * r: release them with sc_record_clear(). On error r is left empty. */
int sc_record_decode(const uint8_t *p, size_t n, sc_record *r);

/* What the index needs of a record, for the start-up walk: the head (as
 * sc_record_peek) and the vector into vec (cap floats), without copying
 * the strings. Succeeds exactly when sc_record_decode would (same checks,
 * checksum included), and the vector is the same; SC_ETOOBIG when dim is
 * above cap. */
int sc_record_decode_vector(const uint8_t *p, size_t n, sc_record_head *h, float *vec, uint32_t cap);

/* Frees what r points to and zeroes it; r itself is the caller's. */
void sc_record_clear(sc_record *r);

/* Size in bytes of r's encoding in the current version (for max_bytes
 * accounting). */
size_t sc_record_encoded_size(const sc_record *r);

/* Reads the fixed fields of p[0..n) into *h after checking the magic, the
 * version and that every length fits n (SC_ECORRUPT / SC_EVERSION). The
 * checksum is not verified; sc_record_decode() does that. Pure. */
int sc_record_peek(const uint8_t *p, size_t n, sc_record_head *h);

/* Records a hit in an encoded record in place: hits += 1, last_hit =
 * max(last_hit, now), checksum recomputed. The checksum is verified first,
 * so a corrupt record is never re-sealed (SC_ECORRUPT). Pure. */
int sc_record_patch_hit(uint8_t *p, size_t n, int64_t now);

#endif
