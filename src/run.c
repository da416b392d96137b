/* run: `rlaif run DECK [--resume] [--force]` on every rank; see include/run.h.
 *
 * Start-up: rank 0 reads and validates the deck and broadcasts the effective deck text; every
 * rank parses that same text, so every rank holds the same struct. Rank 0 alone prints deck
 * errors; every rank exits with status 2. The world size is checked against the deck on every
 * rank without communication, so a mismatch cannot hang.
 *
 * Run directory (rank 0): refuses to touch an existing run without --resume or --force; with
 * --resume it takes the newest complete checkpoint (falling back past damaged ones) and checks
 * that the deck is the one the run started with. Then the stages run in deck order.
 *
 * Not here: the stages' work (src/stage_*.c). */
#define _GNU_SOURCE /* nftw */
#include "run.h"

#include "blas.h"
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "msg.h"
#include "stage.h"

/* Set by SIGUSR1/SIGTERM (Slurm's time-limit signal, scancel): stop at the next checkpoint.
 * The one piece of mutable file-level state here; a signal handler has nowhere else to write. */
static volatile sig_atomic_t g_stop_signal = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    g_stop_signal = 1;
}

enum report_kind {
    R_METRIC = 1,
    R_SUMMARY,
    R_SUMMARY_STR,
    R_TABLE,
    R_PROGRESS,
    R_CKPT,
    R_DONE,
    R_ERROR
};

enum control_code { CTRL_STAGE_END = 1, CTRL_STOP = 2 };

typedef struct report_buf {
    msg_writer w;
    int n;
    double last_send;
} report_buf;

/* ------------------------------------------------------------------ worker-side reports */

static report_buf *rb(run_ctx *ctx) {
    if (!ctx->report) {
        report_buf *b = xcalloc(1, sizeof *b);
        msg_init(&b->w);
        b->last_send = log_now();
        ctx->report = b;
    }
    return ctx->report;
}

void run_report_flush(run_ctx *ctx) {
    report_buf *b = rb(ctx);
    if (b->n == 0) return;
    comm_send(b->w.buf, (int)b->w.len, MPI_BYTE, 0, TAG_STATUS, MPI_COMM_WORLD);
    b->w.len = 0;
    b->n = 0;
    b->last_send = log_now();
}

static void report_maybe_flush(run_ctx *ctx) {
    report_buf *b = rb(ctx);
    if (b->w.len > (1u << 16) || log_now() - b->last_send > 1.0) run_report_flush(ctx);
}

static void check_metrics_rc(run_ctx *ctx, int rc, rl_err *e) {
    if (rc) run_fail(ctx, e);
}

void run_metric(run_ctx *ctx, const char *name, int64_t step, double value) {
    if (ctx->comm.rank == 0) {
        rl_err e = {0};
        check_metrics_rc(ctx, metrics_append(ctx->metrics, name, step, value, &e), &e);
        return;
    }
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_METRIC);
    msg_put_str(&b->w, name);
    msg_put_i64(&b->w, step);
    msg_put_f64(&b->w, value);
    b->n++;
    report_maybe_flush(ctx);
}

void run_summary(run_ctx *ctx, const char *name, double value) {
    if (ctx->comm.rank == 0) {
        rl_err e = {0};
        check_metrics_rc(ctx, metrics_set_summary(ctx->metrics, name, value, &e), &e);
        log_info("summary %s = %.6g", name, value);
        return;
    }
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_SUMMARY);
    msg_put_str(&b->w, name);
    msg_put_f64(&b->w, value);
    b->n++;
    report_maybe_flush(ctx);
}

void run_summary_str(run_ctx *ctx, const char *name, const char *text) {
    if (ctx->comm.rank == 0) {
        rl_err e = {0};
        check_metrics_rc(ctx, metrics_set_summary_str(ctx->metrics, name, text, &e), &e);
        return;
    }
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_SUMMARY_STR);
    msg_put_str(&b->w, name);
    msg_put_str(&b->w, text);
    b->n++;
    report_maybe_flush(ctx);
}

void run_table(run_ctx *ctx, const char *name, int nrows, int ncols, const char *const *colnames,
               const char *const *cells) {
    if (ctx->comm.rank == 0) {
        rl_err e = {0};
        check_metrics_rc(ctx,
                         metrics_write_table(ctx->metrics, name, (size_t)nrows, (size_t)ncols,
                                             colnames, cells, &e),
                         &e);
        return;
    }
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_TABLE);
    msg_put_str(&b->w, name);
    msg_put_i32(&b->w, nrows);
    msg_put_i32(&b->w, ncols);
    msg_put_i32(&b->w, colnames != NULL);
    if (colnames)
        for (int c = 0; c < ncols; c++) msg_put_str(&b->w, colnames[c]);
    for (long i = 0; i < (long)nrows * ncols; i++) msg_put_str(&b->w, cells[i]);
    b->n++;
    run_report_flush(ctx);
}

typedef struct coord_state {
    log_progress prog;
    int prog_started;
    int stage;
    /* checkpoints being assembled */
    int64_t ck_id[16];
    int ck_have[16]; /* bit mask over the stage's components */
    int n_ck;
    const char *const *components;
    int n_comp;
    int done;
    int stop_sent;
} coord_state;

static coord_state *g_unused; /* keeps -Wunused quiet for the typedef in some builds */

