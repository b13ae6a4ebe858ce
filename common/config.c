/* The directive table and its parsers. Each row: name, type, offset into
 * sc_config, bounds or choices, default, help. Everything else (file,
 * flags, usage) is driven from this table. */
#include "config.h"
#include "alloc.h"
#include "err.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum dtype { T_INT, T_DOUBLE, T_STR, T_ENUM, T_BOOL, T_LIST };

typedef struct directive {
    const char *name;
    enum dtype type;
    size_t off;
    double min, max;
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *def;
    const char *help;
} directive;

#define OFF(f) offsetof(sc_config, f)

static const directive table[] = {
    {"bind", T_STR, OFF(bind), 0, 0, NULL, "127.0.0.1", "address the HTTP and RESP listeners bind to"},
    {"port", T_INT, OFF(port), 0, 65535, NULL, "8080", "HTTP port (0 = any free port)"},
    {"resp-port", T_INT, OFF(resp_port), 0, 65535, NULL, "6380", "RESP port (0 = disabled)"},
    {"max-body", T_INT, OFF(max_body), 1024, 1 << 30, NULL, "8388608", "largest HTTP request body, bytes (413 past it)"},
    {"max-header", T_INT, OFF(max_header), 1024, 1 << 20, NULL, "16384", "largest total size of request headers, bytes (431 past it)"},
    {"idle-timeout-ms", T_INT, OFF(idle_timeout_ms), 10, 3600000, NULL, "30000", "close a connection idle or stalled this long"},
    {"resp-stall-timeout-ms", T_INT, OFF(resp_stall_timeout_ms), 0, 3600000, NULL, "0",
     "close a RESP client whose replies wait unread this long (0 = idle-timeout-ms + 5000)"},
    {"max-queue-ms", T_INT, OFF(max_queue_ms), 0, 600000, NULL, "2000",
     "overload bound: a semantic lookup that waited this long for a worker skips the semantic layer (0 = no bound)"},
    {"max-conns", T_INT, OFF(max_conns), 1, 1000000, NULL, "10000", "most client connections at once"},
    {"workers", T_INT, OFF(workers), 1, 64, NULL, "2", "worker threads for embedding, search and storage"},
    {"data-dir", T_STR, OFF(data_dir), 0, 0, NULL, "./data", "LMDB data directory"},
    {"durability", T_ENUM, OFF(durability), 0, 0, "sync|nosync", "sync", "sync: every acknowledged write is on disk; nosync: synced every sync-window-ms"},
    {"sync-window-ms", T_INT, OFF(sync_window_ms), 1, 60000, NULL, "1000", "nosync: most time acknowledged writes may sit unsynced"},
    {"max-entries", T_INT, OFF(max_entries), 0, 1e12, NULL, "0", "most cached entries (0 = no cap); LRU eviction past it"},
    {"max-bytes", T_INT, OFF(max_bytes), 0, 1e15, NULL, "0", "most bytes of cached records (0 = no cap); LRU eviction past it"},
    {"default-ttl", T_INT, OFF(default_ttl), 0, 1e10, NULL, "0", "entry lifetime in seconds (0 = no expiry)"},
    {"map-size-mb", T_INT, OFF(map_size_mb), 16, 1 << 24, NULL, "16384", "LMDB map size (address space, not disk), MiB"},
    {"reembed", T_BOOL, OFF(reembed), 0, 0, NULL, "no", "re-embed a data dir written by another embedder instead of refusing it"},
    {"threshold", T_DOUBLE, OFF(threshold), -1, 1, NULL, "-1", "semantic hit threshold: semcache-embed's similarity on its score scale, 1 - (1 - cosine)^1.75 (with answer-vote on, raised by close phrasings of the same answer and lowered by close candidates with other answers), or with use-lite and verify on the estimated probability that the cached answer is right, else the cosine. -1 = the tuned default (semcache-embed 0.95, the cosine 0.82; use-lite 0.60 verified, 0.90 cosine; see BENCHMARKS.md)"},
    {"embedder", T_ENUM, OFF(embedder), 0, 0, "semcache-embed|use-lite|hash|remote", "semcache-embed", "sentence embedder: semcache-embed (trained for caching, shipped in models/), use-lite, hash or remote"},
    {"model-dir", T_STR, OFF(model_dir), 0, 0, NULL, "", "model files (empty = the embedder's own: models/semcache-embed-v1, or models/use-lite/dist that make deps fetches)"},
    {"embed-url", T_STR, OFF(embed_url), 0, 0, NULL, "", "remote embedder: base URL of an OpenAI-compatible /v1/embeddings"},
    {"embed-model", T_STR, OFF(embed_model), 0, 0, NULL, "text-embedding-3-small", "remote embedder: model name"},
    {"embed-dim", T_INT, OFF(embed_dim), 1, 8192, NULL, "1536", "remote embedder: vector dimension"},
    {"index-backend", T_ENUM, OFF(index_backend), 0, 0, "flat|faiss", "flat", "vector index: flat (SIMD 4-bit or int8 scan + re-score against fp16 rows) or faiss"},
    {"index-ann-min-rows", T_INT, OFF(index_ann_min_rows), 0, 4294967294LL, NULL, "65536", "flat 4-bit index: a partition with this many live entries or more is searched through an IVF over its 4-bit codes (the ANN path: ~19% of the rows scanned, recall@10 0.99 on real embeddings, BENCHMARKS.md); 0 = never (always the exact scan)"},
    {"index-scan-bits", T_INT, OFF(index_scan_bits), 4, 8, NULL, "4", "flat index scan precision: 4 (4-bit codes, half the bytes of int8, ~2x faster scan) or 8 (int8); either way the candidates are re-scored against their fp16 rows (recall on real embeddings: BENCHMARKS.md)"},
    {"faiss-desc", T_STR, OFF(faiss_desc), 0, 0, NULL, "HNSW32", "FAISS index_factory description for the faiss backend"},
    {"top-k", T_INT, OFF(top_k), 1, 64, NULL, "4", "candidates taken from the index for the answer vote or the verifier"},
    {"verify", T_ENUM, OFF(verify), 0, 0, "on|off", "on", "the hit verifier, where one was trained for the embedder: semcache-embed: it cross-checks the vote's winner and may only refuse it (probability < 0.30); use-lite, hash: it scores every candidate (off: the raw cosine)"},
    {"max-error-rate", T_DOUBLE, OFF(max_error_rate), 0, 0.5, NULL, "0",
     "error budget: per entry, the most permissive threshold whose estimated share of wrong semantic hits stays under this (learned from feedback, shadow checks and misses; 0 = off, the fixed threshold)"},
    {"namespace-max-error-rate", T_LIST, OFF(ns_error_rates), 0, 0, NULL, NULL,
     "error budget of one namespace: NAMESPACE RATE (repeatable; overrides max-error-rate there)"},
    {"shadow-rate", T_DOUBLE, OFF(shadow_rate), 0, 1, NULL, "0",
     "share of semantic hits also sent upstream in the background, after the client was answered, to check the cached answer (0 = off)"},
    {"shadow-budget-usd", T_DOUBLE, OFF(shadow_budget_usd), 0, 1e9, NULL, "1",
     "most shadow checks may spend per UTC day, in USD (calls of unknown price count nothing)"},
    {"answer-vote", T_ENUM, OFF(answer_vote), 0, 0, "on|off", "on", "semcache-embed: let the top-k candidates' answers vote; close candidates with other answers (to other questions) lower the winner's score"},
    {"upstream", T_STR, OFF(upstream), 0, 0, NULL, "https://api.openai.com", "default upstream origin; /v1/... paths are appended"},
    {"upstream-key", T_STR, OFF(upstream_key), 0, 0, NULL, "", "upstream API key (prefer upstream-key-env)"},
    {"redis-cluster", T_STR, OFF(redis_cluster), 0, 0, NULL, "", "multi-node mode: seed nodes of a Redis Cluster (host:port[,host:port...]) that holds the shared entries and their change feed; empty = one node on its own LMDB"},
    {"redis-password-env", T_STR, OFF(redis_password_env), 0, 0, NULL, "", "environment variable holding the Redis Cluster's password (never logged); empty = none"},
    {"redis-wait", T_BOOL, OFF(redis_wait), 0, 0, NULL, "yes", "multi-node mode: a store is acknowledged only once a replica has it too (WAIT 1)"},
    {"upstream-key-env", T_STR, OFF(upstream_key_env), 0, 0, NULL, "OPENAI_API_KEY", "environment variable holding the upstream API key"},
    {"connect-timeout-ms", T_INT, OFF(connect_timeout_ms), 1, 600000, NULL, "5000", "upstream connect timeout"},
    {"first-byte-timeout-ms", T_INT, OFF(first_byte_timeout_ms), 1, 3600000, NULL, "120000", "upstream time to first response byte"},
    {"upstream-idle-timeout-ms", T_INT, OFF(upstream_idle_timeout_ms), 1, 3600000, NULL, "60000", "upstream silence allowed mid-response"},
    {"max-upstream-body", T_INT, OFF(max_upstream_body), 1024, 1 << 30, NULL, "16777216", "largest upstream answer, bytes"},
    {"upstream-def", T_LIST, OFF(upstream_defs), 0, 0, NULL, NULL, "named upstream: NAME URL KEY_ENV [MAX_CONCURRENT] (repeatable)"},
    {"route", T_LIST, OFF(routes), 0, 0, NULL, NULL, "route: MODEL_PATTERN UPSTREAM[:MODEL],... (repeatable, first match wins)"},
    {"api-key", T_LIST, OFF(api_keys), 0, 0, NULL, NULL, "client key: KEY NAMESPACE user|admin (repeatable; enables auth)"},
    {"price", T_LIST, OFF(prices), 0, 0, NULL, NULL, "price: MODEL USD_PER_M_INPUT USD_PER_M_OUTPUT (repeatable)"},
    {"retries", T_INT, OFF(retries), 0, 10, NULL, "2", "retries per upstream before falling back"},
    {"breaker-failures", T_INT, OFF(breaker_failures), 1, 1000, NULL, "5", "consecutive failures that open an upstream's breaker"},
    {"breaker-cooldown-ms", T_INT, OFF(breaker_cooldown_ms), 1, 3600000, NULL, "10000", "open breaker waits this long before a half-open probe"},
    {"log-level", T_ENUM, OFF(log_level), 0, 0, "debug|info|warn|error|off", "info", "log level"},
    {"access-log", T_STR, OFF(access_log), 0, 0, NULL, "", "access log file (empty = off, - = stderr)"},
};

