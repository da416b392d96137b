/* log: see include/log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    int rank;
    char role[16];
    int level;
    double t0;
    double progress_every;
    int live_ok;
} g_log = {0, "main", LOG_INFO, -1.0, 10.0, 0};

double log_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double log_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void log_setup(int rank, const char *role) {
    g_log.rank = rank;
    snprintf(g_log.role, sizeof g_log.role, "%s", role ? role : "main");
    if (g_log.t0 < 0) g_log.t0 = log_now();
    const char *mode = getenv("RLAIF_PROGRESS");
    if (mode && strcmp(mode, "live") == 0)
        g_log.live_ok = 1;
    else if (mode && strcmp(mode, "lines") == 0)
        g_log.live_ok = 0;
    else
        g_log.live_ok = isatty(STDERR_FILENO);
}

void log_set_level(int level) {
    g_log.level = level;
}
int log_get_level(void) {
    return g_log.level;
}
void log_set_progress_interval(double seconds) {
    g_log.progress_every = seconds > 0 ? seconds : 10.0;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(int level) {
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

static void prefix(char *buf, size_t n) {
    if (g_log.t0 < 0) g_log.t0 = log_now();
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    snprintf(buf, n, "[%02d:%02d:%02d %+9.2fs r%d/%s]", tm.tm_hour, tm.tm_min, tm.tm_sec,
             log_now() - g_log.t0, g_log.rank, g_log.role);
}

void log_msg(int level, const char *fmt, ...) {
    if (level > g_log.level) return;
    /* non-zero ranks keep info lines to themselves unless debugging */
    if (g_log.rank != 0 && level == LOG_INFO && g_log.level < LOG_DEBUG) return;
    char pre[96], body[4096];
    prefix(pre, sizeof pre);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    static const char *const tags[] = {"ERROR ", "WARN  ", "", "debug "};
    fprintf(stderr, "%s %s%s\n", pre, tags[level], body);
    fflush(stderr);
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void progress_print(log_progress *p, int final, const char *extra) {
    double now = log_now(), el = now - p->t0;
    double rate = el > 0 ? (double)p->done / el : 0.0;
    char eta[32] = "", elapsed[32];
    fmt_duration(el, elapsed, sizeof elapsed);
    if (!final && p->total > 0 && rate > 0) {
        char d[24];
        fmt_duration((double)(p->total - p->done) / rate, d, sizeof d);
        snprintf(eta, sizeof eta, ", ETA %s", d);
    }
    char line[512], pre[96];
    prefix(pre, sizeof pre);
    if (p->total > 0)
        snprintf(line, sizeof line, "%s %s: %ld/%ld %s (%.1f%%), %.2f %s/s, %s%s%s%s", pre, p->what,
                 p->done, p->total, p->unit, 100.0 * (double)p->done / (double)p->total, rate,
                 p->unit, elapsed, eta, extra ? ", " : "", extra ? extra : "");
    else
        snprintf(line, sizeof line, "%s %s: %ld %s, %.2f %s/s, %s%s%s", pre, p->what, p->done,
                 p->unit, rate, p->unit, elapsed, extra ? ", " : "", extra ? extra : "");
    if (p->live)
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else
        fprintf(stderr, "%s\n", line);
    fflush(stderr);
    p->last = now;
}

void log_progress_begin(log_progress *p, const char *what, const char *unit, long total) {
    memset(p, 0, sizeof *p);
    snprintf(p->what, sizeof p->what, "%s", what);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t0 = p->last = log_now();
    p->live = g_log.live_ok;
    p->active = g_log.rank == 0 && g_log.level >= LOG_INFO;
}

void log_progress_update(log_progress *p, long done, const char *extra) {
    p->done = done;
    if (!p->active) return;
    double every = p->live ? 0.2 : g_log.progress_every;
    if (log_now() - p->last >= every) progress_print(p, 0, extra);
}

void log_progress_end(log_progress *p, const char *extra) {
    if (p->active) progress_print(p, 1, extra);
    p->active = 0;
}
