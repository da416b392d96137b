/* stage_label: AI preference labels at scale.
 *
 *   rank 0         owns labels.h5 and the list of rows (pairs 0 .. N-1). Deals generation work
 *                  to the policy ranks and labelling work to the judge ranks, in batches, on
 *                  demand: a rank asks (its results are its next request) and gets the next
 *                  batch, so a slower rank simply asks less often. Results are streamed into
 *                  labels.h5 in blocks (labels.c); a resumed run labels only the rows that are
 *                  not done there.
 *   policy ranks   (label.source: policy) load models/policy_sft.gguf and sample two responses
 *                  for the prompt of each row: row i is training document i mod task.n_train,
 *                  the samples draw from streams keyed by the row (a repeat of the first response
 *                  is redrawn up to three times), so a row's pair does not depend on who made it.
 *   judge ranks    load models/judge.gguf and label their batch with the judge module (both
 *                  orders, prefix reuse, CoT, principles as the deck says).
 *   reward ranks   idle.
 * With label.source: file, rank 0 reads the pairs from the JSONL file and only judges work.
 *
 * Texts go through rank 0 because it writes them to labels.h5 anyway; they are small next to
 * the arithmetic of judging them.
 *
 * Figures (metrics.h5): label/pairs_per_s over the pairs done; summaries ai_labels_produced,
 * label_pairs_per_s, same_position_rate, label_confidence_mean, the confidence histogram
 * (/samples/label_confidence_hist), per judge rank pairs, pairs/s and busy seconds, min/avg/max
 * busy time across judges; and, when the pairs come from the built-in task, the alignment of
 * the labels with the gold rater (label_eval_*: evaluation, after every label is written).
 * Not here: judging (judge.c), the file format (labels.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc.h"
#include "judge.h"
#include "jsonl.h"
#include "labels.h"
#include "log.h"
#include "msg.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"

enum { CMD_WORK = 1, CMD_DONE = 2 };
enum { ROW_TODO = 0, ROW_GEN, ROW_READY, ROW_JUDGING, ROW_DONE };

#define HIST_BINS 10

/* ------------------------------------------------------------------ shared helpers */

static uint32_t file_crc(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint32_t c = 0;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) c = crc32c(c, buf, n);
    fclose(f);
    return c;
}

/* CRC of the top-level section `name:` of the effective deck (its lines up to the next
 * top-level key). */
static uint32_t section_crc(const char *deck, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = deck; p && *p;) {
        if (!strncmp(p, name, nl) && p[nl] == ':') {
            const char *end = p;
            for (;;) {
                end = strchr(end, '\n');
                if (!end || (end[1] != ' ' && end[1] != '\0')) break;
                end++;
            }
            return crc32c(0, p, end ? (size_t)(end - p) : strlen(p));
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return 0;
}

/* ------------------------------------------------------------------ rank 0 */

typedef struct judge_info {
    int64_t pairs; /* labelled by this rank, this attempt */
    double busy;   /* seconds inside the judge */
    double cpu;    /* CPU seconds of the rank in this stage */
    int64_t tok_computed, tok_reused;
    int waiting; /* asked for work while none was ready */
} judge_info;

typedef struct coord {
    run_ctx *ctx;
    char path[4400], journal[4420];
    char fingerprint[256];
    int source;
    int64_t n;
    labels_row *rows;
    uint8_t *state;
    int64_t n_done, done_before, n_todo;
    /* work goes in blocks of `batch` rows (block k: rows k*batch ..): a block is sampled in one
     * batch and judged in one batch, so its pairs and labels do not depend on the timing */
    int64_t nb;
    int64_t next_gen;   /* blocks below it were handed to generation (or are done) */
    int64_t generating; /* blocks out for generation */
    int64_t *ready;     /* FIFO of blocks ready for a judge */
    int64_t ready_head, ready_tail;
    int64_t *pending; /* done rows not yet in the file */
    int n_pending;
    double last_flush, t_first, t_last;
    int batch;
    int n_judges, n_policy;
    judge_info *judges;
    int *policy_waiting;
    double *policy_cpu;
    double cpu0; /* rank 0's CPU seconds at the start */
    int stop;
    log_progress prog;
    int prog_started;
} coord;

static int is_judge(const coord *c, int src) {
    const comm_ctx *m = &c->ctx->comm;
    return src >= m->first[ROLE_JUDGE] && src < m->first[ROLE_JUDGE] + m->count[ROLE_JUDGE];
}

static int flush_rows(coord *c, rl_err *e) {
    if (!c->n_pending) return ERR_OK;
    /* the journal first: a kill inside the HDF5 write below then loses nothing */
    int rc =
        labels_journal_append(c->journal, c->fingerprint, c->rows, c->pending, c->n_pending, e);
    if (!rc) rc = labels_write(c->path, c->rows, c->pending, c->n_pending, e);
    c->n_pending = 0;
    c->last_flush = log_now();
    return rc;
}

static void send_buf(msg_writer *w, int dest) {
    comm_send(w->buf, (int)w->len, MPI_BYTE, dest, TAG_WORK, MPI_COMM_WORLD);
    msg_free(w);
}

static void send_done(int dest) {
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, CMD_DONE);
    msg_put_i32(&w, 0);
    send_buf(&w, dest);
}