static const directive *find(const char *name)
{
    for (size_t i = 0; i < SC_COUNTOF(table); i++)
        if (strcmp(table[i].name, name) == 0) return &table[i];
    return NULL;
}

/* Values quoted in error messages are clipped to this many bytes (then
 * "..."), so that a long bad value cannot push the option's name out of a
 * bounded message. */
#define QUOTE_MAX 64

static const char *clipped(const char *v, char buf[QUOTE_MAX + 4])
{
    if (strlen(v) <= QUOTE_MAX) return v;
    memcpy(buf, v, QUOTE_MAX);
    memcpy(buf + QUOTE_MAX, "...", 4);
    return buf;
}

static int set_one(sc_config *cfg, const directive *d, const char *value, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    char *end;
    char clip[QUOTE_MAX + 4];
    switch (d->type) {
    case T_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < d->min || v > d->max) {
            snprintf(err, errlen, "bad value '%s' for '%s': want an integer from %.0f to %.0f",
                     clipped(value, clip), d->name, d->min, d->max);
            return SC_EINVAL;
        }
        *(long long *)(base + d->off) = v;
        return SC_OK;
    }
    case T_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || v < d->min || v > d->max) {
            snprintf(err, errlen, "bad value '%s' for '%s': want a number from %g to %g",
                     clipped(value, clip), d->name, d->min, d->max);
            return SC_EINVAL;
        }
        *(double *)(base + d->off) = v;
        return SC_OK;
    }
    case T_BOOL: {
        int v;
        if (!strcmp(value, "yes") || !strcmp(value, "on") || !strcmp(value, "true") || !strcmp(value, "1")) v = 1;
        else if (!strcmp(value, "no") || !strcmp(value, "off") || !strcmp(value, "false") || !strcmp(value, "0")) v = 0;
        else {
            snprintf(err, errlen, "bad value '%s' for '%s': want yes or no", clipped(value, clip), d->name);
            return SC_EINVAL;
        }
        *(int *)(base + d->off) = v;
        return SC_OK;
    }
    case T_ENUM: {
        size_t n = strlen(value);
        const char *c = d->choices;
        int ok = 0;
        while (*c) {
            const char *bar = strchr(c, '|');
            size_t m = bar ? (size_t)(bar - c) : strlen(c);
            if (m == n && memcmp(c, value, n) == 0) { ok = 1; break; }
            c += m + (bar ? 1 : 0);
        }
        if (!ok) {
            snprintf(err, errlen, "bad value '%s' for '%s': want one of %s", clipped(value, clip), d->name,
                     d->choices);
            return SC_EINVAL;
        }
    } /* fall through */
    case T_STR: {
        char **p = (char **)(base + d->off);
        free(*p);
        *p = sc_strdup(value);
        return SC_OK;
    }
    case T_LIST: {
        sc_strlist *l = (sc_strlist *)(base + d->off);
        l->items = sc_realloc(l->items, (l->n + 1) * sizeof *l->items);
        l->items[l->n++] = sc_strdup(value);
        return SC_OK;
    }
    }
    return SC_EINVAL;
}