void run_progress(run_ctx *ctx, long done, long total, const char *extra) {
    if (ctx->comm.rank == 0) {
        coord_state *cs = NULL;
        (void)cs;
        return; /* rank 0's own stage code reports progress through its serve loop */
    }
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_PROGRESS);
    msg_put_i64(&b->w, done);
    msg_put_i64(&b->w, total);
    msg_put_str(&b->w, extra ? extra : "");
    b->n++;
    report_maybe_flush(ctx);
}

void run_report_ckpt(run_ctx *ctx, int64_t ckpt_id, const char *component) {
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_CKPT);
    msg_put_i64(&b->w, ckpt_id);
    msg_put_str(&b->w, component);
    b->n++;
    run_report_flush(ctx);
}

void run_report_done(run_ctx *ctx) {
    report_buf *b = rb(ctx);
    msg_put_i32(&b->w, R_DONE);
    b->n++;
    run_report_flush(ctx);
}

/* ------------------------------------------------------------------ failure and stop */

void run_fail(run_ctx *ctx, const rl_err *e) {
    int code = e && e->code ? e->code : ERR_INTERNAL;
    const char *msg = e && e->msg[0] ? e->msg : "unknown error";
    log_error("%s", msg);
    if (ctx && ctx->comm.rank == 0 && ctx->out_dir[0]) {
        /* where the run can continue from: what an operator needs next */
        int64_t latest = -1;
        rl_err e3 = {0};
        if (ckpt_latest(ctx->out_dir, &latest, &e3) == ERR_OK && latest >= 0)
            log_warn("the newest committed checkpoint is %s/ckpt/step_%08lld (%s step %lld); once "
                     "the cause is fixed, continue with: rlaif run %s --resume (add --force if "
                     "the deck changed)",
                     ctx->out_dir, (long long)latest, config_stage_name((int)(latest / 10000000)),
                     (long long)(latest % 10000000), ctx->deck_path_for_msgs);
        else if (e3.code == ERR_OK)
            log_warn("the run failed before its first checkpoint");
    }
    if (ctx && ctx->comm.rank == 0 && ctx->metrics) {
        rl_err e2 = {0};
        metrics_set_summary_str(ctx->metrics, "error", msg, &e2);
        metrics_close(ctx->metrics, METRICS_FAILED, &e2);
        ctx->metrics = NULL;
    } else if (ctx && ctx->comm.size > 1) {
        /* let rank 0 record why the run failed; it then ends the job */
        msg_writer w;
        msg_init(&w);
        msg_put_i32(&w, R_ERROR);
        msg_put_i32(&w, code);
        msg_put_str(&w, msg);
        MPI_Request req;
        MPI_Isend(w.buf, (int)w.len, MPI_BYTE, 0, TAG_STATUS, MPI_COMM_WORLD, &req);
        /* give rank 0 up to 10 s to record it and abort the job; abort ourselves after */
        for (int i = 0; i < 1000; i++) {
            int flag = 0;
            MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
            comm_sleep_us(10000);
        }
    }
    fflush(NULL);
    MPI_Abort(MPI_COMM_WORLD, err_exit_status(code));
    exit(err_exit_status(code));
}

int run_stop_requested(run_ctx *ctx, MPI_Comm comm) {
    int stop = 0;
    int crank = 0;
    MPI_Comm_rank(comm, &crank);
    if (crank == 0) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(0, TAG_CONTROL, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            int32_t code = 0;
            comm_recv(&code, 1, MPI_INT32_T, 0, TAG_CONTROL, MPI_COMM_WORLD, NULL);
            stop = code == CTRL_STOP;
        }
    }
    comm_allreduce_max_int(&stop, comm);
    return stop;
}

int run_wait_stage_end(run_ctx *ctx, rl_err *e) {
    for (;;) {
        int32_t code[2] = {0, 0};
        if (comm_recv(code, 2, MPI_INT32_T, 0, TAG_CONTROL, MPI_COMM_WORLD, NULL))
            return err_set(e, ERR_MPI, "lost contact with the coordinator");
        if (code[0] == CTRL_STAGE_END) return code[1] ? 1 : 0; /* 1: the run stops here */
        /* CTRL_STOP reached a rank that had finished its part: nothing to do */
    }
}

/* ------------------------------------------------------------------ rank 0: checkpoints */