static int64_t ready_count(const coord *c) {
    return c->ready_tail - c->ready_head;
}

static int generation_left(const coord *c) {
    return c->source == CONFIG_LABEL_POLICY && (c->next_gen < c->nb || c->generating > 0);
}

static int64_t block_end(const coord *c, int64_t b) {
    int64_t e = (b + 1) * c->batch;
    return e < c->n ? e : c->n;
}

static int block_done(const coord *c, int64_t b) {
    for (int64_t r = b * c->batch; r < block_end(c, b); r++)
        if (c->state[r] != ROW_DONE) return 0;
    return 1;
}

/* A judge asks: give it a block, park it, or end it. */
static void deal_judge(coord *c, int src) {
    judge_info *ji = &c->judges[src - c->ctx->comm.first[ROLE_JUDGE]];
    ji->waiting = 0;
    if (c->stop) {
        send_done(src);
        return;
    }
    if (ready_count(c) == 0) {
        if (generation_left(c))
            ji->waiting = 1;
        else
            send_done(src);
        return;
    }
    int64_t b = c->ready[c->ready_head++];
    int k = 0;
    for (int64_t r = b * c->batch; r < block_end(c, b); r++) k += c->state[r] == ROW_READY;
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, CMD_WORK);
    msg_put_i32(&w, k);
    for (int64_t r = b * c->batch; r < block_end(c, b); r++) {
        if (c->state[r] != ROW_READY) continue;
        c->state[r] = ROW_JUDGING;
        msg_put_i64(&w, r);
        msg_put_str(&w, c->rows[r].context);
        msg_put_str(&w, c->rows[r].a);
        msg_put_str(&w, c->rows[r].b);
    }
    if (c->t_first == 0) c->t_first = log_now();
    send_buf(&w, src);
}

/* A policy rank asks: give it a block to sample, park it (enough is ready), or end it. */
static void deal_policy(coord *c, int src) {
    int pi = src - c->ctx->comm.first[ROLE_POLICY];
    c->policy_waiting[pi] = 0;
    while (c->next_gen < c->nb && block_done(c, c->next_gen)) c->next_gen++;
    if (c->stop || c->next_gen >= c->nb) {
        send_done(src);
        return;
    }
    if (ready_count(c) + c->generating >= 2LL * c->n_judges + 1) {
        c->policy_waiting[pi] = 1;
        return;
    }
    int64_t b = c->next_gen++;
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, CMD_WORK);
    msg_put_i32(&w, (int)(block_end(c, b) - b * c->batch));
    /* every row of the block is sampled (the done ones too, and dropped on return): the batch
     * is the same as in a run that was never interrupted */
    for (int64_t r = b * c->batch; r < block_end(c, b); r++) {
        if (c->state[r] != ROW_DONE) c->state[r] = ROW_GEN;
        msg_put_i64(&w, r);
    }
    c->generating++;
    if (c->t_first == 0) c->t_first = log_now();
    send_buf(&w, src);
}

static void wake(coord *c) {
    for (int j = 0; j < c->n_judges; j++)
        if (c->judges[j].waiting && (ready_count(c) > 0 || c->stop || !generation_left(c)))
            deal_judge(c, c->ctx->comm.first[ROLE_JUDGE] + j);
    for (int p = 0; p < c->n_policy; p++)
        if (c->policy_waiting[p]) deal_policy(c, c->ctx->comm.first[ROLE_POLICY] + p);
}

static int on_judge_result(coord *c, int src, msg_reader *r, rl_err *e) {
    judge_info *ji = &c->judges[src - c->ctx->comm.first[ROLE_JUDGE]];
    int stop = msg_get_i32(r), n = msg_get_i32(r);
    if (stop) c->stop = 1;
    for (int q = 0; q < n && !r->bad; q++) {
        int64_t row = msg_get_i64(r);
        double pab = msg_get_f64(r), pba = msg_get_f64(r), p = msg_get_f64(r);
        char *ra = msg_get_str(r), *rb = msg_get_str(r);
        int principle = msg_get_i32(r), trunc = msg_get_i32(r);
        if (r->bad || row < 0 || row >= c->n || c->state[row] != ROW_JUDGING) {
            free(ra), free(rb);
            return err_set(e, ERR_MPI, "rank %d returned a label for row %lld it was not given",
                           src, (long long)row);
        }
        labels_row *lr = &c->rows[row];
        lr->p_ab = pab, lr->p_ba = pba, lr->p = p;
        free(lr->rationale_ab), free(lr->rationale_ba);
        lr->rationale_ab = ra, lr->rationale_ba = rb;
        lr->principle = principle;
        lr->truncated = (uint8_t)trunc;
        lr->done = 1;
        c->state[row] = ROW_DONE;
        c->pending[c->n_pending++] = row;
        c->n_done++;
    }
    ji->busy = msg_get_f64(r);
    ji->cpu = msg_get_f64(r);
    ji->pairs = msg_get_i64(r);
    ji->tok_computed = msg_get_i64(r);
    ji->tok_reused = msg_get_i64(r);
    if (r->bad) return err_set(e, ERR_MPI, "rank %d sent a malformed result", src);
    c->t_last = log_now();
    int64_t this_run = c->n_done - c->done_before;
    if (n > 0 && this_run > 0)
        run_metric(c->ctx, "label/pairs_per_s", this_run,
                   this_run / (c->t_last - c->t_first + 1e-9));
    if (!c->prog_started) {
        log_progress_begin(&c->prog, "label", "pairs", (long)c->n_todo);
        c->prog_started = 1;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "%lld/%lld labelled", (long long)c->n_done, (long long)c->n);
    log_progress_update(&c->prog, (long)this_run, extra);
    return ERR_OK;
}

