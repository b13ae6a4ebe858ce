/* Unit tests for server/resp_parse.c: multibulk and inline commands, input
 * split at every byte, pipelining, quoting, and every bound and malformed
 * frame turning into SC_EPROTO / SC_ETOOBIG instead of a crash. */
#include "tap.h"
#include "common/err.h"
#include "server/resp_parse.h"

#include <stdlib.h>
#include <string.h>

/* Feeds s in pieces of `step` bytes; collects up to max commands. Returns
 * the parse result of the last call. */
static int feed(sc_resp_parser *p, const char *s, size_t n, size_t step, sc_resp_cmd **cmds,
                size_t max, size_t *ncmds)
{
    size_t off = 0;
    *ncmds = 0;
    while (off < n) {
        size_t piece = n - off < step ? n - off : step;
        size_t pos = 0;
        while (pos < piece) {
            size_t used;
            sc_resp_cmd *c;
            int rc = sc_resp_parse(p, s + off + pos, piece - pos, &used, &c);
            if (rc) return rc;
            pos += used;
            if (c) {
                if (*ncmds < max)
                    cmds[(*ncmds)++] = c;
                else
                    sc_resp_cmd_free(c);
            }
        }
        off += piece;
    }
    return SC_OK;
}

static int arg_is(const sc_resp_cmd *c, size_t i, const char *want)
{
    return i < c->argc && c->len[i] == strlen(want) && memcmp(c->argv[i], want, c->len[i]) == 0 &&
           c->argv[i][c->len[i]] == '\0';
}

static void free_all(sc_resp_cmd **cmds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sc_resp_cmd_free(cmds[i]);
}

SC_TEST(resp_parse_multibulk_any_split)
{
    const char *in = "*3\r\n$7\r\nSEM.GET\r\n$2\r\nns\r\n$11\r\nhello world\r\n"
                     "*1\r\n$4\r\nPING\r\n";
    for (size_t step = 1; step <= strlen(in); step++) {
        sc_resp_parser p;
        sc_resp_parser_init(&p, NULL);
        sc_resp_cmd *cmds[4];
        size_t n;
        CHECK_OK(feed(&p, in, strlen(in), step, cmds, 4, &n));
        CHECK_EQ_INT(n, 2);
        if (n == 2) {
            CHECK_EQ_INT(cmds[0]->argc, 3);
            CHECK(arg_is(cmds[0], 0, "SEM.GET"));
            CHECK(arg_is(cmds[0], 1, "ns"));
            CHECK(arg_is(cmds[0], 2, "hello world"));
            CHECK_EQ_INT(cmds[0]->bytes, 20);
            CHECK_EQ_INT(cmds[1]->argc, 1);
            CHECK(arg_is(cmds[1], 0, "PING"));
        }
        free_all(cmds, n);
        sc_resp_parser_free(&p);
    }
}

SC_TEST(resp_parse_pipelined_returns_one_at_a_time)
{
    const char *in = "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\nPING\r\n";
    sc_resp_parser p;
    sc_resp_parser_init(&p, NULL);
    size_t used, off = 0, n = strlen(in);
    sc_resp_cmd *c;
    CHECK_OK(sc_resp_parse(&p, in, n, &used, &c));
    REQUIRE(c != NULL);
    CHECK_EQ_INT(used, 14);
    sc_resp_cmd_free(c);
    off += used;
    CHECK_OK(sc_resp_parse(&p, in + off, n - off, &used, &c));
    REQUIRE(c != NULL);
    CHECK(arg_is(c, 1, ""));
    sc_resp_cmd_free(c);
    off += used;
    CHECK_OK(sc_resp_parse(&p, in + off, n - off, &used, &c));
    REQUIRE(c != NULL);
    CHECK(arg_is(c, 0, "PING"));
    CHECK_EQ_INT(off + used, n);
    sc_resp_cmd_free(c);
    sc_resp_parser_free(&p);
}

SC_TEST(resp_parse_binary_and_empty_arrays)
{
    const char in[] = "*0\r\n*-1\r\n*2\r\n$3\r\nSET\r\n$5\r\na\0b\r\n\r\n";
    sc_resp_parser p;
    sc_resp_parser_init(&p, NULL);
    sc_resp_cmd *cmds[2];
    size_t n;
    CHECK_OK(feed(&p, in, sizeof in - 1, 3, cmds, 2, &n));
    REQUIRE(n == 1);
    CHECK_EQ_INT(cmds[0]->len[1], 5);
    CHECK(memcmp(cmds[0]->argv[1], "a\0b\r\n", 5) == 0);
    free_all(cmds, n);
    sc_resp_parser_free(&p);
}

SC_TEST(resp_parse_inline_and_quotes)
{
    const char *in =
        "\r\n   \nPING\r\nset a 'b c' \"d\\ne\\x41\" 'it\\'s'\n  SEM.GET  ns  \"\"  \r\n";
    for (size_t step = 1; step <= strlen(in); step += 3) {
        sc_resp_parser p;
        sc_resp_parser_init(&p, NULL);
        sc_resp_cmd *cmds[4];
        size_t n;
        CHECK_OK(feed(&p, in, strlen(in), step, cmds, 4, &n));
        CHECK_EQ_INT(n, 3);
        if (n == 3) {
            CHECK_EQ_INT(cmds[0]->argc, 1);
            CHECK(arg_is(cmds[0], 0, "PING"));
            CHECK_EQ_INT(cmds[1]->argc, 5);
            CHECK(arg_is(cmds[1], 2, "b c"));
            CHECK(arg_is(cmds[1], 3, "d\neA"));
            CHECK(arg_is(cmds[1], 4, "it's"));
            CHECK_EQ_INT(cmds[2]->argc, 3);
            CHECK(arg_is(cmds[2], 2, ""));
        }
        free_all(cmds, n);
        sc_resp_parser_free(&p);
    }
}

