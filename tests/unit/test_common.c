/* Unit tests for common/: errors, buffers, config, hashing, halves. */
#include "tap.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/half.h"
#include "common/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

SC_TEST(common_err_names)
{
    CHECK(strcmp(sc_err_name(SC_ENOTFOUND), "SC_ENOTFOUND") == 0);
    CHECK(strcmp(sc_strerror(SC_ETOOBIG), "too large") == 0);
    CHECK(strcmp(sc_strerror(SC_OK), "ok") == 0);
    CHECK(SC_ENOMEM < 0);
    CHECK_EQ_INT(sc_err_from_errno(2), SC_ENOTFOUND);
}

SC_TEST(common_buf_bounded)
{
    sc_buf b;
    sc_buf_init(&b, 10);
    CHECK_OK(sc_buf_append(&b, "hello", 5));
    CHECK_OK(sc_buf_printf(&b, "%d", 1234));
    CHECK_EQ_INT(b.len, 9);
    CHECK_EQ_INT(sc_buf_append(&b, "xy", 2), SC_ETOOBIG);
    CHECK_EQ_INT(b.len, 9);
    CHECK(strcmp(b.data, "hello1234") == 0);
    sc_buf_consume(&b, 5);
    CHECK(strcmp(b.data, "1234") == 0);
    CHECK_EQ_INT(sc_buf_printf(&b, "%s", "0123456789"), SC_ETOOBIG);
    size_t n;
    char *p = sc_buf_steal(&b, &n);
    CHECK_EQ_INT(n, 4);
    free(p);
    sc_buf_free(&b);
}

SC_TEST(common_config_flags)
{
    sc_config c;
    sc_config_defaults(&c);
    CHECK_EQ_INT(c.port, 8080);
    CHECK_EQ_INT(c.resp_port, 6380);
    CHECK(strcmp(c.embedder, "semcache-embed") == 0); /* the trained cache embedder is the default */
    CHECK(strcmp(c.model_dir, "") == 0);              /* = the embedder's own model directory */
    CHECK(strcmp(c.answer_vote, "on") == 0);
    CHECK_EQ_INT(c.index_scan_bits, 4); /* 4-bit scan by default (BENCHMARKS.md, Index) */
    char err[256];
    int help;
    CHECK(sc_config_set(&c, "embedder", "use-lite", err, sizeof err) == SC_OK);
    CHECK(sc_config_set(&c, "answer-vote", "maybe", err, sizeof err) == SC_EINVAL);
    CHECK_OK(sc_config_set(&c, "index-scan-bits", "8", err, sizeof err));
    CHECK_EQ_INT(c.index_scan_bits, 8);
    char *argv[] = {"x", "--port", "9000", "--threshold=0.9", "--embedder", "hash", NULL};
    CHECK_OK(sc_config_parse_args(&c, 6, argv, &help, err, sizeof err));
    CHECK_EQ_INT(c.port, 9000);
    CHECK(c.threshold > 0.89 && c.threshold < 0.91);
    char *bad[] = {"x", "--no-such-flag", "1", NULL};
    CHECK_EQ_INT(sc_config_parse_args(&c, 3, bad, &help, err, sizeof err), SC_ENOTFOUND);
    CHECK(strstr(err, "--no-such-flag") != NULL);
    CHECK(sc_config_set(&c, "port", "70000", err, sizeof err) == SC_EINVAL);
    CHECK(strstr(err, "port") != NULL);
    CHECK(sc_config_set(&c, "embedder", "bogus", err, sizeof err) == SC_EINVAL);
    CHECK(sc_config_set(&c, "threshold", "nan", err, sizeof err) == SC_EINVAL);
    CHECK_OK(sc_config_set(&c, "api-key", "k1 ns user", err, sizeof err));
    CHECK_OK(sc_config_set(&c, "api-key", "k2 ns admin", err, sizeof err));
    CHECK_EQ_INT(c.api_keys.n, 2);
    sc_config_free(&c);
}

SC_TEST(common_config_file)
{
    const char *dir = sc_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/c.conf", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("# comment\nport 8181  # trailing\n\nthreshold 0.8\nbogus 1\n", f);
    fclose(f);
    sc_config c;
    sc_config_defaults(&c);
    char err[512];
    CHECK_EQ_INT(sc_config_load_file(&c, path, err, sizeof err), SC_ENOTFOUND);
    CHECK(strstr(err, ":5:") != NULL && strstr(err, "bogus") != NULL);
    CHECK_EQ_INT(c.port, 8181);
    /* Past SC_CONFIG_MAX_FILE: refused as a whole, naming the file. */
    f = fopen(path, "w");
    REQUIRE(f);
    for (int i = 0; i <= SC_CONFIG_MAX_FILE / 16; i++) fputs("# padding .....\n", f);
    fclose(f);
    CHECK_EQ_INT(sc_config_load_file(&c, path, err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "too large") != NULL && strstr(err, path) != NULL);
    sc_config_free(&c);
}

SC_TEST(common_hash_fields)
{
    sc_hasher a, b;
    sc_hasher_init(&a, 1);
    sc_hasher_add_str(&a, "ab");
    sc_hasher_add_str(&a, "c");
    sc_hasher_init(&b, 1);
    sc_hasher_add_str(&b, "a");
    sc_hasher_add_str(&b, "bc");
    CHECK(sc_hasher_final(&a) != sc_hasher_final(&b));
    CHECK(sc_hash64("x", 1, 0) == sc_hash64("x", 1, 0));
}