static int on_policy_result(coord *c, int src, msg_reader *r, rl_err *e) {
    int stop = msg_get_i32(r);
    double cpu = msg_get_f64(r);
    int n = msg_get_i32(r);
    int pi = src - c->ctx->comm.first[ROLE_POLICY];
    if (pi >= 0 && pi < c->n_policy) c->policy_cpu[pi] = cpu;
    if (stop) c->stop = 1;
    int64_t block = -1;
    for (int q = 0; q < n && !r->bad; q++) {
        int64_t row = msg_get_i64(r), pid = msg_get_i64(r);
        char *ctxt = msg_get_str(r), *a = msg_get_str(r), *b = msg_get_str(r);
        if (r->bad || row < 0 || row >= c->n ||
            (c->state[row] != ROW_GEN && c->state[row] != ROW_DONE)) {
            free(ctxt), free(a), free(b);
            return err_set(e, ERR_MPI, "rank %d returned a pair for row %lld it was not given", src,
                           (long long)row);
        }
        block = row / c->batch;
        if (c->state[row] == ROW_DONE) { /* labelled by an earlier attempt */
            free(ctxt), free(a), free(b);
            continue;
        }
        labels_row *lr = &c->rows[row];
        labels_row_free(lr);
        lr->prompt_id = pid;
        lr->context = ctxt, lr->a = a, lr->b = b;
        c->state[row] = ROW_READY;
    }
    if (r->bad) return err_set(e, ERR_MPI, "rank %d sent a malformed result", src);
    if (block >= 0) {
        c->ready[c->ready_tail++] = block;
        c->generating--;
    }
    return ERR_OK;
}

static int coord_on_msg(run_ctx *ctx, void *user, int src, int tag, const void *buf, int len,
                        rl_err *e) {
    coord *c = user;
    (void)ctx;
    msg_reader r;
    msg_reader_init(&r, buf, (size_t)len);
    int from_judge = is_judge(c, src), rc = ERR_OK;
    if (tag == TAG_WORK_REQ) {
        if (msg_get_i32(&r)) c->stop = 1;
    } else if (tag == TAG_RESULT) {
        rc = from_judge ? on_judge_result(c, src, &r, e) : on_policy_result(c, src, &r, e);
    } else {
        return err_set(e, ERR_INTERNAL, "label: unexpected message tag %d from rank %d", tag, src);
    }
    if (rc) return rc;
    if (from_judge)
        deal_judge(c, src);
    else
        deal_policy(c, src);
    wake(c);
    if (c->n_pending && (log_now() - c->last_flush > ctx->cfg.run.metrics_flush_seconds ||
                         c->n_pending >= 4096 || c->n_done == c->n))
        rc = flush_rows(c, e);
    return rc;
}

/* ---- the pairs file */

typedef struct file_reader {
    labels_row *rows;
    int64_t n, cap, max;
    const char *path;
} file_reader;

static int on_file_line(void *user, const jsonl_obj *o, long line, rl_err *e) {
    file_reader *fr = user;
    if (fr->max > 0 && fr->n >= fr->max) return ERR_OK;
    static const char *const need[3] = {"context", "a", "b"};
    const char *v[3];
    for (int k = 0; k < 3; k++) {
        int is_str = 0;
        v[k] = jsonl_get(o, need[k], &is_str);
        if (!v[k] || !is_str)
            return err_set(e, ERR_INPUT, "%s:%ld: the pair needs a string \"%s\"", fr->path, line,
                           need[k]);
    }
    if (fr->n == fr->cap) {
        fr->cap = fr->cap ? 2 * fr->cap : 1024;
        fr->rows = xrealloc(fr->rows, sizeof *fr->rows * (size_t)fr->cap);
    }
    labels_row *r = &fr->rows[fr->n];
    memset(r, 0, sizeof *r);
    const char *id = jsonl_get(o, "id", NULL);
    r->prompt_id = id ? strtoll(id, NULL, 10) : fr->n;
    r->context = xstrdup(v[0]);
    r->a = xstrdup(v[1]);
    r->b = xstrdup(v[2]);
    fr->n++;
    return ERR_OK;
}

/* ---- evaluation against the gold rater (built-in task only) */

typedef struct label_eval {
    double n, agree, agree_noswap, ties;
} label_eval;

