/* Unit tests for storage/store_migrate.c: a data dir of record version 1
 * (fp32 vectors, schema 1) is upgraded in place on open, loses nothing
 * (fields, exact keys, expiry, counters), halves the vector bytes, and a
 * kill -9 in the middle of the upgrade is finished by the next open. */
#include "tap.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/half.h"
#include "common/log.h"
#include "storage/store.h"

#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MDIM 64
#define MN 2500

/* The test hooks of store_migrate.c (store_int.h). */
extern size_t sc_store__migrate_batch;
extern void (*sc_store__migrate_hook)(uint64_t rewritten);
extern void (*sc_store__compact_hook)(int stage);

static long long data_file_size(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

static int compact_copy_exists(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/compact.tmp", dir);
    struct stat st;
    return stat(p, &st) == 0;
}

static void mopts(sc_store_opts *o, const char *dir)
{
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->sync = 1;
    o->sync_window_ms = 50;
    o->map_size_mb = 64;
    o->embedder_id = "hash/1";
    o->dim = MDIM;
}

static void vec_of(int i, float *v)
{
    double n = 0;
    for (int j = 0; j < MDIM; j++) {
        v[j] = (float)((i * 31 + j * 17) % 97) - 48.0f + 0.001f * (float)i;
        n += (double)v[j] * v[j];
    }
    for (int j = 0; j < MDIM; j++) v[j] = (float)(v[j] / __builtin_sqrt(n));
}

static void key_of(uint8_t k[SC_EXACT_KEY_LEN], int i)
{
    memset(k, 0, SC_EXACT_KEY_LEN);
    memcpy(k, &i, sizeof i);
    k[15] = 0xa5;
}

typedef struct raw_env {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi entries, meta;
} raw_env;

static int raw_open(raw_env *r, const char *dir, int write)
{
    memset(r, 0, sizeof *r);
    int rc = mdb_env_create(&r->env);
    if (rc) return rc;
    mdb_env_set_maxdbs(r->env, 8);
    mdb_env_set_mapsize(r->env, 64u << 20);
    if ((rc = mdb_env_open(r->env, dir, 0, 0644)) != 0 ||
        (rc = mdb_txn_begin(r->env, NULL, write ? 0 : MDB_RDONLY, &r->txn)) != 0 ||
        (rc = mdb_dbi_open(r->txn, "entries", 0, &r->entries)) != 0 ||
        (rc = mdb_dbi_open(r->txn, "meta", 0, &r->meta)) != 0) {
        if (r->txn) mdb_txn_abort(r->txn);
        mdb_env_close(r->env);
        return rc;
    }
    return 0;
}

static int raw_close(raw_env *r, int commit)
{
    int rc = commit ? mdb_txn_commit(r->txn) : (mdb_txn_abort(r->txn), 0);
    mdb_env_close(r->env);
    return rc;
}

static int meta_u64(raw_env *r, const char *name, uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(r->txn, r->meta, &k, &v);
    if (rc) return rc;
    if (v.mv_size != 8) return -1;
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--) x = (x << 8) | ((const uint8_t *)v.mv_data)[i];
    *out = x;
    return 0;
}

static int meta_set_u64(raw_env *r, const char *name, uint64_t x)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(x >> (8 * i));
    MDB_val k = {strlen(name), (void *)name}, v = {8, b};
    return mdb_put(r->txn, r->meta, &k, &v, 0);
}

/* Counts the records of each version (index 1 to 3; 0: unreadable). */
static void count_versions(const char *dir, size_t counts[4])
{
    counts[0] = counts[1] = counts[2] = counts[3] = 0;
    raw_env r;
    if (raw_open(&r, dir, 0) != 0) return;
    MDB_cursor *cur;
    MDB_val k, v;
    if (mdb_cursor_open(r.txn, r.entries, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            sc_record_head h;
            int ok = sc_record_peek(v.mv_data, v.mv_size, &h) == 0;
            counts[ok && h.version <= 3 ? h.version : 0]++;
        }
        mdb_cursor_close(cur);
    }
    raw_close(&r, 0);
}

/* The version the old dirs of these tests are made in (1 or 2). */
static unsigned old_version = 1;

/* The vector an old record of entry i holds: the fp32 original (version
 * 1) or it rounded to halves (version 2). */
static void old_vec(int i, float *v)
{
    vec_of(i, v);
    if (old_version == 2)
        for (int j = 0; j < MDIM; j++) v[j] = sc_half_to_float(sc_float_to_half(v[j]));
}

