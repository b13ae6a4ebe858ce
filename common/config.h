/* Configuration: one struct and one directive table (config.c) that drives
 * the config file, the `--name value` command-line flags, `--help` and the
 * validation of every value (Redis config.c style).
 *
 * Config file: one directive per line, `name value...`, `#` comments.
 * Command line: `--name value` or `--name=value`; flags override the file.
 * An unknown name or a bad value is an error that names it; the semcached
 * binary exits 2 on it. List directives (upstream-def, route, api-key) may
 * be repeated and keep every value. The struct is filled once at start-up
 * and read-only afterwards, so any thread may read it. */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct sc_strlist {
    char **items;
    size_t n;
} sc_strlist;

typedef struct sc_config {
    /* listeners */
    char *bind;
    long long port;
    long long resp_port;
    long long max_body;          /* bytes of an HTTP request body */
    long long max_header;        /* bytes of all request headers */
    long long idle_timeout_ms;   /* a connection that sends nothing is closed */
    long long resp_stall_timeout_ms; /* RESP replies unread this long: closed (0: idle + 5 s) */
    long long max_queue_ms;      /* a lookup queued this long skips the semantic layer (0: off) */
    long long max_conns;
    long long workers;           /* threads for embedding, search and storage */
    /* storage */
    char *data_dir;
    char *durability;            /* "sync" or "nosync" */
    long long sync_window_ms;    /* nosync: data older than this is synced */
    long long max_entries;       /* 0 = unbounded */
    long long max_bytes;         /* 0 = unbounded */
    long long default_ttl;       /* seconds, 0 = no expiry */
    long long map_size_mb;       /* LMDB map size */
    int reembed;                 /* re-embed a data dir of another embedder */
    /* semantic layer */
    double threshold;
    char *embedder;              /* semcache-embed, use-lite, hash, remote */
    char *model_dir;
    char *embed_url;             /* remote embedder base URL */
    char *embed_model;
    long long embed_dim;
    char *index_backend;         /* flat or faiss */
    long long index_scan_bits;   /* flat: 8 or 4 */
    long long index_ann_min_rows; /* flat 4-bit: IVF from this many live rows; 0 = never */
    char *faiss_desc;
    long long top_k;
    char *verify;                /* on or off */
    char *answer_vote;           /* on or off */
    double max_error_rate;       /* error budget, 0 = off */
    sc_strlist ns_error_rates;   /* "namespace rate" */
    double shadow_rate;
    double shadow_budget_usd;    /* per UTC day */
    /* upstream */
    char *upstream;
    char *upstream_key;
    char *upstream_key_env;
    /* multi-node mode (server/shared.h) */
    char *redis_cluster;         /* "" = off */
    char *redis_password_env;
    int redis_wait;
    long long connect_timeout_ms;
    long long first_byte_timeout_ms;
    long long upstream_idle_timeout_ms;
    long long max_upstream_body;
    sc_strlist upstream_defs;    /* "name url key-env [max-conc]" */
    sc_strlist routes;           /* "pattern upstream:model,..." */
    sc_strlist api_keys;         /* "key namespace role" */
    sc_strlist prices;           /* "model in_usd_per_M out_usd_per_M" */
    long long retries;
    long long breaker_failures;
    long long breaker_cooldown_ms;
    /* observability */
    char *log_level;
    char *access_log;
} sc_config;

/* Splits a namespace-max-error-rate entry ("NAMESPACE RATE") into ns
 * (nscap bytes) and rate (0 to 0.5). SC_EINVAL when malformed. */
int sc_config_ns_rate(const char *entry, char *ns, size_t nscap, double *rate);

/* Fills cfg with the defaults of the table. Free with sc_config_free(). */
void sc_config_defaults(sc_config *cfg);
void sc_config_free(sc_config *cfg);

/* Sets one directive from text. On error returns SC_EINVAL / SC_ENOTFOUND
 * and writes a message naming the directive into err. */
int sc_config_set(sc_config *cfg, const char *name, const char *value, char *err, size_t errlen);

/* Bounds of a config file and of each of its lines (without the "\n"). */
#define SC_CONFIG_MAX_FILE (1 << 20)
#define SC_CONFIG_MAX_LINE 4095

/* Applies the directives of config text (a whole file's contents, len
 * bytes, not NUL-terminated) in order, stopping at the first error.
 * Pure: no I/O, so it can be unit-tested and fuzzed. A line longer than
 * SC_CONFIG_MAX_LINE or holding a NUL byte is an error. Errors start with
 * "origin:LINE: " and name the directive; directives before the bad line
 * stay applied (the caller frees cfg either way). */
int sc_config_load_text(sc_config *cfg, const char *text, size_t len, const char *origin, char *err,
                        size_t errlen);

/* Reads a config file (at most SC_CONFIG_MAX_FILE bytes) and applies it
 * with sc_config_load_text(). Errors name the file, the line and the
 * directive. */
int sc_config_load_file(sc_config *cfg, const char *path, char *err, size_t errlen);

/* Parses argv: --config FILE first (applied first), then every other flag.
 * Sets *help when --help was given. */
int sc_config_parse_args(sc_config *cfg, int argc, char **argv, int *help, char *err, size_t errlen);

/* Cross-field checks after everything was set. */
int sc_config_validate(const sc_config *cfg, char *err, size_t errlen);

/* Prints usage with every directive, its default and help text. */
void sc_config_usage(FILE *out, const char *prog);

#endif
