/* Binding a libuv TCP listener, and the lifetime of the connections it
 * accepts, shared by the HTTP and RESP listeners. */
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

/* ---------------------------------------------------------------------
 * Connection lifetime
 *
 * A server embeds one sc_conns (its listener and the set of its open
 * connections) and makes an sc_conn the first member of its connection
 * struct, so that a pointer to either is a pointer to the other and the
 * handles' data (set to the sc_conn) can be cast to the server's type.
 *
 * A connection holds one reference per handle (tcp, timer) from
 * sc_conn_add() until that handle's close callback; the server takes more
 * with sc_conn_ref() for whatever may outlive the socket (a request being
 * handled, a worker job, a queued write) and drops each with
 * sc_conn_unref(). When the last one goes, the connection leaves the set
 * and release() frees it. After sc_conns_stop(), once the listener and
 * every connection are closed, the set calls free_owner(owner) (which
 * frees the server, and the sc_conns inside it) and then done(arg).
 *
 * Threads: everything here runs on the loop thread only. The server may
 * read the fields (head/next to walk the set, n, stopping, closed) and use
 * the handles (it binds the listener with sc_listen_tcp and sets the
 * listener's data; tcp and timer are its to read, write and start, but
 * only sc_conn_close() closes them); only these functions change the rest.
 * ------------------------------------------------------------------- */

typedef struct sc_conns sc_conns;
typedef struct sc_conn sc_conn;

struct sc_conn {
    uv_tcp_t tcp;     /* the accepted socket; data = this sc_conn */
    uv_timer_t timer; /* the server's timer; data = this sc_conn */
    sc_conns *set;
    sc_conn *prev, *next; /* in set->head */
    int refs;
    int closed;    /* sc_conn_close() was called */
    int lingering; /* sc_conn_linger() was called */
    uv_shutdown_t shut;
    uint64_t sent;       /* bytes handed to the socket or to uv_write (the server counts) */
    uint64_t acked_seen; /* sc_conn_peer_progress()'s last look */
};

struct sc_conns {
    uv_tcp_t listener; /* bound by the server (sc_listen_tcp) */
    uv_loop_t *loop;
    sc_conn *head; /* open connections, newest first */
    size_t n;      /* how many */
    int stopping;  /* sc_conns_stop() was called */
    int listener_closed;
    void *owner;
    void (*release)(sc_conn *c);
    void (*free_owner)(void *owner);
    void (*done)(void *arg);
    void *done_arg;
};

/* Sets up an empty set on loop (the listener is not touched). release(c)
 * frees a connection once it left the set (the sc_conn's handles are
 * closed by then); free_owner(owner) frees the server after a stop. */
void sc_conns_init(sc_conns *set, uv_loop_t *loop, void *owner, void (*release)(sc_conn *c),
                   void (*free_owner)(void *owner));

/* Adds c (zeroed memory, first member of the server's connection) to the
 * set: initialises c->tcp and c->timer on the loop, ready for uv_accept(),
 * with one reference for each. c belongs to the set until release(c). */
void sc_conn_add(sc_conns *set, sc_conn *c);

/* Takes / drops one reference. The last sc_conn_unref() unlinks c, calls
 * release(c) and, when a stop is waiting for this connection, finishes it
 * (free_owner, then done). So after sc_conn_unref() the caller touches c
 * only if it holds another reference, and the server only if it is not
 * stopping. */
/* 1 when the peer took bytes since the last call: of c->sent, more have
 * left both libuv's write queue and the kernel's send queue (SIOCOUTQ).
 * A client that stops reading closes its TCP window, so nothing moves;
 * one that reads slowly moves a little. Lets idle and stall timers judge
 * the client's progress inside a write too big to complete quickly. */
int sc_conn_peer_progress(sc_conn *c);

void sc_conn_ref(sc_conn *c);
void sc_conn_unref(sc_conn *c);

/* Stops reading and the timer and closes both handles; their references
 * go when libuv calls back (a later loop iteration, never from inside this
 * call). Does nothing if c is already closed. */
void sc_conn_close(sc_conn *c);

/* Closes c without losing what was written to it. close() on a socket
 * with unread input makes the kernel reset the connection, and the client
 * then loses the answers it has not read yet (an error reply followed by
 * more bytes from the client, a request that asked to close with more
 * pipelined behind it). So: shut the sending side (the FIN follows the
 * last byte written), then read and discard until the client closes too,
 * or ms pass (SC_CONN_LINGER_MS in the servers), then sc_conn_close().
 * The server calls it only once nothing is queued and no request, job or
 * write holds the connection, and must not restart the timer or reading
 * afterwards (check c->lingering): both are the linger's. A stopping
 * server closes with its own close instead (RESP's also leaves its wait
 * list), so the servers decide that, not this. Does nothing if c is
 * closed or already lingering. */
#define SC_CONN_LINGER_MS 2000
void sc_conn_linger(sc_conn *c, unsigned ms);

/* Starts a stop: no new connections should be accepted (the server checks
 * set->stopping), the listener is closed, and once it and every connection
 * are closed, free_owner(owner) and then done(arg) (if not NULL) run,
 * exactly once, from a close callback or the last sc_conn_unref(). The
 * server closes or drains its connections itself, before or after. */
void sc_conns_stop(sc_conns *set, void (*done)(void *arg), void *arg);

#endif
