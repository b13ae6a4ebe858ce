/* libsemcache: a small blocking C client for semcached's RESP port.
 *
 * semcached is a semantic response cache: SEM.SET stores a prompt and its
 * answer in a namespace; SEM.GET finds the stored answer of the same or a
 * semantically close prompt. This library speaks RESP2 over TCP, so it
 * works against any semcached RESP listener (default port 6380).
 *
 *     semcache *c;
 *     if (semcache_connect(&c, "127.0.0.1", 6380, 2000) == SEMCACHE_OK) {
 *         uint64_t id;
 *         semcache_set(c, "faq", "How do I reset my password?", SEMCACHE_NTS,
 *                      "Use the 'forgot password' link.", SEMCACHE_NTS, 0, &id);
 *         semcache_hit hit;
 *         if (semcache_get(c, "faq", "how can I reset my password", SEMCACHE_NTS, -1, &hit) ==
 * SEMCACHE_OK) { printf("%.*s (%.3f)\n", (int)hit.response_len, hit.response, hit.similarity);
 *             semcache_hit_clear(&hit);
 *         }
 *         semcache_close(c);
 *     }
 *
 * Errors: every function returns SEMCACHE_OK (0) or a negative
 * SEMCACHE_E* code (the same values as the server's own SC_E* codes).
 * semcache_strerror() names a code; semcache_last_error() gives the text of
 * the last failure on a handle (the server's message for error replies).
 * A miss (SEM.GET) or an absent entry (SEM.DEL) is SEMCACHE_ENOTFOUND.
 * After SEMCACHE_EIO, SEMCACHE_ETIMEOUT or SEMCACHE_EPROTO the connection
 * is out of step with the server and is closed: every later call returns
 * SEMCACHE_ECLOSED; semcache_close() it and connect again.
 *
 * Ownership: memory handed out (semcache_hit.response, semcache_reply,
 * the semcache_stat array) belongs to the caller and stays valid until
 * released with the matching function (semcache_hit_clear(),
 * semcache_reply_free(), free()); it does not depend on the handle.
 * Strings passed in are only read during the call.
 *
 * Threads: a handle is used by one thread at a time; separate handles are
 * independent. Calls block for at most timeout_ms per network wait (0 = no
 * limit). SIGPIPE: writes use MSG_NOSIGNAL, so a closed socket never
 * raises it.
 *
 * Linking: cc app.c -I<semcached>/include <build>/libsemcache.a (libc
 * only). The library defines no global symbol but the functions declared
 * here: the build derives its export list from this header, so every
 * public function must be declared in it, named semcache_*. */
#ifndef SEMCACHE_H
#define SEMCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative; equal to semcached's SC_E* values). */
#define SEMCACHE_OK 0
#define SEMCACHE_ENOMEM (-999)     /* out of memory */
#define SEMCACHE_EINVAL (-998)     /* bad argument, or the server rejected the command (-ERR) */
#define SEMCACHE_ENOTFOUND (-997)  /* miss / no such entry */
#define SEMCACHE_ETOOBIG (-996)    /* a value or reply over the limits */
#define SEMCACHE_EIO (-995)        /* cannot connect, connection lost, or a server-side I/O error */
#define SEMCACHE_ETIMEOUT (-992)   /* no answer within timeout_ms */
#define SEMCACHE_EAUTH (-990)      /* authentication required or the key was refused */
#define SEMCACHE_EFORBIDDEN (-989) /* the key may not use that namespace */
#define SEMCACHE_EPROTO (-988)     /* the peer does not speak RESP as expected */
#define SEMCACHE_ECLOSED (-985)    /* the handle's connection was closed after an error */

/* Pass as a length to mean "NUL-terminated string". */
#define SEMCACHE_NTS ((size_t)-1)

typedef struct semcache semcache;

/* Connects to host:port (a name or an IPv4/IPv6 address), waiting at most
 * timeout_ms (0 = the system's connect timeout) for the connection and,
 * later, for every network wait of each call. On success *out is a new
 * handle; release it with semcache_close(). On failure *out is NULL and the
 * code says why (SEMCACHE_EIO, with errno set to the system's reason such
 * as ECONNREFUSED; SEMCACHE_ETIMEOUT; SEMCACHE_EINVAL for an unresolvable
 * host or a bad port). */
int semcache_connect(semcache **out, const char *host, int port, int timeout_ms);

/* Closes the connection and frees the handle (NULL is fine). */
void semcache_close(semcache *c);

/* Sends AUTH key (needed when the server has api-key entries). */
int semcache_auth(semcache *c, const char *key);

/* The message of the last failed call on c (a static "" if none). Valid
 * until the next call on c. */
const char *semcache_last_error(const semcache *c);