/* Writes MN entries with the store, then turns the dir into what a build
 * of record version old_version left: every record re-encoded in that
 * version from its original vector, that schema, the byte counter of
 * those records. */
static void make_old_dir(const char *dir, uint64_t *ids)
{
    sc_store_opts o;
    mopts(&o, dir);
    sc_store *s = NULL;
    char err[256];
    REQUIRE(sc_store_open(&s, &o, err, sizeof err) == 0);
    float v[MDIM];
    char prompt[32];
    for (int i = 0; i < MN; i++) {
        sc_record r;
        memset(&r, 0, sizeof r);
        snprintf(prompt, sizeof prompt, "prompt %d", i);
        vec_of(i, v);
        r.ns = (char *)(i % 3 ? "a" : "b");
        r.prompt = prompt;
        r.prompt_len = strlen(prompt);
        r.response = prompt;
        r.response_len = strlen(prompt);
        r.content_type = (char *)"text/plain";
        r.model = (char *)"m";
        r.created = 1700000000 + i;
        r.last_hit = r.created;
        r.expires = i % 5 == 0 ? 4000000000 : 0;
        r.hits = (uint64_t)i;
        r.fp = (uint64_t)i % 4;
        r.dim = MDIM;
        r.vec = v;
        uint8_t k[SC_EXACT_KEY_LEN];
        key_of(k, i);
        REQUIRE(sc_store_put(s, &r, k) == 0);
        ids[i] = r.id;
    }
    sc_store_close(s);

    raw_env e;
    REQUIRE(raw_open(&e, dir, 1) == 0);
    uint64_t bytes = 0;
    for (int i = 0; i < MN; i++) {
        uint8_t kb[8];
        for (int j = 0; j < 8; j++) kb[j] = (uint8_t)(ids[i] >> (56 - 8 * j));
        MDB_val k = {8, kb}, val;
        REQUIRE(mdb_get(e.txn, e.entries, &k, &val) == 0);
        sc_record d;
        REQUIRE(sc_record_decode(val.mv_data, val.mv_size, &d) == 0);
        vec_of(i, d.vec); /* the fp32 original, as the old version got it */
        uint8_t *buf;
        size_t len;
        REQUIRE(sc_record_encode_version(&d, old_version, &buf, &len) == 0);
        sc_record_clear(&d);
        MDB_val nv = {len, buf};
        REQUIRE(mdb_put(e.txn, e.entries, &k, &nv, 0) == 0);
        bytes += len;
        free(buf);
    }
    REQUIRE(meta_set_u64(&e, "schema", old_version) == 0);
    REQUIRE(meta_set_u64(&e, "bytes", bytes) == 0);
    REQUIRE(raw_close(&e, 1) == 0);
    size_t c[4];
    count_versions(dir, c);
    REQUIRE(c[old_version] == MN && c[3] == 0);
}

/* Every entry is there, field for field, its vector the old record's
 * rounded to 12-bit codes (record.c), its exact key mapped; the byte
 * counter matches. */
static void check_migrated(sc_store *s, const uint64_t *ids)
{
    float v[MDIM];
    size_t bad = 0;
    for (int i = 0; i < MN; i++) {
        sc_record g;
        if (sc_store_get(s, ids[i], &g) != 0) {
            bad++;
            continue;
        }
        char prompt[32];
        snprintf(prompt, sizeof prompt, "prompt %d", i);
        old_vec(i, v);
        float sc = 0;
        for (int j = 0; j < MDIM; j++) sc = fabsf(v[j]) > sc ? fabsf(v[j]) : sc;
        int ok = strcmp(g.prompt, prompt) == 0 && strcmp(g.ns, i % 3 ? "a" : "b") == 0 &&
                 g.created == 1700000000 + i && g.hits == (uint64_t)i && g.fp == (uint64_t)i % 4 &&
                 g.expires == (i % 5 == 0 ? 4000000000 : 0) && g.dim == MDIM;
        for (int j = 0; ok && j < MDIM; j++)
            ok = g.vec[j] == (float)((double)lrint((double)v[j] * (2047.0 / (double)sc)) * sc / 2047.0);
        uint8_t k[SC_EXACT_KEY_LEN];
        uint64_t id = 0;
        key_of(k, i);
        if (!ok || sc_store_get_exact(s, k, &id) != 0 || id != ids[i]) bad++;
        sc_record_clear(&g);
    }
    CHECK_EQ_INT(bad, 0);
    sc_store_stats st;
    sc_store_stats_get(s, &st);
    CHECK_EQ_INT(st.entries, MN);
    CHECK_EQ_INT(st.corrupt_skipped, 0);
    uint64_t sum = 0;
    for (int i = 0; i < MN; i++) {
        sc_record g;
        if (sc_store_get(s, ids[i], &g) == 0) sum += sc_record_encoded_size(&g);
        sc_record_clear(&g);
    }
    CHECK_EQ_INT(st.bytes, sum);
}

