/* Unit tests for the connection set of server/listen.c: references, the
 * list, when a stop completes (free_owner, then done, exactly once, only
 * after the listener and every connection are closed), and the lingering
 * close. The handles are on a private loop; the linger tests connect one
 * end of a socket pair and hold the other. */
#include "tap.h"
#include "server/listen.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct owner {
    sc_conns set;
    uv_loop_t loop;
    sc_conn c[3];          /* the connections of a test, zeroed */
    int released;          /* release() calls */
    int freed;             /* free_owner() calls */
    int done;              /* done() calls */
    int order_ok;          /* done() ran after free_owner() */
} owner;

static void on_release(sc_conn *c)
{
    owner *o = (owner *)c->set;   /* set is the first member of owner */
    o->released++;
    memset(c, 0xa5, sizeof *c);   /* released: the set must not touch c again */
}

static void on_free_owner(void *p)
{
    ((owner *)p)->freed++;
}

static void on_done(void *p)
{
    owner *o = p;
    o->done++;
    o->order_ok = o->freed == 1;
}

/* The stop completed exactly once, done() after free_owner(). */
static int stopped_once(const owner *o)
{
    return o->freed == 1 && o->done == 1 && o->order_ok;
}

static void setup(owner *o)
{
    memset(o, 0, sizeof *o);
    uv_loop_init(&o->loop);
    sc_conns_init(&o->set, &o->loop, o, on_release, on_free_owner);
    uv_tcp_init(&o->loop, &o->set.listener);
}

SC_TEST(conns_stop_without_connections)
{
    owner o;
    setup(&o);
    sc_conns_stop(&o.set, on_done, &o);
    CHECK(o.set.stopping);
    CHECK_EQ_INT(o.done, 0);   /* the listener's close callback finishes it */
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK(stopped_once(&o));
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}

SC_TEST(conns_list_and_refs)
{
    owner o;
    setup(&o);
    sc_conn *a = &o.c[0], *b = &o.c[1], *c = &o.c[2];
    sc_conn_add(&o.set, a);
    sc_conn_add(&o.set, b);
    sc_conn_add(&o.set, c);
    CHECK_EQ_INT(o.set.n, 3);
    CHECK(o.set.head == c && c->next == b && b->next == a && a->next == NULL);
    CHECK(a->tcp.data == a && a->timer.data == a);

    /* The middle one leaves the list once both handles are closed. */
    sc_conn_close(b);
    sc_conn_close(b);   /* a second close does nothing */
    CHECK(b->closed);
    CHECK_EQ_INT(o.released, 0);   /* close callbacks come from the loop */
    uv_run(&o.loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.set.n, 2);
    CHECK(o.set.head == c && c->next == a && a->prev == c);

    /* A reference held past the close (a worker job) keeps c alive. */
    sc_conn_ref(c);
    sc_conn_close(c);
    sc_conn_close(a);
    uv_run(&o.loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o.released, 2);
    CHECK_EQ_INT(o.set.n, 1);
    CHECK(o.set.head == c && c->next == NULL && c->prev == NULL);
    CHECK_EQ_INT(c->refs, 1);
    sc_conn_unref(c);
    CHECK_EQ_INT(o.released, 3);
    CHECK_EQ_INT(o.set.n, 0);
    CHECK(o.set.head == NULL);
    CHECK_EQ_INT(o.freed, 0);   /* not stopping: the set stays */

    uv_close((uv_handle_t *)&o.set.listener, NULL);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}

SC_TEST(conns_stop_waits_for_last_reference)
{
    owner o;
    setup(&o);
    sc_conn *a = &o.c[0], *b = &o.c[1];
    sc_conn_add(&o.set, a);
    sc_conn_add(&o.set, b);
    sc_conn_ref(b);   /* b has a write in flight */
    sc_conns_stop(&o.set, on_done, &o);
    sc_conn_close(a);
    sc_conn_close(b);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    /* The listener and a are closed; b's last reference is still out. */
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.set.n, 1);
    CHECK_EQ_INT(o.freed, 0);
    CHECK_EQ_INT(o.done, 0);
    sc_conn_unref(b);
    CHECK_EQ_INT(o.released, 2);
    CHECK(stopped_once(&o));
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}

SC_TEST(conns_stop_done_may_be_null)
{
    owner o;
    setup(&o);
    sc_conn *a = &o.c[0];
    sc_conn_add(&o.set, a);
    sc_conn_close(a);
    sc_conns_stop(&o.set, NULL, NULL);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.freed, 1);
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}

/* sc_conn_linger on a connected pair (the test holds the peer's end): the
 * peer sees the FIN at once, what it sends is read and dropped, and its
 * close ends the connection; a peer that neither sends nor closes is
 * dropped when the linger time is up. */
static int open_pair(owner *o, sc_conn *c, int *peer)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return -1;
    sc_conn_add(&o->set, c);
    *peer = sv[1];
    return uv_tcp_open(&c->tcp, sv[0]);
}

SC_TEST(conn_linger_reads_until_the_peer_closes)
{
    owner o;
    setup(&o);
    sc_conn *a = &o.c[0];
    int peer;
    REQUIRE(open_pair(&o, a, &peer) == 0);
    sc_conn_linger(a, 10000);
    sc_conn_linger(a, 10000);   /* a second call does nothing */
    CHECK(a->lingering);
    uv_run(&o.loop, UV_RUN_NOWAIT);
    char b[64];
    CHECK_EQ_INT(read(peer, b, sizeof b), 0);   /* the FIN */
    static char junk[1 << 16];
    CHECK_EQ_INT(write(peer, junk, sizeof junk), (int)sizeof junk);   /* read and dropped */
    uv_run(&o.loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o.released, 0);
    close(peer);
    uv_run(&o.loop, UV_RUN_DEFAULT);   /* ends: the EOF closed it, not the 10 s timer */
    CHECK_EQ_INT(o.released, 1);
    uv_close((uv_handle_t *)&o.set.listener, NULL);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}

SC_TEST(conn_linger_gives_up_after_its_time)
{
    owner o;
    setup(&o);
    sc_conn *a = &o.c[0], *b = &o.c[1];
    int peer, peer_b;
    REQUIRE(open_pair(&o, a, &peer) == 0);
    REQUIRE(open_pair(&o, b, &peer_b) == 0);
    sc_conn_close(b);
    sc_conn_linger(b, 10);   /* closed: nothing */
    CHECK(!b->lingering);
    uint64_t t0 = uv_now(&o.loop);
    sc_conn_linger(a, 50);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o.released, 2);
    CHECK(uv_now(&o.loop) - t0 >= 50);
    close(peer);
    close(peer_b);
    uv_close((uv_handle_t *)&o.set.listener, NULL);
    uv_run(&o.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&o.loop), 0);
}
