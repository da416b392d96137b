/* stage_judge_sft: the feedback model (the paper's optional step 1), trained here for the
 * built-in task: a separate model, larger than the policy, in two phases.
 *
 *   pretrain  language modelling on the task's corpus: training documents followed by their
 *             reference summaries ("<doc>\nTL;DR: <reference>"), the domain text a general LLM
 *             would know. Steps 1 .. P of the stage.
 *   finetune  the gold-labelled comparisons (task.judge_pairs of them, at most a tenth of the
 *             AI labels the label stage produces), each in both orders, written exactly as the
 *             label stage prompts the judge (judge.h: preamble, exemplars, the sample, the
 *             ending "Preferred Summary=") followed by the preferred position's label token; the
 *             loss is on that token only, so the label stage's reading of the next-token
 *             probabilities of "1" and "2" is what was trained. Steps P+1 .. P+F. A share
 *             (judge_sft.policy_pairs) of the comparisons are two samples of the SFT policy,
 *             the pairs the label stage will show the judge.
 *
 * Every step's data is a pure function of the step (comparison order: a permutation per epoch
 * keyed by the epoch), so the checkpoint (component "judge") holds only the model, the
 * optimiser of the current phase and the step.
 *
 * Ranks: the judge ranks, joined by other worker ranks when judge_sft.train_ranks says so.
 *
 * Evaluation (judge_sft_eval_*, the only code here besides the comparisons' labels that calls
 * the gold rater): judge_sft.eval_pairs held-out comparisons on test documents, judged by the
 * judge module exactly as the label stage will (both orders): judge_alignment_gold,
 * judge_alignment_gold_noswap, same_position_rate; gold_labels_used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "judge.h"
#include "log.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"
#include "trainer.h"

/* ------------------------------------------------------------------ data */

/* Pretraining sequence g: training document g mod n_train and its reference. */
static int pretrain_sequence(const tokenizer *tok, const task_config *tc, long g, int **ids, int *n,
                             rl_err *e) {
    task_doc d;
    int rc = task_doc_make(tc->seed, TASK_TRAIN, g % tc->n_docs[TASK_TRAIN], &d, e);
    if (rc) return rc;
    task_example ex;
    memset(&ex, 0, sizeof ex);
    if ((rc = task_prompt(&d, ex.prompt, sizeof ex.prompt, e))) return rc;
    ex.target[0] = ' ';
    if ((rc = task_reference(&d, ex.target + 1, sizeof ex.target - 1, e))) return rc;
    int np;
    return task_lm_sft_sequence(tok, &ex, ids, n, &np, e);
}

/* The comparisons, built once: judge_pairs of them, each a pair of summaries of a training
 * document with its gold label (the only gold input of the feedback model). The first
 * n - n_policy are drawn from the SFT mixture (task_gold_pair); the last n_policy
 * (judge_sft.policy_pairs of them) are two samples of the SFT policy for training document
 * i mod n_train, drawn as the label stage draws its candidates, so that the judge learns the
 * distribution it will label. */
typedef struct comparison {
    char *context;
    task_pair p;
} comparison;

/* Comparisons [first, n) from the SFT policy (every training rank draws all of them, in the same
 * batches, from streams keyed by the comparison: the same on any rank count). A pair of
 * identical samples or a gold tie teaches nothing: b is redrawn from its stream, a few times;
 * *redraws counts them. */
