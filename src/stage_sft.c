/* stage_sft: supervised fine-tuning of the policy on the built-in task.
 *
 * The tokenizer is learned first (models/tokenizer.gguf) unless an earlier attempt left it.
 * The policy (the deck's policy.* dimensions, trained from scratch, or policy.gguf fine-tuned)
 * learns to write the summary after "TL;DR:" from the task's SFT mixture: example g of the run
 * is training document g mod n_train with its draw g / n_train (a fresh kind and wording every
 * epoch), so the data of any step is a pure function of the step and nothing but the model and
 * optimiser needs checkpointing. The loss covers the summary and EOS, not the prompt.
 *
 * Ranks: the policy ranks train data-parallel, joined by other worker ranks when
 * sft.train_ranks says so (they are idle in this stage). The group's rank 0 reports, checkpoints
 * the component "policy" and writes models/policy_sft.gguf.
 *
 * Evaluation (sft_eval_*, the only code here that calls the gold rater): the trained policy
 * summarises sft.eval_docs test documents; the mean gold score is sft_gold_score_mean.
 * Not here: the trainer (trainer.c), the data (task.c, task_lm.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "log.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"
#include "trainer.h"

#define VAL_SEQS 64 /* validation sequences for sft/val_loss */

/* Fills the trainer with this rank's share of step `step`'s batch (examples of the train split,
 * or of the validation split when val). */
