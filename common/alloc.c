/* Checked allocation. */
#include "alloc.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

void *sc_malloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) sc_panic_at(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *sc_calloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) sc_panic_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *sc_realloc_at(void *p, size_t n, const char *file, int line)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) sc_panic_at(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

char *sc_strndup_at(const char *s, size_t n, const char *file, int line)
{
    char *p = sc_malloc_at(n + 1, file, line);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
