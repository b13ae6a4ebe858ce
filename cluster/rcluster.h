/* A Redis Cluster client (issue 15's first part), over Debian's hiredis
 * (synchronous API): the slot map from CLUSTER SLOTS, one connection per
 * node opened on first use, MOVED and ASK redirections, and reconnecting
 * and re-reading the map when a node fails or the cluster fails over.
 *
 * A command goes to the master of its key's slot (CRC16-XMODEM of the key,
 * or of its {hash tag}, mod 16384, as Redis computes it). Replies:
 *   MOVED slot host:port   the map is stale: the slot is noted as moved and
 *                          the whole map re-read (a resharding or failover
 *                          usually moved more than one slot), then retried;
 *   ASK slot host:port     the slot is being migrated: retried once on that
 *                          node after ASKING, the map unchanged;
 *   TRYAGAIN, CLUSTERDOWN, a lost or refused connection, a timeout: the map
 *                          is re-read and the command retried after
 *                          retry_wait_ms, at most max_attempts times in all.
 * Any other reply, errors included, is the caller's. A command that was
 * sent but whose reply was lost (a timeout) may have run: callers retry
 * only idempotent commands, or accept a repeat.
 *
 * Bounded: every connect and command waits at most timeout_ms, a command
 * at most max_attempts * (timeout_ms + retry_wait_ms) in all; at most
 * SC_RC_MAX_NODES nodes. The password (AUTH on every new connection) is
 * never logged. Not thread-safe: one client per thread, or a lock. */
#ifndef SC_RCLUSTER_H
#define SC_RCLUSTER_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define SC_RC_SLOTS 16384
#define SC_RC_MAX_NODES 256

typedef struct sc_rc sc_rc;

typedef struct sc_rc_opts {
    const char *seeds;          /* "host:port[,host:port...]", at least one */
    const char *password;       /* NULL or "": no AUTH */
    int timeout_ms;             /* connect and reply timeout; 0 = 1000 */
    int max_attempts;           /* tries per command (redirections count); 0 = 8 */
    int retry_wait_ms;          /* pause before a retry after a failure; 0 = 100 */
} sc_rc_opts;

typedef struct sc_rc_stats {
    uint64_t moved, ask;        /* redirections followed */
    uint64_t reconnects;        /* connections lost or refused, then retried */
    uint64_t refreshes;         /* slot maps read */
    uint64_t failures;          /* commands given up after max_attempts */
} sc_rc_stats;

/* Connects to a seed and reads the slot map. SC_EINVAL (a seed list that
 * does not parse), SC_EUPSTREAM (no seed answered CLUSTER SLOTS with a map
 * covering every slot; err names the seeds and the last error). */
int sc_rc_open(sc_rc **out, const sc_rc_opts *opts, char *err, size_t errlen);
void sc_rc_close(sc_rc *rc);

/* The cluster slot of a key (hash tags honoured). */
uint16_t sc_rc_slot(const char *key, size_t len);

/* Runs argv (argc words; lens may be NULL for NUL-terminated words) on the
 * master of key's slot. Returns the reply (free it with freeReplyObject),
 * or NULL with *err set (SC_EUPSTREAM: no node could run it within
 * max_attempts; SC_EINVAL). */
redisReply *sc_rc_command(sc_rc *rc, const char *key, size_t keylen, int argc, const char **argv,
                          const size_t *lens, int *err);

/* Runs argv on node addr ("host:port", e.g. from sc_rc_masters: SCAN,
 * DBSIZE), with the same reconnect and retry rules but no redirection. */
redisReply *sc_rc_command_node(sc_rc *rc, const char *addr, int argc, const char **argv, const size_t *lens,
                               int *err);

/* Reads the slot map again from any node that answers. 0 or SC_EUPSTREAM. */
int sc_rc_refresh(sc_rc *rc);

/* The masters of the current map as "host:port", up to max; returns how
 * many there are. */
size_t sc_rc_masters(const sc_rc *rc, char (*addrs)[64], size_t max);

void sc_rc_stats_get(const sc_rc *rc, sc_rc_stats *st);

/* Test hook: points every slot at node addr ("host:port"), the stale map a
 * client has after a resharding it did not see. */
void sc_rc__test_point_all(sc_rc *rc, const char *addr);

#endif