static int policy_comparisons(const run_ctx *ctx, const task_config *tc, comparison *c, long first,
                              long n, long *redraws, rl_err *e) {
    const config *cfg = &ctx->cfg;
    char path[4400];
    stage_model_file(ctx, "policy_sft.gguf", cfg->policy.gguf, path, sizeof path);
    if (!path[0])
        return err_set(e, ERR_INPUT,
                       "judge_sft: judge_sft.policy_pairs needs the SFT policy: run sft first or "
                       "give policy.gguf");
    model m;
    tokenizer *tok = NULL;
    kvcache kv;
    memset(&kv, 0, sizeof kv);
    int rc = task_lm_load_model(path, cfg->policy.max_seq, &m, &tok, e);
    enum { B = 32 };
    if (rc) return rc;
    if ((rc = kvcache_create(&kv, &m.cfg, 2 * B, m.cfg.max_seq, e))) {
        model_free(&m);
        tokenizer_free(tok);
        return rc;
    }
    sample_params sp = {.temperature = (float)cfg->label.temperature,
                        .top_p = (float)cfg->label.top_p};
    char *prompts[2 * B], *outs[2 * B];
    rng streams[2 * B];
    task_doc docs[B];
    for (long i0 = first; i0 < n && !rc; i0 += B) {
        int k = (int)(n - i0 < B ? n - i0 : B);
        for (int q = 0; q < k && !rc; q++) {
            rc =
                task_doc_make(tc->seed, TASK_TRAIN, (i0 + q) % tc->n_docs[TASK_TRAIN], &docs[q], e);
            prompts[2 * q] = xmalloc(TASK_PROMPT_MAX);
            prompts[2 * q + 1] = NULL;
            if (!rc) rc = task_prompt(&docs[q], prompts[2 * q], TASK_PROMPT_MAX, e);
            prompts[2 * q + 1] = xstrdup(prompts[2 * q]);
            for (int s = 0; s < 2; s++)
                rng_init(&streams[2 * q + s], (uint64_t)cfg->run.seed,
                         rng_purpose(RNG_SAMPLE, 0x75f1), (uint32_t)(2 * (i0 + q) + s));
            outs[2 * q] = outs[2 * q + 1] = NULL;
        }
        if (!rc)
            rc = task_lm_generate(&m, tok, &kv, (const char *const *)prompts, 2 * k, &sp,
                                  cfg->label.max_new_tokens, streams, outs, e);
        for (int q = 0; q < k && !rc; q++) {
            char *a = task_lm_trim(outs[2 * q]), *b = task_lm_trim(outs[2 * q + 1]);
            for (int t = 0;
                 t < 4 && !rc && (!strcmp(a, b) || task_gold_margin(&docs[q], a, b) == 0.0); t++) {
                char *o = NULL;
                rc = task_lm_generate(&m, tok, &kv, (const char *const *)&prompts[2 * q + 1], 1,
                                      &sp, cfg->label.max_new_tokens, &streams[2 * q + 1], &o, e);
                if (!rc) free(b), b = task_lm_trim(o), (*redraws)++;
                free(o);
            }
            comparison *ci = &c[i0 + q];
            memset(&ci->p, 0, sizeof ci->p);
            ci->p.doc_index = (i0 + q) % tc->n_docs[TASK_TRAIN];
            ci->p.kind_a = ci->p.kind_b = -1;
            snprintf(ci->p.a, sizeof ci->p.a, "%s", a);
            snprintf(ci->p.b, sizeof ci->p.b, "%s", b);
            ci->p.gold = task_gold_prefer(&docs[q], ci->p.a, ci->p.b);
            ci->p.margin = task_gold_margin(&docs[q], ci->p.a, ci->p.b);
            ci->context = xstrdup(task_context(&docs[q]));
            free(a), free(b);
        }
        for (int q = 0; q < 2 * k; q++) free(prompts[q]), free(outs[q]);
    }
    kvcache_free(&kv);
    model_free(&m);
    tokenizer_free(tok);
    return rc;
}

