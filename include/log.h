/* log: rank-tagged log lines and progress reports.
 *
 * Every line reads "[HH:MM:SS +ELAPSEDs rRANK/ROLE] LEVEL message" on stderr. Ranks other than
 * 0 log only warnings and errors unless the level is debug, so a 512-rank job does not drown its
 * batch log. Progress of long stages prints on rank 0 only: a live line rewritten in place on a
 * terminal, a line every log.progress_every seconds in a batch log. The logger's settings are
 * set once at start-up (log_setup) and read everywhere; they are the program's only mutable
 * file-level state besides MPI's own. */
#ifndef RLAIF_LOG_H
#define RLAIF_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_setup(int rank, const char *role);
void log_set_level(int level);
int log_get_level(void);
/* Seconds between periodic progress lines when stderr is not a terminal (default 10). */
void log_set_progress_interval(double seconds);
/* Parses "error|warn|info|debug"; returns -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Wall-clock seconds since an arbitrary origin (CLOCK_MONOTONIC) and process CPU seconds. */
double log_now(void);
double log_cpu_seconds(void);

typedef struct log_progress {
    char what[64];
    char unit[16];
    long total;
    long done;
    double t0, last;
    int live; /* rewrite one line in place (terminal) */
    int active;
} log_progress;

/* Starts a progress report of `total` units (total <= 0: unknown). Only rank 0 prints. */
void log_progress_begin(log_progress *p, const char *what, const char *unit, long total);
/* Reports `done` units finished; `extra` (may be NULL) is appended, e.g. "loss 2.31". */
void log_progress_update(log_progress *p, long done, const char *extra);
void log_progress_end(log_progress *p, const char *extra);

#endif
