/* Log line formatting. One buffer per call and one write(2), so lines from
 * different threads never interleave. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sc_log_level = SC_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int sc_log_level_parse(const char *name)
{
    for (int i = 0; i <= SC_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0) return i;
    return -1;
}

static void vwrite_line(int level, const char *file, int line, const char *fmt, va_list ap)
{
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s:%d ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], base, line);
    if (n < 0) return;
    if ((size_t)n < sizeof buf - 2) {
        int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
        if (m > 0) n += m;
    }
    if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void sc_log_write(int level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite_line(level, file, line, fmt, ap);
    va_end(ap);
}

void sc_panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite_line(SC_LOG_ERROR, file, line, fmt, ap);
    va_end(ap);
    abort();
}
