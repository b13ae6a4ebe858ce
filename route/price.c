/* The price table: USD per million input and output tokens by model, and
 * the cost of a call. `price` directives in the config override the
 * built-in rows below. Pure functions, any thread.
 *
 * The built-in prices are OpenAI's published list prices (standard tier,
 * uncached input) as last known to the author (openai.com/api/pricing,
 * read 2025); the Anthropic rows are from anthropic.com/pricing of the same
 * period, for OpenAI-compatible gateways. PRICES CHANGE: CHECK THEM against
 * the providers' pages and override with `price` directives as needed. */
#include "route.h"
#include "route_int.h"

#include "common/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const sc_route__price builtin[] = {
    /* model                      in      out   (USD per 1M tokens) */
    {"gpt-5", 1.25, 10.00},
    {"gpt-5-mini", 0.25, 2.00},
    {"gpt-5-nano", 0.05, 0.40},
    {"gpt-4.1", 2.00, 8.00},
    {"gpt-4.1-mini", 0.40, 1.60},
    {"gpt-4.1-nano", 0.10, 0.40},
    {"gpt-4o", 2.50, 10.00},
    {"gpt-4o-mini", 0.15, 0.60},
    {"gpt-4-turbo", 10.00, 30.00},
    {"gpt-4", 30.00, 60.00},
    {"gpt-3.5-turbo", 0.50, 1.50},
    {"o1", 15.00, 60.00},
    {"o1-mini", 1.10, 4.40},
    {"o3", 2.00, 8.00},
    {"o3-mini", 1.10, 4.40},
    {"o4-mini", 1.10, 4.40},
    {"text-embedding-3-small", 0.02, 0.0},
    {"text-embedding-3-large", 0.13, 0.0},
    {"text-embedding-ada-002", 0.10, 0.0},
    {"claude-3-5-sonnet", 3.00, 15.00},
    {"claude-3-5-haiku", 0.80, 4.00},
    {"claude-3-opus", 15.00, 75.00},
};

/* How well row model m matches the asked model: its length when m equals
 * model or is a prefix followed by '-' (a dated or suffixed variant), 0
 * when it does not match. */
static size_t match_len(const char *m, const char *model)
{
    size_t n = strlen(m);
    if (strncmp(m, model, n) != 0) return 0;
    if (model[n] == '\0') return n + 1; /* exact beats any prefix */
    if (model[n] == '-') return n;
    return 0;
}

static const sc_route__price *best(const sc_route__price *rows, size_t n, const char *model)
{
    const sc_route__price *b = NULL;
    size_t bl = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = match_len(rows[i].model, model);
        if (l > bl) { bl = l; b = &rows[i]; }
    }
    return b;
}

int sc_route_price(const sc_route *r, const char *model, double *in_per_m, double *out_per_m)
{
    if (!model || !*model) return SC_ENOTFOUND;
    /* A provider prefix ("openai/gpt-4o") is ignored. */
    const char *slash = strrchr(model, '/');
    const char *m = slash ? slash + 1 : model;
    size_t n;
    const sc_route__price *ov = sc_route__overrides(r, &n);
    const sc_route__price *p = best(ov, n, model);
    if (!p && m != model) p = best(ov, n, m);
    if (!p) p = best(builtin, sizeof builtin / sizeof builtin[0], m);
    if (!p) return SC_ENOTFOUND;
    if (in_per_m) *in_per_m = p->in_per_m;
    if (out_per_m) *out_per_m = p->out_per_m;
    return SC_OK;
}

double sc_route_cost(const sc_route *r, const char *model, long long prompt_tokens,
                     long long completion_tokens)
{
    double in, out;
    if (sc_route_price(r, model, &in, &out) != SC_OK) return -1;
    if (prompt_tokens < 0) prompt_tokens = 0;
    if (completion_tokens < 0) completion_tokens = 0;
    return ((double)prompt_tokens * in + (double)completion_tokens * out) / 1e6;
}

int sc_route__parse_price(const char *s, char *model, size_t cap, double *in, double *out)
{
    char m[256], a[64], b[64], extra[8];
    if (sscanf(s, "%255s %63s %63s %7s", m, a, b, extra) != 3) return SC_EINVAL;
    char *e1, *e2;
    double x = strtod(a, &e1), y = strtod(b, &e2);
    if (*e1 || *e2 || !(x >= 0 && x < 1e6) || !(y >= 0 && y < 1e6)) return SC_EINVAL;
    if (strlen(m) >= cap) return SC_EINVAL;
    memcpy(model, m, strlen(m) + 1);
    *in = x;
    *out = y;
    return SC_OK;
}
