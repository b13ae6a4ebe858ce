/* Bounded growable byte buffers. Every buffer has a maximum size; an append
 * past it fails with SC_ETOOBIG and leaves the buffer as it was (like curl's
 * dynbuf). The data is always NUL-terminated (not counted in len), so text
 * can be passed to C string functions. Not thread-safe; owned by its user. */
#ifndef SC_BUF_H
#define SC_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sc_buf {
    char *data;   /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;   /* bound on len */
} sc_buf;

void sc_buf_init(sc_buf *b, size_t max);
void sc_buf_free(sc_buf *b);
void sc_buf_reset(sc_buf *b);                  /* len = 0, keeps memory */
int sc_buf_append(sc_buf *b, const void *p, size_t n);
int sc_buf_puts(sc_buf *b, const char *s);
int sc_buf_printf(sc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes the first n bytes (n <= len). */
void sc_buf_consume(sc_buf *b, size_t n);
/* Hands the memory to the caller (free() it); the buffer becomes empty. */
char *sc_buf_steal(sc_buf *b, size_t *len);

#endif
