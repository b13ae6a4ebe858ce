/* libFuzzer target for semcache-cli's reading of HTTP answers
 * (client/cli_http.c), whose sizes come from the wire.
 *
 * Each input is used twice:
 *   1. as a raw answer: accepted or refused with SC_EPROTO; when accepted,
 *      the status is in [100, 999] and the body no longer than the input;
 *   2. as a body: sent chunked (chunk sizes, hex letter case and chunk
 *      extensions drawn from the input), and with a Content-Length followed
 *      by extra bytes; both must read back to exactly the input.
 * Nothing may read out of bounds (each input sits in an exact-size block). */
// fuzz-sources: client/cli_http.c common/buf.c common/alloc.c common/err.c common/log.c
#include "client/cli_http.h"
#include "common/err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_cli_http: %s\n", what);
    abort();
}

/* Parses the text held in b from an exact-size copy. */
static int parse(const sc_buf *b, int *status, sc_buf *body)
{
    char *raw = malloc(b->len ? b->len : 1);
    if (b->len) memcpy(raw, b->data, b->len);
    int rc = sc_cli_http_response(raw, b->len, status, body);
    free(raw);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    sc_buf body;
    sc_buf_init(&body, (size_t)1 << 24);
    int status = -1;

    int rc = sc_cli_http_response((const char *)data, size, &status, &body);
    if (rc != SC_OK && rc != SC_EPROTO) fail("unexpected code");
    if (rc == SC_OK && (status < 100 || status > 999 || body.len > size)) fail("accepted answer out of range");

    /* Chunked. */
    sc_buf a;
    sc_buf_init(&a, (size_t)1 << 24);
    sc_buf_puts(&a, "HTTP/1.1 200 OK\r\nServer: x\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n");
    size_t off = 0, k = 0;
    while (off < size) {
        size_t n = 1 + data[k++ % size] % 300;
        if (n > size - off) n = size - off;
        sc_buf_printf(&a, (k & 1) ? "%zx" : "%zX", n);
        if (k % 3 == 0) sc_buf_puts(&a, ";name=\"v\"");
        sc_buf_puts(&a, "\r\n");
        sc_buf_append(&a, data + off, n);
        sc_buf_puts(&a, "\r\n");
        off += n;
    }
    sc_buf_puts(&a, "0\r\n\r\n");
    sc_buf_reset(&body);
    if (parse(&a, &status, &body) != SC_OK || status != 200) fail("chunked answer refused");
    if (body.len != size || (size && memcmp(body.data, data, size) != 0)) fail("chunked body differs");

    /* Content-Length, then bytes past it. */
    sc_buf_reset(&a);
    sc_buf_printf(&a, "HTTP/1.0 404 Not Found\r\nContent-Length:  %zu \r\n\r\n", size);
    sc_buf_append(&a, data, size);
    sc_buf_puts(&a, "junk");
    sc_buf_reset(&body);
    if (parse(&a, &status, &body) != SC_OK || status != 404) fail("Content-Length answer refused");
    if (body.len != size || (size && memcmp(body.data, data, size) != 0)) fail("Content-Length body differs");

    sc_buf_free(&a);
    sc_buf_free(&body);
    return 0;
}