static void label_eval_gold_alignment(const coord *c, const task_config *tc, label_eval *out) {
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < c->n; i++) {
        const labels_row *r = &c->rows[i];
        if (!r->done) continue;
        task_doc d;
        if (task_doc_make(tc->seed, TASK_TRAIN, r->prompt_id, &d, NULL)) continue;
        double m = task_gold_margin(&d, r->a, r->b);
        if (m == 0) {
            out->ties++;
            continue;
        }
        int gold_a = m > 0;
        out->n++;
        out->agree += r->p == 0.5 ? 0.5 : ((r->p > 0.5) == gold_a);
        out->agree_noswap += r->p_ab == 0.5 ? 0.5 : ((r->p_ab > 0.5) == gold_a);
    }
}

static int coord_finish(coord *c, rl_err *e) {
    run_ctx *ctx = c->ctx;
    int rc = flush_rows(c, e);
    if (rc) return rc;
    if (c->prog_started) log_progress_end(&c->prog, NULL);
    if (ctx->stopping || c->stop) {
        log_info("label: stopped with %lld of %lld pairs labelled; --resume labels the rest",
                 (long long)c->n_done, (long long)c->n);
        return ERR_OK;
    }
    if (c->n_done != c->n)
        return err_set(e, ERR_INTERNAL, "label: the stage ended with %lld of %lld pairs labelled",
                       (long long)c->n_done, (long long)c->n);
    if ((rc = labels_journal_remove(c->journal, e))) return rc; /* the file holds every row */
    int64_t labelled = c->n_done - c->done_before;
    double wall = c->t_last > c->t_first ? c->t_last - c->t_first : 0;
    run_summary(ctx, "ai_labels_produced", (double)c->n_done);
    run_summary(ctx, "label_pairs_this_attempt", (double)labelled);
    if (labelled > 0 && wall > 0) run_summary(ctx, "label_pairs_per_s", labelled / wall);
    run_summary(ctx, "label_wall_seconds", wall);
    /* position bias, confidence */
    double same = 0, nsame = 0, conf = 0;
    int64_t hist[HIST_BINS] = {0};
    for (int64_t i = 0; i < c->n; i++) {
        const labels_row *r = &c->rows[i];
        double cf = fabs(r->p - 0.5) * 2; /* 0: undecided, 1: certain */
        conf += cf;
        int b = (int)(cf * HIST_BINS);
        hist[b >= HIST_BINS ? HIST_BINS - 1 : b]++;
        if (!isnan(r->p_ba)) {
            nsame++;
            same += (r->p_ab > 0.5) == (r->p_ba < 0.5);
        }
    }
    /* a likelihood label has no positions: the figure would only count identical responses */
    if (nsame > 0 && c->ctx->cfg.judge.mode != 2)
        run_summary(ctx, "same_position_rate", same / nsame);
    run_summary(ctx, "label_confidence_mean", c->n ? conf / (double)c->n : NAN);
    {
        char *cells[3 * HIST_BINS];
        for (int b = 0; b < HIST_BINS; b++) {
            char t[32];
            snprintf(t, sizeof t, "%.1f", (double)b / HIST_BINS);
            cells[3 * b] = xstrdup(t);
            snprintf(t, sizeof t, "%.1f", (double)(b + 1) / HIST_BINS);
            cells[3 * b + 1] = xstrdup(t);
            snprintf(t, sizeof t, "%lld", (long long)hist[b]);
            cells[3 * b + 2] = xstrdup(t);
            run_metric(ctx, "label/confidence_hist", b + 1, (double)hist[b]);
        }
        static const char *const cols[3] = {"confidence_from", "confidence_to", "pairs"};
        run_table(ctx, "label_confidence_hist", HIST_BINS, 3, cols, (const char *const *)cells);
        for (int k = 0; k < 3 * HIST_BINS; k++) free(cells[k]);
    }
    /* the judges: pairs, throughput, busy time */
    double bmin = INFINITY, bmax = 0, bsum = 0;
    int64_t tc_sum = 0, tr_sum = 0;
    for (int j = 0; j < c->n_judges; j++) {
        const judge_info *ji = &c->judges[j];
        char name[96];
        snprintf(name, sizeof name, "label_judge%d_pairs", j);
        run_summary(ctx, name, (double)ji->pairs);
        snprintf(name, sizeof name, "label_judge%d_pairs_per_s", j);
        run_summary(ctx, name, ji->busy > 0 ? ji->pairs / ji->busy : 0.0);
        snprintf(name, sizeof name, "label_judge%d_busy_seconds", j);
        run_summary(ctx, name, ji->busy);
        bmin = fmin(bmin, ji->busy);
        bmax = fmax(bmax, ji->busy);
        bsum += ji->busy;
        tc_sum += ji->tok_computed;
        tr_sum += ji->tok_reused;
    }
    double jcpu = 0, pcpu = 0;
    for (int j = 0; j < c->n_judges; j++) jcpu += c->judges[j].cpu;
    for (int p = 0; p < c->n_policy; p++) pcpu += c->policy_cpu[p];
    run_summary(ctx, "label_cpu_seconds_judges", jcpu);
    run_summary(ctx, "label_cpu_seconds_policy", pcpu);
    run_summary(ctx, "label_cpu_seconds_coordinator", log_cpu_seconds() - c->cpu0);
    if (c->n_judges) {
        run_summary(ctx, "label_judge_busy_min", bmin);
        run_summary(ctx, "label_judge_busy_avg", bsum / c->n_judges);
        run_summary(ctx, "label_judge_busy_max", bmax);
        if (tc_sum + tr_sum > 0)
            run_summary(ctx, "label_tokens_reused_share",
                        (double)tr_sum / (double)(tc_sum + tr_sum));
    }
    /* alignment with the gold rater: the built-in task's pairs only */
    if (c->source == CONFIG_LABEL_POLICY && ctx->cfg.task.name == 0) {
        task_config tc;
        task_lm_task_config(&ctx->cfg, &tc);
        label_eval le;
        label_eval_gold_alignment(c, &tc, &le);
        if (le.n > 0) {
            run_summary(ctx, "label_alignment_gold", le.agree / le.n);
            run_summary(ctx, "label_alignment_gold_noswap", le.agree_noswap / le.n);
        }
        run_summary(ctx, "label_gold_ties", le.ties);
        int64_t same_text = 0;
        for (int64_t i = 0; i < c->n; i++) same_text += !strcmp(c->rows[i].a, c->rows[i].b);
        run_summary(ctx, "label_identical_pairs", (double)same_text);
    }
    return ERR_OK;
}