/* A static English message for an error code. */
const char *semcache_strerror(int code);

/* Stores response for prompt in namespace ns. ttl_s > 0 sets an expiry in
 * seconds (0 = the server's default). On success *id (if id is not NULL)
 * is the new entry's id. Lengths may be SEMCACHE_NTS. */
int semcache_set(semcache *c, const char *ns, const char *prompt, size_t prompt_len,
                 const char *response, size_t response_len, long long ttl_s, uint64_t *id);

/* A lookup hit. response is malloc'ed and NUL-terminated (it may contain
 * NULs; use response_len). Release with semcache_hit_clear(). */
typedef struct semcache_hit {
    char *response;
    size_t response_len;
    double similarity; /* the server's similarity (the cosine; with semcache-embed on its score scale, 1 - (1 - cos)^1.75); 1 for an exact hit */
    uint64_t id;
    char request[17];  /* the decision's request id, for semcache_feedback ("" from older servers) */
} semcache_hit;

/* Looks prompt up in ns. threshold in [0,1], or < 0 for the server's
 * configured one. SEMCACHE_OK fills *hit; SEMCACHE_ENOTFOUND is a miss
 * (*hit zeroed). */
int semcache_get(semcache *c, const char *ns, const char *prompt, size_t prompt_len,
                 double threshold, semcache_hit *hit);
void semcache_hit_clear(semcache_hit *hit);

/* A verdict on a hit (SEM.FEEDBACK): request is hit.request, correct 1 or
 * 0. SEMCACHE_ENOTFOUND for an unknown request id. */
int semcache_feedback(semcache *c, const char *ns, const char *request, int correct);

/* Deletes entry id of ns; SEMCACHE_ENOTFOUND when there was none. */
int semcache_del(semcache *c, const char *ns, uint64_t id);

/* Deletes every entry of ns; *count (if not NULL) is how many. */
int semcache_flush(semcache *c, const char *ns, uint64_t *count);

/* Server statistics (SEM.STATS) as name/value text pairs. *stats is one
 * malloc'ed block holding the array and its strings: free(*stats). */
typedef struct semcache_stat {
    const char *name;
    const char *value;
} semcache_stat;
int semcache_stats(semcache *c, semcache_stat **stats, size_t *n);

/* ---- Generic commands and pipelining -------------------------------- */

enum semcache_reply_type {
    SEMCACHE_REPLY_STATUS = 1, /* +OK */
    SEMCACHE_REPLY_ERROR,      /* -ERR ... (str holds the whole line) */
    SEMCACHE_REPLY_INTEGER,    /* :42 */
    SEMCACHE_REPLY_STRING,     /* $3 abc */
    SEMCACHE_REPLY_NIL,        /* $-1 or *-1 */
    SEMCACHE_REPLY_ARRAY,      /* *N ... */
};

/* A parsed reply. str is NUL-terminated (STATUS, ERROR, STRING); elem has
 * n entries (ARRAY). The caller owns the tree: semcache_reply_free(). */
typedef struct semcache_reply {
    int type;
    long long integer;
    char *str;
    size_t len;
    size_t n;
    struct semcache_reply **elem;
} semcache_reply;

void semcache_reply_free(semcache_reply *r);

/* Sends one command (argv[i] of lens[i] bytes; lens may be NULL for NUL-
 * terminated strings) and reads its reply. An error reply from the server
 * is not a failure here: rc 0 and (*out)->type == SEMCACHE_REPLY_ERROR.
 * Replies of commands appended earlier and not read yet are read and
 * dropped first (so do not mix this with unread semcache_append()s). */
int semcache_command(semcache *c, int argc, const char *const *argv, const size_t *lens,
                     semcache_reply **out);

/* Pipelining: semcache_append() queues a command without waiting;
 * semcache_read_reply() sends whatever is queued and reads the next reply
 * (replies come back in the order the commands were appended). */
int semcache_append(semcache *c, int argc, const char *const *argv, const size_t *lens);
int semcache_read_reply(semcache *c, semcache_reply **out);
/* Commands appended whose replies were not read yet. */
size_t semcache_pending(const semcache *c);

/* Parses one RESP2 reply from buf[0..len) without I/O (for callers doing
 * their own networking). SEMCACHE_OK with *out NULL means "incomplete";
 * with *out set, *used bytes were consumed. SEMCACHE_EPROTO for malformed
 * input, SEMCACHE_ETOOBIG past the limits (bulk 512 MiB, 1M array
 * elements, nesting depth 16; a handle also refuses to buffer more than
 * 1 GiB for one reply). */
int semcache_reply_parse(const char *buf, size_t len, size_t *used, semcache_reply **out);

#ifdef __cplusplus
}
#endif

#endif
