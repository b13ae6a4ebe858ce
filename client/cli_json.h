/* Small JSON helpers for semcache-cli (which links libsemcache only, no
 * jansson): parsing one import line into a store entry, scanning the
 * embeddings of a /cache/embed answer, and writing JSON strings.
 *
 * Pure functions over bytes (no I/O), unit-tested in
 * tests/unit/test_client.c. Nesting of skipped values is bounded (64). */
#ifndef SC_CLI_JSON_H
#define SC_CLI_JSON_H

#include "common/buf.h"

#include <stddef.h>

/* One line of an import file: {"namespace"?, "prompt", "response",
 * "ttl"?, "model"?} (other keys are ignored). Strings are malloc'ed and
 * NUL-terminated; free with sc_cli_entry_clear(). */
typedef struct sc_cli_entry {
    char *ns; /* NULL when the line has none */
    char *prompt;
    size_t prompt_len;
    char *response;
    size_t response_len;
    long long ttl; /* 0 when absent */
} sc_cli_entry;

/* Parses one line. On error returns SC_EINVAL with a message in err
 * ("prompt: missing", "invalid JSON at byte 12") and e left empty. A
 * namespace holding a NUL (\u0000) is refused; prompt and response may
 * hold them (they have lengths). Keys and numbers may be of any length. */
int sc_cli_parse_entry(const char *line, size_t len, sc_cli_entry *e, char *err, size_t errlen);
void sc_cli_entry_clear(sc_cli_entry *e);

/* Appends s[0..n) as a quoted JSON string (escaping quotes, backslashes
 * and control characters; other bytes are copied as they are). */
int sc_cli_json_str(sc_buf *b, const char *s, size_t n);

/* Calls fn(arg, row, values, n) for every row of the "embeddings" array of
 * a /cache/embed answer. Returns the number of rows, or SC_EINVAL. */
int sc_cli_embeddings(const char *json, size_t len,
                      void (*fn)(void *arg, size_t row, const double *v, size_t n), void *arg);

#endif
