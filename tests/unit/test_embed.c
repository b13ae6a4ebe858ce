/* Unit tests for embed/: the dispatch front end, its bounds and counters,
 * and the model-free hash backend (the USE-lite tests are in
 * test_embed_use.c). */
#include "tap.h"
#include "embed/embed_internal.h"
#include "common/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static sc_embedder *open_hash(void)
{
    sc_embedder *e = NULL;
    char err[256];
    sc_embedder_opts o = {.name = "hash"};
    if (sc_embedder_open(&e, &o, err, sizeof err) != 0) return NULL;
    return e;
}

static float dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return (float)s;
}

static int embed_str(sc_embedder *e, const char *s, float *out)
{
    size_t len = strlen(s);
    return sc_embed(e, &s, &len, 1, out);
}

SC_TEST(embed_open_unknown_backend)
{
    sc_embedder *e = (sc_embedder *)1;
    char err[256];
    sc_embedder_opts o = {.name = "bogus"};
    CHECK_EQ_INT(sc_embedder_open(&e, &o, err, sizeof err), SC_EINVAL);
    CHECK(e == NULL);
    CHECK(strstr(err, "bogus") != NULL);
    CHECK_EQ_INT(sc_embedder_open(&e, NULL, err, sizeof err), SC_EINVAL);
}

