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

#define SC_RECORD_VERSION 1
#define SC_RECORD_MAX_DIM 8192

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
    float *vec;               /* dim floats, L2-normalised */
} sc_record;

/* Encodes r into a freshly malloc'ed buffer (*out, *len); caller frees. */
int sc_record_encode(const sc_record *r, uint8_t **out, size_t *len);

/* Decodes p[0..n) into r. All pointers in r are fresh allocations owned by
 * r: release them with sc_record_clear(). On error r is left empty. */
int sc_record_decode(const uint8_t *p, size_t n, sc_record *r);

/* Frees what r points to and zeroes it; r itself is the caller's. */
void sc_record_clear(sc_record *r);

/* Size in bytes of r's encoding (for max_bytes accounting). */
size_t sc_record_encoded_size(const sc_record *r);

#endif
