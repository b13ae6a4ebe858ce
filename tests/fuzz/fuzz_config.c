/* libFuzzer target for the configuration parser (common/config.c): config
 * file text, single directives and command-line flags.
 *
 * Each input is used three ways, each on a fresh sc_config that is freed
 * afterwards (so ASan's leak check sees anything the parser loses):
 *   1. as a config file (sc_config_load_text), then sc_config_validate();
 *      an error must start with "fuzz.conf:LINE: ", and when that line
 *      names a known directive, the message must name it ('name'); a
 *      validation error must name an option;
 *   2. the first byte picks a directive of the table and the rest (up to a
 *      NUL) is its value (sc_config_set): a rejected value must give a
 *      message naming the directive, however long the value;
 *   3. its lines as argv (sc_config_parse_args), except --config (which
 *      would open files): errors must come with a message.
 * The file includes config.c to reach the directive table. */
// fuzz-sources: common/alloc.c common/err.c common/log.c
#include "common/config.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks that err names directive `name` (as 'name'). */
static void require_named(const char *err, const char *name)
{
    char quoted[128];
    snprintf(quoted, sizeof quoted, "'%s'", name);
    if (!strstr(err, quoted)) {
        fprintf(stderr, "error does not name %s: %s\n", quoted, err);
        abort();
    }
}

/* The directive line `lineno` (1-based) of text names, or NULL. */
static const directive *directive_of_line(const char *text, size_t len, long lineno)
{
    const char *p = text, *end = text + len;
    for (long i = 1; i < lineno && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v')) p++;
    char name[64];
    size_t n = 0;
    while (p < end && n < sizeof name - 1 && !isspace((unsigned char)*p) && *p != '#' && *p) name[n++] = *p++;
    name[n] = '\0';
    return n ? find(name) : NULL;
}

static void as_file(const uint8_t *data, size_t size)
{
    sc_config c;
    sc_config_defaults(&c);
    char err[1024] = "";
    int rc = sc_config_load_text(&c, (const char *)data, size, "fuzz.conf", err, sizeof err);
    if (rc) {
        if (rc != SC_EINVAL && rc != SC_ENOTFOUND) abort();
        long lineno = 0;
        if (sscanf(err, "fuzz.conf:%ld: ", &lineno) != 1 || lineno < 1) abort();
        const directive *d = directive_of_line((const char *)data, size, lineno);
        if (d && rc == SC_EINVAL) require_named(err, d->name);
    } else {
        err[0] = '\0';
        if (sc_config_validate(&c, err, sizeof err)) {
            /* A cross-field error names one of the options involved. */
            int named = 0;
            for (size_t i = 0; i < SC_COUNTOF(table) && !named; i++) {
                char quoted[128];
                snprintf(quoted, sizeof quoted, "'%s'", table[i].name);
                named = strstr(err, quoted) != NULL;
            }
            if (!named) {
                fprintf(stderr, "validate error names no option: %s\n", err);
                abort();
            }
        }
    }
    sc_config_free(&c);
}

static void one_directive(const uint8_t *data, size_t size)
{
    if (size < 1) return;
    const directive *d = &table[data[0] % SC_COUNTOF(table)];
    char *value = malloc(size);
    if (!value) abort();
    memcpy(value, data + 1, size - 1);
    value[size - 1] = '\0';
    sc_config c;
    sc_config_defaults(&c);
    char err[256] = "";
    int rc = sc_config_set(&c, d->name, value, err, sizeof err);
    if (rc) {
        if (rc != SC_EINVAL) abort();
        require_named(err, d->name);
    }
    sc_config_free(&c);
    free(value);
}

static void as_args(const uint8_t *data, size_t size)
{
    enum { MAXARGS = 32 };
    char *copy = malloc(size + 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAXARGS + 2] = {"semcached"};
    int argc = 1;
    for (char *p = copy; p && argc <= MAXARGS;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (strncmp(p, "--config", 8) != 0) argv[argc++] = p;
        p = nl ? nl + 1 : NULL;
    }
    argv[argc] = NULL;
    sc_config c;
    sc_config_defaults(&c);
    char err[512] = "";
    int help = 0;
    int rc = sc_config_parse_args(&c, argc, argv, &help, err, sizeof err);
    if (rc && ((rc != SC_EINVAL && rc != SC_ENOTFOUND) || !err[0])) abort();
    sc_config_free(&c);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sc_log_level = SC_LOG_OFF;
    as_file(data, size);
    one_directive(data, size);
    as_args(data, size);
    return 0;
}
