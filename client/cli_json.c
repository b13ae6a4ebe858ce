/* Small JSON helpers for semcache-cli (see cli_json.h): a cursor-based
 * recursive-descent reader that understands the whole JSON grammar (so any
 * valid line is accepted and unknown keys are skipped) but only keeps the
 * few values the CLI needs. */
#include "client/cli_json.h"
#include "common/alloc.h"
#include "common/err.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct cur {
    const char *s, *p, *end;
} cur;

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int hex4(cur *c, unsigned *out)
{
    if (c->end - c->p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(c->p[i]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    c->p += 4;
    *out = v;
    return 0;
}

static void put_utf8(sc_buf *b, unsigned cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        o[0] = (char)(0xf0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sc_buf_append(b, o, n);
}

/* Reads a string (cursor at the opening quote) into b (may be NULL to
 * skip). */
static int str(cur *c, sc_buf *b)
{
    if (c->p >= c->end || *c->p != '"') return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch != '\\') {
            const char *q = c->p;
            while (q < c->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
                q++;
            if (b && sc_buf_append(b, c->p, (size_t)(q - c->p))) return -1;
            c->p = q;
            continue;
        }
        if (++c->p >= c->end) return -1;
        char e = *c->p++;
        char lit;
        switch (e) {
        case '"':
            lit = '"';
            break;
        case '\\':
            lit = '\\';
            break;
        case '/':
            lit = '/';
            break;
        case 'b':
            lit = '\b';
            break;
        case 'f':
            lit = '\f';
            break;
        case 'n':
            lit = '\n';
            break;
        case 'r':
            lit = '\r';
            break;
        case 't':
            lit = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (hex4(c, &cp)) return -1;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u') return -1;
                c->p += 2;
                if (hex4(c, &lo) || lo < 0xdc00 || lo > 0xdfff) return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return -1;
            }
            if (b) put_utf8(b, cp);
            continue;
        }
        default:
            return -1;
        }
        if (b && sc_buf_append(b, &lit, 1)) return -1;
    }
    return -1;
}

static int number(cur *c, double *out)
{
    const char *q = c->p;
    if (q < c->end && *q == '-') q++;
    if (q >= c->end || *q < '0' || *q > '9') return -1;
    if (*q == '0')
        q++;
    else
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    if (q < c->end && *q == '.') {
        q++;
        if (q >= c->end || *q < '0' || *q > '9') return -1;
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < c->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < c->end && (*q == '+' || *q == '-')) q++;
        if (q >= c->end || *q < '0' || *q > '9') return -1;
        while (q < c->end && *q >= '0' && *q <= '9')
            q++;
    }
    /* strtod needs a terminated copy; a valid number may be long
     * ("1.000...0", "1e-0000...1"), so long ones are copied to the heap. */
    char tmp[64];
    size_t n = (size_t)(q - c->p);
    if (out) {
        char *t = n < sizeof tmp ? tmp : sc_malloc(n + 1);
        memcpy(t, c->p, n);
        t[n] = '\0';
        *out = strtod(t, NULL);
        if (t != tmp) free(t);
    }
    c->p = q;
    return 0;
}

static int lit(cur *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return -1;
    c->p += n;
    return 0;
}

static int skip(cur *c, int depth)
{
    if (depth > MAX_DEPTH) return -1;
    ws(c);
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '"':
        return str(c, NULL);
    case 't':
        return lit(c, "true");
    case 'f':
        return lit(c, "false");
    case 'n':
        return lit(c, "null");
    case '[':
    case '{': {
        char close = *c->p == '[' ? ']' : '}';
        int obj = close == '}';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj) {
                ws(c);
                if (str(c, NULL)) return -1;
                ws(c);
                if (c->p >= c->end || *c->p++ != ':') return -1;
            }
            if (skip(c, depth + 1)) return -1;
            ws(c);
            if (c->p >= c->end) return -1;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p++ == close) return 0;
            return -1;
        }
    }
    default:
        return number(c, NULL);
    }
}

void sc_cli_entry_clear(sc_cli_entry *e)
{
    free(e->ns);
    free(e->prompt);
    free(e->response);
    memset(e, 0, sizeof *e);
}

static int bad(sc_cli_entry *e, char *err, size_t errlen, const char *msg, const cur *c)
{
    if (c)
        snprintf(err, errlen, "%s at byte %zu", msg, (size_t)(c->p - c->s) + 1);
    else
        snprintf(err, errlen, "%s", msg);
    sc_cli_entry_clear(e);
    return SC_EINVAL;
}

/* 1 when the key read into k is exactly name ("prompt\u0000x" is not
 * "prompt"). */
static int key_is(const sc_buf *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && (n == 0 || memcmp(k->data, name, n) == 0);
}

/* Reads a string value into *dst (replacing an earlier one). */
static int take_str(cur *c, char **dst, size_t *len)
{
    sc_buf b;
    sc_buf_init(&b, (size_t)1 << 31);
    if (str(c, &b)) {
        sc_buf_free(&b);
        return -1;
    }
    free(*dst);
    size_t n = b.len;
    *dst = n ? sc_buf_steal(&b, NULL) : sc_strdup("");
    sc_buf_free(&b);
    if (len) *len = n;
    return 0;
}

