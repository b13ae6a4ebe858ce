/* Checked allocation: these never return NULL; running out of memory is a
 * panic with file:line (like Redis's zmalloc). Free with free(). */
#ifndef SC_ALLOC_H
#define SC_ALLOC_H

#include <stddef.h>

void *sc_malloc_at(size_t n, const char *file, int line);
void *sc_calloc_at(size_t n, size_t size, const char *file, int line);
void *sc_realloc_at(void *p, size_t n, const char *file, int line);
char *sc_strndup_at(const char *s, size_t n, const char *file, int line);

#define sc_malloc(n) sc_malloc_at((n), __FILE__, __LINE__)
#define sc_calloc(n, s) sc_calloc_at((n), (s), __FILE__, __LINE__)
#define sc_realloc(p, n) sc_realloc_at((p), (n), __FILE__, __LINE__)
#define sc_strndup(s, n) sc_strndup_at((s), (n), __FILE__, __LINE__)
#define sc_strdup(s) sc_strndup_at((s), strlen(s), __FILE__, __LINE__)
#define SC_NEW(type) ((type *)sc_calloc(1, sizeof(type)))
#define SC_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