static int write_coordinator(run_ctx *ctx, int64_t id, rl_err *e) {
    ckpt_file *f = NULL;
    int rc = ckpt_file_begin(ctx->out_dir, id, "coordinator", &f, e);
    if (rc) return rc;
    int32_t layout[4] = {1, ctx->cfg.ranks.judge, ctx->cfg.ranks.reward, ctx->cfg.ranks.policy};
    int64_t l64[4] = {layout[0], layout[1], layout[2], layout[3]};
    if ((rc = ckpt_write_string(f, "deck_yaml", ctx->deck_yaml, e)) ||
        (rc = ckpt_write_string(f, "version", cli_version_string(), e)) ||
        (rc = ckpt_write_i64_scalar(f, "ckpt_id", id, e)) ||
        (rc = ckpt_write_i64_scalar(f, "stage", id / 10000000, e)) ||
        (rc = ckpt_write_i64_scalar(f, "stage_step", id % 10000000, e)) ||
        (rc = ckpt_write_i64(f, "rank_layout", l64, 4, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    double wall = log_now() - ctx->t0;
    if ((rc = ckpt_write_f64(f, "wall_seconds", &wall, 1, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    return ckpt_file_commit(f, e);
}

/* Writes the coordinator component and commits checkpoint `id` with the given components. */
static int commit_ckpt(run_ctx *ctx, int64_t id, const char *const *components, int n_comp,
                       rl_err *e) {
    double t0 = log_now();
    int rc;
    if ((rc = metrics_flush(ctx->metrics, e))) return rc;
    if ((rc = write_coordinator(ctx, id, e))) return rc;
    const char *names[17];
    int n = 0;
    for (int i = 0; i < n_comp && n < 16; i++) names[n++] = components[i];
    names[n++] = "coordinator";
    if ((rc = ckpt_commit_step(ctx->out_dir, id, names, (size_t)n, e))) return rc;
    if ((rc = ckpt_prune(ctx->out_dir, ctx->cfg.run.keep_checkpoints, e))) return rc;
    char dir[4200];
    ckpt_step_dir(ctx->out_dir, id, dir, sizeof dir, NULL);
    if (id / 10000000 >= STAGE_COUNT) /* the run's last checkpoint: every stage is done */
        log_info("checkpoint %s committed (after the last stage, %.2f s)", dir, log_now() - t0);
    else
        log_info("checkpoint %s committed (%s step %lld, %.2f s)", dir,
                 config_stage_name((int)(id / 10000000)), (long long)(id % 10000000),
                 log_now() - t0);
    return ERR_OK;
}

static int coord_handle_reports(run_ctx *ctx, coord_state *cs, int src, const void *buf, int len,
                                rl_err *e) {
    msg_reader r;
    msg_reader_init(&r, buf, (size_t)len);
    while (!r.bad && r.pos < r.len) {
        int kind = msg_get_i32(&r);
        switch (kind) {
        case R_METRIC: {
            char *name = msg_get_str(&r);
            int64_t step = msg_get_i64(&r);
            double v = msg_get_f64(&r);
            int rc = r.bad ? ERR_OK : metrics_append(ctx->metrics, name, step, v, e);
            free(name);
            if (rc) return rc;
            break;
        }
        case R_SUMMARY: {
            char *name = msg_get_str(&r);
            double v = msg_get_f64(&r);
            int rc = r.bad ? ERR_OK : metrics_set_summary(ctx->metrics, name, v, e);
            if (!r.bad && !rc) log_info("summary %s = %.6g", name, v);
            free(name);
            if (rc) return rc;
            break;
        }
        case R_SUMMARY_STR: {
            char *name = msg_get_str(&r), *text = msg_get_str(&r);
            int rc = r.bad ? ERR_OK : metrics_set_summary_str(ctx->metrics, name, text, e);
            free(name);
            free(text);
            if (rc) return rc;
            break;
        }
        case R_TABLE: {
            char *name = msg_get_str(&r);
            int nrows = msg_get_i32(&r), ncols = msg_get_i32(&r), has_cols = msg_get_i32(&r);
            if (nrows < 0 || ncols <= 0 || (long)nrows * ncols > (1L << 24)) r.bad = 1;
            char **cols = NULL, **cells = NULL;
            if (!r.bad) {
                cols = has_cols ? xcalloc((size_t)ncols, sizeof *cols) : NULL;
                cells = xcalloc((size_t)nrows * (size_t)ncols + 1, sizeof *cells);
                if (cols)
                    for (int c = 0; c < ncols; c++) cols[c] = msg_get_str(&r);
                for (long i = 0; i < (long)nrows * ncols; i++) cells[i] = msg_get_str(&r);
            }
            int rc = ERR_OK;
            if (!r.bad)
                rc = metrics_write_table(ctx->metrics, name, (size_t)nrows, (size_t)ncols,
                                         (const char *const *)cols, (const char *const *)cells, e);
            if (cols)
                for (int c = 0; c < ncols; c++) free(cols[c]);
            if (cells)
                for (long i = 0; i < (long)nrows * ncols; i++) free(cells[i]);
            free(cols);
            free(cells);
            free(name);
            if (rc) return rc;
            break;
        }
        case R_PROGRESS: {
            long done = (long)msg_get_i64(&r), total = (long)msg_get_i64(&r);
            char *extra = msg_get_str(&r);
            if (!r.bad) {
                if (!cs->prog_started) {
                    char what[64];
                    snprintf(what, sizeof what, "%s", config_stage_name(cs->stage));
                    log_progress_begin(&cs->prog, what, "steps", total);
                    cs->prog_started = 1;
                }
                cs->prog.total = total;
                log_progress_update(&cs->prog, done, extra[0] ? extra : NULL);
            }
            free(extra);
            break;
        }
        case R_CKPT: {
            int64_t id = msg_get_i64(&r);
            char *comp = msg_get_str(&r);
            if (r.bad) {
                free(comp);
                break;
            }
            int ci = -1;
            for (int i = 0; i < cs->n_comp; i++)
                if (!strcmp(cs->components[i], comp)) ci = i;
            if (ci < 0) {
                int rc = err_set(e, ERR_INTERNAL,
                                 "rank %d reported checkpoint component '%s', which stage %s does "
                                 "not have",
                                 src, comp, config_stage_name(cs->stage));
                free(comp);
                return rc;
            }
            free(comp);
            int slot = -1;
            for (int i = 0; i < cs->n_ck; i++)
                if (cs->ck_id[i] == id) slot = i;
            if (slot < 0) {
                if (cs->n_ck == 16) return err_set(e, ERR_INTERNAL, "too many open checkpoints");
                slot = cs->n_ck++;
                cs->ck_id[slot] = id;
                cs->ck_have[slot] = 0;
            }
            cs->ck_have[slot] |= 1 << ci;
            if (cs->ck_have[slot] == (1 << cs->n_comp) - 1) {
                int rc = commit_ckpt(ctx, id, cs->components, cs->n_comp, e);
                if (rc) return rc;
                cs->ck_id[slot] = cs->ck_id[cs->n_ck - 1];
                cs->ck_have[slot] = cs->ck_have[cs->n_ck - 1];
                cs->n_ck--;
            }
            break;
        }
        case R_DONE:
            cs->done++;
            break;
        case R_ERROR: {
            int code = msg_get_i32(&r);
            char *text = msg_get_str(&r);
            int rc = err_set(e, code ? code : ERR_INTERNAL, "rank %d (%s): %s", src,
                             comm_role_name(ctx->comm.role), text);
            /* name the failing rank's role, not ours */
            for (int ro = 0; ro < ROLE_COUNT; ro++)
                if (src >= ctx->comm.first[ro] && src < ctx->comm.first[ro] + ctx->comm.count[ro])
                    err_set(e, code ? code : ERR_INTERNAL, "rank %d (%s): %s", src,
                            comm_role_name((comm_role)ro), text);
            free(text);
            return rc ? e->code : ERR_INTERNAL;
        }
        default:
            r.bad = 1;
        }
    }
    if (r.bad) return err_set(e, ERR_MPI, "rank %d sent a malformed report (%d bytes)", src, len);
    return ERR_OK;
}

int run_coord_serve(run_ctx *ctx, int stage, int n_workers, const char *const *components,
                    int n_comp, run_msg_fn on_msg, void *user, rl_err *e) {
    coord_state cs;
    memset(&cs, 0, sizeof cs);
    cs.stage = stage;
    cs.components = components;
    cs.n_comp = n_comp;
    (void)g_unused;
    long sleep_us = 20;
    while (cs.done < n_workers) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (!flag) {
            if (g_stop_signal && !cs.stop_sent) {
                log_warn("stop requested (signal): the stage checkpoints at its next step and the "
                         "run ends; continue it with --resume");
                int32_t code = CTRL_STOP;
                for (int r = 1; r < ctx->comm.size; r++)
                    comm_send(&code, 1, MPI_INT32_T, r, TAG_CONTROL, MPI_COMM_WORLD);
                cs.stop_sent = 1;
            }
            int rc = metrics_maybe_flush(ctx->metrics, log_now(), e);
            if (rc) return rc;
            comm_sleep_us(sleep_us);
            sleep_us = sleep_us < 2000 ? sleep_us * 2 : 2000;
            continue;
        }
        sleep_us = 20;
        int len = 0;
        MPI_Get_count(&st, MPI_BYTE, &len);
        void *buf = xmalloc((size_t)len + 1);
        comm_recv(buf, len, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, NULL);
        int rc;
        if (st.MPI_TAG == TAG_STATUS)
            rc = coord_handle_reports(ctx, &cs, st.MPI_SOURCE, buf, len, e);
        else if (on_msg)
            rc = on_msg(ctx, user, st.MPI_SOURCE, st.MPI_TAG, buf, len, e);
        else
            rc = err_set(e, ERR_INTERNAL, "unexpected message with tag %d from rank %d", st.MPI_TAG,
                         st.MPI_SOURCE);
        free(buf);
        if (rc) return rc;
    }
    if (cs.prog_started) log_progress_end(&cs.prog, NULL);
    if (cs.stop_sent) ctx->stopping = 1;
    if (cs.n_ck)
        return err_set(e, ERR_INTERNAL, "stage %s ended with checkpoint %lld incomplete",
                       config_stage_name(stage), (long long)cs.ck_id[0]);
    return ERR_OK;
}

/* ------------------------------------------------------------------ run directory */

static int mkdir_p(const char *path, rl_err *e) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return err_set(e, ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return err_set(e, ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return err_set(e, ERR_IO, "run.out_dir '%s' exists and is not a directory", buf);
    return ERR_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* --force: removes what rlaif itself writes in out_dir, nothing else. */
static int clear_run_dir(const char *out_dir, rl_err *e) {
    static const char *const files[] = {"metrics.h5", "labels.h5", "labels.h5.journal"};
    static const char *const dirs[] = {"ckpt", "models"};
    char p[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out_dir, files[i]);
        if (remove(p) != 0 && errno != ENOENT)
            return err_set(e, ERR_IO, "--force: cannot remove %s: %s", p, strerror(errno));
    }
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", out_dir, dirs[i]);
        if (access(p, F_OK) == 0 && nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            return err_set(e, ERR_IO, "--force: cannot remove %s: %s", p, strerror(errno));
    }
    return ERR_OK;
}

/* Keys that may change between the attempts of one run: out_dir too, since a run directory
 * may be moved (to a disk with room, to another machine) and resumed there. */
static int deck_line_may_differ(const char *line) {
    static const char *const keys[] = {
        "  log_level:",        "  metrics_flush_seconds:", "  progress_seconds:",
        "  keep_checkpoints:", "  checkpoint_every:",      "  out_dir:"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strncmp(line, keys[i], strlen(keys[i]))) return 1;
    return 0;
}

/* Compares two effective decks line by line, ignoring the keys above; names the first
 * difference in *what. 0 when they match. */
static int deck_differs(const char *a, const char *b, char *what, size_t n) {
    const char *pa = a, *pb = b;
    while (*pa || *pb) {
        const char *ea = strchr(pa, '\n'), *eb = strchr(pb, '\n');
        size_t la = ea ? (size_t)(ea - pa) : strlen(pa), lb = eb ? (size_t)(eb - pb) : strlen(pb);
        if ((la != lb || strncmp(pa, pb, la) != 0) &&
            !(deck_line_may_differ(pa) && deck_line_may_differ(pb))) {
            snprintf(what, n, "checkpoint has '%.*s', this deck has '%.*s'",
                     (int)(la > 120 ? 120 : la), pa, (int)(lb > 120 ? 120 : lb), pb);
            return 1;
        }
        pa = ea ? ea + 1 : pa + la;
        pb = eb ? eb + 1 : pb + lb;
    }
    return 0;
}

/* Resuming at (stage, step): drop the rows the dead attempt wrote after the checkpoint: series
 * of that stage beyond `step` (all of them when the stage starts over), and every series of the
 * stages after it. Series are named "<stage>/<name>". */
static int run_metrics_truncate_for_resume(run_ctx *ctx, int64_t ckpt, rl_err *e) {
    int stage = (int)(ckpt / 10000000);
    int64_t step = ckpt % 10000000;
    for (int s = stage; s < STAGE_COUNT; s++) {
        char group[64];
        snprintf(group, sizeof group, "%s/", config_stage_name(s));
        int rc = metrics_truncate_after(ctx->metrics, group, s == stage && step > 0 ? step : -1, e);
        if (rc) return rc;
    }
    return ERR_OK;
}

/* Removes step directories newer than the resume point: what the dead attempt left unfinished. */
static int ckpt_clear_after(const char *out_dir, int64_t ckpt, rl_err *e) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", out_dir);
    DIR *d = opendir(dir);
    if (!d) return ERR_OK;
    struct dirent *de;
    int rc = ERR_OK;
    while ((de = readdir(d)) && !rc) {
        long long id;
        char tail;
        if (sscanf(de->d_name, "step_%lld%c", &id, &tail) != 1 || id <= ckpt) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        log_info("resume: removing %s, left unfinished by the attempt that stopped", p);
        if (nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            rc = err_set(e, ERR_IO, "cannot remove %s: %s", p, strerror(errno));
    }
    closedir(d);
    return rc;
}

/* 1 when out_dir/ckpt holds checkpoint files (latest, step_*): an empty directory, such as
 * the mount point of a file system set aside for checkpoints, is no earlier run. */
static int ckpt_dir_used(const char *ckdir) {
    DIR *d = opendir(ckdir);
    if (!d) return errno != ENOENT; /* unreadable: let the checks below say so */
    int used = 0;
    struct dirent *de;
    while (!used && (de = readdir(d)))
        used = !strncmp(de->d_name, "latest", 6) || !strncmp(de->d_name, "step_", 5);
    closedir(d);
    return used;
}

typedef struct setup_result {
    int32_t rc;       /* ERR_OK, or the error (rank 0 printed it) */
    int32_t finished; /* --resume found a finished run: nothing to do */
    int64_t resume_ckpt;
} setup_result;

/* Rank 0: prepares out_dir, finds the checkpoint to resume from, opens metrics.h5. */
static int setup_run_dir(run_ctx *ctx, setup_result *res, rl_err *e) {
    int rc;
    res->finished = 0;
    res->resume_ckpt = -1;
    snprintf(ctx->out_dir, sizeof ctx->out_dir, "%s", ctx->cfg.run.out_dir);
    size_t L = strlen(ctx->out_dir);
    while (L > 1 && ctx->out_dir[L - 1] == '/') ctx->out_dir[--L] = '\0';
    if ((rc = mkdir_p(ctx->out_dir, e))) return rc;
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.h5", ctx->out_dir);
    metrics_run_info info;
    if ((rc = metrics_run_state(mpath, &info, e))) {
        if (ctx->resume && !ctx->force) {
            /* a kill in the middle of a flush can leave metrics.h5 unreadable; the checkpoints
             * hold the run's state, so the run goes on with a new metrics.h5 and the old one is
             * kept for whatever h5py or h5recover can still read */
            char aside[4300];
            for (int k = 0;; k++) {
                snprintf(aside, sizeof aside, k ? "%s.damaged.%d" : "%s.damaged", mpath, k);
                if (access(aside, F_OK) != 0) break;
            }
            if (rename(mpath, aside) != 0)
                return err_set(e, ERR_IO, "%s is unreadable and cannot be set aside as %s: %s",
                               mpath, aside, strerror(errno));
            log_warn("resume: %s; set aside as %s, a new metrics.h5 starts here (the rows of "
                     "earlier attempts are in the old file)",
                     e->msg, aside);
            err_clear(e);
        } else if (!ctx->force) {
            return err_prefix(e, "run.out_dir '%s'", ctx->out_dir);
        }
        info.state = METRICS_ABSENT;
    }
    char ckdir[4200];
    snprintf(ckdir, sizeof ckdir, "%s/ckpt", ctx->out_dir);
    int have_ckpt_dir = ckpt_dir_used(ckdir);

    if (ctx->force && !ctx->resume) {
        if (info.state != METRICS_ABSENT || have_ckpt_dir)
            log_warn("--force: removing the earlier run in %s (metrics.h5, labels.h5, ckpt/, "
                     "models/)",
                     ctx->out_dir);
        if ((rc = clear_run_dir(ctx->out_dir, e))) return rc;
        info.state = METRICS_ABSENT;
        have_ckpt_dir = 0;
    }
    if (!ctx->resume && !ctx->force && (info.state != METRICS_ABSENT || have_ckpt_dir)) {
        if (info.state == METRICS_FINISHED)
            return err_set(e, ERR_STATE,
                           "run.out_dir '%s' holds a finished run (started %s, finished %s); "
                           "refusing to overwrite it: pass --force to start over, or choose "
                           "another run.out_dir",
                           ctx->out_dir, info.start_time, info.end_time);
        if (info.state == METRICS_ABSENT)
            return err_set(e, ERR_STATE,
                           "run.out_dir '%s' holds checkpoints (%s) but no metrics.h5; pass "
                           "--resume to continue from them, or --force to start over",
                           ctx->out_dir, ckdir);
        return err_set(e, ERR_STATE,
                       "run.out_dir '%s' holds an unfinished run (state %s, started %s); pass "
                       "--resume to continue it from its last checkpoint, or --force to start "
                       "over",
                       ctx->out_dir, metrics_state_name(info.state), info.start_time);
    }

    int64_t step = -1;
    if (ctx->resume && have_ckpt_dir) {
        char notes[4096] = "";
        rc = ckpt_find_latest(ctx->out_dir, &step, CKPT_VERIFY_FULL, notes, sizeof notes, e);
        if (notes[0]) {
            for (char *line = strtok(notes, "\n"); line; line = strtok(NULL, "\n"))
                log_warn("resume: %s", line);
        }
        if (rc) return rc;
    }
    if (ctx->resume && step >= 0) {
        ckpt_file *f = NULL;
        char *old_deck = NULL;
        if ((rc = ckpt_file_open(ctx->out_dir, step, "coordinator", &f, e))) return rc;
        rc = ckpt_read_string(f, "deck_yaml", &old_deck, e);
        ckpt_file_close(f);
        if (rc) return rc;
        char what[512];
        int differs = deck_differs(old_deck, ctx->deck_yaml, what, sizeof what);
        free(old_deck);
        if (differs && !ctx->force)
            return err_set(e, ERR_STATE,
                           "%s: the deck differs from the one the run started with (%s); a resumed "
                           "run must use the same deck (pass --force with --resume to accept the "
                           "change)",
                           ctx->deck_path_for_msgs, what);
        if (differs) log_warn("--resume --force: continuing with a changed deck: %s", what);
        res->resume_ckpt = step;
    }
    if (ctx->resume && info.state == METRICS_FINISHED && !ctx->force) {
        res->finished = 1;
        return ERR_OK;
    }
    if (ctx->resume && step < 0)
        log_info("--resume: no checkpoint in %s; starting from the beginning", ctx->out_dir);

    int32_t layout[4] = {1, ctx->cfg.ranks.judge, ctx->cfg.ranks.reward, ctx->cfg.ranks.policy};
    metrics_open_opts o = {0};
    o.mode = ctx->resume ? METRICS_RESUME : METRICS_NEW;
    o.force = ctx->force;
    o.resume_step = METRICS_KEEP_ALL; /* truncated per stage below */
    o.deck_yaml = ctx->deck_yaml;
    o.version = cli_version_string();
    o.rank_layout = layout;
    o.n_rank_layout = 4;
    o.flush_interval = ctx->cfg.run.metrics_flush_seconds;
    if ((rc = metrics_open(mpath, &o, &ctx->metrics, e))) return rc;
    if (metrics_notes(ctx->metrics)[0]) log_warn("metrics.h5: %s", metrics_notes(ctx->metrics));
    if (ctx->resume && step < 0) {
        /* an unfinished run that never reached a checkpoint starts over */
        if ((rc = metrics_truncate_after(ctx->metrics, NULL, -1, e))) return rc;
    }
    if (step >= 0) {
        /* rows the attempt that died wrote after its last checkpoint: drop them */
        if ((rc = run_metrics_truncate_for_resume(ctx, step, e))) return rc;
        if ((rc = ckpt_clear_after(ctx->out_dir, step, e))) return rc;
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------ the stage machine */

static void usage_run(FILE *f) {
    fprintf(f, "usage: mpirun -np N rlaif run DECK [--resume] [--force] [-v|-q]\n\n"
               "  DECK       YAML input deck (see `rlaif check --schema`)\n"
               "  --resume   continue the run in run.out_dir from its newest complete checkpoint\n"
               "             (starts from the beginning when there is none; does nothing when the\n"
               "             run there finished)\n"
               "  --force    start over: remove metrics.h5, labels.h5, ckpt/ and models/ of an\n"
               "             earlier run in run.out_dir (with --resume: accept a changed deck)\n"
               "  -v, -q     more (debug) or less (warnings only) logging than run.log_level\n\n"
               "N must be 1 + ranks.judge + ranks.reward + ranks.policy of the deck.\n"
               "Exit status: 0 done (or stopped cleanly by SIGUSR1/SIGTERM: resume it), 2 bad\n"
               "input (deck, rank count, run directory state), 1 other errors.\n");
}

/* Broadcasts a status from rank 0 (and rank 0's message length, for nothing else: rank 0 has
 * printed it). Returns the status on every rank. */
static int bcast_status(int rc) {
    int32_t v = rc;
    comm_bcast(&v, 1, MPI_INT32_T, 0, MPI_COMM_WORLD);
    return v;
}

static int finish(int status) {
    MPI_Finalize();
    return status;
}

/* An early end of cli_run: frees what the run holds so far (the sanitizer build checks leaks
 * at exit), then finalises MPI. comm_ready: comm_setup succeeded. */
static int finish_early(run_ctx *ctx, int comm_ready, int status) {
    if (ctx->metrics) {
        rl_err e2 = {0};
        metrics_close(ctx->metrics, METRICS_RUNNING, &e2);
        ctx->metrics = NULL;
    }
    if (comm_ready) comm_teardown(&ctx->comm);
    config_free(&ctx->cfg);
    free(ctx->deck_yaml);
    ctx->deck_yaml = NULL;
    return finish(status);
}

int cli_run(int argc, char **argv) {
    const char *deck = NULL;
    int resume = 0, force = 0, verbose = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage_run(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--resume"))
            resume = 1;
        else if (!strcmp(argv[i], "--force"))
            force = 1;
        else if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (!strcmp(argv[i], "-q"))
            quiet = 1;
        else if (argv[i][0] == '-' || deck) {
            fprintf(stderr, "rlaif run: unexpected argument '%s'\n", argv[i]);
            usage_run(stderr);
            return 2;
        } else
            deck = argv[i];
    }
    if (!deck) {
        usage_run(stderr);
        return 2;
    }

    /* before MPI_Init: a stop request that comes during start-up (Slurm's signal, forwarded by
     * the job script) must not kill the rank, whose default action for both signals that is */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    MPI_Init(&argc, &argv);
    run_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.t0 = log_now();
    ctx.resume = resume;
    ctx.force = force;
    ctx.resume_ckpt = -1;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    log_setup(rank, rank == 0 ? "coord" : "worker");
    rl_err e = {0};

    /* the deck: rank 0 validates, everyone parses the effective text */
    int rc = ERR_OK;
    int64_t len = 0;
    if (rank == 0) {
        /* rank 0 keeps the struct parsed from the file: its positions point into the file */
        rc = config_load_file(deck, &ctx.cfg, &e);
        if (rc) {
            fprintf(stderr, "%s\n", e.msg);
        } else {
            ctx.deck_yaml = config_emit(&ctx.cfg);
            len = (int64_t)strlen(ctx.deck_yaml);
        }
    }
    rc = bcast_status(rc);
    if (rc) return finish_early(&ctx, 0, err_exit_status(rc));
    comm_bcast(&len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (rank != 0) ctx.deck_yaml = xmalloc((size_t)len + 1);
    comm_bcast(ctx.deck_yaml, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
    ctx.deck_yaml[len] = '\0';
    /* the others parse the effective deck: the same values (the round trip is tested) */
    if (rank != 0 && (rc = config_load_string(deck, ctx.deck_yaml, (size_t)len, &ctx.cfg, &e))) {
        fprintf(stderr, "internal: the effective deck does not load back: %s\n", e.msg);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    snprintf(ctx.deck_path_for_msgs, sizeof ctx.deck_path_for_msgs, "%s", deck);

    /* ranks by role; the size check needs no communication, so a mismatch cannot hang */
    if ((rc = comm_setup(&ctx.comm, ctx.cfg.ranks.judge, ctx.cfg.ranks.reward, ctx.cfg.ranks.policy,
                         &e))) {
        if (rank == 0) {
            config_pos p = config_key_pos(&ctx.cfg, "ranks.judge");
            if (p.line)
                fprintf(stderr, "%s:%d:%d: %s\n", deck, p.line, p.col, e.msg);
            else
                fprintf(stderr, "%s: %s\n", deck, e.msg);
        }
        return finish_early(&ctx, 0, err_exit_status(rc));
    }
    log_setup(rank, comm_role_name(ctx.comm.role));
    int level = ctx.cfg.run.log_level;
    if (verbose) level = LOG_DEBUG;
    if (quiet) level = LOG_WARN;
    log_set_level(level);
    log_set_progress_interval(ctx.cfg.run.progress_seconds);

    /* threads: the deck, unless the job script says otherwise (Slurm's cpus-per-task) */
    int threads = ctx.cfg.threads_per_rank;
    const char *tenv = getenv("RLAIF_THREADS_PER_RANK");
    if (tenv && atoi(tenv) > 0) threads = atoi(tenv);
    blas_set_threads(threads);

    if (rank == 0) {
        log_info("rlaif run %s: %d ranks (1 coordinator, %d judge, %d reward, %d policy), %d "
                 "BLAS thread%s per rank",
                 deck, size, ctx.cfg.ranks.judge, ctx.cfg.ranks.reward, ctx.cfg.ranks.policy,
                 threads, threads == 1 ? "" : "s");
        char *ver = xstrdup(cli_version_string());
        for (char *line = strtok(ver, "\n"); line; line = strtok(NULL, "\n"))
            log_info("  %s", line);
        free(ver);
        log_info("effective deck:");
        char *dk = xstrdup(ctx.deck_yaml);
        for (char *line = strtok(dk, "\n"); line; line = strtok(NULL, "\n"))
            if (line[0] != '#') log_info("  %s", line);
        free(dk);
        rc = stage_check_available(&ctx.cfg, &e);
    }
    if ((rc = bcast_status(rc))) {
        if (rank == 0) fprintf(stderr, "%s\n", e.msg);
        return finish_early(&ctx, 1, err_exit_status(rc));
    }

    setup_result res = {0, 0, -1};
    if (rank == 0) {
        res.rc = setup_run_dir(&ctx, &res, &e);
        if (res.rc) fprintf(stderr, "%s\n", e.msg);
    }
    comm_bcast(&res, (int)sizeof res, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (res.rc) return finish_early(&ctx, 1, err_exit_status(res.rc));
    comm_bcast(ctx.out_dir, (int)sizeof ctx.out_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    snprintf(ctx.models_dir, sizeof ctx.models_dir, "%s/models", ctx.out_dir);
    if (res.finished) {
        if (rank == 0)
            log_info("%s holds a finished run of this deck (last checkpoint step_%08lld); nothing "
                     "to do",
                     ctx.out_dir, (long long)res.resume_ckpt);
        return finish_early(&ctx, 1, 0);
    }
    ctx.resume_ckpt = res.resume_ckpt;
    ctx.resume_stage = res.resume_ckpt >= 0 ? (int)(res.resume_ckpt / 10000000) : -1;
    ctx.resume_step = res.resume_ckpt >= 0 ? res.resume_ckpt % 10000000 : 0;
    if (rank == 0) {
        if (mkdir_p(ctx.models_dir, &e)) run_fail(&ctx, &e);
        if (res.resume_ckpt >= 0)
            log_info("resuming from checkpoint step_%08lld (%s, step %lld)",
                     (long long)res.resume_ckpt, config_stage_name(ctx.resume_stage),
                     (long long)ctx.resume_step);
    }

    /* the stages, in deck order */
    int stopped = 0;
    int last_stage = -1;
    for (int i = 0; i < ctx.cfg.stages.n && !stopped; i++) {
        int stage = ctx.cfg.stages.items[i];
        last_stage = stage;
        if (ctx.resume_ckpt >= 0 && stage < ctx.resume_stage) {
            if (rank == 0)
                log_info("stage %s: done in an earlier attempt", config_stage_name(stage));
            continue;
        }
        int64_t from = (ctx.resume_ckpt >= 0 && stage == ctx.resume_stage) ? ctx.resume_step : 0;
        double t_stage = log_now();
        if (rank == 0)
            log_info("stage %s: start%s", config_stage_name(stage),
                     from ? " (continuing from its checkpoint)" : "");
        if ((rc = stage_run(&ctx, stage, from, &e))) run_fail(&ctx, &e);
        if (rank == 0) {
            double secs = log_now() - t_stage;
            if (ctx.stopping) {
                /* the workers stopped mid-stage at a checkpoint of their own */
                stopped = 1;
                log_info("stage %s: stopped after %.1f s", config_stage_name(stage), secs);
            } else {
                /* the stage is whole: checkpoint "stage+1, step 0", then release the workers */
                int64_t id = RUN_CKPT_ID(stage + 1, 0);
                char name[64];
                snprintf(name, sizeof name, "time/%s_seconds", config_stage_name(stage));
                if ((rc = metrics_set_summary(ctx.metrics, name, secs, &e)) ||
                    (rc = commit_ckpt(&ctx, id, NULL, 0, &e)))
                    run_fail(&ctx, &e);
                stopped = g_stop_signal != 0;
                log_info("stage %s: done in %.1f s", config_stage_name(stage), secs);
            }
            int32_t msg[2] = {CTRL_STAGE_END, stopped};
            for (int r = 1; r < size; r++)
                comm_send(msg, 2, MPI_INT32_T, r, TAG_CONTROL, MPI_COMM_WORLD);
        } else {
            int st = run_wait_stage_end(&ctx, &e);
            if (st < 0) run_fail(&ctx, &e);
            stopped = st;
        }
    }
    if (rank == 0 && !stopped && ctx.cfg.stages.n == 0 && ctx.resume_ckpt < 0) {
        /* an empty stage list: the set-up itself is the run; record it */
        if (commit_ckpt(&ctx, RUN_CKPT_ID(0, 0), NULL, 0, &e)) run_fail(&ctx, &e);
    }
    (void)last_stage;
    comm_barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        double wall = log_now() - ctx.t0;
        rl_err e2 = {0};
        metrics_set_summary(ctx.metrics, "wall_seconds", wall, &e2);
        if (stopped) {
            log_warn("run stopped by a signal after a checkpoint; continue it with: rlaif run %s "
                     "--resume",
                     deck);
            rc = metrics_close(ctx.metrics, METRICS_RUNNING, &e2);
        } else {
            rc = metrics_close(ctx.metrics, METRICS_FINISHED, &e2);
            log_info("run finished in %.1f s; results in %s/metrics.h5", wall, ctx.out_dir);
        }
        ctx.metrics = NULL;
        if (rc) log_error("%s", e2.msg);
    }
    comm_teardown(&ctx.comm);
    config_free(&ctx.cfg);
    free(ctx.deck_yaml);
    if (ctx.report) {
        msg_free(&((report_buf *)ctx.report)->w);
        free(ctx.report);
    }
    return finish(rc ? 1 : 0);
}
