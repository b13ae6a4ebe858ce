/* Reading a one-shot HTTP/1.1 answer (see cli_http.h). Every scan is
 * bounded by the input's length (the bytes may hold NULs), and sizes read
 * from the input are checked against what is left before they are used. */
#include "client/cli_http.h"
#include "common/err.h"

#include <string.h>
#include <strings.h>

/* Finds "\r\n" in [p, end), or NULL. */
static const char *crlf(const char *p, const char *end)
{
    return memmem(p, (size_t)(end - p), "\r\n", 2);
}

/* 1 when the header line [h, eol) is named name (case-insensitive); *val
 * is then its value, leading blanks skipped. */
static int header_is(const char *h, const char *eol, const char *name, const char **val)
{
    size_t n = strlen(name);
    if ((size_t)(eol - h) <= n || h[n] != ':' || strncasecmp(h, name, n) != 0) return 0;
    const char *v = h + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t')) v++;
    *val = v;
    return 1;
}

/* 1 when [v, eol) holds the token "chunked" (case-insensitive). */
static int has_chunked(const char *v, const char *eol)
{
    for (; eol - v >= 7; v++)
        if (strncasecmp(v, "chunked", 7) == 0) return 1;
    return 0;
}

/* Reads a decimal or hex number of at most 15 digits from [p, end) into
 * *out (no overflow: at most 15 * 4 bits); returns the end of the digits,
 * or NULL when there are none or too many. */
static const char *number(const char *p, const char *end, int base, size_t *out)
{
    size_t v = 0;
    const char *q = p;
    for (; q < end && q - p < 16; q++) {
        int d;
        if (*q >= '0' && *q <= '9') d = *q - '0';
        else if (base == 16 && *q >= 'a' && *q <= 'f') d = *q - 'a' + 10;
        else if (base == 16 && *q >= 'A' && *q <= 'F') d = *q - 'A' + 10;
        else break;
        v = v * (size_t)base + (size_t)d;
    }
    if (q == p || q - p > 15) return NULL;
    *out = v;
    return q;
}

static int dechunk(const char *p, const char *end, sc_buf *body)
{
    for (;;) {
        size_t n;
        const char *q = number(p, end, 16, &n);
        const char *eol = q ? crlf(q, end) : NULL;   /* after any chunk extension */
        if (!eol) return SC_EPROTO;
        p = eol + 2;
        if (n == 0) return SC_OK;   /* the last chunk; trailers are not read */
        if ((size_t)(end - p) < n || (size_t)(end - p) - n < 2 || p[n] != '\r' || p[n + 1] != '\n')
            return SC_EPROTO;
        int rc = sc_buf_append(body, p, n);
        if (rc) return rc;
        p += n + 2;
    }
}

int sc_cli_http_response(const char *raw, size_t len, int *status, sc_buf *body)
{
    const char *end = raw + len;
    *status = 0;
    /* "HTTP/1.x NNN" */
    if (len < 12 || memcmp(raw, "HTTP/1.", 7) != 0 || raw[7] < '0' || raw[7] > '9' || raw[8] != ' ')
        return SC_EPROTO;
    size_t code;
    const char *q = number(raw + 9, raw + 12, 10, &code);
    if (q != raw + 12 || code < 100 || (len > 12 && raw[12] != ' ' && raw[12] != '\r')) return SC_EPROTO;
    *status = (int)code;

    int chunked = 0, has_len = 0;
    size_t clen = 0;
    const char *h = crlf(raw, end);
    for (;;) {
        if (!h) return SC_EPROTO;   /* no blank line */
        h += 2;
        const char *eol = crlf(h, end);
        if (!eol) return SC_EPROTO;
        if (eol == h) {
            h = eol + 2;   /* the body */
            break;
        }
        const char *v;
        if (header_is(h, eol, "transfer-encoding", &v) && has_chunked(v, eol)) chunked = 1;
        if (header_is(h, eol, "content-length", &v)) {
            const char *e = number(v, eol, 10, &clen);
            while (e && e < eol && (*e == ' ' || *e == '\t')) e++;
            if (e != eol) return SC_EPROTO;
            has_len = 1;
        }
        h = eol;
    }
    if (chunked) return dechunk(h, end, body);
    size_t left = (size_t)(end - h);
    if (has_len) {
        if (left < clen) return SC_EPROTO;
        left = clen;
    }
    return sc_buf_append(body, h, left);
}
