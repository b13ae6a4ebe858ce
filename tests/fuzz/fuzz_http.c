/* libFuzzer target for the HTTP listener (server/http.c over llhttp): the
 * request parsing, limits (431/413/400), pipelining, Expect: 100-continue,
 * half-close and the respond/stream paths, through a real libuv loop and a
 * real loopback socket.
 *
 * One server lives for the whole run (small limits so the fuzzer reaches
 * them). Each input is written by a client socket which then half-closes;
 * the loop runs until the server closed the connection. The handler answers
 * every request synchronously: a stream for paths starting "/s", an echo of
 * the body otherwise. Checks: every answer starts with an HTTP/1.1 status
 * line, the server closes every connection (no hang), and no connection is
 * left open afterwards. Nothing may crash, leak or read out of bounds (ASan,
 * run by tests/fuzz/run.sh). */
// fuzz-sources: server/http.c server/listen.c common/config.c common/buf.c common/alloc.c common/err.c common/log.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c
// fuzz-libs: -I/usr/share/include/llhttp -luv -ljansson
#include "common/config.h"
#include "common/log.h"
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t loop;
static sc_config cfg;
static sc_http_server *srv;

static void handler(void *ctx, sc_http_req *req)
{
    (void)ctx;
    if (strncmp(req->path, "/s", 2) == 0) {
        sc_http_stream_begin(req, 200, "text/event-stream", "X-Test: 1\r\n");
        sc_http_stream_write(req, "data: a\n\n", 9);
        sc_http_stream_write(req, req->body, req->body_len);
        sc_http_stream_end(req);
    } else if (strcmp(req->method, "DELETE") == 0) {
        sc_http_error(req, 404, "invalid_request_error", "not_found", "no %s", req->path);
    } else {
        sc_http_respond(req, 200, "application/octet-stream", NULL, req->body, req->body_len);
    }
}

static void setup(void)
{
    sc_log_level = SC_LOG_OFF;
    sc_config_defaults(&cfg);
    cfg.port = 0;
    cfg.max_header = 1024;
    cfg.max_body = 2048;
    cfg.idle_timeout_ms = 2000;
    uv_loop_init(&loop);
    char err[256];
    if (sc_http_server_start(&srv, &loop, &cfg, handler, NULL, err, sizeof err)) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) setup();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sc_http_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* No TIME_WAIT on our side: tens of thousands of runs would use up
     * the ephemeral ports. The server has closed first by then anyway. */
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;   /* out of local ports: not the server's fault */
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;   /* server closed */
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    shutdown(fd, SHUT_WR);
    char buf[65536];
    size_t got = 0, first = 0;
    char head[9];
    int closed = 0;
    /* Bounded by time, not by iterations, so a loaded machine is no hang. */
    uint64_t deadline = uv_hrtime() + 5000000000ull;
    while (!closed && uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) closed = 1;
        else if (r > 0) {
            for (ssize_t k = 0; k < r && first < sizeof head; k++) head[first++] = buf[k];
            got += (size_t)r;
        }
    }
    if (!closed) {
        fprintf(stderr, "fuzz_http: the server did not close the connection\n");
        abort();
    }
    if (got && (first < 9 || memcmp(head, "HTTP/1.1 ", 9) != 0)) {
        fprintf(stderr, "fuzz_http: answer does not start with a status line\n");
        abort();
    }
    close(fd);
    deadline = uv_hrtime() + 5000000000ull;
    while (sc_http_server_conns(srv) > 0 && uv_hrtime() < deadline) uv_run(&loop, UV_RUN_NOWAIT);
    if (sc_http_server_conns(srv) > 0) {
        fprintf(stderr, "fuzz_http: a connection was left open\n");
        abort();
    }
    return 0;
}
