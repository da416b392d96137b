/* metrics: the run's metrics.h5 (in run.out_dir), written by rank 0 only.
 *
 * Layout (read it with h5py: f = h5py.File("runs/x/metrics.h5")):
 *   /                      attributes: format "rlaif-metrics 1", status "running" | "finished" |
 *                          "failed", start_time / end_time / resume_time (UTC, ISO 8601),
 *                          host, pid (the last writer), attempts (1 + resumes), resume_steps
 *                          (int64, the checkpoint step of each resume), rank_layout (int64
 *                          array given by the caller, e.g. ranks per role)
 *   /config/deck_yaml      the effective deck (string; f['config/deck_yaml'].asstr()[()]);
 *                          a resume with a different deck adds /config/deck_yaml_attempt<k>
 *   /build/version         cli_version_string() lines (string); likewise /build/version_attempt<k>
 *   /metrics/<name>        one series: 1-D extendable compound table of (step int64, value
 *                          float64), in append order; r = f['metrics/reward'][:] gives a numpy
 *                          structured array, r['step'], r['value'] the columns
 *   /summary/<name>        scalar float64 or string (f['summary/win_rate'][()])
 *   /samples/<name>        text table: 1-D string array (one column) or 2-D (rows, columns)
 *                          with attribute "columns"; f['samples/rl_step_100'].asstr()[:]
 * A name may contain '/' to group series: "judge/pairs_per_s" is /metrics/judge/pairs_per_s
 * (a group "judge" holding a dataset), so a name cannot be both a series and a group.
 * Segments use letters, digits, '_', '-', '.' (h5io_check_name).
 *
 * Crash safety: appends, summaries and tables are buffered in memory; a flush opens the file,
 * writes everything pending, closes it and fsyncs it. Between flushes the file is closed, so a
 * kill -9 (or a node failure) loses at most what was appended since the last flush and leaves
 * a whole file. Only a kill during the flush itself (a few ms) can tear it: of 2000 kills
 * aimed at back-to-back flushes, none left the file unopenable and one left a series unreadable
 * (the root's attributes change only at open and close for this reason); a resume rebuilds
 * such a file from what still reads (metrics_notes says what). The caller flushes with
 * metrics_maybe_flush(m, log_now()) once per step or so. A flush that fails (disk full, file system
 * hiccup) keeps the unwritten rows buffered for the next one. The file is opened without HDF5 file
 * locking, so a user reading it live from h5py does not block it. Measured here: a flush of 20
 * series costs 1.5-2.5 ms, of which fsync about 1 ms.
 *
 * Not here: the policy of when to flush (the caller's interval), and anything MPI. */
#ifndef RLAIF_METRICS_H
#define RLAIF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum metrics_state {
    METRICS_ABSENT = 0,   /* no file at the path */
    METRICS_RUNNING = 1,  /* a run is writing it, or died without closing it */
    METRICS_FINISHED = 2, /* closed after a successful run */
    METRICS_FAILED = 3    /* closed after an error */
} metrics_state;

const char *metrics_state_name(metrics_state s); /* "absent", "running", "finished", "failed" */

typedef struct metrics_run_info {
    metrics_state state;
    char start_time[32], end_time[32]; /* "" when not recorded */
    char host[64];
    int64_t pid;      /* the last writer; 0 when not recorded */
    int64_t attempts; /* 1 + number of resumes */
} metrics_run_info;

/* What is at path: ERR_OK with info->state (METRICS_ABSENT when there is no file), or ERR_STATE
 * when a file is there but is not a readable metrics file (the message says why). */
int metrics_run_state(const char *path, metrics_run_info *info, rl_err *e);

typedef enum metrics_mode {
    METRICS_NEW = 0,   /* a new run: create the file */
    METRICS_RESUME = 1 /* continue an unfinished run's file (created when absent) */
} metrics_mode;

#define METRICS_KEEP_ALL INT64_MAX

typedef struct metrics_open_opts {
    metrics_mode mode;
    int force;              /* --force: overwrite (NEW) or reopen (RESUME) whatever is there */
    int64_t resume_step;    /* RESUME: the checkpoint's step; rows with step > resume_step are
                               dropped from every series (they are redone). -1: no checkpoint,
                               drop every row; METRICS_KEEP_ALL: drop nothing */
    const char *deck_yaml;  /* the effective deck */
    const char *version;    /* cli_version_string() */
    const int *rank_layout; /* stored as attribute rank_layout; may be NULL */
    size_t n_rank_layout;
    double flush_interval; /* seconds between flushes in metrics_maybe_flush; <= 0: every call */
} metrics_open_opts;

typedef struct metrics metrics;

/* Opens the metrics file for a run and writes status "running" at once. Refuses (ERR_STATE,
 * saying what is there and which flag to pass) to touch an existing run without force when:
 * NEW and any readable or unreadable file is there (finished: "--force to start over";
 * unfinished: "--resume to continue it or --force to start over"); RESUME and the run there
 * finished, or the file is unreadable. */
int metrics_open(const char *path, const metrics_open_opts *o, metrics **out, rl_err *e);

/* Buffers one row of series `name`. Checks the name on first use; no I/O. */
int metrics_append(metrics *m, const char *name, int64_t step, double value, rl_err *e);
/* /summary/<name>: a float64 or a string scalar; a later call replaces it. Buffered. */
int metrics_set_summary(metrics *m, const char *name, double value, rl_err *e);
int metrics_set_summary_str(metrics *m, const char *name, const char *text, rl_err *e);
/* /samples/<name>: cells is (nrows, ncols) row-major; colnames has ncols names (may be NULL
 * when ncols is 1). Replaces an existing table of that name. Strings are copied. Buffered. */
int metrics_write_table(metrics *m, const char *name, size_t nrows, size_t ncols,
                        const char *const *colnames, const char *const *cells, rl_err *e);

/* Flushes when flush_interval seconds (log_now() clock) have passed since the last flush, or
 * when many rows are pending. */
int metrics_maybe_flush(metrics *m, double now, rl_err *e);
int metrics_flush(metrics *m, rl_err *e);

/* Drops rows with step > step from series `name` (NULL: every series; a name ending in '/':
 * every series of that group), in the file and in the buffer, so that a resumed run does not
 * repeat the steps of the attempt that died. */
int metrics_truncate_after(metrics *m, const char *name, int64_t step, rl_err *e);

/* What metrics_open had to repair on resume ("" when nothing), for the caller to log. A series
 * torn by a kill during a flush cannot be unlinked by HDF5, so the file is rebuilt from what
 * still reads and the damaged file is kept as <path>.damaged.attempt<k>. */
const char *metrics_notes(const metrics *m);

/* Rows of `name` pending in memory plus stored in the file (for tests and progress lines). */
int metrics_count(metrics *m, const char *name, int64_t *rows, rl_err *e);

/* Flushes, sets status (METRICS_FINISHED or METRICS_FAILED; METRICS_RUNNING leaves it running)
 * and end_time, and frees m, also when it fails. */
int metrics_close(metrics *m, metrics_state final_state, rl_err *e);

#endif
