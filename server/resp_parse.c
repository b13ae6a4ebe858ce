/* The RESP2 request parser (see resp_parse.h for the contract).
 *
 * A small state machine: START looks at the first byte of a command and
 * picks multibulk ('*') or inline (anything else); header lines (`*N`,
 * `$L`) are collected into a fixed 32-byte buffer, so an endless digit run
 * is caught early; bulk data is copied into the argument's own buffer,
 * which grows by doubling up to the announced length. Every state
 * transition checks the limits before it allocates. */
#include "server/resp_parse.h"
#include "common/alloc.h"
#include "common/err.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    S_START,      /* between commands */
    S_ARRAY_LINE, /* after '*': reading the count line */
    S_BULK_TYPE,  /* expecting '$' */
    S_BULK_LINE,  /* after '$': reading the length line */
    S_BULK_DATA,  /* reading bulk bytes */
    S_BULK_CR,    /* expecting '\r' after the data */
    S_BULK_LF,    /* expecting '\n' */
    S_INLINE,     /* reading an inline line */
};

#define DEFAULT_MAX_BULK (8u << 20)
#define FIRST_CHUNK 16384u

void sc_resp_parser_init(sc_resp_parser *p, const sc_resp_limits *lim)
{
    memset(p, 0, sizeof *p);
    if (lim) p->lim = *lim;
    if (!p->lim.max_args) p->lim.max_args = SC_RESP_MAX_ARGS;
    if (!p->lim.max_bulk) p->lim.max_bulk = DEFAULT_MAX_BULK;
    if (!p->lim.max_inline) p->lim.max_inline = SC_RESP_MAX_INLINE;
    if (!p->lim.max_total) p->lim.max_total = p->lim.max_bulk + (1u << 20);
    sc_buf_init(&p->inl, p->lim.max_inline);
    p->state = S_START;
}

void sc_resp_cmd_free(sc_resp_cmd *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->argc; i++)
        if (!(c->argv[i] >= c->arena_ && c->argv[i] < c->arena_end_)) free(c->argv[i]);
    if (c->own_arrays_) {
        free(c->argv);
        free(c->len);
    }
    free(c);
}

/* One block: the command, argv[n], len[n], then an arena for small
 * arguments (up to ARENA bytes, NUL included). */
#define ARENA 512u
static sc_resp_cmd *cmd_new(size_t n, char **arena_next)
{
    size_t head = sizeof(sc_resp_cmd) + n * (sizeof(char *) + sizeof(size_t));
    head = (head + 15) & ~(size_t)15;
    char *blk = sc_malloc(head + ARENA);
    sc_resp_cmd *c = (sc_resp_cmd *)(void *)blk;
    memset(c, 0, sizeof *c);
    c->argv = (char **)(void *)(blk + sizeof(sc_resp_cmd));
    c->len = (size_t *)(void *)(blk + sizeof(sc_resp_cmd) + n * sizeof(char *));
    c->arena_ = blk + head;
    c->arena_end_ = blk + head + ARENA;
    *arena_next = c->arena_;
    return c;
}

void sc_resp_parser_free(sc_resp_parser *p)
{
    sc_resp_cmd_free(p->cmd);
    p->cmd = NULL;
    sc_buf_free(&p->inl);
}

int sc_resp_parser_midway(const sc_resp_parser *p)
{
    return p->state != S_START;
}

static int fail(sc_resp_parser *p, int code, const char *msg)
{
    snprintf(p->err, sizeof p->err, "Protocol error: %s", msg);
    p->dead = code;
    sc_resp_cmd_free(p->cmd);
    p->cmd = NULL;
    sc_buf_free(&p->inl);
    return code;
}

/* Parses a decimal integer line ("123" or "-1") of n bytes. */
static int parse_len(const char *s, size_t n, long long *out)
{
    if (n == 0 || n > 20) return -1;
    int neg = 0;
    size_t i = 0;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1) return -1;
    }
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v > (LLONG_MAX - 9) / 10) return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

/* Collects a header line into p->line. Returns 1 when the line is
 * complete (p->line_len excludes "\r\n"), 0 when more bytes are needed,
 * or an error code. */
static int read_line(sc_resp_parser *p, const char *d, size_t n, size_t *i)
{
    const char *nl = memchr(d + *i, '\n', n - *i);
    size_t take = nl ? (size_t)(nl - (d + *i)) : n - *i;
    if (p->line_len + take > sizeof p->line)
        return fail(p, SC_EPROTO,
                    p->state == S_ARRAY_LINE ? "invalid multibulk length" : "invalid bulk length");
    memcpy(p->line + p->line_len, d + *i, take);
    p->line_len += take;
    *i += take;
    if (!nl) return 0;
    (*i)++; /* the '\n' */
    if (p->line_len == 0 || p->line[p->line_len - 1] != '\r')
        return fail(p, SC_EPROTO, "line not ended by CRLF");
    p->line_len--;
    return 1;
}