static int make_comparisons(const run_ctx *ctx, const task_config *tc, comparison **out,
                            long *redraws, rl_err *e) {
    long n = tc->n_judge_pairs;
    long n_policy = (long)llround(ctx->cfg.judge_sft.policy_pairs * (double)n);
    comparison *c = xcalloc((size_t)(n + 1), sizeof *c);
    int rc = ERR_OK;
    for (long i = 0; i < n - n_policy && !rc; i++) {
        rc = task_gold_pair(tc, i, &c[i].p, e);
        task_doc d;
        if (!rc) rc = task_doc_make(tc->seed, TASK_TRAIN, c[i].p.doc_index, &d, e);
        if (!rc) c[i].context = xstrdup(task_context(&d));
    }
    if (!rc && n_policy > 0) rc = policy_comparisons(ctx, tc, c, n - n_policy, n, redraws, e);
    if (rc) {
        for (long k = 0; k < n; k++) free(c[k].context);
        free(c);
        return rc;
    }
    *out = c;
    return ERR_OK;
}

/* Example k of finetuning epoch `epoch`: comparison perm[k / 2], order k % 2. */
static void epoch_perm(uint64_t seed, long epoch, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    rng r;
    rng_init(&r, seed, rng_purpose(RNG_DATA, 0x75f), (uint32_t)epoch);
    rng_shuffle_int(&r, perm, n);
}

/* ------------------------------------------------------------------ evaluation (gold) */

typedef struct judge_eval {
    double n, agree, agree_noswap, same_pos, mean_conf;
} judge_eval;

/* Held-out comparisons on test documents, judged as the label stage will judge. This rank
 * takes every size-th of the first n. */
static int judge_sft_eval_alignment(const stage_group *g, judge *jd, const task_config *tc, int n,
                                    int batch, judge_eval *res, rl_err *e) {
    double s[5] = {0, 0, 0, 0, 0};
    judge_pair *pairs = xcalloc((size_t)batch, sizeof *pairs);
    judge_label *labels = xcalloc((size_t)batch, sizeof *labels);
    task_pair *tp = xcalloc((size_t)batch, sizeof *tp);
    char **ctx = xcalloc((size_t)batch, sizeof *ctx);
    int rc = ERR_OK, k = 0;
    for (int i = g->rank; (i < n || k > 0) && !rc; i += g->size) {
        if (i < n) {
            task_doc d;
            rc = task_lm_eval_pair(tc, i, &d, &tp[k], e);
            if (rc) break;
            ctx[k] = xstrdup(task_context(&d));
            pairs[k] =
                (judge_pair){.id = 1000000000LL + i, .context = ctx[k], .a = tp[k].a, .b = tp[k].b};
            k++;
        }
        if (k == batch || (i + g->size >= n && k > 0)) {
            rc = judge_label_pairs(jd, pairs, k, labels, e);
            for (int q = 0; q < k && !rc; q++) {
                const judge_label *l = &labels[q];
                int gold_a = tp[q].gold == 1;
                double agree = l->p == 0.5 ? 0.5 : ((l->p > 0.5) == gold_a);
                double agree1 = l->p_ab == 0.5 ? 0.5 : ((l->p_ab > 0.5) == gold_a);
                s[0] += 1;
                s[1] += agree;
                s[2] += agree1;
                s[3] += isnan(l->p_ba) ? 0 : judge_same_position(l);
                s[4] += fabs(l->p - 0.5) * 2;
            }
            for (int q = 0; q < k; q++) judge_label_free(&labels[q]), free(ctx[q]), ctx[q] = NULL;
            k = 0;
            if (i >= n) break;
        }
    }
    free(pairs), free(labels), free(tp), free(ctx);
    rc = stage_agree(g->comm, rc, e);
    if (!rc && comm_allreduce_sum_f64(s, 5, g->comm)) rc = err_set(e, ERR_MPI, "allreduce");
    res->n = s[0];
    res->agree = s[0] ? s[1] / s[0] : NAN;
    res->agree_noswap = s[0] ? s[2] / s[0] : NAN;
    res->same_pos = s[0] ? s[3] / s[0] : NAN;
    res->mean_conf = s[0] ? s[4] / s[0] : NAN;
    return rc;
}

/* ------------------------------------------------------------------ the stage */