static int fingerprint(const run_ctx *ctx, const char *judge_path, const char *src_path, char *out,
                       size_t cap) {
    snprintf(out, cap,
             "judge %08x source %08x judge-deck %08x label-deck %08x task-deck %08x seed %lld",
             file_crc(judge_path), file_crc(src_path), section_crc(ctx->deck_yaml, "judge"),
             section_crc(ctx->deck_yaml, "label"), section_crc(ctx->deck_yaml, "task"),
             (long long)ctx->cfg.run.seed);
    return ERR_OK;
}

static int label_coord(run_ctx *ctx, rl_err *e) {
    const config *cfg = &ctx->cfg;
    coord c;
    memset(&c, 0, sizeof c);
    c.ctx = ctx;
    c.cpu0 = log_cpu_seconds();
    c.source = cfg->label.source;
    c.batch = cfg->judge.batch_pairs;
    c.n_judges = ctx->comm.count[ROLE_JUDGE];
    c.n_policy = c.source == CONFIG_LABEL_POLICY ? ctx->comm.count[ROLE_POLICY] : 0;
    snprintf(c.path, sizeof c.path, "%s/labels.h5", ctx->out_dir);
    int rc = ERR_OK;
    file_reader fr = {0};
    char judge_path[4400], src_path[4400];
    stage_model_file(ctx, "judge.gguf", cfg->judge_model.gguf, judge_path, sizeof judge_path);
    if (c.source == CONFIG_LABEL_FILE) {
        snprintf(src_path, sizeof src_path, "%s", cfg->label.pairs_file);
        fr.path = cfg->label.pairs_file;
        fr.max = cfg->label.pairs;
        rc = jsonl_read_file(cfg->label.pairs_file, on_file_line, &fr, e);
        if (!rc && fr.n == 0)
            rc = err_set(e, ERR_INPUT, "%s: no pairs in the file", cfg->label.pairs_file);
        if (!rc && cfg->label.pairs > 0 && fr.n < cfg->label.pairs)
            log_warn("label: label.pairs is %lld but %s holds %lld pairs; labelling those",
                     (long long)cfg->label.pairs, cfg->label.pairs_file, (long long)fr.n);
        c.n = fr.n;
    } else {
        stage_model_file(ctx, "policy_sft.gguf", cfg->policy.gguf, src_path, sizeof src_path);
        c.n = cfg->label.pairs;
    }
    /* labels.h5: new, or the rows an earlier attempt finished */
    char note[1024];
    char *fp = c.fingerprint;
    fingerprint(ctx, judge_path, src_path, c.fingerprint, sizeof c.fingerprint);
    snprintf(c.journal, sizeof c.journal, "%s.journal", c.path);
    static const char *const modes[3] = {"preference", "score", "likelihood"};
    char lik_temp[64];
    snprintf(lik_temp, sizeof lik_temp, "%.17g", cfg->judge.likelihood.temperature);
    int lik = cfg->judge.mode == 2;
    const char *tn[11] = {"preamble",
                          "template",
                          "ending",
                          "label_1",
                          "label_2",
                          "source",
                          "judge_model",
                          "cot_ending",
                          "judge_mode",
                          "likelihood_template",
                          "likelihood_temperature"};
    const char *tv[11] = {cfg->judge.preamble_file[0] ? cfg->judge.preamble_file
                                                      : cfg->judge.preamble,
                          cfg->judge.template_text,
                          cfg->judge.ending,
                          cfg->judge.label_1,
                          cfg->judge.label_2,
                          c.source == CONFIG_LABEL_FILE ? cfg->label.pairs_file : "policy",
                          judge_path,
                          cfg->judge.cot.enabled ? cfg->judge.cot.ending : "",
                          modes[cfg->judge.mode >= 0 && cfg->judge.mode < 3 ? cfg->judge.mode : 0],
                          lik ? cfg->judge.likelihood.template_text : "",
                          lik ? lik_temp : ""};
    const char *in[4] = {"position_debias", "cot", "cot_samples", "likelihood_eos"};
    int64_t iv[4] = {cfg->judge.position_debias, cfg->judge.cot.enabled, cfg->judge.cot.samples,
                     lik ? cfg->judge.likelihood.eos : 0};
    labels_meta meta = {tn, tv, 11, in, iv, 4};
    if (!rc) {
        c.rows = xcalloc((size_t)(c.n > 0 ? c.n : 1), sizeof *c.rows);
        rc = labels_open(c.path, c.n, fp, &meta, c.rows, &c.n_done, note, sizeof note, e);
        if (!rc && note[0]) log_info("label: %s", note);
        /* rows that reached the journal but maybe not the file (a kill inside a write) */
        int64_t replayed = 0;
        if (!rc) rc = labels_journal_replay(c.journal, fp, c.rows, c.n, &replayed, e);
        if (!rc && replayed > 0) {
            int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)c.n), k = 0;
            for (int64_t i = 0; i < c.n; i++)
                if (c.rows[i].done) idx[k++] = i;
            rc = labels_write(c.path, c.rows, idx, (int)k, e);
            free(idx);
            c.n_done += replayed;
            log_info("label: %lld labelled pairs recovered from %s", (long long)replayed,
                     c.journal);
        }
    }
    if (!rc) {
        c.state = xcalloc((size_t)c.n + 1, 1);
        c.nb = (c.n + c.batch - 1) / c.batch;
        c.ready = xmalloc(sizeof(int64_t) * (size_t)(c.nb + 1));
        c.pending = xmalloc(sizeof(int64_t) * (size_t)(c.n + 1));
        c.judges = xcalloc((size_t)c.n_judges + 1, sizeof *c.judges);
        c.policy_waiting = xcalloc((size_t)c.n_policy + 1, sizeof(int));
        c.policy_cpu = xcalloc((size_t)c.n_policy + 1, sizeof(double));
        c.done_before = c.n_done;
        for (int64_t i = 0; i < c.n; i++) {
            if (c.rows[i].done) {
                c.state[i] = ROW_DONE;
                continue;
            }
            c.n_todo++;
            if (c.source == CONFIG_LABEL_FILE) {
                labels_row *fr_row = &fr.rows[i];
                c.rows[i].prompt_id = fr_row->prompt_id;
                c.rows[i].context = fr_row->context, fr_row->context = NULL;
                c.rows[i].a = fr_row->a, fr_row->a = NULL;
                c.rows[i].b = fr_row->b, fr_row->b = NULL;
                c.state[i] = ROW_READY;
            }
        }
        if (c.source == CONFIG_LABEL_FILE)
            for (int64_t b = 0; b < c.nb; b++)
                if (!block_done(&c, b)) c.ready[c.ready_tail++] = b;
        log_info("label: %lld pairs to label (%lld done earlier), %d judge rank%s%s, batches of %d",
                 (long long)c.n_todo, (long long)c.n_done, c.n_judges, c.n_judges == 1 ? "" : "s",
                 c.source == CONFIG_LABEL_POLICY ? ", pairs sampled by the policy ranks" : "",
                 c.batch);
        c.last_flush = log_now();
    }
    labels_rows_free(fr.rows, fr.n);
    if (rc) {
        /* the workers are waiting for work: release them before failing */
        for (int j = 0; j < c.n_judges; j++) send_done(ctx->comm.first[ROLE_JUDGE] + j);
        for (int p = 0; p < c.n_policy; p++) send_done(ctx->comm.first[ROLE_POLICY] + p);
        run_fail(ctx, e);
    }
    rc = run_coord_serve(ctx, STAGE_LABEL, c.n_judges + c.n_policy, NULL, 0, coord_on_msg, &c, e);
    if (!rc) rc = coord_finish(&c, e);
    labels_rows_free(c.rows, c.n);
    free(c.state), free(c.ready), free(c.pending), free(c.judges), free(c.policy_waiting);
    free(c.policy_cpu);
    return rc;
}

