/* Binding a libuv TCP listener (see listen.h). */
#include "server/listen.h"
#include "common/err.h"

#include <stdio.h>

int sc_listen_tcp(uv_loop_t *loop, uv_tcp_t *tcp, const char *bind, long long port, uv_connection_cb cb,
                  const char *what, int *bound, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(bind, (int)port, (struct sockaddr_in *)&addr);
    if (rc) rc = uv_ip6_addr(bind, (int)port, (struct sockaddr_in6 *)&addr);
    if (rc) {
        snprintf(err, errlen, "bad value '%s' for 'bind': not an IP address", bind);
        return SC_EINVAL;
    }
    uv_tcp_init(loop, tcp);
    rc = uv_tcp_bind(tcp, (struct sockaddr *)&addr, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)tcp, 1024, cb);
    if (rc) {
        snprintf(err, errlen, "cannot listen for %s on %s:%lld: %s", what, bind, port, uv_strerror(rc));
        uv_close((uv_handle_t *)tcp, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        return SC_EIO;
    }
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(tcp, (struct sockaddr *)&got, &len);
    *bound = got.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&got)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&got)->sin_port);
    return SC_OK;
}

void sc_listen_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}