int sc_cli_parse_entry(const char *line, size_t len, sc_cli_entry *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    size_t ns_len = 0;
    cur c = {line, line, line + len};
    ws(&c);
    if (c.p >= c.end || *c.p != '{') return bad(e, err, errlen, "not a JSON object", NULL);
    c.p++;
    ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            ws(&c);
            sc_buf key;
            sc_buf_init(&key, (size_t)1 << 31); /* any length: bounded by the input */
            if (str(&c, &key)) {
                sc_buf_free(&key);
                return bad(e, err, errlen, "invalid JSON (key)", &c);
            }
            ws(&c);
            if (c.p >= c.end || *c.p++ != ':') {
                sc_buf_free(&key);
                return bad(e, err, errlen, "invalid JSON (expected ':')", &c);
            }
            ws(&c);
            const char *k = key.data ? key.data : "";
            int rc = 0;
            int is_str = c.p < c.end && *c.p == '"';
            if (key_is(&key, "namespace")) {
                rc = is_str ? take_str(&c, &e->ns, &ns_len) : -2;
            } else if (key_is(&key, "prompt")) {
                rc = is_str ? take_str(&c, &e->prompt, &e->prompt_len) : -2;
            } else if (key_is(&key, "response")) {
                rc = is_str ? take_str(&c, &e->response, &e->response_len) : -2;
            } else if (key_is(&key, "ttl")) {
                double v;
                if (c.p < c.end && *c.p == 'n') {
                    rc = lit(&c, "null");
                } else if (number(&c, &v) == 0) {
                    if (v < 0 || v > 1e10 || v != floor(v))
                        rc = -3;
                    else
                        e->ttl = (long long)v;
                } else {
                    rc = -1;
                }
            } else {
                rc = skip(&c, 1);
            }
            if (rc == -2) {
                char msg[300];
                snprintf(msg, sizeof msg, "%s: must be a string", k);
                sc_buf_free(&key);
                return bad(e, err, errlen, msg, NULL);
            }
            sc_buf_free(&key);
            if (rc == -3)
                return bad(e, err, errlen, "ttl: must be a whole number of seconds >= 0", NULL);
            if (rc) return bad(e, err, errlen, "invalid JSON", &c);
            ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == '}') {
                c.p++;
                break;
            }
            return bad(e, err, errlen, "invalid JSON (expected ',' or '}')", &c);
        }
    }
    ws(&c);
    if (c.p != c.end) return bad(e, err, errlen, "trailing bytes after the object", &c);
    if (!e->prompt) return bad(e, err, errlen, "prompt: missing", NULL);
    if (!e->response) return bad(e, err, errlen, "response: missing", NULL);
    if (e->prompt_len == 0) return bad(e, err, errlen, "prompt: empty", NULL);
    /* A namespace is a C string everywhere after this: a NUL would cut it
     * to another namespace's name. */
    if (e->ns && memchr(e->ns, 0, ns_len)) return bad(e, err, errlen, "namespace: contains a NUL (\\u0000)", NULL);
    return SC_OK;
}

int sc_cli_json_str(sc_buf *b, const char *s, size_t n)
{
    int rc = sc_buf_append(b, "\"", 1);
    size_t i = 0;
    while (!rc && i < n) {
        size_t j = i;
        while (j < n && (unsigned char)s[j] >= 0x20 && s[j] != '"' && s[j] != '\\')
            j++;
        if (j > i) rc = sc_buf_append(b, s + i, j - i);
        if (rc || j == n) break;
        unsigned char ch = (unsigned char)s[j];
        switch (ch) {
        case '"':
            rc = sc_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            rc = sc_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            rc = sc_buf_append(b, "\\n", 2);
            break;
        case '\r':
            rc = sc_buf_append(b, "\\r", 2);
            break;
        case '\t':
            rc = sc_buf_append(b, "\\t", 2);
            break;
        default:
            rc = sc_buf_printf(b, "\\u%04x", ch);
            break;
        }
        i = j + 1;
    }
    if (!rc) rc = sc_buf_append(b, "\"", 1);
    return rc;
}

int sc_cli_embeddings(const char *json, size_t len,
                      void (*fn)(void *arg, size_t row, const double *v, size_t n), void *arg)
{
    cur c = {json, json, json + len};
    ws(&c);
    if (c.p >= c.end || *c.p++ != '{') return SC_EINVAL;
    for (;;) {
        ws(&c);
        sc_buf key;
        sc_buf_init(&key, (size_t)1 << 31); /* any length: bounded by the input */
        if (str(&c, &key)) {
            sc_buf_free(&key);
            return SC_EINVAL;
        }
        int found = key_is(&key, "embeddings");
        sc_buf_free(&key);
        ws(&c);
        if (c.p >= c.end || *c.p++ != ':') return SC_EINVAL;
        ws(&c);
        if (!found) {
            if (skip(&c, 1)) return SC_EINVAL;
            ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            return SC_EINVAL; /* no embeddings */
        }
        if (c.p >= c.end || *c.p++ != '[') return SC_EINVAL;
        size_t rows = 0, cap = 0;
        double *v = NULL;
        ws(&c);
        if (c.p < c.end && *c.p == ']') return 0;
        for (;;) {
            ws(&c);
            if (c.p >= c.end || *c.p++ != '[') break;
            size_t n = 0;
            ws(&c);
            if (c.p < c.end && *c.p == ']') {
                c.p++;
            } else {
                for (;;) {
                    ws(&c);
                    if (n == cap) {
                        cap = cap ? cap * 2 : 512;
                        v = sc_realloc(v, cap * sizeof *v);
                    }
                    if (number(&c, &v[n])) goto fail;
                    n++;
                    ws(&c);
                    if (c.p < c.end && *c.p == ',') {
                        c.p++;
                        continue;
                    }
                    if (c.p < c.end && *c.p == ']') {
                        c.p++;
                        break;
                    }
                    goto fail;
                }
            }
            fn(arg, rows++, v, n);
            ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == ']') {
                free(v);
                return (int)rows;
            }
            break;
        }
    fail:
        free(v);
        return SC_EINVAL;
    }
}
