/* Logging with levels. sc_log() checks the level before it evaluates its
 * arguments, so a disabled debug line costs one comparison. Lines go to
 * stderr as "time level file:line message". Thread-safe (one write(2) per
 * line). sc_assert() and sc_panic() report file:line and abort. */
#ifndef SC_LOG_H
#define SC_LOG_H

#include <stdarg.h>

enum sc_log_level { SC_LOG_DEBUG, SC_LOG_INFO, SC_LOG_WARN, SC_LOG_ERROR, SC_LOG_OFF };

extern int sc_log_level;

/* Parses "debug", "info", "warn", "error" or "off"; -1 when unknown. */
int sc_log_level_parse(const char *name);

void sc_log_write(int level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn void sc_panic_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sc_log(level, ...)                                               \
    do {                                                                 \
        if ((level) >= sc_log_level)                                     \
            sc_log_write((level), __FILE__, __LINE__, __VA_ARGS__);      \
    } while (0)
#define sc_debug(...) sc_log(SC_LOG_DEBUG, __VA_ARGS__)
#define sc_info(...) sc_log(SC_LOG_INFO, __VA_ARGS__)
#define sc_warn(...) sc_log(SC_LOG_WARN, __VA_ARGS__)
#define sc_error(...) sc_log(SC_LOG_ERROR, __VA_ARGS__)

#define sc_panic(...) sc_panic_at(__FILE__, __LINE__, __VA_ARGS__)
#define sc_assert(cond)                                                  \
    do {                                                                 \
        if (!(cond)) sc_panic_at(__FILE__, __LINE__, "assertion failed: %s", #cond); \
    } while (0)

#endif