static int sft_fill_batch(trainer *t, const tokenizer *tok, const task_config *tc, long step,
                          int batch, int rank, int size, int val, float prompt_w, rl_err *e) {
    trainer_batch_clear(t);
    int per = batch / size;
    long n_docs = tc->n_docs[val ? TASK_VAL : TASK_TRAIN];
    for (int i = 0; i < per; i++) {
        long g = (step - 1) * (long)batch + (long)rank * per + i;
        task_example ex;
        int rc = task_sft_example(tc, val ? TASK_VAL : TASK_TRAIN, g % n_docs,
                                  (int)((g / n_docs) % 16384), &ex, e);
        if (rc) return rc;
        int *ids = NULL, n = 0, np = 0;
        if ((rc = task_lm_sft_sequence(tok, &ex, &ids, &n, &np, e))) return rc;
        if (n > t->Tmax) n = t->Tmax; /* rare: the summary's tail is cut */
        float *w = xmalloc(sizeof(float) * (size_t)n);
        for (int k = 0; k < n; k++) w[k] = k >= np ? 1.0f : prompt_w;
        rc = trainer_batch_add(t, ids, n, w, e);
        free(ids);
        free(w);
        if (rc) return rc;
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------ evaluation (gold) */

/* The policy summarises test documents (this rank takes every size-th one of the first n);
 * sums the gold scores over the group. Fills up to n_show sample rows (document, reference,
 * summary, score) on the group's rank 0. */
static int sft_eval_gold_score(run_ctx *ctx, const stage_group *g, const model *m,
                               const tokenizer *tok, const task_config *tc, double temperature,
                               double *mean, char **show, int n_show, rl_err *e) {
    int n = ctx->cfg.sft_opts.eval_docs;
    if (n > tc->n_docs[TASK_TEST]) n = (int)tc->n_docs[TASK_TEST];
    int mine = 0;
    for (int i = g->rank; i < n; i += g->size) mine++;
    kvcache kv;
    int slots = 32, rc = kvcache_create(&kv, &m->cfg, slots, m->cfg.max_seq, e);
    if (rc) return rc;
    char **prompts = xcalloc((size_t)(mine + 1), sizeof *prompts);
    char **outs = xcalloc((size_t)(mine + 1), sizeof *outs);
    task_doc *docs = xcalloc((size_t)(mine + 1), sizeof *docs);
    rng *streams = xcalloc((size_t)(mine + 1), sizeof *streams);
    for (int k = 0, i = g->rank; i < n && !rc; i += g->size, k++) {
        rc = task_doc_make(tc->seed, TASK_TEST, i, &docs[k], e);
        prompts[k] = xmalloc(TASK_PROMPT_MAX);
        if (!rc) rc = task_prompt(&docs[k], prompts[k], TASK_PROMPT_MAX, e);
        rng_init(&streams[k], (uint64_t)ctx->cfg.run.seed, rng_purpose(RNG_SAMPLE, 0x5f7),
                 (uint32_t)i);
    }
    sample_params sp = {.temperature = (float)temperature};
    if (!rc)
        rc = task_lm_generate(m, tok, &kv, (const char *const *)prompts, mine, &sp,
                              ctx->cfg.sft_opts.max_new_tokens, streams, outs, e);
    double sums[2] = {0, 0};
    for (int k = 0; k < mine && !rc; k++) {
        sums[0] += task_gold_score(&docs[k], outs[k]);
        sums[1] += 1;
    }
    if (!rc && g->rank == 0)
        for (int k = 0; k < mine && k < n_show; k++) {
            char ref[TASK_SUMMARY_MAX], sc[32];
            task_reference(&docs[k], ref, sizeof ref, NULL);
            char *trimmed = task_lm_trim(outs[k]);
            snprintf(sc, sizeof sc, "%+.3f", task_gold_score(&docs[k], outs[k]));
            show[4 * k] = xstrdup(docs[k].text);
            show[4 * k + 1] = xstrdup(ref);
            show[4 * k + 2] = trimmed;
            show[4 * k + 3] = xstrdup(sc);
        }
    rc = stage_agree(g->comm, rc, e);
    if (!rc && comm_allreduce_sum_f64(sums, 2, g->comm)) rc = err_set(e, ERR_MPI, "allreduce");
    *mean = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    for (int k = 0; k < mine; k++) free(prompts[k]), free(outs[k]);
    free(prompts), free(outs), free(docs), free(streams);
    kvcache_free(&kv);
    return rc;
}

/* The gold mean of the SFT targets themselves (the mixture the policy imitates), on the same
 * test documents: what an SFT policy that learned its data perfectly would score. */
static double sft_eval_targets_gold(const task_config *tc, const config *cfg) {
    int n = cfg->sft_opts.eval_docs;
    if (n > tc->n_docs[TASK_TEST]) n = (int)tc->n_docs[TASK_TEST];
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        task_example ex;
        task_doc d;
        if (task_sft_example(tc, TASK_TEST, i, 0, &ex, NULL) ||
            task_doc_make(tc->seed, TASK_TEST, i, &d, NULL))
            continue;
        s += task_gold_score(&d, ex.target);
        k++;
    }
    return k ? s / k : NAN;
}

/* ------------------------------------------------------------------ the stage */

/* tokens: the lead's (padded, real) token counts so far, so that a resumed run reports the
 * padding share of the whole stage */
static int save_ckpt(run_ctx *ctx, const trainer *t, long step, const int64_t tokens[2],
                     rl_err *e) {
    ckpt_file *f = NULL;
    int64_t id = RUN_CKPT_ID(STAGE_SFT, step);
    int rc = ckpt_file_begin(ctx->out_dir, id, "policy", &f, e);
    if (rc) return rc;
    if ((rc = trainer_save(t, f, "policy", e)) ||
        (rc = ckpt_write_i64(f, "policy/tokens_seen", tokens, 2, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    if ((rc = ckpt_file_commit(f, e))) return rc;
    run_report_ckpt(ctx, id, "policy");
    return ERR_OK;
}

static int sft_work(run_ctx *ctx, const stage_group *g, int64_t from_step, rl_err *e) {
    const config *cfg = &ctx->cfg;
    double cpu0 = log_cpu_seconds(), t_train = 0;
    int lead = g->rank == 0, rc;
    task_config tc;
    task_lm_task_config(cfg, &tc);
    tokenizer *tok = NULL;
    model m;
    memset(&m, 0, sizeof m);
    trainer t;
    memset(&t, 0, sizeof t);
    int64_t seen[2] = {0, 0}; /* padded and real tokens of the lead's batches, steps 1.. */
    if ((rc = stage_task_tokenizer(ctx, g->comm, &tok, e))) return rc;
    if (cfg->policy.gguf[0]) {
        tokenizer_free(tok);
        tok = NULL;
        rc = task_lm_load_model(cfg->policy.gguf, cfg->policy.max_seq, &m, &tok, e);
    } else {
        model_config mc;
        task_lm_model_config(&cfg->policy, tokenizer_n_vocab(tok), &mc);
        rc = model_create(&m, &mc, e);
        if (!rc) model_init_weights(&m, (uint64_t)cfg->run.seed ^ 0x5f7u);
    }
    optim_config oc;
    trainer_optim_config(&cfg->sft, &oc);
    if (!rc)
        rc = trainer_init(&t, &m, &oc, cfg->sft.batch / g->size, m.cfg.max_seq, g->comm, "sft", e);
    if (!rc && from_step > 0) {
        ckpt_file *f = NULL;
        rc = ckpt_file_open(ctx->out_dir, RUN_CKPT_ID(STAGE_SFT, from_step), "policy", &f, e);
        if (!rc) rc = trainer_load(&t, f, "policy", e);
        if (!rc && ckpt_has(f, "policy/tokens_seen"))
            rc = ckpt_read_i64(f, "policy/tokens_seen", seen, 2, e);
        if (f) ckpt_file_close(f);
        if (!rc && t.opt.step != from_step)
            rc = err_set(e, ERR_STATE, "sft: the checkpoint of step %lld holds step %ld",
                         (long long)from_step, t.opt.step);
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        run_summary(ctx, "policy_params", (double)m.n_params);
        run_summary(ctx, "tokenizer_vocab", (double)tokenizer_n_vocab(tok));
    }

    int steps = cfg->sft.steps, every = cfg->run.checkpoint_every;
    float pw = (float)cfg->sft_opts.prompt_loss;
    double t0 = log_now(), t_data = 0;
    long tokens = (long)seen[0], real_tokens = (long)seen[1];
    const long tokens0 = tokens; /* the rate counts this attempt's tokens */
    for (long step = from_step + 1; step <= steps; step++) {
        trainer_stats st;
        /* a rank whose data fails must not leave the others in a collective: agree first */
        double td = log_now();
        rc = sft_fill_batch(&t, tok, &tc, step, cfg->sft.batch, g->rank, g->size, 0, pw, e);
        t_data += log_now() - td;
        if ((rc = stage_agree(g->comm, rc, e))) break;
        tokens += (long)t.B * t.T;
        real_tokens += t.n_real;
        if ((rc = trainer_step(&t, step, &st, e))) break;
        if (lead) {
            run_metric(ctx, "sft/loss", step, st.loss);
            run_metric(ctx, "sft/lr", step, st.lr);
            run_metric(ctx, "sft/grad_norm", step, st.grad_norm);
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.3f, %.0f tok/s", st.loss,
                     (tokens - tokens0) * g->size / (log_now() - t0 + 1e-9));
            run_progress(ctx, step, steps, extra);
        }
        if (step % 50 == 0 || step == steps) {
            /* held-out loss on a fixed validation batch */
            trainer_stats vs;
            int vb = VAL_SEQS - VAL_SEQS % g->size;
            if (vb > t.Bmax * g->size) vb = t.Bmax * g->size;
            rc = sft_fill_batch(&t, tok, &tc, 1, vb, g->rank, g->size, 1, 0.0f, e);
            if ((rc = stage_agree(g->comm, rc, e)) || (rc = trainer_eval(&t, &vs, e))) break;
            if (lead) run_metric(ctx, "sft/val_loss", step, vs.loss);
        }
        int stop = run_stop_requested(ctx, g->comm);
        if ((every > 0 && step % every == 0) || step == steps || stop) {
            seen[0] = tokens, seen[1] = real_tokens;
            if (lead && (rc = save_ckpt(ctx, &t, step, seen, e))) break;
        }
        if (stop) {
            if (lead) run_report_done(ctx);
            goto done;
        }
    }
    t_train = log_now() - t0;
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        char path[4400];
        stage_model_path(ctx, "policy_sft.gguf", path, sizeof path);
        rc = task_lm_save_model(path, "rlaif policy (sft)", &m, tok, e);
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    /* evaluation against the gold rater */
    if (cfg->sft_opts.eval_docs > 0) {
        enum { SHOW = 8 };
        char *show[4 * SHOW] = {0};
        double mean = NAN, te = log_now();
        double temp = cfg->sft_opts.eval_temperature, greedy = NAN;
        rc = sft_eval_gold_score(ctx, g, &m, tok, &tc, temp, &mean, show, SHOW, e);
        if (!rc && temp > 0)
            rc = sft_eval_gold_score(ctx, g, &m, tok, &tc, 0.0, &greedy, NULL, 0, e);
        if (!rc && lead) {
            run_summary(ctx, "sft_gold_score_mean", mean);
            if (temp > 0) run_summary(ctx, "sft_gold_score_greedy", greedy);
            run_summary(ctx, "sft_targets_gold_score_mean", sft_eval_targets_gold(&tc, cfg));
            run_summary(ctx, "sft_eval_seconds", log_now() - te);
            int rows = 0;
            while (rows < SHOW && show[4 * rows]) rows++;
            static const char *const cols[4] = {"document", "reference", "sft_summary",
                                                "gold_score"};
            run_table(ctx, "sft_samples", rows, 4, cols, (const char *const *)show);
        }
        for (int k = 0; k < 4 * SHOW; k++) free(show[k]);
        if (rc) goto done;
    }
    {
        /* CPU seconds of the group in this stage (the budget of the built-in task) */
        double cpu[1] = {log_cpu_seconds() - cpu0};
        if (comm_allreduce_sum_f64(cpu, 1, g->comm) == ERR_OK && lead) {
            run_summary(ctx, "sft_cpu_seconds", cpu[0]);
            run_summary(ctx, "sft_train_seconds", t_train);
            run_summary(ctx, "sft_data_seconds", t_data);
            run_summary(ctx, "sft_padding_share", tokens ? 1.0 - (double)real_tokens / tokens : 0);
        }
    }
    if (lead) run_report_done(ctx);
done:
    trainer_free(&t);
    model_free(&m);
    tokenizer_free(tok);
    return rc;
}

int stage_sft(run_ctx *ctx, int64_t from_step, rl_err *e) {
    static const comm_role order[3] = {ROLE_POLICY, ROLE_JUDGE, ROLE_REWARD};
    stage_group g;
    int rc = stage_group_create(ctx, order, ctx->cfg.sft_opts.train_ranks, &g, e);
    if (rc) return rc;
    if (ctx->comm.role == ROLE_COORD) {
        static const char *const comps[1] = {"policy"};
        stage_group_free(&g);
        return run_coord_serve(ctx, STAGE_SFT, 1, comps, 1, NULL, NULL, e);
    }
    if (g.member) rc = sft_work(ctx, &g, from_step, e);
    stage_group_free(&g);
    return rc;
}
