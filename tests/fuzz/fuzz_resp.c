/* libFuzzer target for the RESP2 request parser (server/resp_parse.c).
 *
 * The input is parsed twice with small limits: once in one piece and once
 * split into pieces whose sizes come from the input itself. Both runs must
 * agree on every command and on the final error, every command must
 * respect the limits, and nothing may leak or read out of bounds (run under
 * ASan by tests/fuzz/run.sh). Built with -DFUZZ_STANDALONE it is a plain
 * program that runs the files given as arguments, or a fixed-seed stream of
 * mutated valid requests (see main() below). */
// fuzz-sources: server/resp_parse.c common/buf.c common/alloc.c common/err.c common/log.c
#include "common/err.h"
#include "server/resp_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CMDS 64

typedef struct run {
    sc_resp_cmd *cmds[MAX_CMDS];
    size_t n;
    int rc;
} run;

static const sc_resp_limits lim = {
    .max_args = 8, .max_bulk = 64, .max_inline = 128, .max_total = 200};

static void parse(const uint8_t *d, size_t n, const uint8_t *steps, size_t nsteps, run *r)
{
    sc_resp_parser p;
    sc_resp_parser_init(&p, &lim);
    memset(r, 0, sizeof *r);
    size_t off = 0, k = 0;
    while (off < n && !r->rc) {
        size_t piece = nsteps ? (size_t)steps[k++ % nsteps] % 17 + 1 : n;
        if (piece > n - off) piece = n - off;
        size_t pos = 0;
        while (pos < piece) {
            size_t used;
            sc_resp_cmd *c;
            r->rc = sc_resp_parse(&p, (const char *)d + off + pos, piece - pos, &used, &c);
            if (r->rc) break;
            if (used == 0 && !c) abort(); /* no progress */
            pos += used;
            if (c) {
                if (c->argc == 0 || c->argc > lim.max_args || c->bytes > lim.max_total) abort();
                for (size_t i = 0; i < c->argc; i++)
                    if (c->len[i] > lim.max_bulk && c->len[i] > lim.max_inline) abort();
                if (r->n < MAX_CMDS)
                    r->cmds[r->n++] = c;
                else
                    sc_resp_cmd_free(c);
            }
        }
        off += piece;
    }
    sc_resp_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run a, b;
    parse(data, size, NULL, 0, &a);
    parse(data, size, data, size < 8 ? size : 8, &b);
    if (a.rc != b.rc || a.n != b.n) abort();
    for (size_t i = 0; i < a.n; i++) {
        if (a.cmds[i]->argc != b.cmds[i]->argc) abort();
        for (size_t j = 0; j < a.cmds[i]->argc; j++)
            if (a.cmds[i]->len[j] != b.cmds[i]->len[j] ||
                memcmp(a.cmds[i]->argv[j], b.cmds[i]->argv[j], a.cmds[i]->len[j]) != 0)
                abort();
        sc_resp_cmd_free(a.cmds[i]);
        sc_resp_cmd_free(b.cmds[i]);
    }
    return 0;
}

#ifdef FUZZ_STANDALONE
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const seeds[] = {
    "*3\r\n$7\r\nSEM.GET\r\n$2\r\nns\r\n$5\r\nhello\r\n",
    "*1\r\n$4\r\nPING\r\nPING\r\n*0\r\n*-1\r\n",
    "SET \"a\\x41\\n\" 'b c' d\r\n\r\n",
    "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
    "*9\r\n",
    "*1\r\n$65\r\n",
    "*1\r\n*1\r\n$1\r\na\r\n",
};

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (run_file(argv[i])) {
                fprintf(stderr, "cannot read %s\n", argv[i]);
                return 1;
            }
        printf("%d files ok\n", argc - 1);
        return 0;
    }
    size_t runs = 200000;
    uint8_t buf[512];
    for (size_t r = 0; r < runs; r++) {
        /* Concatenate a few seeds, then flip, insert or cut some bytes. */
        size_t n = 0;
        int parts = 1 + (int)(next() % 3);
        for (int k = 0; k < parts; k++) {
            const char *sd = seeds[next() % (sizeof seeds / sizeof seeds[0])];
            size_t l = strlen(sd);
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
                buf[at] = "*$\r\n-0123456789 \"'"[next() % 17];
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%zu generated inputs ok\n", runs);
    return 0;
}
#endif