SC_TEST(embed_hash_basics)
{
    sc_embedder *e = open_hash();
    REQUIRE(e != NULL);
    CHECK_EQ_INT(sc_embedder_dim(e), 256);
    CHECK(strcmp(sc_embedder_id(e), "hash/1") == 0);
    float a[256], b[256];
    CHECK_OK(embed_str(e, "How do I reset my password?", a));
    CHECK_OK(embed_str(e, "How do I reset my password?", b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(fabsf(dot(a, a, 256) - 1.0f) < 1e-5f);
    /* Case and width folding: the same text after NFKC + casefold. */
    CHECK_OK(embed_str(e, "HOW DO I RESET MY PASSWORD?", b));
    CHECK(dot(a, b, 256) > 0.999f);
    sc_embedder_close(e);
}

SC_TEST(embed_hash_similarity_order)
{
    sc_embedder *e = open_hash();
    REQUIRE(e != NULL);
    float a[256], b[256], c[256];
    CHECK_OK(embed_str(e, "how do i reset my password", a));
    CHECK_OK(embed_str(e, "how can i reset my password", b));
    CHECK_OK(embed_str(e, "best pizza places in naples italy", c));
    CHECK(dot(a, b, 256) > 0.6f);
    CHECK(dot(a, b, 256) > dot(a, c, 256) + 0.3f);
    sc_embedder_close(e);
}

SC_TEST(embed_hash_odd_inputs)
{
    sc_embedder *e = open_hash();
    REQUIRE(e != NULL);
    const char *texts[] = {"", "   \t\n ", "\xff\xfe\x80 bad utf8 \xc3", "emoji 😀😀 and 漢字かな",
                           "a\0b"};
    size_t lens[] = {0, 6, 15, strlen(texts[3]), 3};
    float out[5 * 256];
    CHECK_OK(sc_embed(e, texts, lens, 5, out));
    for (int i = 0; i < 5; i++) CHECK(fabsf(dot(out + i * 256, out + i * 256, 256) - 1.0f) < 1e-5f);
    /* Empty and whitespace-only give the same fixed vector. */
    CHECK(memcmp(out, out + 256, 256 * sizeof(float)) == 0);
    sc_embed_stats st;
    sc_embed_stats_get(e, &st);
    CHECK_EQ_INT(st.texts, 5);
    CHECK(st.tokens > 5);
    CHECK_EQ_INT(st.truncated, 0);
    sc_embedder_close(e);
}

SC_TEST(embed_bounds)
{
    sc_embedder *e = open_hash();
    REQUIRE(e != NULL);
    float v[256];
    CHECK_EQ_INT(sc_embed(e, NULL, NULL, 0, NULL), 0);
    const char *t = "x";
    size_t big = (size_t)SC_EMBED_MAX_BYTES + 1;
    CHECK_EQ_INT(sc_embed(e, &t, &big, 1, v), SC_ETOOBIG);
    size_t one = 1;
    CHECK_EQ_INT(sc_embed(e, &t, &one, SC_EMBED_MAX_TEXTS + 1, v), SC_ETOOBIG);
    const char *nul = NULL;
    CHECK_EQ_INT(sc_embed(e, &nul, &one, 1, v), SC_EINVAL);
    /* A text at the byte bound is fine. */
    char *huge = malloc(SC_EMBED_MAX_BYTES);
    REQUIRE(huge != NULL);
    for (size_t i = 0; i < SC_EMBED_MAX_BYTES; i++) huge[i] = "abc de"[i % 6];
    const char *hp = huge;
    size_t hl = SC_EMBED_MAX_BYTES;
    CHECK_OK(sc_embed(e, &hp, &hl, 1, v));
    free(huge);
    sc_embedder_close(e);
}

/* Pins a few values so an accidental change of the hashing (which would
 * silently invalidate stored vectors) fails here; bump "hash/1" if the
 * change is intended. */
#define HASH_STABLE_SUM 79.775636
SC_TEST(embed_hash_stable_values)
{
    float v[256];
    uint32_t nw = 0;
    CHECK_OK(sc_embed_hash_text("hello world", 11, v, &nw));
    CHECK_EQ_INT(nw, 2);
    double s = 0;
    for (int i = 0; i < 256; i++) s += v[i] * (double)(i + 1);
    printf("# hash stable checksum %.6f\n", s);
    CHECK(fabs(s - HASH_STABLE_SUM) < 1e-3);
}

/* ---- remote backend against a one-shot mock server ---------------------- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    int lfd;
    const char *answer;   /* full HTTP response */
    char request[8192];
} mock_srv;

static void *mock_main(void *p)
{
    mock_srv *m = p;
    int fd = accept(m->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    size_t got = 0;
    /* Read headers and the body (Content-Length). */
    for (;;) {
        ssize_t k = read(fd, m->request + got, sizeof m->request - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        m->request[got] = 0;
        char *end = strstr(m->request, "\r\n\r\n");
        char *cl = strcasestr(m->request, "content-length:");
        if (end && cl && got >= (size_t)(end + 4 - m->request) + (size_t)atoi(cl + 15)) break;
    }
    if (write(fd, m->answer, strlen(m->answer)) < 0) perror("write");
    close(fd);
    return NULL;
}

static int mock_start(mock_srv *m, pthread_t *th)
{
    m->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(m->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(m->lfd, 1) != 0 ||
        getsockname(m->lfd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    pthread_create(th, NULL, mock_main, m);
    return ntohs(a.sin_port);
}

static int remote_once(const char *answer, uint32_t dim, float *out, char *request, size_t n)
{
    mock_srv m = {.answer = answer};
    pthread_t th;
    int port = mock_start(&m, &th);
    if (port < 0) return -1;
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    sc_embedder_opts o = {.name = "remote", .url = url, .model = "m1", .api_key = "sk-test", .dim = dim};
    sc_embedder *e;
    int rc = sc_embedder_open(&e, &o, err, sizeof err);
    if (rc == 0) {
        const char *texts[2] = {"hi", "bad \xff utf8"};
        size_t lens[2] = {2, 10};
        rc = sc_embed(e, texts, lens, 2, out);
        sc_embedder_close(e);
    }
    pthread_join(th, NULL);
    close(m.lfd);
    if (request) snprintf(request, n, "%s", m.request);
    return rc;
}

SC_TEST(embed_remote_mock)
{
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "Content-Length: 102\r\n\r\n"
                     "{\"data\":[{\"index\":1,\"embedding\":[0,3,4]},{\"index\":0,\"embedding\":[2,0,0]}],"
                     "\"usage\":{\"prompt_tokens\":5}}";
    float out[6];
    char req[8192];
    CHECK_OK(remote_once(ok, 3, out, req, sizeof req));
    CHECK(fabsf(out[0] - 1) < 1e-6f && out[1] == 0 && out[2] == 0);
    CHECK(fabsf(out[4] - 0.6f) < 1e-6f && fabsf(out[5] - 0.8f) < 1e-6f);
    CHECK(strstr(req, "POST /v1/embeddings") != NULL);
    CHECK(strstr(req, "Bearer sk-test") != NULL);
    CHECK(strstr(req, "\"model\":\"m1\"") != NULL);
    CHECK(strstr(req, "bad \xef\xbf\xbd utf8") != NULL);
    /* Wrong dimension and HTTP errors are refused. */
    CHECK_EQ_INT(remote_once(ok, 4, out, NULL, 0), SC_EMISMATCH);
    const char *e500 = "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    CHECK_EQ_INT(remote_once(e500, 3, out, NULL, 0), SC_EUPSTREAM);
    const char *junk = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope!";
    CHECK_EQ_INT(remote_once(junk, 3, out, NULL, 0), SC_EUPSTREAM);
    char err[256];
    sc_embedder *e;
    sc_embedder_opts bad = {.name = "remote", .url = "ftp://x", .model = "m", .dim = 3};
    CHECK_EQ_INT(sc_embedder_open(&e, &bad, err, sizeof err), SC_EINVAL);
}