/* Opens dir, which upgrades it, with the log quiet below level (the
 * upgrade's info lines, a corrupt record's warning). NULL on failure. */
static sc_store *open_quietly(const char *dir, int level)
{
    sc_store_opts o;
    mopts(&o, dir);
    sc_store *s = NULL;
    char err[256];
    int saved = sc_log_level;
    sc_log_level = level;
    int rc = sc_store_open(&s, &o, err, sizeof err);
    sc_log_level = saved;
    if (rc) printf("# open %s: %s (%s)\n", dir, sc_err_name(rc), err);
    return s;
}

/* Opens dir, checks every entry and closes it. */
static void open_and_check(const char *dir, const uint64_t *ids)
{
    sc_store *s = open_quietly(dir, SC_LOG_WARN);
    REQUIRE(s);
    check_migrated(s, ids);
    sc_store_close(s);
}

static void check_in_place(void)
{
    const char *dir = sc_test_tmpdir();
    uint64_t *ids = sc_malloc(MN * sizeof *ids);
    make_old_dir(dir, ids);
    raw_env e;
    uint64_t before = 0, after = 0, schema = 0, mark = 0;
    REQUIRE(raw_open(&e, dir, 0) == 0);
    CHECK_OK(meta_u64(&e, "bytes", &before));
    raw_close(&e, 0);
    long long file_before = data_file_size(dir);

    open_and_check(dir, ids);
    /* the upgrade's free pages went back to the disk: the file is no
     * bigger than the new records need, and no copy or mark is left */
    long long file_after = data_file_size(dir);
    printf("# data.mdb %lld -> %lld bytes\n", file_before, file_after);
    CHECK(file_after > 0 && file_after < file_before);
    CHECK(!compact_copy_exists(dir));

    size_t c[4];
    count_versions(dir, c);
    CHECK_EQ_INT(c[old_version], 0);
    CHECK_EQ_INT(c[3], MN);
    REQUIRE(raw_open(&e, dir, 0) == 0);
    CHECK_OK(meta_u64(&e, "bytes", &after));
    CHECK_OK(meta_u64(&e, "schema", &schema));
    CHECK_EQ_INT(meta_u64(&e, "migrating", &mark), MDB_NOTFOUND);
    CHECK_EQ_INT(meta_u64(&e, "compact", &mark), MDB_NOTFOUND);
    raw_close(&e, 0);
    CHECK_EQ_INT(schema, 3);
    /* The vector bytes: 4 (v1) or 2 (v2) a value before, 1.5 and a 4-byte scale now. */
    CHECK_EQ_INT(before - after, (uint64_t)MN * (MDIM * (old_version == 1 ? 4 : 2) - (4 + MDIM * 3 / 2)));
    printf("# version %u -> 3: record bytes %llu -> %llu for %d entries of %d-d\n", old_version,
           (unsigned long long)before, (unsigned long long)after, MN, MDIM);

    /* A second open finds nothing to do and changes nothing. */
    open_and_check(dir, ids);
    count_versions(dir, c);
    CHECK_EQ_INT(c[3], MN);
    free(ids);
}

SC_TEST(store_migrates_version_1_in_place)
{
    old_version = 1;
    check_in_place();
}

SC_TEST(store_migrates_version_2_in_place)
{
    old_version = 2;
    check_in_place();
    old_version = 1;
}

static void die_after(uint64_t rewritten)
{
    if (rewritten >= 700) kill(getpid(), SIGKILL);
}

/* Opens dir in a child process that arm() has set up to SIGKILL itself
 * part-way (a test hook); checks that it died so. */
