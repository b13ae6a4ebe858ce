/* semcache-example: the smallest useful libsemcache program. It stores a
 * question and its answer in a namespace, asks a differently worded
 * question, prints what the cache answers and with which similarity, and
 * deletes the entry again.
 *
 *     build/semcache-example [HOST [PORT]]      (default 127.0.0.1 6380)
 *
 * Exit status: 0 on success, 1 on a miss, 3 when the server cannot be
 * reached or reports an error. */
#include "semcache.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 6380;
    semcache *c;
    int rc = semcache_connect(&c, host, port, 2000);
    if (rc) {
        fprintf(stderr, "cannot connect to %s:%d: %s\n", host, port, semcache_strerror(rc));
        return 3;
    }
    uint64_t id;
    rc = semcache_set(c, "example", "How do I reset my password?", SEMCACHE_NTS,
                      "Click 'Forgot password' on the sign-in page.", SEMCACHE_NTS, 3600, &id);
    if (rc) {
        fprintf(stderr, "set: %s\n", semcache_last_error(c));
        semcache_close(c);
        return 3;
    }
    printf("stored entry %llu\n", (unsigned long long)id);

    /* The same question, worded differently; accept a looser match. */
    const char *q = "how do i reset my password";
    semcache_hit hit;
    rc = semcache_get(c, "example", q, SEMCACHE_NTS, 0.5, &hit);
    if (rc == SEMCACHE_OK) {
        printf("%s -> %.*s (similarity %.3f, entry %llu)\n", q, (int)hit.response_len, hit.response,
               hit.similarity, (unsigned long long)hit.id);
        semcache_hit_clear(&hit);
    } else if (rc == SEMCACHE_ENOTFOUND) {
        printf("%s -> miss\n", q);
    } else {
        fprintf(stderr, "get: %s\n", semcache_last_error(c));
    }
    int drc = semcache_del(c, "example", id);
    if (drc && drc != SEMCACHE_ENOTFOUND) fprintf(stderr, "del: %s\n", semcache_last_error(c));
    semcache_close(c);
    return rc == SEMCACHE_OK ? 0 : rc == SEMCACHE_ENOTFOUND ? 1 : 3;
}
