/* Unit tests for libsemcache (client/semcache.c) and the CLI's JSON helpers
 * (client/cli_json.c): the pure reply parser (every type, every prefix
 * incomplete, malformed input, limits), the typed calls against a scripted
 * fake server thread (argument encoding, error-reply mapping, pipelining,
 * timeouts, a server that hangs up), and import-line parsing. */
#include "tap.h"
#include "client/cli_http.h"
#include "client/cli_json.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"
#include "semcache.h"
#include "server/resp_parse.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------
 * Reply parser
 * ------------------------------------------------------------------- */

SC_TEST(client_reply_parse_types)
{
    static const char in[] =
        "*6\r\n+OK\r\n-ERR bad thing\r\n:-42\r\n$5\r\nhe\0lo\r\n$-1\r\n*2\r\n*0\r\n*-1\r\n";
    size_t n = sizeof in - 1;
    semcache_reply *r;
    size_t used;
    /* Every strict prefix is incomplete, never an error. */
    for (size_t k = 0; k < n; k++) {
        CHECK_OK(semcache_reply_parse(in, k, &used, &r));
        CHECK(r == NULL);
    }
    CHECK_OK(semcache_reply_parse(in, n, &used, &r));
    REQUIRE(r != NULL);
    CHECK_EQ_INT(used, n);
    CHECK_EQ_INT(r->type, SEMCACHE_REPLY_ARRAY);
    REQUIRE(r->n == 6);
    CHECK_EQ_INT(r->elem[0]->type, SEMCACHE_REPLY_STATUS);
    CHECK(strcmp(r->elem[0]->str, "OK") == 0);
    CHECK_EQ_INT(r->elem[1]->type, SEMCACHE_REPLY_ERROR);
    CHECK(strcmp(r->elem[1]->str, "ERR bad thing") == 0);
    CHECK_EQ_INT(r->elem[2]->integer, -42);
    CHECK_EQ_INT(r->elem[3]->len, 5);
    CHECK(memcmp(r->elem[3]->str, "he\0lo", 5) == 0);
    CHECK_EQ_INT(r->elem[4]->type, SEMCACHE_REPLY_NIL);
    CHECK_EQ_INT(r->elem[5]->n, 2);
    CHECK_EQ_INT(r->elem[5]->elem[0]->type, SEMCACHE_REPLY_ARRAY);
    CHECK_EQ_INT(r->elem[5]->elem[1]->type, SEMCACHE_REPLY_NIL);
    semcache_reply_free(r);
}