static void open_until_killed(const char *dir, void (*arm)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        sc_log_level = SC_LOG_ERROR;
        arm();
        sc_store_opts o;
        mopts(&o, dir);
        sc_store *s = NULL;
        char err[256];
        sc_store_open(&s, &o, err, sizeof err);
        _exit(0); /* not reached: the hook kills the process */
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void arm_migration_kill(void)
{
    sc_store__migrate_batch = 100;
    sc_store__migrate_hook = die_after;
}

SC_TEST(store_migration_killed_midway_finishes_next_open)
{
    const char *dir = sc_test_tmpdir();
    uint64_t *ids = sc_malloc(MN * sizeof *ids);
    old_version = 2; /* the dirs deployed today */
    make_old_dir(dir, ids);
    open_until_killed(dir, arm_migration_kill);

    /* Half-way: some records of each version, the mark in meta, and
     * schema 3, so a build that reads only versions 1 and 2 refuses the dir. */
    size_t c[4];
    count_versions(dir, c);
    printf("# killed with %zu records upgraded, %zu not yet\n", c[3], c[2]);
    CHECK_EQ_INT(c[3], 700);
    CHECK_EQ_INT(c[2], MN - 700);
    CHECK_EQ_INT(c[0] + c[1], 0);
    raw_env e;
    uint64_t schema = 0, mark = 0;
    REQUIRE(raw_open(&e, dir, 0) == 0);
    CHECK_OK(meta_u64(&e, "schema", &schema));
    CHECK_OK(meta_u64(&e, "migrating", &mark));
    raw_close(&e, 0);
    CHECK_EQ_INT(schema, 3);

    open_and_check(dir, ids);
    count_versions(dir, c);
    CHECK_EQ_INT(c[3], MN);
    REQUIRE(raw_open(&e, dir, 0) == 0);
    CHECK_EQ_INT(meta_u64(&e, "migrating", &mark), MDB_NOTFOUND);
    raw_close(&e, 0);
    old_version = 1;
    free(ids);
}

static int die_at_stage;
static void die_at(int stage)
{
    if (stage == die_at_stage) kill(getpid(), SIGKILL);
}
static void arm_compaction_kill(void) { sc_store__compact_hook = die_at; }

/* kill -9 while compacting after the upgrade: with the copy written and
 * synced but not yet renamed (stage 1), and right after the rename
 * (stage 2). Either way the next open finds every record, compacts, and
 * leaves no copy and no mark. */
SC_TEST(store_compaction_killed_finishes_next_open)
{
    for (int stage = 1; stage <= 2; stage++) {
        const char *dir = sc_test_tmpdir();
        uint64_t *ids = sc_malloc(MN * sizeof *ids);
        old_version = 2;
        make_old_dir(dir, ids);
        long long file_before = data_file_size(dir);
        die_at_stage = stage;
        open_until_killed(dir, arm_compaction_kill);
        raw_env e;
        uint64_t mark = 0;
        REQUIRE(raw_open(&e, dir, 0) == 0);
        CHECK_OK(meta_u64(&e, "compact", &mark)); /* the mark survived the kill */
        raw_close(&e, 0);
        if (stage == 1) {
            CHECK(compact_copy_exists(dir)); /* the copy, not yet in place */
            CHECK(data_file_size(dir) >= file_before); /* the upgrade grew it */
        } else {
            CHECK(data_file_size(dir) < file_before);
        }
        open_and_check(dir, ids);
        size_t c[4];
        count_versions(dir, c);
        CHECK_EQ_INT(c[3], MN);
        CHECK(!compact_copy_exists(dir));
        CHECK(data_file_size(dir) < file_before);
        REQUIRE(raw_open(&e, dir, 0) == 0);
        CHECK_EQ_INT(meta_u64(&e, "compact", &mark), MDB_NOTFOUND);
        raw_close(&e, 0);
        free(ids);
    }
    old_version = 1;
}

/* Puts n records into the learn table (or counts them: n < 0) with raw
 * LMDB; extra more commits of nothing-much first (the transaction
 * counter's parity decides which meta page a stale lock file picks). */
static int raw_learn(const char *dir, int n, int extra)
{
    raw_env e;
    MDB_dbi learn;
    if (raw_open(&e, dir, 1) != 0) {
        CHECK(!"raw_open");
        return -1;
    }
    if (mdb_dbi_open(e.txn, "learn", MDB_CREATE, &learn) != 0) {
        CHECK(!"mdb_dbi_open learn");
        raw_close(&e, 0);
        return -1;
    }
    int count = 0;
    if (n >= 0) {
        for (int i = 0; i < n; i++) {
            char kb[16];
            snprintf(kb, sizeof kb, "k%03d", i);
            MDB_val k = {strlen(kb), kb}, v = {4, (void *)"vvvv"};
            CHECK_OK(mdb_put(e.txn, learn, &k, &v, 0));
        }
        CHECK_OK(raw_close(&e, 1));
        for (int i = 0; i < extra; i++) {
            if (raw_open(&e, dir, 1) != 0) {
                CHECK(!"raw_open");
                return -1;
            }
            CHECK_OK(raw_close(&e, 1));
        }
        return n;
    }
    MDB_stat st;
    CHECK_OK(mdb_stat(e.txn, learn, &st));
    count = (int)st.ms_entries;
    raw_close(&e, 0);
    return count;
}

/* An LMDB reader of another process (mdb_stat, a backup) holds the data
 * dir open while the upgrade compacts it: the reopened store must still
 * see everything the copy holds, whichever the transaction counter's
 * parity (a stale lock file once picked the copy's older meta page and
 * dropped its last transaction: the learn table). */
SC_TEST(store_compaction_with_a_foreign_reader)
{
    for (int extra = 0; extra <= 1; extra++) {
        const char *dir = sc_test_tmpdir();
        uint64_t *ids = sc_malloc(MN * sizeof *ids);
        old_version = 2;
        make_old_dir(dir, ids);
        raw_learn(dir, 5, extra);
        int go[2], done[2];
        REQUIRE(pipe(go) == 0 && pipe(done) == 0);
        fflush(stdout);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) { /* the foreign reader: env open until told */
            raw_env e;
            if (raw_open(&e, dir, 0) != 0) _exit(1);
            char c = 1;
            if (write(go[1], &c, 1) != 1) _exit(1);
            if (read(done[0], &c, 1) != 1) _exit(1);
            raw_close(&e, 0);
            _exit(0);
        }
        char c;
        REQUIRE(read(go[0], &c, 1) == 1);
        sc_store *s = open_quietly(dir, SC_LOG_ERROR);
        REQUIRE(s);
        check_migrated(s, ids);
        sc_store_close(s);
        c = 1;
        REQUIRE(write(done[1], &c, 1) == 1);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(go[0]); close(go[1]); close(done[0]); close(done[1]);
        CHECK_EQ_INT(raw_learn(dir, -1, 0), 5);
        s = open_quietly(dir, SC_LOG_ERROR);
        REQUIRE(s);
        check_migrated(s, ids);
        sc_store_close(s);
        CHECK_EQ_INT(raw_learn(dir, -1, 0), 5);
        CHECK(!compact_copy_exists(dir));
        free(ids);
    }
    old_version = 1;
}

