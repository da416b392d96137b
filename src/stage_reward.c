/* stage_reward: the reward model learns the labels of labels.h5.
 *
 * The model is the policy's transformer with a scalar head, started from the SFT policy
 * (reward.init: sft), a GGUF file, a checkpoint component or random weights. Each labelled pair
 * becomes two sequences, [BOS] prompt, response, EOS (the prompt is the document and "\nTL;DR:"
 * for the built-in task, the context itself otherwise), scored at their last token. Pairs are
 * split by prompt into training and validation (reward.val_fraction). Training is data parallel
 * over the reward ranks (joined by idle policy and judge ranks when reward.train_ranks says so):
 * include/reward.h. Afterwards the scores of SFT responses (the labelled pairs' own responses)
 * are normalised to mean 0 and sd 1 and the normalisation is folded into the head; the model goes
 * to models/reward.gguf.
 *
 * Labels: reward.labels ai trains on the judge's soft labels p. reward.labels gold is the RLHF
 * baseline: the gold rater's preferences replace p (reward_eval_gold_labels, the documented
 * exception to "the reward path never sees gold"). Either way the validation reports agreement
 * with the judge's labels (rm_accuracy_judge) and with the gold rater (rm_accuracy_gold, an
 * evaluation figure computed by reward_eval_gold_refs).
 *
 * Checkpoint component "reward": parameters, Adam moments and step. The data order is a pure
 * function of (run.seed, step), so nothing else is needed.
 * Not here: the arithmetic (reward.c), the files (reward_io.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "log.h"
#include "reward.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"

/* ------------------------------------------------------------------ evaluation (gold) */

/* The task document behind a labelled pair: training document prompt_id (mod n_train), checked
 * against the pair's context. 0 when it is not that document (pairs from a file). */
static int reward_eval_doc(const task_config *tc, const reward_labels *l, long i, task_doc *d) {
    long n = tc->n_docs[TASK_TRAIN];
    if (l->prompt_id[i] < 0) return 0;
    if (task_doc_make(tc->seed, TASK_TRAIN, (long)(l->prompt_id[i] % n), d, NULL)) return 0;
    return strcmp(task_context(d), l->context[i]) == 0;
}

/* Gold agreement targets: 1 when the gold rater scores a higher, 2 when b, 0 for a tie in
 * points or a pair that is not from the task. Returns the pairs with a verdict. */
static long reward_eval_gold_refs(const config *cfg, const reward_labels *l, int8_t *ref) {
    task_config tc;
    task_lm_task_config(cfg, &tc);
    long n = 0;
    for (long i = 0; i < l->n; i++) {
        task_doc d;
        ref[i] = 0;
        if (cfg->task.name != 0 || !reward_eval_doc(&tc, l, i, &d)) continue;
        double m = task_gold_margin(&d, l->a[i], l->b[i]);
        ref[i] = m > 0 ? 1 : m < 0 ? 2 : 0;
        n += ref[i] != 0;
    }
    return n;
}

/* The RLHF baseline's labels: p = 1 when the gold rater prefers a (task_gold_prefer, which
 * breaks ties by length), else 0. Pairs without a task document keep the judge's p. */