static void reset_cmd_state(sc_resp_parser *p)
{
    p->state = S_START;
    p->line_len = 0;
    p->nargs = 0;
    p->bulk_len = p->bulk_got = p->bulk_cap = 0;
}

int sc_resp_split_inline(const char *s, size_t n, size_t max_args, sc_resp_cmd **out)
{
    *out = NULL;
    sc_resp_cmd *c = SC_NEW(sc_resp_cmd);
    c->own_arrays_ = 1;
    size_t cap = 0;
    size_t i = 0;
    sc_buf arg;
    sc_buf_init(&arg, n + 1);
    int rc = SC_OK;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' ||
                         s[i] == '\v' || s[i] == '\f'))
            i++;
        if (i >= n) break;
        sc_buf_reset(&arg);
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            char ch = i < n ? s[i] : '\0';
            if (inq) {
                if (i >= n) {
                    rc = SC_EPROTO;
                    goto out;
                }
                if (ch == '\\' && i + 3 < n && s[i + 1] == 'x' &&
                    isxdigit((unsigned char)s[i + 2]) && isxdigit((unsigned char)s[i + 3])) {
                    char hex[3] = {s[i + 2], s[i + 3], 0};
                    char b = (char)strtol(hex, NULL, 16);
                    sc_buf_append(&arg, &b, 1);
                    i += 3;
                } else if (ch == '\\' && i + 1 < n) {
                    char e = s[++i];
                    switch (e) {
                    case 'n':
                        e = '\n';
                        break;
                    case 'r':
                        e = '\r';
                        break;
                    case 't':
                        e = '\t';
                        break;
                    case 'b':
                        e = '\b';
                        break;
                    case 'a':
                        e = '\a';
                        break;
                    default:
                        break;
                    }
                    sc_buf_append(&arg, &e, 1);
                } else if (ch == '"') {
                    /* The closing quote must be followed by space or end. */
                    if (i + 1 < n && !strchr(" \t\r\n\v\f", s[i + 1])) {
                        rc = SC_EPROTO;
                        goto out;
                    }
                    done = 1;
                } else {
                    sc_buf_append(&arg, &ch, 1);
                }
            } else if (insq) {
                if (i >= n) {
                    rc = SC_EPROTO;
                    goto out;
                }
                if (ch == '\\' && i + 1 < n && s[i + 1] == '\'') {
                    i++;
                    sc_buf_append(&arg, "'", 1);
                } else if (ch == '\'') {
                    if (i + 1 < n && !strchr(" \t\r\n\v\f", s[i + 1])) {
                        rc = SC_EPROTO;
                        goto out;
                    }
                    done = 1;
                } else {
                    sc_buf_append(&arg, &ch, 1);
                }
            } else {
                if (i >= n || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' ||
                    ch == '\f') {
                    done = 1;
                    continue; /* do not step over the end */
                } else if (ch == '"') {
                    inq = 1;
                } else if (ch == '\'') {
                    insq = 1;
                } else {
                    sc_buf_append(&arg, &ch, 1);
                }
            }
            i++;
        }
        if (c->argc == max_args) {
            rc = SC_ETOOBIG;
            goto out;
        }
        if (c->argc == cap) {
            cap = cap ? cap * 2 : 4;
            if (cap > max_args) cap = max_args;
            c->argv = sc_realloc(c->argv, cap * sizeof *c->argv);
            c->len = sc_realloc(c->len, cap * sizeof *c->len);
        }
        size_t alen = arg.len;
        c->argv[c->argc] = alen ? sc_buf_steal(&arg, NULL) : sc_strdup("");
        c->len[c->argc] = alen;
        c->bytes += alen;
        c->argc++;
        sc_buf_init(&arg, n + 1);
    }
out:
    sc_buf_free(&arg);
    if (rc || c->argc == 0) {
        sc_resp_cmd_free(c);
        return rc;
    }
    *out = c;
    return SC_OK;
}

/* Finishes an inline line held in p->inl. */
static int finish_inline(sc_resp_parser *p, sc_resp_cmd **out)
{
    size_t n = p->inl.len;
    const char *s = p->inl.data ? p->inl.data : "";
    if (n > 0 && s[n - 1] == '\r') n--;
    int rc = sc_resp_split_inline(s, n, p->lim.max_args, out);
    sc_buf_reset(&p->inl);
    p->state = S_START;
    if (rc == SC_EPROTO) return fail(p, rc, "unbalanced quotes in request");
    if (rc) return fail(p, rc, "too many arguments in inline request");
    return SC_OK;
}

