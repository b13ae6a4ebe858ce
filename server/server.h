/* The semcached process: the parts it owns and the HTTP router.
 *
 * sc_server holds the configuration, the libuv loop, the listeners and
 * the cache's components. It is created by semcached_main.c and lives for
 * the whole process. Request handlers (api.c, proxy.c) run on the loop
 * thread and hand slow work to the libuv thread pool. */
#ifndef SC_SERVER_H
#define SC_SERVER_H

#include "common/config.h"
#include "server/http.h"

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

typedef struct sc_server {
    sc_config *cfg;
    uv_loop_t *loop;
    sc_http_server *http;
    uint64_t started_ns;
    int stopping;
    atomic_ullong http_requests;
    atomic_ullong http_errors;
} sc_server;

/* The HTTP router: the sc_http_handler of the listener (ctx = sc_server). */
void sc_server_handle(void *ctx, sc_http_req *req);

#endif