/* ------------------------------------------------------------------ workers */

/* Receives the next TAG_WORK message from rank 0 (malloc'd). */
static int recv_work(void **buf, int *len, rl_err *e) {
    if (comm_recv_alloc(buf, len, MPI_BYTE, 0, TAG_WORK, MPI_COMM_WORLD, NULL))
        return err_set(e, ERR_MPI, "label: lost contact with the coordinator");
    return ERR_OK;
}

static void send_req(run_ctx *ctx) {
    int32_t stop = run_stop_requested(ctx, MPI_COMM_SELF);
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, stop);
    comm_send(w.buf, (int)w.len, MPI_BYTE, 0, TAG_WORK_REQ, MPI_COMM_WORLD);
    msg_free(&w);
}

/* RLAIF_TEST_SLOW_JUDGE=K:MS makes judge rank K (within the role) sleep MS milliseconds per
 * batch: how the tests show that dealing on demand gives a slow judge less work. */
static long test_slowdown_us(const run_ctx *ctx) {
    const char *v = getenv("RLAIF_TEST_SLOW_JUDGE");
    int k = -1;
    long ms = 0;
    if (!v || sscanf(v, "%d:%ld", &k, &ms) != 2 || k != ctx->comm.role_rank || ms <= 0) return 0;
    return ms * 1000;
}

