/* The unit-test runner: runs registered tests in name order, prints TAP. */
#include "tap.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct { const char *name; sc_test_fn fn; } entry;
static entry tests[1024];
static int ntests;
static int failed_current;
static char tmpdir[256];

void sc_test_register(const char *name, sc_test_fn fn)
{
    if (ntests < (int)(sizeof tests / sizeof tests[0])) tests[ntests++] = (entry){name, fn};
}

void sc_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# %s:%d: ", file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    failed_current = 1;
}

static void rm_tmpdir(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
        tmpdir[0] = '\0';
    }
}

const char *sc_test_tmpdir(void)
{
    rm_tmpdir();
    const char *base = getenv("TMPDIR");
    if (!base || !*base || strlen(base) > sizeof tmpdir - 20) base = "/tmp";
    snprintf(tmpdir, sizeof tmpdir, "%s/sc_unit_XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
    return tmpdir;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    qsort(tests, (size_t)ntests, sizeof tests[0], by_name);
    int n = 0, bad = 0;
    for (int i = 0; i < ntests; i++)
        if (!filter || strstr(tests[i].name, filter)) n++;
    printf("1..%d\n", n);
    int k = 0;
    for (int i = 0; i < ntests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        failed_current = 0;
        tests[i].fn();
        rm_tmpdir();
        k++;
        printf("%s %d - %s\n", failed_current ? "not ok" : "ok", k, tests[i].name);
        fflush(stdout);
        bad += failed_current;
    }
    return bad ? 1 : 0;
}
