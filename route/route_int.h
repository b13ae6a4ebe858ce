/* Internals shared by the files of route/ (not for other modules): the
 * price-table row type and the router's accessor for its overrides. Names
 * use the sc_route__ prefix (libuv's uv__ convention). */
#ifndef SC_ROUTE_INT_H
#define SC_ROUTE_INT_H

#include <stddef.h>

typedef struct sc_route__price {
    const char *model;
    double in_per_m;   /* USD per million prompt tokens */
    double out_per_m;  /* USD per million completion tokens */
} sc_route__price;

/* The `price` overrides of r (NULL, 0 when r is NULL). */
const sc_route__price *sc_route__overrides(const struct sc_route *r, size_t *n);

/* Parses one `price` directive value "MODEL IN OUT"; 0 or SC_EINVAL. The
 * model is written into model (size cap). */
int sc_route__parse_price(const char *s, char *model, size_t cap, double *in, double *out);

/* Reads a Retry-After header value (ms 0: seconds or an HTTP date) or
 * retry-after-ms (ms 1: milliseconds) into milliseconds, at most a day;
 * -1 when it is neither. */
long long sc_route__parse_retry_after(const char *v, int ms);

#endif