static long reward_eval_gold_labels(const config *cfg, reward_labels *l) {
    task_config tc;
    task_lm_task_config(cfg, &tc);
    long n = 0;
    for (long i = 0; i < l->n; i++) {
        task_doc d;
        if (!reward_eval_doc(&tc, l, i, &d)) continue;
        l->p[i] = task_gold_prefer(&d, l->a[i], l->b[i]) == 1 ? 1.0 : 0.0;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ data */

/* The prompt text a response answers. */
static char *prompt_text(const config *cfg, const char *context) {
    size_t n = strlen(context);
    char *s = xmalloc(n + sizeof TASK_PROMPT_SUFFIX);
    memcpy(s, context, n);
    if (cfg->task.name == 0)
        memcpy(s + n, TASK_PROMPT_SUFFIX, sizeof TASK_PROMPT_SUFFIX);
    else
        s[n] = '\0';
    return s;
}

/* [BOS] prompt, " " response (trimmed), EOS: what the policy produced when it sampled it. */
int reward_encode_pair_seq(const tokenizer *tok, const int *ptok, int np, const char *response,
                           int32_t **out, int *len, rl_err *e);
int reward_encode_pair_seq(const tokenizer *tok, const int *ptok, int np, const char *response,
                           int32_t **out, int *len, rl_err *e) {
    char *t = task_lm_trim(response);
    size_t n = strlen(t);
    char *r = xmalloc(n + 2);
    r[0] = ' ';
    memcpy(r + 1, t, n + 1);
    free(t);
    int *ids = NULL, ni = 0;
    int rc = n ? task_lm_encode(tok, r, 0, &ids, &ni, e) : ERR_OK;
    free(r);
    if (rc) return rc;
    int eos = tokenizer_eos(tok);
    int32_t *s = xmalloc(sizeof(int32_t) * (size_t)(np + ni + 1));
    for (int k = 0; k < np; k++) s[k] = ptok[k];
    for (int k = 0; k < ni; k++) s[np + k] = ids[k];
    int L = np + ni;
    if (eos >= 0) s[L++] = eos;
    free(ids);
    *out = s;
    *len = L;
    return ERR_OK;
}

/* Tokenises the labelled pairs into d (pairs that do not fit max_seq are dropped and counted). */
static int build_data(const config *cfg, const tokenizer *tok, const reward_labels *l, int max_seq,
                      reward_data *d, long *row, long *dropped, rl_err *e) {
    reward_data_alloc(d, (int)l->n);
    d->n = 0;
    *dropped = 0;
    int rc = ERR_OK;
    const char *last_ctx = NULL;
    int *ptok = NULL, np = 0;
    for (long i = 0; i < l->n && !rc; i++) {
        if (!last_ctx || strcmp(last_ctx, l->context[i]) != 0) {
            free(ptok);
            char *pt = prompt_text(cfg, l->context[i]);
            rc = reward_prompt_tokens(tok, pt, &ptok, &np, e);
            free(pt);
            if (rc) break;
            last_ctx = l->context[i];
        }
        int k = d->n;
        if ((rc = reward_encode_pair_seq(tok, ptok, np, l->a[i], &d->a[k], &d->len_a[k], e)) ||
            (rc = reward_encode_pair_seq(tok, ptok, np, l->b[i], &d->b[k], &d->len_b[k], e)))
            break;
        if (d->len_a[k] > max_seq || d->len_b[k] > max_seq) {
            free(d->a[k]), free(d->b[k]);
            d->a[k] = d->b[k] = NULL;
            (*dropped)++;
            continue;
        }
        d->p[k] = l->p[i];
        d->prompt_id[k] = l->prompt_id[i];
        row[k] = i;
        d->n++;
    }
    free(ptok);
    return rc;
}

/* ------------------------------------------------------------------ the model */

/* reward/params of a checkpoint component named by its path, RUN/ckpt/step_N/NAME.h5. */
static int load_component(const char *path, model *m, rl_err *e) {
    char dir[4400], comp[256];
    long long step = -1;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) goto bad;
    *slash = '\0';
    snprintf(comp, sizeof comp, "%s", slash + 1);
    comp[strlen(comp) - 3] = '\0'; /* ".h5" */
    char *st = strrchr(dir, '/');
    if (!st || sscanf(st + 1, "step_%lld", &step) != 1) goto bad;
    *st = '\0';
    char *ck = strrchr(dir, '/');
    if (!ck || strcmp(ck + 1, "ckpt") != 0) goto bad;
    *ck = '\0';
    ckpt_file *f = NULL;
    int rc = ckpt_file_open(dir, step, comp, &f, e);
    if (!rc) rc = ckpt_read_f32(f, "reward/params", m->params, m->n_params, e);
    if (f) ckpt_file_close(f);
    return rc;
bad:
    return err_set(e, ERR_INPUT,
                   "reward.init '%s': a checkpoint component is named RUN_DIR/ckpt/step_N/NAME.h5",
                   path);
}

/* The reward model's start (reward.init) and the tokenizer that goes with it. */
static int load_init(run_ctx *ctx, MPI_Comm comm, model *m, tokenizer **tok, rl_err *e) {
    const config *cfg = &ctx->cfg;
    const char *init = cfg->reward.init;
    char path[4400] = "";
    int rc = ERR_OK;
    memset(m, 0, sizeof *m);
    *tok = NULL;
    if (!strcmp(init, "sft")) {
        stage_model_path(ctx, "policy_sft.gguf", path, sizeof path);
        if (access(path, F_OK) != 0) {
            if (!cfg->policy.gguf[0])
                return err_set(e, ERR_STATE,
                               "reward.init is sft but %s does not exist and policy.gguf is "
                               "empty: run the sft stage first, or name a model",
                               path);
            snprintf(path, sizeof path, "%s", cfg->policy.gguf);
        }
    } else if (strlen(init) > 5 && !strcmp(init + strlen(init) - 5, ".gguf")) {
        snprintf(path, sizeof path, "%s", init);
    }
    int has_head = 0;
    if (path[0]) {
        /* a plain language model (the SFT policy) or a file with a head (an earlier reward model)
         */
        rc = reward_model_load(path, cfg->policy.max_seq, m, tok, NULL, &has_head, e);
        if (rc) return rc;
    } else {
        /* random, or a checkpoint component: the deck's policy dimensions */
        if ((rc = stage_task_tokenizer(ctx, comm, tok, e))) return rc;
        model_config mc;
        task_lm_model_config(&cfg->policy, tokenizer_n_vocab(*tok), &mc);
        mc.scalar_head = 1;
        if ((rc = model_create(m, &mc, e))) return rc;
        model_init_weights(m, (uint64_t)cfg->run.seed ^ 0x52e3u);
        has_head = 1;
        if (strcmp(init, "random") != 0) rc = load_component(init, m, e);
    }
    if (!rc && !has_head) {
        /* a fresh head: N(0, 1/(C+1)) weights, zero bias (model_init_weights' rule) */
        model tmp;
        if (!(rc = model_create(&tmp, &m->cfg, e))) {
            model_init_weights(&tmp, (uint64_t)cfg->run.seed ^ 0x52e3u);
            memcpy(m->p.score_w, tmp.p.score_w, sizeof(float) * (size_t)m->cfg.dim);
            m->p.score_b[0] = 0.0f;
            model_free(&tmp);
        }
    }
    if (rc) {
        model_free(m);
        if (*tok) tokenizer_free(*tok), *tok = NULL;
    }
    return rc;
}

/* ------------------------------------------------------------------ the stage */

static int save_ckpt(run_ctx *ctx, const reward_trainer *t, long step, rl_err *e) {
    ckpt_file *f = NULL;
    int64_t id = RUN_CKPT_ID(STAGE_REWARD, step);
    int rc = ckpt_file_begin(ctx->out_dir, id, "reward", &f, e);
    if (rc) return rc;
    if ((rc = ckpt_write_f32(f, "reward/params", t->m->params, t->m->n_params, e)) ||
        (rc = ckpt_write_f32(f, "reward/adam_m", t->opt.m, t->opt.n, e)) ||
        (rc = ckpt_write_f32(f, "reward/adam_v", t->opt.v, t->opt.n, e)) ||
        (rc = ckpt_write_i64_scalar(f, "reward/adam_step", t->opt.step, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    if ((rc = ckpt_file_commit(f, e))) return rc;
    run_report_ckpt(ctx, id, "reward");
    return ERR_OK;
}

static int load_ckpt(run_ctx *ctx, reward_trainer *t, long step, rl_err *e) {
    ckpt_file *f = NULL;
    int rc = ckpt_file_open(ctx->out_dir, RUN_CKPT_ID(STAGE_REWARD, step), "reward", &f, e);
    if (rc) return rc;
    int64_t s = 0;
    if (!(rc = ckpt_read_f32(f, "reward/params", t->m->params, t->m->n_params, e)) &&
        !(rc = ckpt_read_f32(f, "reward/adam_m", t->opt.m, t->opt.n, e)) &&
        !(rc = ckpt_read_f32(f, "reward/adam_v", t->opt.v, t->opt.n, e)) &&
        !(rc = ckpt_read_i64_scalar(f, "reward/adam_step", &s, e))) {
        t->opt.step = (long)s;
        if (s != step)
            rc = err_set(e, ERR_STATE, "reward: the checkpoint of step %ld holds step %lld", step,
                         (long long)s);
    }
    ckpt_file_close(f);
    return rc;
}

static void report_val(run_ctx *ctx, long step, const reward_val_stats *v) {
    run_metric(ctx, "reward/val_loss", step, v->loss);
    run_metric(ctx, "reward/val_accuracy_labels", step, v->acc_label);
    if (v->n_ref[0] > 0) run_metric(ctx, "reward/val_accuracy_judge", step, v->acc_ref[0]);
    if (v->n_ref[1] > 0) run_metric(ctx, "reward/val_accuracy_gold", step, v->acc_ref[1]);
    run_metric(ctx, "reward/reward_mean", step, v->mean);
    run_metric(ctx, "reward/reward_std", step, v->std);
}

static int reward_work(run_ctx *ctx, const stage_group *g, int64_t from_step, rl_err *e) {
    const config *cfg = &ctx->cfg;
    int lead = g->rank == 0, rc;
    double t_start = log_now();
    tokenizer *tok = NULL;
    model m;
    memset(&m, 0, sizeof m);
    reward_labels l;
    memset(&l, 0, sizeof l);
    reward_data d;
    memset(&d, 0, sizeof d);
    reward_trainer t;
    memset(&t, 0, sizeof t);
    reward_scorer sc;
    memset(&sc, 0, sizeof sc);
    int8_t *refs[2] = {NULL, NULL};

    rc = load_init(ctx, g->comm, &m, &tok, e);
    char lpath[4400];
    if (cfg->reward.labels_file[0])
        snprintf(lpath, sizeof lpath, "%s", cfg->reward.labels_file);
    else
        snprintf(lpath, sizeof lpath, "%s/labels.h5", ctx->out_dir);
    if (!rc) rc = reward_labels_read(lpath, &l, e);
    if (!rc && l.n < 2)
        rc = err_set(e, ERR_INPUT, "%s: %ld labelled pairs; the reward model needs more", lpath,
                     l.n);
    if (!rc && cfg->reward.max_pairs > 0 && l.n > cfg->reward.max_pairs)
        l.n = cfg->reward.max_pairs;
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    /* reference verdicts for the figures: the judge's argmax, the gold rater's (evaluation) */
    int8_t *ref_l = xcalloc((size_t)l.n, 1), *ref_g = xcalloc((size_t)l.n, 1);
    for (long i = 0; i < l.n; i++) ref_l[i] = l.p[i] > 0.5 ? 1 : l.p[i] < 0.5 ? 2 : 0;
    long n_gold = reward_eval_gold_refs(cfg, &l, ref_g);
    if (cfg->reward.labels == REWARD_LABELS_GOLD) {
        long ng = reward_eval_gold_labels(cfg, &l);
        if (lead)
            log_info("reward: training on gold labels (the RLHF baseline) for %ld of %ld pairs", ng,
                     l.n);
    }
    long dropped = 0, *row = xcalloc((size_t)l.n, sizeof *row);
    rc = build_data(cfg, tok, &l, m.cfg.max_seq, &d, row, &dropped, e);
    refs[0] = xcalloc((size_t)l.n, 1);
    refs[1] = xcalloc((size_t)l.n, 1);
    for (int k = 0; k < d.n; k++) refs[0][k] = ref_l[row[k]], refs[1][k] = ref_g[row[k]];
    free(ref_l), free(ref_g), free(row);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (dropped && lead)
        log_warn("reward: %ld pairs do not fit max_seq %d and are left out", dropped,
                 m.cfg.max_seq);
    int n_val = reward_data_split(&d, cfg->reward.val_fraction, (uint64_t)cfg->run.seed);
    int n_train = d.n - n_val;
    reward_train_cfg tc = {.loss = cfg->reward.loss,
                           .margin = cfg->reward.margin,
                           .batch = cfg->reward.optim.batch,
                           .seed = (uint64_t)cfg->run.seed};
    long steps = cfg->reward.optim.steps;
    if (steps <= 0) steps = ((long)cfg->reward.epochs * n_train + tc.batch - 1) / tc.batch;
    tc.steps = steps;
    optim_config_default(&tc.optim);
    tc.optim.lr = (float)cfg->reward.optim.lr;
    tc.optim.min_lr_frac = (float)cfg->reward.optim.min_lr_ratio;
    tc.optim.warmup_steps = cfg->reward.optim.warmup;
    tc.optim.weight_decay = (float)cfg->reward.optim.weight_decay;
    tc.optim.grad_clip = (float)cfg->reward.optim.grad_clip;
    rc = reward_trainer_init(&t, &m, &d, &tc, g->comm, e);
    if (!rc && from_step > 0) rc = load_ckpt(ctx, &t, from_step, e);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        log_info(
            "reward: %d pairs (%d training, %d validation, %ld with a gold verdict), %ld steps "
            "of %d pairs on %d rank%s",
            d.n, n_train, n_val, n_gold, steps, tc.batch, g->size, g->size == 1 ? "" : "s");
        run_summary(ctx, "rm_pairs_train", n_train);
        run_summary(ctx, "rm_pairs_val", n_val);
    }

    int every = cfg->run.checkpoint_every, chunk = cfg->reward.score_batch;
    reward_val_stats vs;
    double t0 = log_now();
    long pairs_done = 0;
    for (long step = from_step + 1; step <= steps; step++) {
        reward_step_stats st;
        if ((rc = reward_trainer_step(&t, g->comm, &st, e))) {
            err_prefix(e, "stage reward, step %ld", step);
            break;
        }
        pairs_done += tc.batch;
        if (lead) {
            run_metric(ctx, "reward/loss", step, st.loss);
            run_metric(ctx, "reward/accuracy", step, st.accuracy);
            run_metric(ctx, "reward/grad_norm", step, st.grad_norm);
            run_metric(ctx, "reward/lr", step, st.lr);
            run_metric(ctx, "reward/margin", step, st.margin);
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.3f, %.0f pairs/s", st.loss,
                     pairs_done / (log_now() - t0 + 1e-9));
            run_progress(ctx, step, steps, extra);
        }
        if (step % cfg->reward.eval_every == 0 && step < steps) {
            if ((rc = reward_validate(&m, &sc, &d, (const int8_t *const *)refs, chunk, g->comm, &vs,
                                      e)))
                break;
            if (lead) report_val(ctx, step, &vs);
        }
        int stop = run_stop_requested(ctx, g->comm);
        if ((every > 0 && step % every == 0) || step == steps || stop)
            if (lead && (rc = save_ckpt(ctx, &t, step, e))) break;
        if (stop) {
            if (lead) run_report_done(ctx);
            goto done;
        }
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    double train_s = log_now() - t0;

    /* final validation, normalisation, the model file */
    rc = reward_validate(&m, &sc, &d, (const int8_t *const *)refs, chunk, g->comm, &vs, e);
    double mean = 0, sd = 1;
    if (!rc)
        rc =
            reward_norm_stats(&m, &sc, &d, cfg->reward.norm_samples, chunk, g->comm, &mean, &sd, e);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead && sd < 0.05)
        log_warn("reward: the scores of SFT responses hardly vary (sd %.3g): the normalisation "
                 "multiplies them by %.3g; the reward model has learned little",
                 sd, sd > 1e-8 ? 1.0 / sd : 1.0);
    reward_fold_norm(&m, mean, sd);
    if (lead) {
        report_val(ctx, steps, &vs);
        run_summary(ctx, "rm_accuracy_judge", vs.acc_ref[0]);
        if (vs.n_ref[1] > 0) run_summary(ctx, "rm_accuracy_gold", vs.acc_ref[1]);
        run_summary(ctx, "rm_accuracy_labels", vs.acc_label);
        run_summary(ctx, "rm_val_loss", vs.loss);
        run_summary(ctx, "rm_norm_raw_mean", mean);
        run_summary(ctx, "rm_norm_raw_std", sd);
        run_summary(ctx, "rm_train_seconds", train_s);
        run_summary(ctx, "rm_pairs_per_s", steps > from_step ? (double)pairs_done / train_s : 0);
        log_info(
            "reward: validation accuracy %.3f against the judge, %.3f against gold (%d pairs); "
            "raw scores mean %.3f sd %.3f folded into the head",
            vs.acc_ref[0], vs.acc_ref[1], (int)vs.n, mean, sd);
        reward_norm nm = {.folded = 1,
                          .gain = sd > 1e-8 ? 1.0 / sd : 1.0,
                          .bias = sd > 1e-8 ? -mean / sd : -mean,
                          .raw_mean = mean,
                          .raw_std = sd,
                          .samples = cfg->reward.norm_samples < 2 * d.n ? cfg->reward.norm_samples
                                                                        : 2 * d.n};
        char path[4400];
        stage_model_path(ctx, "reward.gguf", path, sizeof path);
        rc = reward_model_save(path, "rlaif reward model", &m, tok, &nm, e);
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        run_summary(ctx, "rm_stage_seconds", log_now() - t_start);
        run_report_done(ctx);
    }
done:
    reward_scorer_free(&sc);
    reward_trainer_free(&t);
    reward_data_free(&d);
    reward_labels_free(&l);
    free(refs[0]), free(refs[1]);
    model_free(&m);
    if (tok) tokenizer_free(tok);
    return rc;
}

int stage_reward(run_ctx *ctx, int64_t from_step, rl_err *e) {
    static const comm_role order[3] = {ROLE_REWARD, ROLE_POLICY, ROLE_JUDGE};
    stage_group g;
    int rc = stage_group_create(ctx, order, ctx->cfg.reward.train_ranks, &g, e);
    if (rc) return rc;
    if (ctx->comm.role == ROLE_COORD) {
        static const char *const comps[1] = {"reward"};
        stage_group_free(&g);
        return run_coord_serve(ctx, STAGE_REWARD, 1, comps, 1, NULL, NULL, e);
    }
    if (g.member) rc = reward_work(ctx, &g, from_step, e);
    stage_group_free(&g);
    return rc;
}
