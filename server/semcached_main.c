/* semcached: parses the configuration, opens the data dir and the cache's
 * components, serves HTTP (and RESP) on a libuv loop, and shuts down
 * cleanly on SIGINT/SIGTERM: stop accepting, finish in-flight requests,
 * close the store. Exit codes: 0 clean stop, 1 start-up failure, 2 bad
 * command line or configuration. */
#include "common/alloc.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "server/server.h"
#include "server/auth.h"
#include "server/cache.h"
#include "server/resp.h"
#include "server/shadow.h"
#include "server/stats.h"
#include "server/memo.h"
#include "route/route.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static sc_server server;
static uv_signal_t sig_int, sig_term;

static void on_http_stopped(void *arg)
{
    (void)arg;
    sc_route_destroy(server.route);
    server.route = NULL;
    sc_shadow_shutdown();
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
}

/* Every finished HTTP request: statistics and the access log. */
static void on_request_finished(void *ctx, const sc_http_req *req, int status, double seconds)
{
    sc_server *srv = ctx;
    sc_stats_request(srv->stats, req->path, status);
    if (status >= 400) atomic_fetch_add(&srv->http_errors, 1);
    if (srv->access_log) {
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(srv->access_log, "%s %s %s %d %.3fms %s\n", ts, req->method ? req->method : "-",
                req->path ? req->path : "-", status, seconds * 1e3, req->note[0] ? req->note : "-");
        fflush(srv->access_log);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (server.stopping) {
        sc_warn("second signal: exiting now");
        exit(1);
    }
    server.stopping = 1;
    sc_info("signal %d: shutting down", signum);
    if (server.resp) sc_resp_stop(server.resp, NULL, NULL);
    server.resp = NULL;
    sc_http_server_stop(server.http, on_http_stopped, NULL);
}

static int make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return SC_OK;
        snprintf(err, errlen, "bad value '%s' for 'data-dir': not a directory", dir);
        return SC_EINVAL;
    }
    snprintf(err, errlen, "cannot create data-dir '%s': %s", dir, strerror(errno));
    return SC_EIO;
}

int main(int argc, char **argv)
{
    static sc_config cfg;
    char err[1024];
    int help = 0;
    /* Blocks of 256 KiB and more (index chunks, the ANN build's samples
     * and lists) come from mmap and go back to the kernel when freed:
     * glibc's default threshold grows as big blocks are freed, and freed
     * memory then stays resident in its heaps (0.1 KiB an entry at 100k). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    /* Setting the mmap threshold also fixes the trim threshold at 128 KiB,
     * so a worker's heap gave back the embedder's scratch (~0.3 MB for a
     * short prompt) after every embedding and faulted it in again on the
     * next (40 page faults a miss). Keep up to 4 MiB free at a heap's top. */
    mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
    sc_config_defaults(&cfg);
    if (sc_config_parse_args(&cfg, argc, argv, &help, err, sizeof err) ||
        (!help && sc_config_validate(&cfg, err, sizeof err))) {
        fprintf(stderr, "semcached: %s (see --help)\n", err);
        return 2;
    }
    if (help) {
        sc_config_usage(stdout, "semcached");
        return 0;
    }
    sc_log_level = sc_log_level_parse(cfg.log_level);
    signal(SIGPIPE, SIG_IGN);

    char workers[32];
    snprintf(workers, sizeof workers, "%lld", cfg.workers + 1);
    setenv("UV_THREADPOOL_SIZE", workers, 0);

    server.cfg = &cfg;
    server.loop = uv_default_loop();
    server.started_ns = sc_http_now_ns();
    if (make_dir(cfg.data_dir, err, sizeof err)) {
        sc_error("%s", err);
        return 1;
    }
    if (*cfg.access_log) {
        server.access_log = strcmp(cfg.access_log, "-") == 0 ? stderr : fopen(cfg.access_log, "a");
        if (!server.access_log) {
            sc_error("cannot open access-log '%s': %s", cfg.access_log, strerror(errno));
            return 1;
        }
    }
    if (sc_auth_create(&server.auth, &cfg, err, sizeof err)) {
        fprintf(stderr, "semcached: %s\n", err);
        return 2;
    }
    if (sc_route_create(server.loop, &cfg, &server.route, err, sizeof err)) {
        fprintf(stderr, "semcached: %s\n", err);
        return 2;
    }
    if (sc_cache_open(&server.cache, &cfg, err, sizeof err)) {
        sc_error("%s", err);
        return 1;
    }
    server.stats = sc_stats_create();
    server.memo = sc_memo_create(4096, 256u << 10, 32u << 20);
    if (sc_http_server_start(&server.http, server.loop, &cfg, sc_server_handle, &server, err,
                             sizeof err)) {
        sc_error("%s", err);
        sc_cache_close(server.cache);
        return 1;
    }
    sc_http_server_on_finish(server.http, on_request_finished);
    if (cfg.resp_port != 0 &&
        sc_resp_start(&server.resp, server.loop, &cfg, server.cache, server.auth, err, sizeof err)) {
        sc_error("%s", err);
        sc_cache_close(server.cache);
        return 1;
    }
    if (server.resp) sc_resp_count_overloads(server.resp, &server.overloaded);
    uv_signal_init(server.loop, &sig_int);
    uv_signal_init(server.loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    sc_info("semcached listening on http://%s:%d (data in %s, embedder %s)", cfg.bind,
            sc_http_server_port(server.http), cfg.data_dir, cfg.embedder);
    if (server.resp)
        sc_info("RESP on %s:%d", cfg.bind, sc_resp_port(server.resp));

    uv_run(server.loop, UV_RUN_DEFAULT);

    uv_loop_close(server.loop);
    sc_cache_close(server.cache);
    sc_stats_destroy(server.stats);
    sc_memo_destroy(server.memo);
    sc_auth_destroy(server.auth);
    if (server.access_log && server.access_log != stderr) fclose(server.access_log);
    sc_info("stopped cleanly");
    sc_config_free(&cfg);
    return 0;
}
