/* The RESP2 listener: semcached for Redis clients.
 *
 * Commands (ARCHITECTURE section 4): PING [msg], ECHO msg, INFO [section],
 * SEM.SET ns prompt response [EX seconds] -> id (integer),
 * SEM.GET ns prompt [THRESHOLD x] [EXACT] -> nil or [response,
 * similarity (bulk string), id (integer)], SEM.DEL ns id -> 1/0,
 * SEM.FLUSH ns -> count, SEM.STATS -> [name, value, ...], DBSIZE, plus what
 * client libraries send while connecting: HELLO [2] (3 gets -NOPROTO),
 * AUTH, CLIENT SETNAME/GETNAME/SETINFO/ID/INFO/LIST, COMMAND
 * [COUNT|DOCS|INFO|LIST], SELECT 0, CONFIG GET (save, appendonly, ...), QUIT. Anything
 * else: "-ERR unknown command '<name>', with args beginning with: ...".
 * SEM.SET stores into the plain partition (fp 0) of the namespace, with the
 * response as text/plain; SEM.GET answers the stored text (for OpenAI JSON
 * entries written by the proxy: the first choice's message content).
 *
 * Auth: with api-key entries configured, a connection must AUTH (or HELLO
 * 2 AUTH user key) before anything but AUTH/HELLO/QUIT (-NOAUTH). A user
 * key may only name its own namespace: the ns argument must equal the
 * key's namespace, otherwise -NOPERM (an explicit error rather than a
 * silent rewrite, so a misconfigured client notices). An admin key may
 * name any namespace.
 *
 * Pipelining and threads: a connection parses every complete command it
 * has received; commands that need no cache run on the loop thread; a run
 * of commands that touch the cache goes to the libuv thread pool as one
 * batch (one uv_queue_work for up to 128 pipelined commands), and the
 * replies are written from the after-work callback, always in request
 * order. At most cfg->workers batches (of all connections) are in the
 * pool at once, so the HTTP side always has a thread (the pool has
 * workers + 1); more wait for a slot in arrival order, and a batch gives
 * its thread back after 20 ms of work (the rest is queued again behind
 * other work). One batch per connection is in flight at a time; while it runs,
 * input is buffered (up to 1 MiB, then reading pauses) and output waiting
 * for a slow reader pauses command processing past 8 MiB.
 *
 * Bounds: 1024 arguments per command, bulk strings up to cfg->max_body,
 * inline commands up to 64 KiB, cfg->max_body + 1 MiB of arguments per
 * command. Past a bound or on malformed input the connection gets
 * "-ERR Protocol error: ..." and is closed; other connections are not
 * affected. A connection stalled in the middle of a command for
 * idle_timeout_ms is closed; idle connections between commands are kept
 * (Redis clients pool them).
 *
 * Threads: sc_resp_start/stop and the accessors on the loop thread only. */
#ifndef SC_RESP_H
#define SC_RESP_H

#include "common/config.h"
#include "server/auth.h"
#include "server/cache.h"

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

typedef struct sc_resp sc_resp;

/* Binds cfg->bind:cfg->resp_port and starts accepting. cache and auth
 * (auth may be NULL = no auth) must outlive the listener. On failure err
 * says why ("cannot listen on 127.0.0.1:6380: address already in use"). */
int sc_resp_start(sc_resp **out, uv_loop_t *loop, const sc_config *cfg, sc_cache *cache,
                  const sc_auth *auth, char *err, size_t errlen);

/* Where SEM.GETs that skipped the semantic layer are counted: a batch
 * that waited over cfg->max_queue_ms for a thread answers exact hits only,
 * and a miss gets "-OVERLOADED ..." (the caller may retry). NULL: not
 * counted. Before the first connection. */
void sc_resp_count_overloads(sc_resp *r, atomic_ullong *counter);

/* The bound port. */
int sc_resp_port(const sc_resp *r);
/* Connections open now. */
size_t sc_resp_conns(const sc_resp *r);

/* Stops accepting, lets batches in flight finish (their replies are still
 * written), closes every connection, then calls done(arg) and frees r. */
void sc_resp_stop(sc_resp *r, void (*done)(void *arg), void *arg);

#endif
