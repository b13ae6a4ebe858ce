/* OpenAI wire-format conversions (pure; any thread).
 *
 * The cache stores every answer as one non-streamed completion body
 * (chat.completion or text_completion JSON). These functions turn a stream
 * into such a body, a body back into a stream, and a plain-text answer
 * (from /cache/store or RESP) into a body, so that any entry can serve a
 * streamed or a non-streamed request. */
#ifndef SC_OPENAI_FMT_H
#define SC_OPENAI_FMT_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

enum sc_oai_kind { SC_OAI_CHAT = 0, SC_OAI_COMPLETION = 1 };

/* A completion body for a plain-text answer. malloc'ed JSON text. */
char *sc_oai_body_from_text(int kind, const char *model, const char *text, size_t len,
                            uint32_t prompt_tokens, uint32_t completion_tokens, size_t *outlen);

/* Replays a stored body as SSE ("data: {chunk}\n\n" ... "data: [DONE]\n\n")
 * into out. include_usage adds the final usage chunk (choices: []). */
int sc_oai_sse_from_body(int kind, const char *body, size_t len, int include_usage, sc_buf *out);

/* Incremental reader of an upstream SSE stream: splits it into events,
 * tells the caller which to relay, and assembles the completion body. */
typedef struct sc_oai_stream {
    int kind;
    sc_buf line;                 /* partial event, bounded */
    size_t scan;                 /* line[0..scan) holds no event end */
    sc_buf content;              /* assembled text, bounded */
    char *id, *model, *role, *finish_reason;
    int64_t created;
    long long prompt_tokens, completion_tokens;
    int have_usage;
    int done;                    /* saw data: [DONE] */
    int unstorable;              /* tool calls, several choices, errors, bad JSON */
    int drop_usage_chunk;        /* the client did not ask for usage */
    int failed;                  /* a feed failed: every later one fails too */
} sc_oai_stream;

void sc_oai_stream_init(sc_oai_stream *s, int kind, int drop_usage_chunk, size_t max);
void sc_oai_stream_free(sc_oai_stream *s);
/* Feeds raw stream bytes; appends to relay the bytes of every complete
 * event the client should see, each whole with its end. SC_ETOOBIG when a
 * partial event would grow past max or relay is full: the events before
 * it were relayed, but the stream cannot be relayed faithfully from there
 * on, so the reader refuses every later feed (same error, nothing relayed)
 * and the stream is not storable. */
int sc_oai_stream_feed(sc_oai_stream *s, const char *p, size_t n, sc_buf *relay);
/* The assembled body once the stream ended with [DONE]; NULL when it
 * cannot be stored. malloc'ed. */
char *sc_oai_stream_body(const sc_oai_stream *s, size_t *len);

#endif
