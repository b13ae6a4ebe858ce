/* Binding a libuv TCP listener, shared by the HTTP and RESP listeners. */
#ifndef SC_LISTEN_H
#define SC_LISTEN_H

#include <stddef.h>
#include <uv.h>

/* Initialises tcp on loop, binds bind:port (IPv4 or IPv6 literal; port 0 =
 * any free port), listens with cb and writes the bound port into *bound.
 * what names the listener in error messages ("HTTP", "RESP"). On error the
 * handle is closed (the loop is run once so it is released) and err says
 * what failed: SC_EINVAL for a bad address, SC_EIO when bind/listen fail. */
int sc_listen_tcp(uv_loop_t *loop, uv_tcp_t *tcp, const char *bind, long long port, uv_connection_cb cb,
                  const char *what, int *bound, char *err, size_t errlen);

/* uv_alloc_cb for listeners whose read callback consumes (copies) the
 * bytes before returning: one 64 KiB slab, loop thread only. */
void sc_listen_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

#endif
