/* The RESP2 request parser: pure, incremental and bounded.
 *
 * A client sends either a multibulk command (`*N\r\n` followed by N bulk
 * strings `$L\r\n<L bytes>\r\n`) or an inline command (one line of words
 * separated by white space, with redis-style "double" and 'single' quotes,
 * as typed into telnet). The parser takes bytes in whatever pieces the
 * socket delivers them, keeps its state between calls, and hands out one
 * complete command at a time. It does no I/O, so it is unit-tested and
 * fuzzed on its own (tests/unit/test_resp_parse.c, tests/fuzz/fuzz_resp.c).
 *
 * Bounds (sc_resp_limits): the number of arguments of one command, the
 * size of one bulk string, the length of an inline line and the total
 * argument bytes of one command. Requests are arrays of bulk strings, so
 * nesting is bounded at depth one: any other type inside an array is a
 * protocol error. Past a bound, or on malformed input, sc_resp_parse()
 * returns SC_EPROTO or SC_ETOOBIG and p->err holds a redis-style message
 * ("Protocol error: invalid bulk length"); the parser is then dead (the
 * caller answers -ERR and closes the connection).
 *
 * Memory: a bulk string's buffer grows as its bytes arrive, so a claimed
 * length costs nothing until the data is actually sent.
 * Threads: a parser belongs to one connection; no shared state. */
#ifndef SC_RESP_PARSE_H
#define SC_RESP_PARSE_H

#include "common/buf.h"

#include <stddef.h>

#define SC_RESP_MAX_ARGS 1024          /* arguments of one command */
#define SC_RESP_MAX_INLINE (64u << 10) /* bytes of one inline command line */
#define SC_RESP_ERR_MAX 128

typedef struct sc_resp_limits {
    size_t max_args;   /* most arguments of one command (>= 1) */
    size_t max_bulk;   /* most bytes of one bulk string */
    size_t max_inline; /* most bytes of one inline line */
    size_t max_total;  /* most argument bytes of one command */
} sc_resp_limits;

/* One parsed command. argv[i] points at len[i] bytes followed by a NUL
 * (arguments may contain NULs themselves; use len). Owned by whoever
 * sc_resp_parse() handed it to; release it with sc_resp_cmd_free(). */
typedef struct sc_resp_cmd {
    size_t argc;
    char **argv;
    size_t *len;
    size_t bytes; /* argument bytes (sum of len) */
    /* private: small arguments live in an arena allocated with the
     * command (one malloc for a typical command); argv/len too. */
    char *arena_, *arena_end_;
    int own_arrays_;
} sc_resp_cmd;

/* The parser's state. The fields are private; the struct is in the header
 * only so a connection can embed it. */
typedef struct sc_resp_parser {
    sc_resp_limits lim;
    int state;
    int dead;
    char line[32]; /* a `*N` / `$L` header line being read */
    size_t line_len;
    sc_buf inl;       /* an inline line being read */
    sc_resp_cmd *cmd; /* the multibulk command being read */
    char *arena_next; /* free space in cmd's arena */
    size_t nargs;     /* announced argument count */
    size_t bulk_len;  /* announced length of the current bulk string */
    size_t bulk_got;
    size_t bulk_cap;
    char err[SC_RESP_ERR_MAX];
} sc_resp_parser;

/* Sets limits (a zero field takes its default: max_args 1024, max_bulk
 * 8 MiB, max_inline 64 KiB, max_total max_bulk + 1 MiB). */
void sc_resp_parser_init(sc_resp_parser *p, const sc_resp_limits *lim);
/* Frees a partly read command; the parser can be initialised again. */
void sc_resp_parser_free(sc_resp_parser *p);

/* Consumes bytes from data[0..n). Returns SC_OK and sets *used to the bytes
 * consumed and *out to a complete command (the caller's now) or to NULL
 * when every byte was consumed without completing one. Call again with the
 * rest (data + *used) to get the next pipelined command. Returns SC_EPROTO
 * (malformed) or SC_ETOOBIG (a bound was exceeded) with p->err set; every
 * later call returns the same error. */
int sc_resp_parse(sc_resp_parser *p, const char *data, size_t n, size_t *used, sc_resp_cmd **out);

void sc_resp_cmd_free(sc_resp_cmd *c);

/* 1 when part of a command has been consumed (a client stalled midway). */
int sc_resp_parser_midway(const sc_resp_parser *p);

/* Splits one inline line (without its line end) into arguments the way
 * redis does: white space separates words; "..." understands \n \r \t \b
 * \a \\ \" and \xHH; '...' understands \'; a closing quote must be followed
 * by white space or the end. Returns SC_OK with *out (NULL for an empty
 * line), SC_EPROTO for unbalanced quotes, SC_ETOOBIG past max_args. */
int sc_resp_split_inline(const char *s, size_t n, size_t max_args, sc_resp_cmd **out);

#endif
