/* Binding a libuv TCP listener, and the set of its connections (see
 * listen.h). */
#include "server/listen.h"
#include "common/err.h"

#include <linux/sockios.h>
#include <stdio.h>
#include <sys/ioctl.h>

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

/* ---------------------------------------------------------------------
 * Connection lifetime
 * ------------------------------------------------------------------- */

void sc_conns_init(sc_conns *set, uv_loop_t *loop, void *owner, void (*release)(sc_conn *c),
                   void (*free_owner)(void *owner))
{
    set->loop = loop;
    set->owner = owner;
    set->release = release;
    set->free_owner = free_owner;
}

/* Finishes a stop once the listener and every connection are closed. The
 * set lives in the owner: copy what is needed before freeing it. */
static void maybe_stopped(sc_conns *set)
{
    if (!set->stopping || !set->listener_closed || set->n > 0) return;
    void (*done)(void *) = set->done;
    void *arg = set->done_arg;
    set->free_owner(set->owner);
    if (done) done(arg);
}

void sc_conn_add(sc_conns *set, sc_conn *c)
{
    c->set = set;
    uv_tcp_init(set->loop, &c->tcp);
    uv_timer_init(set->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->refs = 2;
    c->next = set->head;
    if (set->head) set->head->prev = c;
    set->head = c;
    set->n++;
}

void sc_conn_ref(sc_conn *c)
{
    c->refs++;
}

void sc_conn_unref(sc_conn *c)
{
    if (--c->refs > 0) return;
    sc_conns *set = c->set;
    if (c->prev)
        c->prev->next = c->next;
    else
        set->head = c->next;
    if (c->next) c->next->prev = c->prev;
    set->n--;
    set->release(c);
    maybe_stopped(set);
}

static void on_handle_closed(uv_handle_t *h)
{
    sc_conn_unref(h->data);
}

void sc_conn_close(sc_conn *c)
{
    if (c->closed) return;
    c->closed = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    sc_conn_close(t->data);
}

static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;   /* the shared slab: nothing to free */
    if (nread < 0) sc_conn_close(st->data);   /* the client's close, or an error */
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    sc_conn *c = (sc_conn *)((char *)r - offsetof(sc_conn, shut));
    if (status < 0) sc_conn_close(c);
    sc_conn_unref(c);
}

void sc_conn_linger(sc_conn *c, unsigned ms)
{
    if (c->closed || c->lingering) return;
    c->lingering = 1;
    uv_timer_start(&c->timer, on_linger_timeout, ms, 0);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_read_start((uv_stream_t *)&c->tcp, sc_listen_alloc, on_linger_read) < 0) {
        sc_conn_close(c);
        return;
    }
    sc_conn_ref(c);
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        sc_conn_unref(c);
        sc_conn_close(c);
    }
}

static void on_listener_closed(uv_handle_t *h)
{
    sc_conns *set = (sc_conns *)((char *)h - offsetof(sc_conns, listener));
    set->listener_closed = 1;
    maybe_stopped(set);
}

void sc_conns_stop(sc_conns *set, void (*done)(void *arg), void *arg)
{
    set->stopping = 1;
    set->done = done;
    set->done_arg = arg;
    uv_close((uv_handle_t *)&set->listener, on_listener_closed);
}

int sc_conn_peer_progress(sc_conn *c)
{
    if (c->closed) return 0;
    uint64_t acked = c->sent - uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        acked -= (uint64_t)outq < acked ? (uint64_t)outq : acked;
    int moved = acked > c->acked_seen;
    c->acked_seen = acked;
    return moved;
}