static int parse_all(const char *in, size_t len, const sc_resp_limits *lim, char *err,
                     size_t errlen)
{
    sc_resp_parser p;
    sc_resp_parser_init(&p, lim);
    sc_resp_cmd *cmds[8];
    size_t n;
    int rc = feed(&p, in, len, len ? len : 1, cmds, 8, &n);
    free_all(cmds, n);
    if (err) snprintf(err, errlen, "%s", p.err);
    if (rc) {
        /* A dead parser keeps failing. */
        size_t used;
        sc_resp_cmd *c;
        CHECK_EQ_INT(sc_resp_parse(&p, "*1\r\n$4\r\nPING\r\n", 14, &used, &c), rc);
        CHECK(c == NULL);
    }
    sc_resp_parser_free(&p);
    return rc;
}

SC_TEST(resp_parse_malformed_frames)
{
    char err[SC_RESP_ERR_MAX];
    CHECK_EQ_INT(parse_all("*x\r\n", 4, NULL, err, sizeof err), SC_EPROTO);
    CHECK(strstr(err, "invalid multibulk length") != NULL);
    CHECK_EQ_INT(parse_all("*1\r\n+PING\r\n", 11, NULL, err, sizeof err), SC_EPROTO);
    CHECK(strstr(err, "expected '$', got '+'") != NULL);
    /* Nested arrays are not requests. */
    CHECK_EQ_INT(parse_all("*1\r\n*1\r\n$1\r\na\r\n", 15, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*1\r\n$-1\r\n", 9, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*1\r\n$abc\r\n", 10, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*1\r\n$3\r\nabcd\r\n", 14, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*1\n$3\r\nabc\r\n", 12, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*1\r\n$3\r\nabc\n\n", 13, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*\r\n", 3, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*-\r\n", 4, NULL, NULL, 0), SC_EPROTO);
    /* An endless digit run is caught within the 32-byte line buffer. */
    char digits[200];
    digits[0] = '*';
    memset(digits + 1, '9', sizeof digits - 1);
    CHECK_EQ_INT(parse_all(digits, sizeof digits, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("*99999999999999999999999\r\n", 26, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("PING \"abc\r\n", 11, NULL, err, sizeof err), SC_EPROTO);
    CHECK(strstr(err, "unbalanced quotes") != NULL);
    CHECK_EQ_INT(parse_all("SET \"a\"b\r\n", 10, NULL, NULL, 0), SC_EPROTO);
    CHECK_EQ_INT(parse_all("SET 'a\r\n", 8, NULL, NULL, 0), SC_EPROTO);
}

SC_TEST(resp_parse_bounds)
{
    sc_resp_limits lim = {.max_args = 3, .max_bulk = 10, .max_inline = 16, .max_total = 15};
    char err[SC_RESP_ERR_MAX];
    CHECK_OK(parse_all("*3\r\n$1\r\na\r\n$1\r\nb\r\n$10\r\n0123456789\r\n", 34, &lim, NULL, 0));
    CHECK_EQ_INT(parse_all("*4\r\n", 4, &lim, err, sizeof err), SC_ETOOBIG);
    CHECK(strstr(err, "invalid multibulk length") != NULL);
    CHECK_EQ_INT(parse_all("*1\r\n$11\r\n", 9, &lim, err, sizeof err), SC_ETOOBIG);
    CHECK(strstr(err, "invalid bulk length") != NULL);
    CHECK_EQ_INT(parse_all("*2\r\n$10\r\n0123456789\r\n$6\r\n", 26, &lim, err, sizeof err),
                 SC_ETOOBIG);
    CHECK(strstr(err, "command too large") != NULL);
    CHECK_OK(parse_all("a b c\r\n", 7, &lim, NULL, 0));
    CHECK_EQ_INT(parse_all("a b c d\r\n", 9, &lim, NULL, 0), SC_ETOOBIG);
    CHECK_EQ_INT(parse_all("PING 0123456789abcdef", 21, &lim, err, sizeof err), SC_ETOOBIG);
    CHECK(strstr(err, "too big inline request") != NULL);
}

SC_TEST(resp_parse_big_bulk_grows_incrementally)
{
    sc_resp_limits lim = {.max_bulk = 1u << 20};
    size_t len = 300000;
    char head[32];
    int hn = snprintf(head, sizeof head, "*1\r\n$%zu\r\n", len);
    char *in = malloc((size_t)hn + len + 2);
    memcpy(in, head, (size_t)hn);
    for (size_t i = 0; i < len; i++)
        in[hn + (int)i] = (char)('a' + i % 26);
    memcpy(in + hn + len, "\r\n", 2);
    sc_resp_parser p;
    sc_resp_parser_init(&p, &lim);
    sc_resp_cmd *cmds[1];
    size_t n;
    CHECK_OK(feed(&p, in, (size_t)hn + len + 2, 4096, cmds, 1, &n));
    REQUIRE(n == 1);
    CHECK_EQ_INT(cmds[0]->len[0], len);
    CHECK(memcmp(cmds[0]->argv[0], in + hn, len) == 0);
    free_all(cmds, n);
    sc_resp_parser_free(&p);
    free(in);
}

SC_TEST(resp_parse_partial_command_freed)
{
    sc_resp_parser p;
    sc_resp_parser_init(&p, NULL);
    size_t used;
    sc_resp_cmd *c;
    CHECK_OK(sc_resp_parse(&p, "*3\r\n$3\r\nabc\r\n$100\r\nxyz", 22, &used, &c));
    CHECK(c == NULL);
    CHECK_EQ_INT(used, 22);
    sc_resp_parser_free(&p); /* ASan checks nothing leaks */
}
