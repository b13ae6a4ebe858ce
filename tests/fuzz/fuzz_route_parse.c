/* libFuzzer target for what route/ reads from upstream answers and the
 * price directives: the SSE usage scanner (sc_route_sse_feed), usage from a
 * JSON answer (sc_route_usage_from_json), Retry-After / retry-after-ms
 * values (sc_route__parse_retry_after) and "MODEL IN OUT" price values
 * (sc_route__parse_price).
 *
 * Checks: the SSE scanner gives the same result (events, [DONE], error,
 * usage, model) whether the stream comes whole, byte by byte or in pieces
 * cut where the input says, as long as no line is longer than its bound
 * (a longer line is refused when it arrives in pieces; whole, it is read
 * in place); the model is NUL-terminated within its field; a Retry-After
 * is -1 or within [0, one day]; an accepted price has a non-empty model
 * that fits and finite prices in [0, 1e6). Nothing may leak, overflow
 * (UBSan) or read out of bounds. */
// fuzz-sources: route/route.c route/usage.c route/price.c common/buf.c common/alloc.c common/err.c common/log.c
// fuzz-libs: -ljansson -lcurl -luv
#include "route/route.h"
#include "route/route_int.h"
#include "common/err.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINE 512

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_route_parse: %s\n", what);
    abort();
}

typedef struct outcome {
    int rc, done, error;
    long long events;
    sc_route_usage usage;
} outcome;

/* Feeds data in pieces of the lengths step(i) gives (0: whole). */
static outcome scan(const uint8_t *data, size_t size, int mode)
{
    sc_route_sse s;
    sc_route_sse_init(&s, MAX_LINE);
    outcome o = {0};
    size_t off = 0, i = 0;
    while (off < size && !o.rc) {
        size_t n = size - off;
        if (mode == 1) n = 1;
        else if (mode == 2) n = 1 + (data[i++ % size] % 17);
        if (n > size - off) n = size - off;
        o.rc = sc_route_sse_feed(&s, (const char *)data + off, n);
        off += n;
    }
    o.done = s.done;
    o.error = s.error;
    o.events = s.events;
    o.usage = s.usage;
    if (!memchr(o.usage.model, 0, sizeof o.usage.model)) fail("model not terminated");
    sc_route_sse_free(&s);
    return o;
}

static int same(const outcome *a, const outcome *b)
{
    return a->rc == b->rc && a->done == b->done && a->error == b->error && a->events == b->events &&
           a->usage.found == b->usage.found && a->usage.prompt_tokens == b->usage.prompt_tokens &&
           a->usage.completion_tokens == b->usage.completion_tokens &&
           a->usage.total_tokens == b->usage.total_tokens && strcmp(a->usage.model, b->usage.model) == 0;
}

static size_t longest_line(const uint8_t *data, size_t size)
{
    size_t best = 0, cur = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') cur = 0;
        else if (++cur > best) best = cur;
    }
    return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;

    outcome whole = scan(data, size, 0), bytes = scan(data, size, 1), pieces = scan(data, size, 2);
    if (longest_line(data, size) <= MAX_LINE) {
        if (whole.rc || bytes.rc || pieces.rc) fail("a stream of short lines was refused");
        if (!same(&whole, &bytes) || !same(&whole, &pieces)) fail("the result depends on how the stream is cut");
    } else if (bytes.rc != SC_ETOOBIG) {
        fail("a line over the bound, fed byte by byte, was not refused");
    }

    sc_route_usage u;
    int rc = sc_route_usage_from_json((const char *)data, size, &u);
    if (rc != SC_OK && rc != SC_ENOTFOUND && rc != SC_EPROTO) fail("usage_from_json: unexpected code");
    if (!memchr(u.model, 0, sizeof u.model)) fail("usage_from_json: model not terminated");

    /* The text parsers take C strings: the input up to its first NUL. */
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    for (int ms = 0; ms <= 1; ms++) {
        long long ra = sc_route__parse_retry_after(s, ms);
        if (ra != -1 && (ra < 0 || ra > 86400000)) fail("retry-after out of range");
    }
    char model[64];
    double in = -1, out = -1;
    if (sc_route__parse_price(s, model, sizeof model, &in, &out) == SC_OK) {
        if (!model[0] || !memchr(model, 0, sizeof model)) fail("price: bad model");
        if (!(in >= 0 && in < 1e6) || !(out >= 0 && out < 1e6)) fail("price: out of range");
    }
    free(s);
    return 0;
}