void sc_config_defaults(sc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (size_t i = 0; i < SC_COUNTOF(table); i++)
        if (table[i].def && set_one(cfg, &table[i], table[i].def, err, sizeof err))
            sc_panic("bad default for %s: %s", table[i].name, err);
}

void sc_config_free(sc_config *cfg)
{
    char *base = (char *)cfg;
    for (size_t i = 0; i < SC_COUNTOF(table); i++) {
        const directive *d = &table[i];
        if (d->type == T_STR || d->type == T_ENUM) {
            free(*(char **)(base + d->off));
        } else if (d->type == T_LIST) {
            sc_strlist *l = (sc_strlist *)(base + d->off);
            for (size_t j = 0; j < l->n; j++) free(l->items[j]);
            free(l->items);
        }
    }
    memset(cfg, 0, sizeof *cfg);
}

int sc_config_set(sc_config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const directive *d = find(name);
    if (!d) {
        char clip[QUOTE_MAX + 4];
        snprintf(err, errlen, "unknown option '%s'", clipped(name, clip));
        return SC_ENOTFOUND;
    }
    return set_one(cfg, d, value, err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

/* Writes "origin:lineno: " and what is wrong with the line itself (too
 * long, not text) into err, naming the directive the line starts with. */
static void line_error(char *err, size_t errlen, const char *origin, int lineno, const char *p, size_t n,
                       const char *what)
{
    size_t k = 0;
    while (k < n && isspace((unsigned char)p[k])) k++;
    p += k;
    n -= k;
    k = 0;
    while (k < n && k < QUOTE_MAX && p[k] && p[k] != '#' && !isspace((unsigned char)p[k])) k++;
    if (k)
        snprintf(err, errlen, "%s:%d: the line of '%.*s' %s", origin, lineno, (int)k, p, what);
    else
        snprintf(err, errlen, "%s:%d: the line %s", origin, lineno, what);
}

int sc_config_load_text(sc_config *cfg, const char *text, size_t len, const char *origin, char *err,
                        size_t errlen)
{
    char line[SC_CONFIG_MAX_LINE + 1];
    const char *p = text, *end = text + len;
    int lineno = 0;
    while (p < end) {
        lineno++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n > SC_CONFIG_MAX_LINE) {
            line_error(err, errlen, origin, lineno, p, n, "is too long");
            return SC_EINVAL;
        }
        /* Not text: whatever follows the NUL would be dropped unseen. */
        if (memchr(p, '\0', n)) {
            line_error(err, errlen, origin, lineno, p, n, "contains a NUL byte");
            return SC_EINVAL;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl ? nl + 1 : end;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = trim(line);
        if (!*s) continue;
        char *name = s;
        while (*s && !isspace((unsigned char)*s)) s++;
        if (*s) *s++ = '\0';
        char *value = trim(s);
        char msg[512];
        int rc = sc_config_set(cfg, name, value, msg, sizeof msg);
        if (rc) {
            snprintf(err, errlen, "%s:%d: %s", origin, lineno, msg);
            return rc;
        }
    }
    return SC_OK;
}

int sc_config_load_file(sc_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file '%s': %s", path, strerror(errno));
        return SC_EIO;
    }
    char *text = sc_malloc(SC_CONFIG_MAX_FILE + 1);
    size_t len = fread(text, 1, SC_CONFIG_MAX_FILE + 1, f);
    int rc = SC_OK;
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read config file '%s': %s", path, strerror(errno));
        rc = SC_EIO;
    } else if (len > SC_CONFIG_MAX_FILE) {
        snprintf(err, errlen, "config file '%s' is too large (over %d bytes)", path, SC_CONFIG_MAX_FILE);
        rc = SC_EINVAL;
    }
    fclose(f);
    if (!rc) rc = sc_config_load_text(cfg, text, len, path, err, errlen);
    free(text);
    return rc;
}