/* A version-1 record that does not decode (a flipped vector byte) is left
 * as it is and stays unreadable; every other record is upgraded. */
SC_TEST(store_migration_leaves_a_corrupt_record)
{
    const char *dir = sc_test_tmpdir();
    uint64_t *ids = sc_malloc(MN * sizeof *ids);
    make_old_dir(dir, ids);
    raw_env e;
    REQUIRE(raw_open(&e, dir, 1) == 0);
    uint8_t kb[8];
    for (int j = 0; j < 8; j++) kb[j] = (uint8_t)(ids[5] >> (56 - 8 * j));
    MDB_val k = {8, kb}, v;
    REQUIRE(mdb_get(e.txn, e.entries, &k, &v) == 0);
    uint8_t *copy = sc_malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[100] ^= 0x10; /* inside the vector: peek still reads it, decode does not */
    MDB_val nv = {v.mv_size, copy};
    REQUIRE(mdb_put(e.txn, e.entries, &k, &nv, 0) == 0);
    REQUIRE(raw_close(&e, 1) == 0);
    free(copy);

    sc_store *s = open_quietly(dir, SC_LOG_ERROR);
    REQUIRE(s);
    int saved = sc_log_level;
    sc_log_level = SC_LOG_ERROR; /* the get of the corrupt record warns */
    sc_record g;
    CHECK_EQ_INT(sc_store_get(s, ids[5], &g), SC_ECORRUPT);
    CHECK_OK(sc_store_get(s, ids[6], &g));
    sc_record_clear(&g);
    sc_log_level = saved;
    sc_store_close(s);
    size_t c[4];
    count_versions(dir, c);
    CHECK_EQ_INT(c[1], 1);
    CHECK_EQ_INT(c[3], MN - 1);
    free(ids);
}
