/* Bounded buffers. */
#include "buf.h"
#include "alloc.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sc_buf_init(sc_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void sc_buf_free(sc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void sc_buf_reset(sc_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

static int reserve(sc_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return SC_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return SC_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > b->max + 1) cap = b->max + 1;
    b->data = sc_realloc(b->data, cap);
    b->cap = cap;
    return SC_OK;
}

int sc_buf_append(sc_buf *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SC_OK;
}

int sc_buf_puts(sc_buf *b, const char *s)
{
    return sc_buf_append(b, s, strlen(s));
}

int sc_buf_printf(sc_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return SC_EINVAL;
    if ((size_t)n < sizeof small) return sc_buf_append(b, small, (size_t)n);
    int rc = reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SC_OK;
}

void sc_buf_consume(sc_buf *b, size_t n)
{
    if (n >= b->len) {
        sc_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *sc_buf_steal(sc_buf *b, size_t *len)
{
    char *p = b->data;
    if (len) *len = b->len;
    if (!p) p = sc_strndup("", 0);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