int sc_config_parse_args(sc_config *cfg, int argc, char **argv, int *help, char *err, size_t errlen)
{
    *help = 0;
    /* Pass 1: --help and --config, so flags override the file. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = 1;
            return SC_OK;
        }
        const char *file = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--config' needs a value");
                return SC_EINVAL;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
        if (file) {
            int rc = sc_config_load_file(cfg, file, err, errlen);
            if (rc) return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s'", a);
            return SC_EINVAL;
        }
        char name[128];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, a + 2, n);
        name[n] = '\0';
        if (!strcmp(name, "config")) {
            if (!eq) i++;
            continue;
        }
        if (!find(name)) {
            snprintf(err, errlen, "unknown option '--%s'", name);
            return SC_ENOTFOUND;
        }
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option '--%s' needs a value", name);
                return SC_EINVAL;
            }
            value = argv[++i];
        }
        int rc = sc_config_set(cfg, name, value, err, errlen);
        if (rc) return rc;
    }
    return SC_OK;
}

int sc_config_ns_rate(const char *entry, char *ns, size_t nscap, double *rate)
{
    const char *sp = strchr(entry, ' ');
    if (!sp || sp == entry || (size_t)(sp - entry) >= nscap) return SC_EINVAL;
    memcpy(ns, entry, (size_t)(sp - entry));
    ns[sp - entry] = '\0';
    while (*sp == ' ') sp++;
    char *end;
    errno = 0;
    double v = strtod(sp, &end);
    while (*end == ' ') end++;
    if (errno || end == sp || *end || !(v >= 0) || v > 0.5) return SC_EINVAL;
    *rate = v;
    return SC_OK;
}

int sc_config_validate(const sc_config *cfg, char *err, size_t errlen)
{
    if (cfg->resp_port != 0 && cfg->port != 0 && cfg->resp_port == cfg->port) {
        snprintf(err, errlen, "bad value for 'resp-port': same as 'port' (%lld)", cfg->port);
        return SC_EINVAL;
    }
    if (!strcmp(cfg->embedder, "remote") && !*cfg->embed_url) {
        snprintf(err, errlen, "option 'embed-url' is required with 'embedder remote'");
        return SC_EINVAL;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, cfg->bind, addr) != 1 && inet_pton(AF_INET6, cfg->bind, addr) != 1) {
        char clip[QUOTE_MAX + 4];
        snprintf(err, errlen, "bad value '%s' for 'bind': not an IPv4 or IPv6 address",
                 clipped(cfg->bind, clip));
        return SC_EINVAL;
    }
    if (cfg->index_scan_bits != 4 && cfg->index_scan_bits != 8) {
        snprintf(err, errlen, "bad value '%lld' for 'index-scan-bits': want 4 or 8", cfg->index_scan_bits);
        return SC_EINVAL;
    }
    if (!*cfg->data_dir) {
        snprintf(err, errlen, "bad value '' for 'data-dir': empty");
        return SC_EINVAL;
    }
    for (size_t i = 0; i < cfg->ns_error_rates.n; i++) {
        char ns[65];
        double rate;
        if (sc_config_ns_rate(cfg->ns_error_rates.items[i], ns, sizeof ns, &rate)) {
            char clip[QUOTE_MAX + 4];
            snprintf(err, errlen, "bad value '%s' for 'namespace-max-error-rate': want NAMESPACE RATE, rate 0 to 0.5",
                     clipped(cfg->ns_error_rates.items[i], clip));
            return SC_EINVAL;
        }
    }
    return SC_OK;
}

void sc_config_usage(FILE *out, const char *prog)
{
    fprintf(out, "usage: %s [--config FILE] [--NAME VALUE ...]\n\n"
                 "Semantic response cache for OpenAI-compatible LLM APIs.\n"
                 "Every option may also be set in the config file as 'NAME VALUE'.\n\n", prog);
    for (size_t i = 0; i < SC_COUNTOF(table); i++) {
        const directive *d = &table[i];
        char arg[64];
        switch (d->type) {
        case T_INT: snprintf(arg, sizeof arg, "N"); break;
        case T_DOUBLE: snprintf(arg, sizeof arg, "X"); break;
        case T_BOOL: snprintf(arg, sizeof arg, "yes|no"); break;
        case T_ENUM: snprintf(arg, sizeof arg, "%s", d->choices); break;
        default: snprintf(arg, sizeof arg, "VALUE"); break;
        }
        fprintf(out, "  --%s %s\n      %s", d->name, arg, d->help);
        if (d->def) fprintf(out, " [default: %s]", *d->def ? d->def : "\"\"");
        fputc('\n', out);
    }
    fprintf(out, "\n  --config FILE   read directives from FILE first\n  --help          this text\n");
}