static int save_ckpt(run_ctx *ctx, const trainer *t, long step, int phase, rl_err *e) {
    ckpt_file *f = NULL;
    int64_t id = RUN_CKPT_ID(STAGE_JUDGE_SFT, step);
    int rc = ckpt_file_begin(ctx->out_dir, id, "judge", &f, e);
    if (rc) return rc;
    if ((rc = trainer_save(t, f, "judge", e)) ||
        (rc = ckpt_write_i64_scalar(f, "judge/phase", phase, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    if ((rc = ckpt_file_commit(f, e))) return rc;
    run_report_ckpt(ctx, id, "judge");
    return ERR_OK;
}

typedef struct jsft {
    run_ctx *ctx;
    const stage_group *g;
    const tokenizer *tok;
    const judge_prompt *jp;
    task_config tc;
    comparison *cmp;
    int *perm;
    long perm_epoch;
    float prompt_w;
} jsft;

/* This rank's share of step `s` of a phase (s counts from 1 within the phase). */
static int fill(jsft *J, trainer *t, int phase, long s, int batch, rl_err *e) {
    const stage_group *g = J->g;
    trainer_batch_clear(t);
    int per = batch / g->size, rc = ERR_OK;
    for (int i = 0; i < per && !rc; i++) {
        long k = (s - 1) * (long)batch + (long)g->rank * per + i;
        int *ids = NULL, n = 0;
        if (phase == 0) {
            rc = pretrain_sequence(J->tok, &J->tc, k, &ids, &n, e);
            if (!rc) rc = trainer_batch_add(t, ids, n < t->Tmax ? n : t->Tmax, NULL, e);
            free(ids);
            continue;
        }
        long n_ex = 2 * J->tc.n_judge_pairs;
        long epoch = k / n_ex;
        if (epoch != J->perm_epoch) {
            epoch_perm((uint64_t)J->ctx->cfg.run.seed, epoch, J->perm, (int)J->tc.n_judge_pairs);
            J->perm_epoch = epoch;
        }
        long q = k % n_ex;
        const comparison *c = &J->cmp[J->perm[q / 2]];
        int swap = (int)(q % 2);
        judge_pair jp = {.id = c - J->cmp, .context = c->context, .a = c->p.a, .b = c->p.b};
        int tr = 0;
        rc = judge_prompt_pair_tokens(J->jp, &jp, swap, 0, 1, &ids, &n, &tr, e);
        if (rc) break;
        /* the preferred position: gold 1 (a) is position 1 unless swapped */
        int pos = (c->p.gold == 1) != swap ? 1 : 2;
        ids = xrealloc(ids, sizeof(int) * (size_t)(n + 1));
        ids[n] = judge_prompt_label_token(J->jp, pos);
        float *w = xcalloc((size_t)(n + 1), sizeof *w);
        for (int x = 1; x < n; x++) w[x] = J->prompt_w;
        w[n] = 1.0f;
        rc = trainer_batch_add(t, ids, n + 1, w, e);
        free(w);
        free(ids);
    }
    return rc;
}

static int jsft_work(run_ctx *ctx, const stage_group *g, int64_t from_step, rl_err *e) {
    const config *cfg = &ctx->cfg;
    double cpu0 = log_cpu_seconds(), t_train = 0;
    int lead = g->rank == 0, rc;
    jsft J;
    memset(&J, 0, sizeof J);
    J.ctx = ctx;
    J.g = g;
    J.perm_epoch = -1;
    J.prompt_w = (float)cfg->judge_sft.prompt_loss;
    task_lm_task_config(cfg, &J.tc);
    tokenizer *tok = NULL;
    model m;
    memset(&m, 0, sizeof m);
    trainer t;
    memset(&t, 0, sizeof t);
    judge_opts jo;
    memset(&jo, 0, sizeof jo);
    judge_prompt *jp = NULL;
    judge *jd = NULL;

    if (cfg->judge_model.gguf[0]) {
        rc = task_lm_load_model(cfg->judge_model.gguf, cfg->judge_model.max_seq, &m, &tok, e);
    } else {
        rc = stage_task_tokenizer(ctx, g->comm, &tok, e);
        if (!rc) {
            model_config mc;
            task_lm_model_config(&cfg->judge_model, tokenizer_n_vocab(tok), &mc);
            rc = model_create(&m, &mc, e);
            if (!rc) model_init_weights(&m, (uint64_t)cfg->run.seed ^ 0x1d6eu);
        }
    }
    if (!rc) rc = judge_opts_from_config(cfg, &jo, e);
    if (!rc) rc = judge_prompt_create(&jp, &jo, tok, m.cfg.max_seq, e);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    J.tok = tok;
    J.jp = jp;
    if (lead) run_summary(ctx, "judge_params", (double)m.n_params);

    int P = cfg->judge_sft.pretrain.steps, F = cfg->judge_sft.finetune.steps;
    long redraws = 0;
    int every = cfg->run.checkpoint_every;
    if (F > 0 && J.tc.n_judge_pairs > 0) {
        rc = make_comparisons(ctx, &J.tc, &J.cmp, &redraws, e);
        J.perm = xmalloc(sizeof(int) * (size_t)(J.tc.n_judge_pairs + 1));
    }
    if (!rc && from_step > 0) {
        /* the model as the checkpoint has it (a phase that is over is not redone) */
        ckpt_file *f = NULL;
        rc = ckpt_file_open(ctx->out_dir, RUN_CKPT_ID(STAGE_JUDGE_SFT, from_step), "judge", &f, e);
        if (!rc) rc = ckpt_read_f32(f, "judge/params", m.params, m.n_params, e);
        if (f) ckpt_file_close(f);
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    for (int phase = 0; phase < 2; phase++) {
        const config_optim *co = phase == 0 ? &cfg->judge_sft.pretrain : &cfg->judge_sft.finetune;
        long first = phase == 0 ? 0 : P, steps = phase == 0 ? P : F;
        if (phase == 1 && !J.cmp) steps = 0;
        if (from_step >= first + steps) continue; /* done before the resume point */
        optim_config oc;
        trainer_optim_config(co, &oc);
        trainer_free(&t);
        rc = trainer_init(&t, &m, &oc, co->batch / g->size, m.cfg.max_seq, g->comm,
                          phase == 0 ? "judge_sft (pretrain)" : "judge_sft (finetune)", e);
        if (!rc && from_step > first) {
            ckpt_file *f = NULL;
            rc = ckpt_file_open(ctx->out_dir, RUN_CKPT_ID(STAGE_JUDGE_SFT, from_step), "judge", &f,
                                e);
            if (!rc) rc = trainer_load(&t, f, "judge", e);
            if (f) ckpt_file_close(f);
            if (!rc && t.opt.step != from_step - first)
                rc = err_set(e, ERR_STATE, "judge_sft: the checkpoint of step %lld holds step %ld",
                             (long long)from_step, t.opt.step);
        }
        rc = stage_agree(g->comm, rc, e);
        if (rc) goto done;
        const char *name = phase == 0 ? "judge_sft/pretrain_loss" : "judge_sft/finetune_loss";
        double t0 = log_now();
        for (long s = (from_step > first ? from_step - first : 0) + 1; s <= steps; s++) {
            long step = first + s;
            trainer_stats st;
            rc = fill(&J, &t, phase, s, co->batch, e);
            if ((rc = stage_agree(g->comm, rc, e)) || (rc = trainer_step(&t, step, &st, e))) break;
            if (lead) {
                run_metric(ctx, name, step, st.loss);
                run_metric(ctx, "judge_sft/lr", step, st.lr);
                char extra[96];
                snprintf(extra, sizeof extra, "%s loss %.3f, %.2f steps/s",
                         phase == 0 ? "pretrain" : "finetune", st.loss,
                         (double)(s - (from_step > first ? from_step - first : 0)) /
                             (log_now() - t0 + 1e-9));
                run_progress(ctx, step, P + F, extra);
            }
            int stop = run_stop_requested(ctx, g->comm);
            if ((every > 0 && step % every == 0) || s == steps || stop)
                if (lead && (rc = save_ckpt(ctx, &t, step, phase, e))) break;
            if (stop) {
                if (lead) run_report_done(ctx);
                goto done;
            }
        }
        t_train += log_now() - t0;
        rc = stage_agree(g->comm, rc, e);
        if (rc) goto done;
    }
    if (lead) {
        char path[4400];
        stage_model_path(ctx, "judge.gguf", path, sizeof path);
        rc = task_lm_save_model(path, "rlaif judge (judge_sft)", &m, tok, e);
        run_summary(ctx, "gold_labels_used", J.cmp ? (double)J.tc.n_judge_pairs : 0.0);
        if (J.cmp && cfg->judge_sft.policy_pairs > 0) {
            run_summary(ctx, "judge_sft_policy_pairs",
                        (double)llround(cfg->judge_sft.policy_pairs * (double)J.tc.n_judge_pairs));
            /* each redraw also asked the gold rater (a tie or an identical pair is discarded) */
            run_summary(ctx, "judge_sft_policy_redraws", (double)redraws);
        }
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    if (cfg->judge_sft.eval_pairs > 0 && cfg->judge.mode != JUDGE_SCORE) {
        double te = log_now();
        judge_eval res = {0, 0, 0, 0, 0};
        rc = judge_create(&jd, &m, tok, &jo, cfg->judge.batch_pairs, e);
        if (!rc)
            rc = judge_sft_eval_alignment(g, jd, &J.tc, cfg->judge_sft.eval_pairs,
                                          cfg->judge.batch_pairs, &res, e);
        rc = stage_agree(g->comm, rc, e);
        if (rc) goto done;
        if (lead) {
            run_summary(ctx, "judge_alignment_gold", res.agree);
            run_summary(ctx, "judge_alignment_gold_noswap", res.agree_noswap);
            if (jo.position_debias && jo.mode == JUDGE_PREFERENCE)
                run_summary(ctx, "same_position_rate", res.same_pos);
            run_summary(ctx, "judge_eval_pairs", res.n);
            run_summary(ctx, "judge_eval_confidence", res.mean_conf);
            run_summary(ctx, "judge_eval_seconds", log_now() - te);
        }
    }
    {
        /* CPU seconds of the group in this stage (the budget of the built-in task) */
        double cpu[1] = {log_cpu_seconds() - cpu0};
        if (comm_allreduce_sum_f64(cpu, 1, g->comm) == ERR_OK && lead) {
            run_summary(ctx, "judge_sft_cpu_seconds", cpu[0]);
            run_summary(ctx, "judge_sft_train_seconds", t_train);
        }
    }
    if (lead) run_report_done(ctx);
done:
    if (J.cmp)
        for (long i = 0; i < J.tc.n_judge_pairs; i++) free(J.cmp[i].context);
    free(J.cmp);
    free(J.perm);
    judge_free(jd);
    judge_prompt_free(jp);
    judge_opts_free(&jo);
    trainer_free(&t);
    model_free(&m);
    if (tok) tokenizer_free(tok);
    return rc;
}

int stage_judge_sft(run_ctx *ctx, int64_t from_step, rl_err *e) {
    static const comm_role order[3] = {ROLE_JUDGE, ROLE_POLICY, ROLE_REWARD};
    stage_group g;
    int rc = stage_group_create(ctx, order, ctx->cfg.judge_sft.train_ranks, &g, e);
    if (rc) return rc;
    if (ctx->comm.role == ROLE_COORD) {
        static const char *const comps[1] = {"judge"};
        stage_group_free(&g);
        return run_coord_serve(ctx, STAGE_JUDGE_SFT, 1, comps, 1, NULL, NULL, e);
    }
    if (g.member) rc = jsft_work(ctx, &g, from_step, e);
    stage_group_free(&g);
    return rc;
}