SC_TEST(common_config_text)
{
    sc_config c;
    sc_config_defaults(&c);
    char err[512];
    static const char text[] = "port 8282\r\n  # only a comment\nworkers\t3   \nthreshold 0.7";
    CHECK_OK(sc_config_load_text(&c, text, sizeof text - 1, "t", err, sizeof err));
    CHECK_EQ_INT(c.port, 8282);
    CHECK_EQ_INT(c.workers, 3);
    CHECK(c.threshold > 0.69 && c.threshold < 0.71);
    /* A line of SC_CONFIG_MAX_LINE bytes is read; one byte more is an error. */
    char *big = malloc(SC_CONFIG_MAX_LINE + 2);
    REQUIRE(big);
    memset(big, ' ', SC_CONFIG_MAX_LINE + 1);
    memcpy(big, "port 9191", 9);
    CHECK_OK(sc_config_load_text(&c, big, SC_CONFIG_MAX_LINE, "t", err, sizeof err));
    CHECK_EQ_INT(c.port, 9191);
    big[SC_CONFIG_MAX_LINE + 1] = '\n';
    CHECK_EQ_INT(sc_config_load_text(&c, big, SC_CONFIG_MAX_LINE + 2, "t", err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "t:1: the line of 'port' is too long") == err);
    free(big);
    /* The error names the origin, the line and the directive. */
    CHECK_EQ_INT(sc_config_load_text(&c, "\n\nworkers 0\n", 11, "x.conf", err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "x.conf:3:") == err && strstr(err, "'workers'") != NULL);
    sc_config_free(&c);
}

/* Found by fuzz_config: a long bad value pushed the option's name out of
 * the (bounded) error message. */
SC_TEST(common_config_long_bad_value_names_option)
{
    static const char *const names[] = {"port", "threshold", "reembed", "embedder"};
    char value[2048];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        sc_config c;
        sc_config_defaults(&c);
        char err[256], want[64];
        CHECK_EQ_INT(sc_config_set(&c, names[i], value, err, sizeof err), SC_EINVAL);
        snprintf(want, sizeof want, "'%s'", names[i]);
        CHECK(strstr(err, want) != NULL);
        CHECK(strstr(err, "xxx...'") != NULL);   /* the value, clipped */
        /* The same through a config file line. */
        char text[2100];
        int n = snprintf(text, sizeof text, "%s %s\n", names[i], value);
        CHECK_EQ_INT(sc_config_load_text(&c, text, (size_t)n, "c.conf", err, sizeof err), SC_EINVAL);
        CHECK(strstr(err, "c.conf:1:") == err && strstr(err, want) != NULL);
        sc_config_free(&c);
    }
    /* And in the cross-field checks. */
    sc_config c;
    sc_config_defaults(&c);
    char err[256];
    CHECK_OK(sc_config_set(&c, "bind", value, err, sizeof err));
    CHECK_EQ_INT(sc_config_validate(&c, err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "'bind'") != NULL);
    sc_config_free(&c);
}

/* A NUL byte in a config line used to end the line silently ("port 8080"
 * then NUL and anything: port 8080); it is an error naming the line and
 * the directive. */
SC_TEST(common_config_nul_byte_rejected)
{
    sc_config c;
    sc_config_defaults(&c);
    char err[256];
    static const char text[] = "workers 3\nport 8181\0 junk\n";
    CHECK_EQ_INT(sc_config_load_text(&c, text, sizeof text - 1, "n.conf", err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "n.conf:2:") == err && strstr(err, "'port'") != NULL && strstr(err, "NUL") != NULL);
    CHECK_EQ_INT(c.port, 8080);
    CHECK_EQ_INT(c.workers, 3);
    static const char text2[] = "\0port 1\n";
    CHECK_EQ_INT(sc_config_load_text(&c, text2, sizeof text2 - 1, "n.conf", err, sizeof err), SC_EINVAL);
    CHECK(strstr(err, "n.conf:1: the line contains a NUL byte") == err);
    sc_config_free(&c);
}

/* The F16C array conversions equal the scalar ones: every half decoded,
 * and floats across the whole range (ties, subnormals, overflow) encoded. */
SC_TEST(half_arrays_match_scalar)
{
    enum { N = 65536 };
    uint16_t *h = sc_malloc(N * sizeof *h), *h2 = sc_malloc(N * sizeof *h);
    float *f = sc_malloc(N * sizeof *f), *f2 = sc_malloc(N * sizeof *f);
    for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)i;
    sc_half_decode(f, h, N);
    sc_half_simd_force = 1;
    sc_half_decode(f2, h, N);
    sc_half_simd_force = 0;
    size_t bad = 0;
    for (uint32_t i = 0; i < N; i++)
        if (!isnan(f[i]) && memcmp(&f[i], &f2[i], 4) != 0) bad++;
    CHECK_EQ_INT(bad, 0);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 64; round++) {
        for (uint32_t i = 0; i < N; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            uint32_t u = (uint32_t)x;
            /* Half the values near the half range (exponents 100-143),
             * where rounding, subnormals and overflow happen. */
            if (i & 1) u = (u & 0x807fffffu) | ((100u + (u >> 8) % 44u) << 23);
            if (i % 7 == 0) u &= 0xffffe000u | 0x1000u; /* exact ties */
            memcpy(&f[i], &u, 4);
        }
        sc_half_encode(h, f, N);
        sc_half_simd_force = 1;
        sc_half_encode(h2, f, N);
        sc_half_simd_force = 0;
        for (uint32_t i = 0; i < N; i++)
            if (!isnan(f[i]) && h[i] != h2[i]) {
                if (bad++ < 5) printf("# %a: %04x vs scalar %04x\n", (double)f[i], h[i], h2[i]);
            }
    }
    CHECK_EQ_INT(bad, 0);
    free(h);
    free(h2);
    free(f);
    free(f2);
}
