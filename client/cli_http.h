/* Reading the answer to one of semcache-cli's one-shot HTTP/1.1 requests
 * (sent with "Connection: close", so the answer ends where the connection
 * does): the status code and the body, plain, Content-Length delimited or
 * chunked.
 *
 * Pure (bytes in, no I/O), bounded by its input; fuzzed by
 * tests/fuzz/fuzz_cli_http.c, unit-tested in tests/unit/test_client.c. */
#ifndef SC_CLI_HTTP_H
#define SC_CLI_HTTP_H

#include "common/buf.h"

#include <stddef.h>

/* Parses raw[0..len): "HTTP/1.x NNN ...", headers up to the blank line,
 * then the body, appended to body. A chunked body must end with its last
 * (zero-size) chunk and a Content-Length body must be complete.
 * Returns 0; SC_EPROTO for anything else (no blank line, a bad status
 * line, a malformed chunk, a short body), with *status left as parsed
 * (0 when the status line was bad); or sc_buf_append's error. */
int sc_cli_http_response(const char *raw, size_t len, int *status, sc_buf *body);

#endif