SC_TEST(client_reply_parse_malformed)
{
    semcache_reply *r;
    size_t used;
    CHECK_EQ_INT(semcache_reply_parse("?x\r\n", 4, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse(":12a\r\n", 6, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse("$3\r\nabcd\r\n", 10, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse("$-2\r\n", 5, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse("+OK\n", 4, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse("*1\r\n?\r\n", 7, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse(":99999999999999999999\r\n", 23, &used, &r), SEMCACHE_EPROTO);
    CHECK_EQ_INT(semcache_reply_parse("$999999999999\r\n", 15, &used, &r), SEMCACHE_ETOOBIG);
    CHECK_EQ_INT(semcache_reply_parse("*9999999\r\n", 10, &used, &r), SEMCACHE_ETOOBIG);
    /* Nesting deeper than 16 is refused. */
    char deep[128];
    size_t k = 0;
    for (int i = 0; i < 18; i++)
        k += (size_t)snprintf(deep + k, sizeof deep - k, "*1\r\n");
    CHECK_EQ_INT(semcache_reply_parse(deep, k, &used, &r), SEMCACHE_ETOOBIG);
    CHECK(r == NULL);
}

/* ---------------------------------------------------------------------
 * A scripted fake server
 * ------------------------------------------------------------------- */

#define SCRIPT_CLOSE "<close>"
#define SCRIPT_SILENT "<silent>"

typedef struct fake {
    int lfd, port;
    const char *const *script; /* one reply per received command */
    size_t nscript;
    sc_buf seen; /* commands received, as "a b c\n" lines */
    pthread_t th;
} fake;

static void *fake_run(void *arg)
{
    fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    sc_resp_parser p;
    sc_resp_parser_init(&p, NULL);
    size_t k = 0;
    char buf[4096];
    int done = 0;
    while (!done) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        size_t off = 0;
        while (off < (size_t)n && !done) {
            size_t used;
            sc_resp_cmd *c;
            if (sc_resp_parse(&p, buf + off, (size_t)n - off, &used, &c)) {
                done = 1;
                break;
            }
            off += used;
            if (!c) continue;
            for (size_t i = 0; i < c->argc; i++) {
                sc_buf_append(&f->seen, c->argv[i], c->len[i]);
                sc_buf_append(&f->seen, i + 1 < c->argc ? " " : "\n", 1);
            }
            sc_resp_cmd_free(c);
            const char *reply = k < f->nscript ? f->script[k++] : SCRIPT_CLOSE;
            if (!strcmp(reply, SCRIPT_CLOSE))
                done = 1;
            else if (strcmp(reply, SCRIPT_SILENT) != 0 && write(fd, reply, strlen(reply)) < 0)
                done = 1;
        }
    }
    sc_resp_parser_free(&p);
    close(fd);
    return NULL;
}

static void fake_start(fake *f, const char *const *script, size_t n)
{
    memset(f, 0, sizeof *f);
    f->script = script;
    f->nscript = n;
    sc_buf_init(&f->seen, 1 << 20);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(f->lfd, (struct sockaddr *)&a, sizeof a);
    listen(f->lfd, 1);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    pthread_create(&f->th, NULL, fake_run, f);
}

static void fake_stop(fake *f)
{
    pthread_join(f->th, NULL);
    close(f->lfd);
}

SC_TEST(client_typed_calls_against_fake_server)
{
    static const char *const script[] = {
        "+OK\r\n",                                        /* AUTH */
        ":17\r\n",                                        /* SEM.SET */
        "*3\r\n$5\r\nhello\r\n$8\r\n0.912345\r\n:17\r\n", /* SEM.GET (an older server) */
        "*4\r\n$2\r\nhi\r\n$8\r\n1.000000\r\n:18\r\n$16\r\n0123456789abcdef\r\n", /* SEM.GET */
        "+OK\r\n",                                                        /* SEM.FEEDBACK */
        "-ERR no served hit with that request id in this namespace\r\n", /* SEM.FEEDBACK */
        "$-1\r\n",                                        /* SEM.GET miss */
        ":0\r\n",                                         /* SEM.DEL */
        ":1\r\n",                                         /* SEM.DEL */
        ":5\r\n",                                         /* SEM.FLUSH */
        "*6\r\n$7\r\nentries\r\n:3\r\n$9\r\nhit_ratio\r\n$6\r\n0.5000\r\n$8\r\nembedder\r\n$"
        "6\r\nhash/1\r\n",
        "-NOPERM this key may only use namespace 'a'\r\n",   /* SEM.GET */
        "-ERR invalid expire time in 'sem.set' command\r\n", /* SEM.SET */
        "-NOAUTH Authentication required.\r\n",              /* SEM.FLUSH */
        "-IOERR SEM.SET failed: input/output error\r\n",     /* SEM.SET */
    };
    fake f;
    fake_start(&f, script, SC_COUNTOF(script));
    semcache *c;
    REQUIRE(semcache_connect(&c, "127.0.0.1", f.port, 2000) == SEMCACHE_OK);
    CHECK_OK(semcache_auth(c, "k1"));
    uint64_t id = 0;
    CHECK_OK(semcache_set(c, "ns1", "p\r\nq", SEMCACHE_NTS, "resp", 4, 60, &id));
    CHECK_EQ_INT(id, 17);
    semcache_hit hit;
    CHECK_OK(semcache_get(c, "ns1", "p", 1, 0.8, &hit));
    CHECK_EQ_INT(hit.response_len, 5);
    CHECK(hit.response && strcmp(hit.response, "hello") == 0);
    CHECK(hit.similarity > 0.9123 && hit.similarity < 0.9124);
    CHECK_EQ_INT(hit.id, 17);
    CHECK(hit.request[0] == '\0');
    semcache_hit_clear(&hit);
    CHECK_OK(semcache_get(c, "ns1", "p", 1, -1, &hit));
    CHECK_EQ_INT(hit.id, 18);
    CHECK(strcmp(hit.request, "0123456789abcdef") == 0);
    CHECK_OK(semcache_feedback(c, "ns1", hit.request, 0));
    CHECK_EQ_INT(semcache_feedback(c, "ns1", hit.request, 1), SEMCACHE_ENOTFOUND);
    semcache_hit_clear(&hit);
    CHECK_EQ_INT(semcache_get(c, NULL, "p", SEMCACHE_NTS, -1, &hit), SEMCACHE_ENOTFOUND);
    CHECK(hit.response == NULL);
    CHECK_EQ_INT(semcache_del(c, "ns1", 99), SEMCACHE_ENOTFOUND);
    CHECK_OK(semcache_del(c, "ns1", 17));
    uint64_t count = 0;
    CHECK_OK(semcache_flush(c, "ns1", &count));
    CHECK_EQ_INT(count, 5);
    semcache_stat *st;
    size_t n;
    CHECK_OK(semcache_stats(c, &st, &n));
    REQUIRE(n == 3);
    CHECK(!strcmp(st[0].name, "entries") && !strcmp(st[0].value, "3"));
    CHECK(!strcmp(st[1].name, "hit_ratio") && !strcmp(st[1].value, "0.5000"));
    CHECK(!strcmp(st[2].value, "hash/1"));
    free(st);
    CHECK_EQ_INT(semcache_get(c, "b", "p", 1, -1, &hit), SEMCACHE_EFORBIDDEN);
    CHECK(strstr(semcache_last_error(c), "NOPERM") != NULL);
    CHECK_EQ_INT(semcache_set(c, "a", "p", 1, "r", 1, 5, NULL), SEMCACHE_EINVAL);
    CHECK(strstr(semcache_last_error(c), "invalid expire time") != NULL);
    CHECK_EQ_INT(semcache_flush(c, "a", NULL), SEMCACHE_EAUTH);
    CHECK_EQ_INT(semcache_set(c, "a", "p", 1, "r", 1, 0, NULL), SEMCACHE_EIO);
    /* An error reply leaves the connection usable; the server now closes. */
    CHECK_EQ_INT(semcache_flush(c, "a", NULL), SEMCACHE_EIO);
    CHECK_EQ_INT(semcache_flush(c, "a", NULL), SEMCACHE_ECLOSED);
    semcache_close(c);
    fake_stop(&f);
    /* What went over the wire. */
    const char *want =
        "AUTH k1\nSEM.SET ns1 p\r\nq resp EX 60\nSEM.GET ns1 p THRESHOLD 0.80000000000000004\n"
        "SEM.GET ns1 p\nSEM.FEEDBACK ns1 0123456789abcdef BAD\nSEM.FEEDBACK ns1 0123456789abcdef GOOD\n"
        "SEM.GET default p\nSEM.DEL ns1 99\nSEM.DEL ns1 17\nSEM.FLUSH ns1\nSEM.STATS\n";
    CHECK(f.seen.data && strncmp(f.seen.data, want, strlen(want)) == 0);
    sc_buf_free(&f.seen);
}

SC_TEST(client_pipelining_and_timeout)
{
    static const char *const script[] = {"+PONG\r\n", "$1\r\na\r\n", ":3\r\n", SCRIPT_SILENT,
                                         SCRIPT_SILENT};
    fake f;
    fake_start(&f, script, SC_COUNTOF(script));
    semcache *c;
    REQUIRE(semcache_connect(&c, "localhost", f.port, 300) == SEMCACHE_OK);
    const char *ping[] = {"PING"};
    const char *echo[] = {"ECHO", "a"};
    const char *incr[] = {"X", "y"};
    CHECK_OK(semcache_append(c, 1, ping, NULL));
    CHECK_OK(semcache_append(c, 2, echo, NULL));
    CHECK_OK(semcache_append(c, 2, incr, NULL));
    CHECK_EQ_INT(semcache_pending(c), 3);
    semcache_reply *r;
    CHECK_OK(semcache_read_reply(c, &r));
    CHECK(r && r->type == SEMCACHE_REPLY_STATUS && !strcmp(r->str, "PONG"));
    semcache_reply_free(r);
    CHECK_OK(semcache_read_reply(c, &r));
    CHECK(r && r->type == SEMCACHE_REPLY_STRING && !strcmp(r->str, "a"));
    semcache_reply_free(r);
    CHECK_OK(semcache_read_reply(c, &r));
    CHECK(r && r->type == SEMCACHE_REPLY_INTEGER && r->integer == 3);
    semcache_reply_free(r);
    CHECK_EQ_INT(semcache_read_reply(c, &r), SEMCACHE_EINVAL); /* nothing pending */
    /* The server goes silent: a timeout, then the handle is closed. */
    CHECK_EQ_INT(semcache_command(c, 1, ping, NULL, &r), SEMCACHE_ETIMEOUT);
    CHECK(r == NULL);
    CHECK_EQ_INT(semcache_command(c, 1, ping, NULL, &r), SEMCACHE_ECLOSED);
    semcache_close(c);
    fake_stop(&f);
    sc_buf_free(&f.seen);
}

SC_TEST(client_connect_errors)
{
    semcache *c = (semcache *)1;
    CHECK_EQ_INT(semcache_connect(&c, "127.0.0.1", 0, 100), SEMCACHE_EINVAL);
    CHECK(c == NULL);
    CHECK_EQ_INT(semcache_connect(&c, "no.such.host.invalid", 6380, 100), SEMCACHE_EINVAL);
    /* A port nobody listens on. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    close(fd);
    CHECK_EQ_INT(semcache_connect(&c, "127.0.0.1", port, 500), SEMCACHE_EIO);
    CHECK(strcmp(semcache_strerror(SEMCACHE_ENOTFOUND), "not found") == 0);
}

/* ---------------------------------------------------------------------
 * CLI JSON helpers
 * ------------------------------------------------------------------- */

SC_TEST(client_cli_parse_entry)
{
    sc_cli_entry e;
    char err[256];
    const char *l1 =
        "{\"prompt\":\"Caf\\u00e9 \\ud83d\\ude00?\",\"response\":\"a\\nb\\\"c\",\"ttl\":60,"
        "\"model\":\"m\",\"extra\":{\"x\":[1,2,{\"y\":null}],\"z\":true},\"namespace\":\"faq\"}";
    REQUIRE(sc_cli_parse_entry(l1, strlen(l1), &e, err, sizeof err) == SC_OK);
    CHECK(strcmp(e.prompt, "Caf\xc3\xa9 \xf0\x9f\x98\x80?") == 0);
    CHECK_EQ_INT(e.response_len, 5);
    CHECK(strcmp(e.response, "a\nb\"c") == 0);
    CHECK_EQ_INT(e.ttl, 60);
    CHECK(e.ns && strcmp(e.ns, "faq") == 0);
    sc_cli_entry_clear(&e);

    /* Found by fuzz_cli_json: a number of 64+ characters and a key of 256+
     * bytes are valid JSON, and were refused. */
    char l3[1024];
    snprintf(l3, sizeof l3, "{\"%0300d\":1.%0100d,\"prompt\":\"p\",\"response\":\"r\",\"ttl\":7%0100de-100}", 0, 0, 0);
    REQUIRE(sc_cli_parse_entry(l3, strlen(l3), &e, err, sizeof err) == SC_OK);
    CHECK_EQ_INT(e.ttl, 7);
    sc_cli_entry_clear(&e);

    const char *l2 = "  {\"response\": \"\", \"prompt\": \"p\", \"ttl\": null}  ";
    REQUIRE(sc_cli_parse_entry(l2, strlen(l2), &e, err, sizeof err) == SC_OK);
    CHECK(e.ns == NULL && e.ttl == 0 && e.response_len == 0);
    sc_cli_entry_clear(&e);

    struct {
        const char *in, *msg;
    } bad[] = {
        {"{\"prompt\":\"p\"}", "response: missing"},
        {"{\"response\":\"r\"}", "prompt: missing"},
        {"{\"prompt\":\"\",\"response\":\"r\"}", "prompt: empty"},
        {"{\"prompt\":1,\"response\":\"r\"}", "prompt: must be a string"},
        {"{\"prompt\":\"p\",\"response\":\"r\",\"ttl\":1.5}", "ttl:"},
        {"{\"prompt\":\"p\",\"response\":\"r\",\"ttl\":-1}", "ttl:"},
        {"[1,2]", "not a JSON object"},
        {"{\"prompt\":\"p\",\"response\":\"r\"} x", "trailing"},
        {"{\"prompt\":\"p\" \"response\":\"r\"}", "invalid JSON"},
        {"{\"prompt\":\"a\\ud800\",\"response\":\"r\"}", "invalid JSON"},
        {"{\"prompt\":\"a\x01\",\"response\":\"r\"}", "invalid JSON"},
        {"{\"prompt\":\"p\",\"response\":\"r\",\"x\":[[[[", "invalid JSON"},
        {"{\"prompt\":\"p\",\"response\":\"r\",\"x\":01}", "invalid JSON"},
        /* A NUL would cut the namespace to another one's name. */
        {"{\"prompt\":\"p\",\"response\":\"r\",\"namespace\":\"a\\u0000b\"}", "namespace: contains a NUL"},
        /* "prompt\u0000x" is not "prompt" (it is skipped like any unknown key). */
        {"{\"prompt\\u0000x\":\"p\",\"response\":\"r\"}", "prompt: missing"},
    };
    for (size_t i = 0; i < SC_COUNTOF(bad); i++) {
        int rc = sc_cli_parse_entry(bad[i].in, strlen(bad[i].in), &e, err, sizeof err);
        CHECK_EQ_INT(rc, SC_EINVAL);
        if (!strstr(err, bad[i].msg))
            sc_test_fail(__FILE__, __LINE__, "case %zu: '%s' lacks '%s'", i, err, bad[i].msg);
        CHECK(e.prompt == NULL && e.response == NULL);
    }
}

static void collect(void *arg, size_t row, const double *v, size_t n)
{
    double *sum = arg;
    for (size_t i = 0; i < n; i++)
        sum[row] += v[i];
}

SC_TEST(client_cli_json_out_and_embeddings)
{
    sc_buf b;
    sc_buf_init(&b, 1024);
    CHECK_OK(sc_cli_json_str(&b, "a\"b\\c\n\x01\xc3\xa9", 9));
    CHECK(strcmp(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"") == 0);
    sc_buf_free(&b);
    const char *j = "{\"model\":\"hash/1\",\"dim\":3,\"embeddings\":[[1,2.5,-1e-1],[0,0,1]]}";
    double sum[2] = {0, 0};
    CHECK_EQ_INT(sc_cli_embeddings(j, strlen(j), collect, sum), 2);
    CHECK(sum[0] > 3.39 && sum[0] < 3.41);
    CHECK(sum[1] == 1);
    CHECK_EQ_INT(sc_cli_embeddings("{\"x\":1}", 7, collect, sum), SC_EINVAL);
    char longkey[512];   /* a 300-byte key first (was refused: fuzz_cli_json) */
    snprintf(longkey, sizeof longkey, "{\"%0300d\":0,\"embeddings\":[[1e0,1.%080d]]}", 0, 0);
    double one[1] = {0};
    CHECK_EQ_INT(sc_cli_embeddings(longkey, strlen(longkey), collect, one), 1);
    CHECK(one[0] == 2.0);
    CHECK_EQ_INT(sc_cli_embeddings("{\"embeddings\":[[1,]]}", 21, collect, sum), (int)SC_EINVAL);
}

/* semcache-cli's reading of an HTTP answer (client/cli_http.c). The old
 * inline reader trusted a chunk size from the wire: "fffffffffffffff0"
 * wrapped its bounds check (pointer arithmetic out of the buffer
 * followed), and a last chunk without its CRLF made the bytes left
 * underflow, reading past the answer. */
static int http(const char *raw, int *status, sc_buf *b)
{
    sc_buf_reset(b);
    return sc_cli_http_response(raw, strlen(raw), status, b);
}

SC_TEST(client_cli_http_response)
{
    sc_buf b;
    sc_buf_init(&b, 1 << 20);
    int st;
    CHECK_OK(http("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}", &st, &b));
    CHECK_EQ_INT(st, 200);
    CHECK(b.len == 7 && memcmp(b.data, "{\"a\":1}", 7) == 0);
    CHECK_OK(http("HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nabcd", &st, &b));
    CHECK_EQ_INT(st, 400);
    CHECK(b.len == 2 && memcmp(b.data, "ab", 2) == 0);
    CHECK_OK(http("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
                  "3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", &st, &b));
    CHECK(b.len == 13 && memcmp(b.data, "abc0123456789", 13) == 0);

    const char *bad[] = {
        "",
        "HTTP/1.1 200 OK\r\nContent-Type: x\r\n",                      /* no blank line */
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff0\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",  /* no CRLF after the data */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",   /* no last chunk */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < SC_COUNTOF(bad); i++)
        if (http(bad[i], &st, &b) != SC_EPROTO) sc_test_fail(__FILE__, __LINE__, "case %zu accepted", i);
    sc_buf_free(&b);
}
