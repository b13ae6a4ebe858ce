/* Unit tests for the connection set of server/listen.c: references, the
 * list, and when a stop completes (free_owner, then done, exactly once,
 * only after the listener and every connection are closed). The handles
 * are initialised on a private loop and never connected. */
#include "tap.h"
#include "server/listen.h"

#include <string.h>

typedef struct owner {
    sc_conns set;
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

static void setup(owner *o, uv_loop_t *loop)
{
    memset(o, 0, sizeof *o);
    uv_loop_init(loop);
    sc_conns_init(&o->set, loop, o, on_release, on_free_owner);
    uv_tcp_init(loop, &o->set.listener);
}

SC_TEST(conns_stop_without_connections)
{
    uv_loop_t loop;
    owner o;
    setup(&o, &loop);
    sc_conns_stop(&o.set, on_done, &o);
    CHECK(o.set.stopping);
    CHECK_EQ_INT(o.done, 0);   /* the listener's close callback finishes it */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o.freed, 1);
    CHECK_EQ_INT(o.done, 1);
    CHECK(o.order_ok);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

SC_TEST(conns_list_and_refs)
{
    uv_loop_t loop;
    owner o;
    setup(&o, &loop);
    sc_conn a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    sc_conn_add(&o.set, &a);
    sc_conn_add(&o.set, &b);
    sc_conn_add(&o.set, &c);
    CHECK_EQ_INT(o.set.n, 3);
    CHECK(o.set.head == &c && c.next == &b && b.next == &a && a.next == NULL);
    CHECK(a.tcp.data == &a && a.timer.data == &a);

    /* The middle one leaves the list once both handles are closed. */
    sc_conn_close(&b);
    sc_conn_close(&b);   /* a second close does nothing */
    CHECK(b.closed);
    CHECK_EQ_INT(o.released, 0);   /* close callbacks come from the loop */
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.set.n, 2);
    CHECK(o.set.head == &c && c.next == &a && a.prev == &c);

    /* A reference held past the close (a worker job) keeps c alive. */
    sc_conn_ref(&c);
    sc_conn_close(&c);
    sc_conn_close(&a);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(o.released, 2);
    CHECK_EQ_INT(o.set.n, 1);
    CHECK(o.set.head == &c && c.next == NULL && c.prev == NULL);
    CHECK_EQ_INT(c.refs, 1);
    sc_conn_unref(&c);
    CHECK_EQ_INT(o.released, 3);
    CHECK_EQ_INT(o.set.n, 0);
    CHECK(o.set.head == NULL);
    CHECK_EQ_INT(o.freed, 0);   /* not stopping: the set stays */

    uv_close((uv_handle_t *)&o.set.listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

SC_TEST(conns_stop_waits_for_last_reference)
{
    uv_loop_t loop;
    owner o;
    setup(&o, &loop);
    sc_conn a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    sc_conn_add(&o.set, &a);
    sc_conn_add(&o.set, &b);
    sc_conn_ref(&b);   /* b has a write in flight */
    sc_conns_stop(&o.set, on_done, &o);
    sc_conn_close(&a);
    sc_conn_close(&b);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* The listener and a are closed; b's last reference is still out. */
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.set.n, 1);
    CHECK_EQ_INT(o.freed, 0);
    CHECK_EQ_INT(o.done, 0);
    sc_conn_unref(&b);
    CHECK_EQ_INT(o.released, 2);
    CHECK_EQ_INT(o.freed, 1);
    CHECK_EQ_INT(o.done, 1);
    CHECK(o.order_ok);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

SC_TEST(conns_stop_done_may_be_null)
{
    uv_loop_t loop;
    owner o;
    setup(&o, &loop);
    sc_conn a;
    memset(&a, 0, sizeof a);
    sc_conn_add(&o.set, &a);
    sc_conn_close(&a);
    sc_conns_stop(&o.set, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(o.released, 1);
    CHECK_EQ_INT(o.freed, 1);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}
