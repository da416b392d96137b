/* run: `rlaif run DECK`: start-up on every rank, the run directory, resume, the stage machine,
 * the coordinator's event loop and the checkpoint protocol.
 *
 * Every rank calls the same stage functions in the same order. Inside a stage, the roles that
 * work run their part and report to rank 0 through run_report_* (metrics, progress, finished
 * checkpoint components, done, error); rank 0 serves those reports in run_coord_serve, writes
 * metrics.h5, prints progress, and commits a checkpoint once every component of it is on disk.
 * Ranks with nothing to do in a stage wait for its end in a sleeping receive.
 *
 * Checkpoint ids: stage * 10^7 + step within the stage, so `ckpt/step_04000150` is step 150 of
 * stage 4 (rl) and `step_05000000` is "stages up to rl done, eval not started". The
 * coordinator's component holds the deck, the stage and step, and the run-level counters.
 *
 * Not here: what a stage computes (src/stage_*.c). */
#ifndef RLAIF_RUN_H
#define RLAIF_RUN_H

#include <signal.h>
#include <stdint.h>

#include "ckpt.h"
#include "comm.h"
#include "config.h"
#include "err.h"
#include "metrics.h"

#define RUN_CKPT_ID(stage, step) ((int64_t)(stage)*10000000 + (int64_t)(step))
#define RUN_STAGE_STEPS_MAX      9999999

typedef struct run_ctx {
    config cfg;
    comm_ctx comm;
    char *deck_yaml;               /* the effective deck, identical on every rank */
    char deck_path_for_msgs[4096]; /* the deck file as given on the command line */
    int resume, force;
    metrics *metrics; /* rank 0 only */
    char out_dir[4096];
    char models_dir[4200]; /* out_dir/models: artifacts the stages hand each other */
    double t0;             /* log_now() at start */

    /* where to continue: the stage (enum config_stage) and the step within it of the
     * checkpoint we resumed from; resume_ckpt = -1 for a fresh start */
    int64_t resume_ckpt;
    int resume_stage;
    int64_t resume_step;

    /* rank 0: a stop request reached the workers during the current stage */
    int stopping;

    /* reports batched on a worker before they go to rank 0 */
    void *report;
} run_ctx;

/* ---------------------------------------------------------------- for stage code, any rank */

/* A series point. On rank 0 it goes straight to metrics.h5, elsewhere it is batched and sent
 * with the next run_report_flush (or any other report). Name like "sft/loss". */
void run_metric(run_ctx *ctx, const char *name, int64_t step, double value);
/* A /summary scalar or string, same routing. */
void run_summary(run_ctx *ctx, const char *name, double value);
void run_summary_str(run_ctx *ctx, const char *name, const char *text);
/* A /samples table: cells is (nrows, ncols) row-major. */
void run_table(run_ctx *ctx, const char *name, int nrows, int ncols, const char *const *colnames,
               const char *const *cells);
/* Progress of the stage's work (shown by rank 0 with rate and ETA); `extra` may be NULL. */
void run_progress(run_ctx *ctx, long done, long total, const char *extra);
/* Sends what is batched. */
void run_report_flush(run_ctx *ctx);
/* Tells rank 0 that this rank wrote and committed `component` of checkpoint `ckpt_id`. */
void run_report_ckpt(run_ctx *ctx, int64_t ckpt_id, const char *component);
/* Tells rank 0 this rank finished the stage. */
void run_report_done(run_ctx *ctx);

/* Fatal error on any rank: logs it (rank-tagged), lets rank 0 mark the run failed when it can,
 * and ends the job with the error's exit status on every rank. Does not return. */
void run_fail(run_ctx *ctx, const rl_err *e) __attribute__((noreturn));

/* 1 when the run was asked to stop (SIGUSR1/SIGTERM to rank 0, e.g. Slurm's time limit), agreed
 * across the ranks of `comm` (collective over comm). Stage loops call it once per step and,
 * when it says stop, write a checkpoint at the current step and report done. */
int run_stop_requested(run_ctx *ctx, MPI_Comm comm);

/* ---------------------------------------------------------------- rank 0 side */

/* Handler of stage-specific messages on rank 0: returns ERR_OK or an error. */
typedef int (*run_msg_fn)(run_ctx *ctx, void *user, int src, int tag, const void *buf, int len,
                          rl_err *e);

/* Serves reports until `n_workers` ranks reported done; stage-specific tags (anything other
 * than the report tag) go to on_msg. Commits checkpoints whose components (names, n_comp)
 * have all arrived. */
int run_coord_serve(run_ctx *ctx, int stage, int n_workers, const char *const *components,
                    int n_comp, run_msg_fn on_msg, void *user, rl_err *e);

/* Idle ranks: wait (sleeping) until rank 0 ends the stage. */
int run_wait_stage_end(run_ctx *ctx, rl_err *e);

#endif