static int label_judge(run_ctx *ctx, rl_err *e) {
    const config *cfg = &ctx->cfg;
    long slow_us = test_slowdown_us(ctx);
    double cpu0 = log_cpu_seconds();
    char path[4400];
    stage_model_file(ctx, "judge.gguf", cfg->judge_model.gguf, path, sizeof path);
    model m;
    tokenizer *tok = NULL;
    judge_opts jo;
    judge *jd = NULL;
    memset(&jo, 0, sizeof jo);
    int rc = ERR_OK;
    if (!path[0])
        rc = err_set(e, ERR_INPUT,
                     "label: no judge model: run judge_sft first or give judge.model.gguf");
    if (!rc) rc = task_lm_load_model(path, cfg->judge_model.max_seq, &m, &tok, e);
    if (!rc) rc = judge_opts_from_config(cfg, &jo, e);
    if (!rc) rc = judge_create(&jd, &m, tok, &jo, cfg->judge.batch_pairs, e);
    if (rc) return rc;
    send_req(ctx);
    int64_t pairs = 0;
    double busy = 0;
    judge_pair *jp = xcalloc((size_t)cfg->judge.batch_pairs, sizeof *jp);
    judge_label *jl = xcalloc((size_t)cfg->judge.batch_pairs, sizeof *jl);
    char **txt = xcalloc((size_t)cfg->judge.batch_pairs * 3, sizeof *txt);
    for (;;) {
        void *buf = NULL;
        int len = 0;
        if ((rc = recv_work(&buf, &len, e))) break;
        msg_reader r;
        msg_reader_init(&r, buf, (size_t)len);
        int cmd = msg_get_i32(&r), n = msg_get_i32(&r);
        if (cmd == CMD_DONE) {
            free(buf);
            break;
        }
        if (n < 0 || n > cfg->judge.batch_pairs) r.bad = 1;
        for (int q = 0; q < n && !r.bad; q++) {
            jp[q].id = msg_get_i64(&r);
            txt[3 * q] = msg_get_str(&r);
            txt[3 * q + 1] = msg_get_str(&r);
            txt[3 * q + 2] = msg_get_str(&r);
            jp[q].context = txt[3 * q], jp[q].a = txt[3 * q + 1], jp[q].b = txt[3 * q + 2];
        }
        free(buf);
        if (r.bad) {
            rc = err_set(e, ERR_MPI, "label: malformed work from the coordinator");
            break;
        }
        double t0 = log_now();
        rc = judge_label_pairs(jd, jp, n, jl, e);
        if (slow_us) comm_sleep_us(slow_us);
        busy += log_now() - t0;
        if (rc) break;
        pairs += n;
        int32_t stop = run_stop_requested(ctx, MPI_COMM_SELF);
        const judge_stats *js = judge_get_stats(jd);
        msg_writer w;
        msg_init(&w);
        msg_put_i32(&w, stop);
        msg_put_i32(&w, n);
        for (int q = 0; q < n; q++) {
            msg_put_i64(&w, jp[q].id);
            msg_put_f64(&w, jl[q].p_ab);
            msg_put_f64(&w, jl[q].p_ba);
            msg_put_f64(&w, jl[q].p);
            msg_put_str(&w, jl[q].rationale_ab);
            msg_put_str(&w, jl[q].rationale_ba);
            msg_put_i32(&w, jl[q].principle);
            msg_put_i32(&w, jl[q].truncated);
            judge_label_free(&jl[q]);
            free(txt[3 * q]), free(txt[3 * q + 1]), free(txt[3 * q + 2]);
            txt[3 * q] = txt[3 * q + 1] = txt[3 * q + 2] = NULL;
        }
        msg_put_f64(&w, busy);
        msg_put_f64(&w, log_cpu_seconds() - cpu0);
        msg_put_i64(&w, pairs);
        msg_put_i64(&w, js->tokens_computed);
        msg_put_i64(&w, js->tokens_reused);
        comm_send(w.buf, (int)w.len, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
        msg_free(&w);
    }
    for (int k = 0; k < 3 * cfg->judge.batch_pairs; k++) free(txt[k]);
    free(txt), free(jp), free(jl);
    judge_free(jd);
    judge_opts_free(&jo);
    model_free(&m);
    tokenizer_free(tok);
    if (!rc) run_report_done(ctx);
    return rc;
}

/* Samples the pairs of `rows` (n of them): a and b for the prompt of each. */
static int sample_pairs(const run_ctx *ctx, const model *m, const tokenizer *tok, kvcache *kv,
                        const task_config *tc, const int64_t *rows, int n, task_doc *docs, char **a,
                        char **b, rl_err *e) {
    const config *cfg = &ctx->cfg;
    int rc = ERR_OK;
    char **prompts = xcalloc((size_t)2 * n + 1, sizeof *prompts);
    char **outs = xcalloc((size_t)2 * n + 1, sizeof *outs);
    rng *streams = xcalloc((size_t)2 * n + 1, sizeof *streams);
    for (int q = 0; q < n && !rc; q++) {
        rc = task_doc_make(tc->seed, TASK_TRAIN, rows[q] % tc->n_docs[TASK_TRAIN], &docs[q], e);
        prompts[2 * q] = xmalloc(TASK_PROMPT_MAX);
        if (!rc) rc = task_prompt(&docs[q], prompts[2 * q], TASK_PROMPT_MAX, e);
        prompts[2 * q + 1] = xstrdup(prompts[2 * q]);
        for (int s = 0; s < 2; s++)
            rng_init(&streams[2 * q + s], (uint64_t)cfg->run.seed, rng_purpose(RNG_SAMPLE, 0x1abe),
                     (uint32_t)(2 * rows[q] + s));
    }
    sample_params sp = {.temperature = (float)cfg->label.temperature,
                        .top_p = (float)cfg->label.top_p};
    if (!rc)
        rc = task_lm_generate(m, tok, kv, (const char *const *)prompts, 2 * n, &sp,
                              cfg->label.max_new_tokens, streams, outs, e);
    for (int q = 0; q < n && !rc; q++) {
        a[q] = task_lm_trim(outs[2 * q]);
        b[q] = task_lm_trim(outs[2 * q + 1]);
        /* two identical responses teach nothing: redraw b from its stream, a few times */
        for (int t = 0; t < 3 && !rc && !strcmp(a[q], b[q]); t++) {
            char *o = NULL;
            rc = task_lm_generate(m, tok, kv, (const char *const *)&prompts[2 * q + 1], 1, &sp,
                                  cfg->label.max_new_tokens, &streams[2 * q + 1], &o, e);
            if (!rc) {
                free(b[q]);
                b[q] = task_lm_trim(o);
            }
            free(o);
        }
    }
    for (int k = 0; k < 2 * n; k++) free(prompts[k]), free(outs[k]);
    free(prompts), free(outs), free(streams);
    return rc;
}

static int label_policy(run_ctx *ctx, rl_err *e) {
    const config *cfg = &ctx->cfg;
    double cpu0 = log_cpu_seconds();
    char path[4400];
    stage_model_file(ctx, "policy_sft.gguf", cfg->policy.gguf, path, sizeof path);
    model m;
    tokenizer *tok = NULL;
    kvcache kv;
    memset(&kv, 0, sizeof kv);
    int rc = ERR_OK;
    if (!path[0])
        rc = err_set(e, ERR_INPUT, "label: no policy model: run sft first or give policy.gguf");
    if (!rc) rc = task_lm_load_model(path, cfg->policy.max_seq, &m, &tok, e);
    int B = cfg->judge.batch_pairs;
    if (!rc) rc = kvcache_create(&kv, &m.cfg, 2 * B, m.cfg.max_seq, e);
    if (rc) return rc;
    task_config tc;
    task_lm_task_config(cfg, &tc);
    task_doc *docs = xcalloc((size_t)B, sizeof *docs);
    char **a = xcalloc((size_t)B, sizeof *a), **b = xcalloc((size_t)B, sizeof *b);
    int64_t *rows = xcalloc((size_t)B, sizeof *rows);
    send_req(ctx);
    for (;;) {
        void *buf = NULL;
        int len = 0;
        if ((rc = recv_work(&buf, &len, e))) break;
        msg_reader r;
        msg_reader_init(&r, buf, (size_t)len);
        int cmd = msg_get_i32(&r), n = msg_get_i32(&r);
        if (cmd == CMD_DONE) {
            free(buf);
            break;
        }
        if (n < 0 || n > B) r.bad = 1;
        for (int q = 0; q < n && !r.bad; q++) rows[q] = msg_get_i64(&r);
        free(buf);
        if (r.bad) {
            rc = err_set(e, ERR_MPI, "label: malformed work from the coordinator");
            break;
        }
        if ((rc = sample_pairs(ctx, &m, tok, &kv, &tc, rows, n, docs, a, b, e))) break;
        msg_writer w;
        msg_init(&w);
        msg_put_i32(&w, run_stop_requested(ctx, MPI_COMM_SELF));
        msg_put_f64(&w, log_cpu_seconds() - cpu0);
        msg_put_i32(&w, n);
        for (int q = 0; q < n; q++) {
            msg_put_i64(&w, rows[q]);
            msg_put_i64(&w, rows[q] % tc.n_docs[TASK_TRAIN]);
            msg_put_str(&w, task_context(&docs[q]));
            msg_put_str(&w, a[q]);
            msg_put_str(&w, b[q]);
            free(a[q]), free(b[q]);
            a[q] = b[q] = NULL;
        }
        comm_send(w.buf, (int)w.len, MPI_BYTE, 0, TAG_RESULT, MPI_COMM_WORLD);
        msg_free(&w);
    }
    free(docs), free(a), free(b), free(rows);
    kvcache_free(&kv);
    model_free(&m);
    tokenizer_free(tok);
    if (!rc) run_report_done(ctx);
    return rc;
}

int stage_label(run_ctx *ctx, int64_t from_step, rl_err *e) {
    (void)from_step; /* labels.h5 is the stage's state: its done rows are kept */
    switch (ctx->comm.role) {
    case ROLE_COORD:
        return label_coord(ctx, e);
    case ROLE_JUDGE:
        return label_judge(ctx, e);
    case ROLE_POLICY:
        return ctx->cfg.label.source == CONFIG_LABEL_POLICY ? label_policy(ctx, e) : ERR_OK;
    default:
        return ERR_OK;
    }
}
