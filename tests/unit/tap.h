/* A small TAP-printing unit-test framework.
 *
 * SC_TEST(name) { ... } defines and registers a test; CHECK(cond) and
 * CHECK_EQ_INT(a, b) record a failure with file:line and keep going;
 * REQUIRE(cond) also returns from the test. The runner prints one
 * "ok N - name" / "not ok N - name" line per test and takes an optional
 * name filter (substring) as argv[1]. A test file per module:
 * tests/unit/test_<module>.c. Tests may #include a .c to reach statics. */
#ifndef SC_TAP_H
#define SC_TAP_H

#include <stdio.h>
#include <stdint.h>

typedef void (*sc_test_fn)(void);
void sc_test_register(const char *name, sc_test_fn fn);
void sc_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A fresh empty temporary directory for this test (removed at exit). */
const char *sc_test_tmpdir(void);

#define SC_TEST(name)                                                        \
    static void test_##name(void);                                           \
    __attribute__((constructor)) static void register_##name(void)           \
    { sc_test_register(#name, test_##name); }                                \
    static void test_##name(void)

#define CHECK(cond)                                                          \
    do { if (!(cond)) sc_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define REQUIRE(cond)                                                        \
    do { if (!(cond)) { sc_test_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond); return; } } while (0)
#define CHECK_EQ_INT(a, b)                                                   \
    do { long long a_ = (long long)(a), b_ = (long long)(b);                 \
         if (a_ != b_) sc_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_OK(expr)                                                       \
    do { int rc_ = (expr);                                                   \
         if (rc_ != 0) sc_test_fail(__FILE__, __LINE__, "%s returned %d", #expr, rc_); } while (0)

#endif
