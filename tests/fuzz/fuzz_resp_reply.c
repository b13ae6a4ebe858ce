/* libFuzzer target for libsemcache's reply parser (semcache_reply_parse).
 *
 * Every input is parsed as a stream of replies; each prefix of a complete
 * reply must parse as "incomplete" (never an error, never a reply), a
 * complete reply must consume exactly its bytes, and the tree must be
 * freed cleanly (run under ASan by tests/fuzz/run.sh). Built with
 * -DFUZZ_STANDALONE it runs the files given as arguments or a fixed-seed
 * stream of mutated replies. */
// fuzz-sources: client/semcache.c common/buf.c common/alloc.c common/err.c common/log.c
#include "semcache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t off = 0;
    for (int k = 0; k < 64 && off < size; k++) {
        size_t used;
        semcache_reply *r;
        int rc = semcache_reply_parse(p + off, size - off, &used, &r);
        if (rc) {
            if (r || (rc != SEMCACHE_EPROTO && rc != SEMCACHE_ETOOBIG)) abort();
            return 0;
        }
        if (!r) return 0; /* incomplete */
        if (used == 0 || used > size - off) abort();
        /* Every strict prefix of a complete reply is incomplete. */
        size_t cut = used / 2;
        size_t u2;
        semcache_reply *r2;
        if (semcache_reply_parse(p + off, cut, &u2, &r2) != SEMCACHE_OK || r2) abort();
        semcache_reply_free(r);
        off += used;
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const seeds[] = {
    "*3\r\n$5\r\nhello\r\n$8\r\n0.912345\r\n:17\r\n",
    "+OK\r\n",
    "-ERR x\r\n",
    ":-5\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*2\r\n*1\r\n:1\r\n$0\r\n\r\n",
    "$3\r\na\0b\r\n",
};

int main(int argc, char **argv)
{
    if (argc > 1) {
        static uint8_t buf[1 << 20];
        for (int i = 1; i < argc; i++) {
            FILE *f = fopen(argv[i], "rb");
            if (!f) return 1;
            size_t n = fread(buf, 1, sizeof buf, f);
            fclose(f);
            LLVMFuzzerTestOneInput(buf, n);
        }
        printf("%d files ok\n", argc - 1);
        return 0;
    }
    size_t runs = 200000;
    uint8_t buf[512];
    for (size_t r = 0; r < runs; r++) {
        size_t n = 0;
        int parts = 1 + (int)(next() % 4);
        for (int k = 0; k < parts; k++) {
            const char *sd = seeds[next() % (sizeof seeds / sizeof seeds[0])];
            size_t l = strlen(sd) + (sd[1] == '3' && sd[0] == '$' ? 4 : 0);
            if (n + l > sizeof buf) break;
            memcpy(buf + n, sd, l);
            n += l;
        }
        int muts = (int)(next() % 4);
        for (int k = 0; k < muts && n > 0; k++) {
            size_t at = next() % n;
            switch (next() % 3) {
            case 0:
                buf[at] = (uint8_t)next();
                break;
            case 1:
                n = at;
                break;
            default:
                buf[at] = "*$+-:\r\n0123456789"[next() % 17];
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%zu generated inputs ok\n", runs);
    return 0;
}
#endif
