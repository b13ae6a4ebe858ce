/* The one error space of semcached.
 *
 * Every function that can fail returns int: 0 on success or a negative
 * SC_E* code. Codes from LMDB, libuv, errno and libcurl are converted at the
 * edge of the module that calls them. SC_ERRNO_MAP is an X-macro: it
 * generates the enum, sc_strerror() and sc_err_name() so they never drift.
 * New codes go at the end: the values are part of libsemcache's API. */
#ifndef SC_ERR_H
#define SC_ERR_H

#define SC_ERRNO_MAP(X)                                                  \
    X(NOMEM, "out of memory")                                            \
    X(INVAL, "invalid argument")                                         \
    X(NOTFOUND, "not found")                                             \
    X(TOOBIG, "too large")                                               \
    X(IO, "input/output error")                                          \
    X(CORRUPT, "corrupt data")                                           \
    X(EXISTS, "already exists")                                          \
    X(TIMEOUT, "timed out")                                              \
    X(UPSTREAM, "upstream error")                                        \
    X(AUTH, "authentication required")                                   \
    X(FORBIDDEN, "forbidden")                                            \
    X(PROTO, "protocol error")                                           \
    X(MISMATCH, "data written by a different configuration")            \
    X(FULL, "the store is full (LMDB map: raise --map-size-mb, or cap it with --max-bytes / --max-entries)") \
    X(CLOSED, "closed")                                                  \
    X(UNSUPPORTED, "not supported")                                      \
    X(BUSY, "busy")                                                      \
    X(VERSION, "unsupported format version")                             \
    X(NOSPACE, "no space left on the device of the data dir")

enum {
    SC_OK = 0,
#define SC_ERR_ENUM_(name, msg) SC_E##name,
    SC_ERR_FIRST_ = -1000,
    SC_ERRNO_MAP(SC_ERR_ENUM_)
#undef SC_ERR_ENUM_
    SC_ERR_LAST_
};

/* Human-readable message for an error code; static storage, any thread. */
const char *sc_strerror(int err);
/* Symbolic name ("SC_ENOTFOUND"); static storage, any thread. */
const char *sc_err_name(int err);
/* Converts a positive or negative errno value to an SC_E* code. */
int sc_err_from_errno(int e);

#endif
