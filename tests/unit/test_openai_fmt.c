/* Unit tests for server/openai_fmt.c: the SSE stream reader fed in pieces
 * of every size, including one multi-megabyte event in tiny pieces. */
#include "tap.h"
#include "common/buf.h"
#include "common/err.h"
#include "server/openai_fmt.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXB (16u << 20)

typedef struct fed {
    int rc;
    int timed_out;
    sc_buf relay;
    char *body;                /* NULL when not storable */
    size_t body_len;
} fed;

/* Feeds text to a fresh reader in pieces of chunk bytes, giving up (and
 * setting timed_out) past cpu_limit seconds of CPU time. */
static void feed(fed *out, const char *text, size_t len, size_t chunk, double cpu_limit)
{
    sc_oai_stream s;
    sc_oai_stream_init(&s, SC_OAI_CHAT, 1, MAXB);
    memset(out, 0, sizeof *out);
    sc_buf_init(&out->relay, 2 * MAXB);
    clock_t t0 = clock();
    for (size_t off = 0; off < len && !out->rc; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        out->rc = sc_oai_stream_feed(&s, text + off, n, &out->relay);
        if ((off / chunk) % 64 == 0 && (double)(clock() - t0) / CLOCKS_PER_SEC > cpu_limit) {
            out->timed_out = 1;
            break;
        }
    }
    if (!out->rc && !out->timed_out) out->body = sc_oai_stream_body(&s, &out->body_len);
    sc_oai_stream_free(&s);
}

static void fed_free(fed *f)
{
    sc_buf_free(&f->relay);
    free(f->body);
}

/* A stream of several events with LF and CRLF line ends, a multi-line
 * event, a comment and a usage chunk the reader drops. */
static const char small_stream[] =
    "data: {\"id\":\"c1\",\"model\":\"m\",\"created\":7,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
    "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\n"
    "data: \"delta\":{\"content\":\"lo\\n\"}}]}\n\n"
    "event: x\r\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\r\n"
    "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
    "data: [DONE]\n\n";

SC_TEST(oai_stream_any_chunking)
{
    size_t len = sizeof small_stream - 1;
    fed whole;
    feed(&whole, small_stream, len, len, 60);
    REQUIRE(whole.rc == SC_OK && whole.body);
    CHECK(strstr(whole.body, "\"content\":\"Hello\\n\"") != NULL);
    CHECK(strstr(whole.body, "\"finish_reason\":\"stop\"") != NULL);
    CHECK(strstr(whole.body, "\"prompt_tokens\":3") != NULL);
    CHECK(strstr(whole.relay.data, "usage") == NULL);   /* dropped: not asked for */
    CHECK(strstr(whole.relay.data, "data: [DONE]\n\n") != NULL);
    static const size_t sizes[] = {1, 2, 3, 5, 7, 16, 61, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        fed f;
        feed(&f, small_stream, len, sizes[k], 60);
        CHECK_EQ_INT(f.rc, SC_OK);
        CHECK(f.relay.len == whole.relay.len && memcmp(f.relay.data, whole.relay.data, f.relay.len) == 0);
        CHECK(f.body && f.body_len == whole.body_len && memcmp(f.body, whole.body, f.body_len) == 0);
        fed_free(&f);
    }
    fed_free(&whole);
}

/* One 4 MB event, then [DONE]. Before the reader kept its scan position,
 * each piece re-scanned the partial event from its start: for 4 MB in
 * 16-byte pieces about 5e11 byte comparisons (hours), now about 4e6. The
 * CPU-time limit turns that into a failure rather than a hang; the linear
 * reader needs well under a second even under ASan. */
SC_TEST(oai_stream_big_event_small_pieces_linear)
{
    const size_t big = 4u << 20;
    static const char head[] = "data: {\"id\":\"c2\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"";
    static const char tail[] = "\"}}]}\n\ndata: [DONE]\n\n";
    size_t len = sizeof head - 1 + big + sizeof tail - 1;
    char *text = malloc(len);
    REQUIRE(text);
    memcpy(text, head, sizeof head - 1);
    for (size_t i = 0; i < big; i++) text[sizeof head - 1 + i] = (char)('a' + i % 26);
    memcpy(text + sizeof head - 1 + big, tail, sizeof tail - 1);
    static const size_t sizes[] = {1, 16, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        fed f;
        feed(&f, text, len, sizes[k], 10);
        CHECK(!f.timed_out);
        CHECK_EQ_INT(f.rc, SC_OK);
        CHECK(f.relay.len == len && memcmp(f.relay.data, text, len) == 0);
        CHECK(f.body != NULL);
        if (f.body) {
            /* The assembled body holds the 4 MB of content. */
            CHECK(f.body_len > big - 1 && f.body_len < big + 400);
            CHECK(strstr(f.body, "\"content\":\"abcdefghij") != NULL);
        }
        fed_free(&f);
    }
    free(text);
}