int sc_resp_parse(sc_resp_parser *p, const char *d, size_t n, size_t *used, sc_resp_cmd **out)
{
    size_t i = 0;
    *out = NULL;
    *used = 0;
    if (p->dead) return p->dead;
    while (i < n) {
        switch (p->state) {
        case S_START:
            if (d[i] == '*') {
                p->state = S_ARRAY_LINE;
                p->line_len = 0;
                i++;
            } else {
                p->state = S_INLINE;
            }
            break;

        case S_INLINE: {
            const char *nl = memchr(d + i, '\n', n - i);
            size_t take = nl ? (size_t)(nl - (d + i)) : n - i;
            if (sc_buf_append(&p->inl, d + i, take))
                return fail(p, SC_ETOOBIG, "too big inline request");
            i += take;
            if (!nl) break;
            i++;
            int rc = finish_inline(p, out);
            if (rc) return rc;
            if (*out) {
                *used = i;
                return SC_OK;
            }
            break; /* an empty line: skipped */
        }

        case S_ARRAY_LINE: {
            int rc = read_line(p, d, n, &i);
            if (rc < 0) return rc;
            if (rc == 0) break;
            long long v;
            if (parse_len(p->line, p->line_len, &v))
                return fail(p, SC_EPROTO, "invalid multibulk length");
            if (v > (long long)p->lim.max_args)
                return fail(p, SC_ETOOBIG, "invalid multibulk length");
            if (v <= 0) { /* "*0" / "*-1": nothing to run */
                reset_cmd_state(p);
                break;
            }
            p->nargs = (size_t)v;
            p->cmd = cmd_new(p->nargs, &p->arena_next);
            p->state = S_BULK_TYPE;
            break;
        }

        case S_BULK_TYPE:
            if (d[i] != '$') {
                char msg[32];
                if (d[i] >= 0x20 && d[i] < 0x7f)
                    snprintf(msg, sizeof msg, "expected '$', got '%c'", d[i]);
                else
                    snprintf(msg, sizeof msg, "expected '$', got '\\x%02x'", (unsigned char)d[i]);
                return fail(p, SC_EPROTO, msg);
            }
            i++;
            p->state = S_BULK_LINE;
            p->line_len = 0;
            break;

        case S_BULK_LINE: {
            int rc = read_line(p, d, n, &i);
            if (rc < 0) return rc;
            if (rc == 0) break;
            long long v;
            if (parse_len(p->line, p->line_len, &v) || v < 0)
                return fail(p, SC_EPROTO, "invalid bulk length");
            if ((unsigned long long)v > p->lim.max_bulk)
                return fail(p, SC_ETOOBIG, "invalid bulk length");
            if (p->cmd->bytes + (size_t)v > p->lim.max_total)
                return fail(p, SC_ETOOBIG, "command too large");
            p->bulk_len = (size_t)v;
            p->bulk_got = 0;
            if (p->bulk_len + 1 <= (size_t)(p->cmd->arena_end_ - p->arena_next)) {
                /* Fits the arena: its exact size, never reallocated. */
                p->bulk_cap = p->bulk_len + 1;
                p->cmd->argv[p->cmd->argc] = p->arena_next;
                p->arena_next += p->bulk_cap;
            } else {
                p->bulk_cap = p->bulk_len + 1 < FIRST_CHUNK ? p->bulk_len + 1 : FIRST_CHUNK;
                p->cmd->argv[p->cmd->argc] = sc_malloc(p->bulk_cap);
            }
            p->cmd->len[p->cmd->argc] = 0;
            p->cmd->argc++;
            p->state = p->bulk_len ? S_BULK_DATA : S_BULK_CR;
            break;
        }

        case S_BULK_DATA: {
            size_t want = p->bulk_len - p->bulk_got;
            size_t take = n - i < want ? n - i : want;
            size_t k = p->cmd->argc - 1;
            if (p->bulk_got + take + 1 > p->bulk_cap) {
                size_t cap = p->bulk_cap;
                while (cap < p->bulk_got + take + 1)
                    cap *= 2;
                if (cap > p->bulk_len + 1) cap = p->bulk_len + 1;
                p->cmd->argv[k] = sc_realloc(p->cmd->argv[k], cap);
                p->bulk_cap = cap;
            }
            memcpy(p->cmd->argv[k] + p->bulk_got, d + i, take);
            p->bulk_got += take;
            i += take;
            if (p->bulk_got == p->bulk_len) p->state = S_BULK_CR;
            break;
        }

        case S_BULK_CR:
            if (d[i] != '\r') return fail(p, SC_EPROTO, "bulk string not ended by CRLF");
            i++;
            p->state = S_BULK_LF;
            break;

        case S_BULK_LF: {
            if (d[i] != '\n') return fail(p, SC_EPROTO, "bulk string not ended by CRLF");
            i++;
            size_t k = p->cmd->argc - 1;
            p->cmd->argv[k][p->bulk_len] = '\0';
            p->cmd->len[k] = p->bulk_len;
            p->cmd->bytes += p->bulk_len;
            if (p->cmd->argc < p->nargs) {
                p->state = S_BULK_TYPE;
                break;
            }
            *out = p->cmd;
            p->cmd = NULL;
            reset_cmd_state(p);
            *used = i;
            return SC_OK;
        }
        }
    }
    *used = i;
    return SC_OK;
}