/* An event end split across pieces at every position: "\n" | "\n",
 * "\n" | "\r\n" and "\n\r" | "\n". */
SC_TEST(oai_stream_event_end_split)
{
    static const char *const ends[] = {"\n\n", "\n\r\n", "\r\n\r\n"};
    for (size_t e = 0; e < 3; e++) {
        char text[256];
        int n = snprintf(text, sizeof text,
                         "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}%sdata: [DONE]%s",
                         ends[e], ends[e]);
        for (int cut = 1; cut < n; cut++) {
            sc_oai_stream s;
            sc_oai_stream_init(&s, SC_OAI_CHAT, 1, 4096);
            sc_buf relay;
            sc_buf_init(&relay, 8192);
            CHECK_OK(sc_oai_stream_feed(&s, text, (size_t)cut, &relay));
            CHECK_OK(sc_oai_stream_feed(&s, text + cut, (size_t)(n - cut), &relay));
            CHECK(s.done);
            size_t bl;
            char *body = sc_oai_stream_body(&s, &bl);
            CHECK(body && strstr(body, "\"content\":\"ok\""));
            free(body);
            sc_buf_free(&relay);
            sc_oai_stream_free(&s);
        }
    }
}

/* Past its bound the reader cannot relay the stream faithfully, and it
 * says so for good. It used to leave its partial event as it was, so the
 * bytes of the refused piece were lost and the next piece was appended
 * after the partial event: a spliced event, missing the refused bytes,
 * was relayed as if nothing had happened. Whole events before the failure
 * are still relayed, each with its end. */
SC_TEST(oai_stream_past_bound_fails_for_good)
{
    static const char first[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"}}]}\n\n";
    sc_oai_stream s;
    sc_oai_stream_init(&s, SC_OAI_CHAT, 1, 256);
    sc_buf relay;
    sc_buf_init(&relay, 4096);
    char big[300];
    memset(big, 'x', sizeof big);
    CHECK_OK(sc_oai_stream_feed(&s, first, sizeof first - 1, &relay));
    CHECK(relay.len == sizeof first - 1 && memcmp(relay.data, first, relay.len) == 0);
    sc_buf_reset(&relay);
    CHECK_OK(sc_oai_stream_feed(&s, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"", 50, &relay));
    CHECK_EQ_INT(sc_oai_stream_feed(&s, big, sizeof big, &relay), SC_ETOOBIG);
    CHECK_EQ_INT(sc_oai_stream_feed(&s, "\"}}]}\n\ndata: [DONE]\n\n", 21, &relay), SC_ETOOBIG);
    CHECK_EQ_INT(relay.len, 0);
    CHECK(!s.done);
    size_t bl;
    CHECK(sc_oai_stream_body(&s, &bl) == NULL);
    sc_oai_stream_free(&s);

    /* A full relay buffer: the events that fit are relayed whole, the one
     * that does not is not relayed in part (no event without its end). */
    sc_oai_stream_init(&s, SC_OAI_CHAT, 1, 4096);
    sc_buf_free(&relay);
    sc_buf_init(&relay, 2 * (sizeof first - 1) - 1);   /* the second event fits, its end does not */
    char two[2 * sizeof first];
    memcpy(two, first, sizeof first - 1);
    memcpy(two + sizeof first - 1, first, sizeof first - 1);
    CHECK_EQ_INT(sc_oai_stream_feed(&s, two, 2 * (sizeof first - 1), &relay), SC_ETOOBIG);
    CHECK(relay.len == sizeof first - 1 && memcmp(relay.data, first, relay.len) == 0);
    CHECK_EQ_INT(sc_oai_stream_feed(&s, "data: [DONE]\n\n", 14, &relay), SC_ETOOBIG);
    CHECK(relay.len == sizeof first - 1);
    sc_buf_free(&relay);
    sc_oai_stream_free(&s);
}
