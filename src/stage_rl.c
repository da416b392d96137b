/* stage_rl: the policy learns from the reward model (or, for d-RLAIF, from the judge).
 *
 * Ranks. The policy ranks (joined by the judge ranks when rl.train_ranks says so and the judge
 * is not needed for rewards) sample and train data-parallel: include/rl.h. The scorers serve
 * point to point: the reward ranks with models/reward.gguf (rl.reward: model), or the judge
 * ranks with the judge in score mode (rl.reward: judge). Policy member i sends its rollouts to
 * scorer i mod S and gets the scores back while it computes reference log-probs and values.
 * Rank 0 serves reports and commits checkpoints; the rest wait.
 *
 * Models. Policy: models/policy_sft.gguf of this run, else policy.gguf. Reference: a frozen copy
 * of it. Value: models/reward.gguf (head included), else the SFT policy with a fresh head. At
 * the end models/policy_rl.gguf and models/value_rl.gguf.
 *
 * Prompts: the training documents of the built-in task, or the contexts of labels.h5 when the
 * task is none. Checkpoint components "policy" and "value" (include/rl.h says what they hold);
 * every other piece of state is a pure function of (run.seed, iteration).
 * Not here: the algorithm (rl.c, ppo.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "gguf.h"
#include "judge.h"
#include "log.h"
#include "reward.h"
#include "rl.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"

/* ------------------------------------------------------------------ models and prompts */

/* The SFT policy this run (or the deck) starts RL from. */
static int policy_path(const run_ctx *ctx, char *path, size_t cap, rl_err *e) {
    stage_model_path(ctx, "policy_sft.gguf", path, cap);
    if (access(path, F_OK) == 0) return ERR_OK;
    if (ctx->cfg.policy.gguf[0]) {
        snprintf(path, cap, "%s", ctx->cfg.policy.gguf);
        return ERR_OK;
    }
    return err_set(e, ERR_STATE,
                   "stage rl: %s does not exist and policy.gguf is empty: run the sft stage "
                   "first, or name the policy in policy.gguf",
                   path);
}

/* Token prompts: [BOS] document "\nTL;DR:" for each training document, or the distinct contexts
 * of labels.h5 when the task is none. */
static int load_prompts(run_ctx *ctx, const tokenizer *tok, rl_prompts *P, rl_err *e) {
    const config *cfg = &ctx->cfg;
    memset(P, 0, sizeof *P);
    int rc = ERR_OK;
    if (cfg->task.name == 0) {
        task_config tc;
        task_lm_task_config(cfg, &tc);
        int n = (int)tc.n_docs[TASK_TRAIN];
        P->tok = xcalloc((size_t)n, sizeof *P->tok);
        P->len = xcalloc((size_t)n, sizeof *P->len);
        char buf[TASK_PROMPT_MAX];
        for (int i = 0; i < n && !rc; i++) {
            task_doc d;
            int *ids = NULL, ni = 0;
            if (!(rc = task_doc_make(tc.seed, TASK_TRAIN, i, &d, e)) &&
                !(rc = task_prompt(&d, buf, sizeof buf, e)) &&
                !(rc = reward_prompt_tokens(tok, buf, &ids, &ni, e))) {
                P->tok[i] = (int32_t *)ids;
                P->len[i] = ni;
                P->n = i + 1;
            }
        }
        return rc;
    }
    char lpath[4400];
    if (cfg->reward.labels_file[0])
        snprintf(lpath, sizeof lpath, "%s", cfg->reward.labels_file);
    else
        snprintf(lpath, sizeof lpath, "%s/labels.h5", ctx->out_dir);
    reward_labels l;
    if ((rc = reward_labels_read(lpath, &l, e))) return err_prefix(e, "rl prompts");
    P->tok = xcalloc((size_t)l.n + 1, sizeof *P->tok);
    P->len = xcalloc((size_t)l.n + 1, sizeof *P->len);
    for (long i = 0; i < l.n && !rc; i++) {
        if (i > 0 && !strcmp(l.context[i], l.context[i - 1])) continue;
        int *ids = NULL, ni = 0;
        if (!(rc = reward_prompt_tokens(tok, l.context[i], &ids, &ni, e))) {
            P->tok[P->n] = (int32_t *)ids;
            P->len[P->n++] = ni;
        }
    }
    reward_labels_free(&l);
    return rc;
}

static void free_prompts(rl_prompts *P) {
    for (int i = 0; i < P->n; i++) free(P->tok[i]);
    free(P->tok), free(P->len);
    memset(P, 0, sizeof *P);
}

/* 0 when two tokenizers have the same vocabulary, token by token. */
static int same_vocab(const tokenizer *a, const tokenizer *b) {
    if (tokenizer_n_vocab(a) != tokenizer_n_vocab(b)) return 0;
    for (int i = 0; i < tokenizer_n_vocab(a); i++) {
        size_t la, lb;
        const char *ta = tokenizer_token_text(a, i, &la), *tb = tokenizer_token_text(b, i, &lb);
        if (la != lb || memcmp(ta, tb, la) != 0) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ scorers (reward/judge ranks)
 */

typedef struct scorer_ctx {
    model rm;
    reward_scorer sc;
    int chunk;
    /* d-RLAIF */
    judge *jd;
    model jm;
    tokenizer *jtok, *ptok;
} scorer_ctx;

static int score_with_model(void *user, int n, const int32_t *const *seqs, const int *lens,
                            const int *plens, float *scores, rl_err *e) {
    (void)plens;
    scorer_ctx *s = user;
    return reward_score(&s->rm, &s->sc, n, seqs, lens, s->chunk, scores, e);
}

/* d-RLAIF: decode prompt and response with the policy's tokenizer, have the judge score the
 * response 1..10; its expected score mapped to [-1, 1] is the reward. */
static int score_with_judge(void *user, int n, const int32_t *const *seqs, const int *lens,
                            const int *plens, float *scores, rl_err *e) {
    scorer_ctx *s = user;
    judge_response *r = xcalloc((size_t)n + 1, sizeof *r);
    char **texts = xcalloc(2 * (size_t)n + 1, sizeof *texts);
    int rc = ERR_OK, eos = tokenizer_eos(s->ptok), bos = tokenizer_bos(s->ptok);
    for (int i = 0; i < n && !rc; i++) {
        size_t tl;
        int p0 = plens[i] > 0 && seqs[i][0] == bos ? 1 : 0;
        rc = tokenizer_decode(s->ptok, (const int *)seqs[i] + p0, plens[i] - p0, 0, &texts[2 * i],
                              &tl, e);
        int rl = lens[i] - plens[i];
        if (rl > 0 && seqs[i][lens[i] - 1] == eos) rl--;
        if (!rc)
            rc = tokenizer_decode(s->ptok, (const int *)seqs[i] + plens[i], rl, 0,
                                  &texts[2 * i + 1], &tl, e);
        if (rc) break;
        /* the context is the document: the prompt without its "\nTL;DR:" */
        char *suf = strstr(texts[2 * i], TASK_PROMPT_SUFFIX);
        if (suf) *suf = '\0';
        char *resp = task_lm_trim(texts[2 * i + 1]);
        free(texts[2 * i + 1]);
        texts[2 * i + 1] = resp;
        r[i] = (judge_response){.id = i, .context = texts[2 * i], .response = resp};
    }
    judge_score *out = xcalloc((size_t)n + 1, sizeof *out);
    if (!rc) rc = judge_score_responses(s->jd, r, n, out, e);
    for (int i = 0; i < n && !rc; i++) scores[i] = (float)out[i].reward;
    for (int i = 0; i < 2 * n; i++) free(texts[i]);
    free(texts), free(r), free(out);
    return rc;
}

static int scorer_work(run_ctx *ctx, const int *clients, int nc, rl_err *e) {
    const config *cfg = &ctx->cfg;
    scorer_ctx s;
    memset(&s, 0, sizeof s);
    s.chunk = cfg->reward.score_batch;
    char ppath[4400], path[4400];
    int rc = policy_path(ctx, ppath, sizeof ppath, e);
    gguf_file *pf = NULL;
    if (!rc) rc = gguf_open(ppath, &pf, e);
    if (!rc) rc = tokenizer_from_gguf(pf, &s.ptok, e);
    gguf_close(pf);
    reward_score_fn fn = score_with_model;
    if (!rc && cfg->rl.reward == RL_REWARD_MODEL) {
        tokenizer *rt = NULL;
        stage_model_path(ctx, "reward.gguf", path, sizeof path);
        rc = reward_model_load(path, 0, &s.rm, &rt, NULL, NULL, e);
        if (!rc && !same_vocab(rt, s.ptok))
            rc = err_set(e, ERR_INPUT,
                         "%s: the reward model's vocabulary differs from the policy's (%s)", path,
                         ppath);
        if (rt) tokenizer_free(rt);
    } else if (!rc) {
        fn = score_with_judge;
        if (cfg->judge_model.gguf[0])
            snprintf(path, sizeof path, "%s", cfg->judge_model.gguf);
        else
            stage_model_path(ctx, "judge.gguf", path, sizeof path);
        judge_opts jo;
        rc = task_lm_load_model(path, cfg->judge_model.max_seq, &s.jm, &s.jtok, e);
        if (!rc) rc = judge_opts_from_config(cfg, &jo, e);
        if (!rc) {
            jo.mode = JUDGE_SCORE;
            rc = judge_create(&s.jd, &s.jm, s.jtok, &jo, 16, e);
            judge_opts_free(&jo);
        }
    }
    reward_serve_stats st = {0};
    if (!rc) rc = reward_serve(clients, nc, fn, &s, &st, e);
    if (!rc)
        log_debug(
            "rl scorer: %ld requests, %ld sequences, %.0f sequences/s while busy, %.0f%% busy",
            st.requests, st.sequences, st.sequences / (st.busy_seconds + 1e-9),
            100 * st.busy_seconds / (st.wall_seconds + 1e-9));
    if (!rc && ctx->comm.role_rank == 0) {
        run_summary(ctx, "rl_score_seqs_per_s_busy", st.sequences / (st.busy_seconds + 1e-9));
        run_summary(ctx, "rl_score_tokens_per_s_busy", st.tokens / (st.busy_seconds + 1e-9));
        run_summary(ctx, "rl_scorer_busy_fraction", st.busy_seconds / (st.wall_seconds + 1e-9));
    }
    /* every scorer reports done after its figures, so rank 0 has them before the stage ends */
    if (!rc) run_report_done(ctx);
    reward_scorer_free(&s.sc);
    model_free(&s.rm);
    if (s.jd) judge_free(s.jd);
    model_free(&s.jm);
    if (s.jtok) tokenizer_free(s.jtok);
    if (s.ptok) tokenizer_free(s.ptok);
    return rc;
}

/* ------------------------------------------------------------------ client side */

typedef struct client_ctx {
    int server;
    reward_request req;
} client_ctx;

static int client_send(void *user, int n, const int32_t *const *seqs, const int *lens,
                       const int *plens, rl_err *e) {
    client_ctx *c = user;
    return reward_client_send(&c->req, c->server, n, seqs, lens, plens, e);
}

static int client_recv(void *user, int n, float *scores, rl_err *e) {
    client_ctx *c = user;
    return reward_client_recv(&c->req, n, scores, e);
}

/* ------------------------------------------------------------------ the policy side */

/* The figures of the stage's summary that span iterations (rl_reward_first, and the rings of
 * the last five rewards and KLs behind rl_reward_last and rl_kl_last) travel in the checkpoint,
 * so that a resumed stage reports what the uninterrupted one would. */
enum { RL_SUMMARY_N = 12 }; /* first reward, count, last[5], last_kl[5] */
#define RL_SUMMARY_NAME "policy/summary_figures"

static int save_ckpt(run_ctx *ctx, const rl_engine *E, long step, const double *figs, rl_err *e) {
    int64_t id = RUN_CKPT_ID(STAGE_RL, step);
    ckpt_file *f = NULL;
    int rc = ckpt_file_begin(ctx->out_dir, id, "policy", &f, e);
    if (rc) return rc;
    if ((rc = rl_engine_save_policy(E, f, e)) ||
        (rc = ckpt_write_f64(f, RL_SUMMARY_NAME, figs, RL_SUMMARY_N, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    if ((rc = ckpt_file_commit(f, e))) return rc;
    if ((rc = ckpt_file_begin(ctx->out_dir, id, "value", &f, e))) return rc;
    if ((rc = rl_engine_save_value(E, f, e))) {
        ckpt_file_abort(f);
        return rc;
    }
    if ((rc = ckpt_file_commit(f, e))) return rc;
    run_report_ckpt(ctx, id, "policy");
    run_report_ckpt(ctx, id, "value");
    return ERR_OK;
}

static int load_ckpt(run_ctx *ctx, rl_engine *E, long step, double *figs, rl_err *e) {
    int64_t id = RUN_CKPT_ID(STAGE_RL, step);
    ckpt_file *f = NULL;
    int rc = ckpt_file_open(ctx->out_dir, id, "policy", &f, e);
    if (!rc) rc = rl_engine_load_policy(E, f, e);
    /* (checkpoints written before the figures were kept have none: they stay NaN) */
    if (!rc && ckpt_has(f, RL_SUMMARY_NAME))
        rc = ckpt_read_f64(f, RL_SUMMARY_NAME, figs, RL_SUMMARY_N, e);
    if (f) ckpt_file_close(f);
    f = NULL;
    if (!rc) rc = ckpt_file_open(ctx->out_dir, id, "value", &f, e);
    if (!rc) rc = rl_engine_load_value(E, f, e);
    if (f) ckpt_file_close(f);
    if (!rc && E->iter != step)
        rc = err_set(e, ERR_STATE, "rl: the checkpoint of step %ld holds iteration %ld", step,
                     E->iter);
    return rc;
}

static void report(run_ctx *ctx, long it, const rl_stats *s) {
#define M(name, v) run_metric(ctx, "rl/" name, it, (v))
    M("reward", s->score);
    M("rm_score", s->rm_score);
    M("reward_minus_kl", s->reward);
    M("kl", s->kl);
    M("kl_coef", s->kl_coef);
    M("entropy", s->entropy);
    M("approx_kl", s->approx_kl);
    M("clipfrac", s->clipfrac);
    M("value_loss", s->value_loss);
    M("value_clipfrac", s->value_clipfrac);
    M("explained_variance", s->explained_variance);
    M("response_length", s->resp_len);
    M("eos_rate", s->eos_rate);
    M("grad_norm", s->grad_norm);
    M("value_grad_norm", s->value_grad_norm);
    M("lr", s->lr);
    M("time_generate", s->t_generate);
    M("time_score_wait", s->t_score_wait);
    M("time_train", s->t_train);
    M("time_total", s->t_total);
    M("tokens_per_s", s->gen_tokens / (s->t_generate + 1e-9));
    M("train_tokens_per_s", s->train_tokens / (s->t_train + 1e-9));
#undef M
}

static int policy_work(run_ctx *ctx, const stage_group *g, const int *servers, int n_servers,
                       int64_t from_step, rl_err *e) {
    const config *cfg = &ctx->cfg;
    int lead = g->rank == 0, rc;
    double t_start = log_now();
    model pol, ref, val;
    memset(&pol, 0, sizeof pol), memset(&ref, 0, sizeof ref), memset(&val, 0, sizeof val);
    tokenizer *tok = NULL;
    rl_prompts P = {0};
    rl_engine E;
    memset(&E, 0, sizeof E);
    char ppath[4400], path[4400];
    client_ctx cl = {.server = servers[g->rank % n_servers]};

    rc = policy_path(ctx, ppath, sizeof ppath, e);
    if (!rc) rc = task_lm_load_model(ppath, cfg->policy.max_seq, &pol, &tok, e);
    /* the reference: a frozen copy */
    if (!rc && !(rc = model_create(&ref, &pol.cfg, e)))
        memcpy(ref.params, pol.params, sizeof(float) * pol.n_params);
    stage_model_path(ctx, "reward.gguf", path, sizeof path);
    int have_rm = access(path, F_OK) == 0, head = 0;
    if (!rc)
        rc = reward_model_load(have_rm ? path : ppath, cfg->policy.max_seq, &val, NULL, NULL, &head,
                               e);
    if (!rc && !head) {
        /* no reward model to start from: a fresh head on the SFT policy */
        model tmp;
        if (!(rc = model_create(&tmp, &val.cfg, e))) {
            model_init_weights(&tmp, (uint64_t)cfg->run.seed ^ 0x7a1u);
            memcpy(val.p.score_w, tmp.p.score_w, sizeof(float) * (size_t)val.cfg.dim);
            model_free(&tmp);
        }
    }
    if (!rc) rc = load_prompts(ctx, tok, &P, e);
    int eos = tok ? tokenizer_eos(tok) : -1;
    rl_cfg c;
    memset(&c, 0, sizeof c);
    c.algorithm = cfg->rl.algorithm == RL_ALGO_REINFORCE ? RL_REINFORCE : RL_PPO;
    c.rollouts = cfg->rl.rollouts;
    c.minibatch = cfg->rl.minibatch;
    c.epochs = cfg->rl.epochs;
    c.sp.temperature = (float)cfg->rl.temperature;
    c.sp.top_k = cfg->rl.top_k;
    c.sp.top_p = (float)cfg->rl.top_p;
    c.max_new = cfg->rl.max_new_tokens;
    c.eos = &eos;
    c.n_eos = eos >= 0;
    c.kl_coef = cfg->rl.kl_coef;
    c.kl_target = cfg->rl.kl_target;
    c.kl_horizon = cfg->rl.kl_horizon;
    c.kl_estimator = cfg->rl.kl_estimator;
    c.gamma = (float)cfg->rl.gamma;
    c.lambda = (float)cfg->rl.lambda;
    c.clip = (float)cfg->rl.clip;
    c.value_clip = (float)cfg->rl.value_clip;
    c.whiten_advantages = cfg->rl.whiten_advantages;
    c.whiten_rewards = cfg->rl.whiten_rewards;
    c.reward_clip = (float)cfg->rl.reward_clip;
    c.no_eos_penalty = (float)cfg->rl.no_eos_penalty;
    c.entropy_coef = (float)cfg->rl.entropy_coef;
    c.seed = (uint64_t)cfg->run.seed;
    long opt_steps = (long)cfg->rl.steps * cfg->rl.epochs * (cfg->rl.rollouts / cfg->rl.minibatch);
    const config_optim *po[2] = {&cfg->rl.policy_opt, &cfg->rl.value_opt};
    optim_config *oc[2] = {&c.policy_opt, &c.value_opt};
    for (int k = 0; k < 2; k++) {
        optim_config_default(oc[k]);
        oc[k]->lr = (float)po[k]->lr;
        oc[k]->min_lr_frac = (float)po[k]->min_lr_ratio;
        oc[k]->warmup_steps = po[k]->warmup;
        oc[k]->weight_decay = (float)po[k]->weight_decay;
        oc[k]->grad_clip = (float)po[k]->grad_clip;
        oc[k]->total_steps = opt_steps;
    }
    if (!rc) rc = rl_engine_init(&E, &pol, &ref, &val, &c, &P, g->comm, e);
    double figs[RL_SUMMARY_N];
    for (int i = 0; i < RL_SUMMARY_N; i++) figs[i] = i == 0 ? NAN : 0;
    if (!rc && from_step > 0) rc = load_ckpt(ctx, &E, from_step, figs, e);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead)
        log_info("rl: %s, %d iterations of %d rollouts on %d rank%s (%d prompts), minibatch %d, %d "
                 "epoch%s; scores from %d %s rank%s",
                 c.algorithm == RL_PPO ? "PPO" : "REINFORCE with baseline", cfg->rl.steps,
                 c.rollouts, g->size, g->size == 1 ? "" : "s", P.n, c.minibatch, c.epochs,
                 c.epochs == 1 ? "" : "s", n_servers,
                 cfg->rl.reward == RL_REWARD_MODEL ? "reward" : "judge", n_servers == 1 ? "" : "s");

    rl_scorer scorer = {client_send, client_recv, &cl};
    int steps = cfg->rl.steps, every = cfg->run.checkpoint_every;
    double first_reward = figs[0], last[5], last_kl[5], gen_tok = 0, gen_s = 0;
    int n_last = (int)figs[1];
    for (int i = 0; i < 5; i++) last[i] = figs[2 + i], last_kl[i] = figs[7 + i];
    double ph[4] = {0, 0, 0, 0};
    for (long it = from_step + 1; it <= steps; it++) {
        rl_stats st;
        if ((rc = rl_iteration(&E, &P, &scorer, g->comm, &st, e))) {
            err_prefix(e, "stage rl, step %ld", it);
            break;
        }
        if (it == 1) first_reward = st.score;
        last[n_last % 5] = st.score, last_kl[n_last % 5] = st.kl, n_last++;
        gen_tok += st.gen_tokens, gen_s += st.t_generate;
        ph[0] += st.t_generate, ph[1] += st.t_score_wait, ph[2] += st.t_train, ph[3] += st.t_total;
        if (lead) {
            report(ctx, it, &st);
            char extra[128];
            snprintf(extra, sizeof extra, "reward %+.3f, kl %.2f, len %.1f, %.1f s/it", st.score,
                     st.kl, st.resp_len, st.t_total);
            run_progress(ctx, it, steps, extra);
            int se = cfg->rl.sample_every;
            if ((se > 0 && it % se == 0) || it == steps) {
                char *pt = NULL, *rt = NULL, sc[32], name[64];
                size_t l1, l2;
                int p0 = st.sample_prompt_len > 0 && st.sample_prompt[0] == tokenizer_bos(tok);
                int rl = st.sample_resp_len;
                if (rl > 0 && st.sample_resp[rl - 1] == eos) rl--;
                if (!tokenizer_decode(tok, (int *)st.sample_prompt + p0, st.sample_prompt_len - p0,
                                      0, &pt, &l1, NULL) &&
                    !tokenizer_decode(tok, (int *)st.sample_resp, rl, 0, &rt, &l2, NULL)) {
                    snprintf(sc, sizeof sc, "%+.3f", st.sample_score);
                    snprintf(name, sizeof name, "rl_step_%ld", it);
                    const char *cells[3] = {pt, rt, sc};
                    static const char *const cols[3] = {"prompt", "response", "score"};
                    run_table(ctx, name, 1, 3, cols, cells);
                }
                free(pt), free(rt);
            }
        }
        rl_stats_free(&st);
        int stop = run_stop_requested(ctx, g->comm);
        if ((every > 0 && it % every == 0) || it == steps || stop)
            if (lead) {
                figs[0] = first_reward, figs[1] = n_last;
                for (int i = 0; i < 5; i++) figs[2 + i] = last[i], figs[7 + i] = last_kl[i];
                if ((rc = save_ckpt(ctx, &E, it, figs, e))) break;
            }
        if (stop) {
            rc = reward_client_done(cl.server, e);
            if (lead) run_report_done(ctx);
            goto done;
        }
    }
    {
        int rc2 = reward_client_done(cl.server, e);
        if (!rc) rc = rc2;
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        stage_model_path(ctx, "policy_rl.gguf", path, sizeof path);
        rc = task_lm_save_model(path, "rlaif policy (rl)", &pol, tok, e);
        stage_model_path(ctx, "value_rl.gguf", path, sizeof path);
        if (!rc) rc = reward_model_save(path, "rlaif value model (rl)", &val, tok, NULL, e);
    }
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;
    if (lead) {
        int k = n_last < 5 ? n_last : 5;
        double mr = 0, mk = 0;
        for (int i = 0; i < k; i++) mr += last[i] / k, mk += last_kl[i] / k;
        if (k) {
            run_summary(ctx, "rl_reward_first", first_reward);
            run_summary(ctx, "rl_reward_last", mr);
            run_summary(ctx, "rl_kl_last", mk);
        }
        run_summary(ctx, "rl_seconds", log_now() - t_start);
        run_summary(ctx, "rl_time_generate", ph[0]);
        run_summary(ctx, "rl_time_score_wait", ph[1]);
        run_summary(ctx, "rl_time_train", ph[2]);
        run_summary(ctx, "rl_gen_tokens_per_s", gen_tok / (gen_s + 1e-9));
        run_summary(ctx, "rl_kl_coef_final", E.kl.coef);
        run_report_done(ctx);
    }
done:
    rl_engine_free(&E);
    free_prompts(&P);
    model_free(&pol), model_free(&ref), model_free(&val);
    if (tok) tokenizer_free(tok);
    return rc;
}

int stage_rl(run_ctx *ctx, int64_t from_step, rl_err *e) {
    const config *cfg = &ctx->cfg;
    const comm_ctx *cc = &ctx->comm;
    int judge_scores = cfg->rl.reward == RL_REWARD_JUDGE;
    comm_role order[3] = {ROLE_POLICY, judge_scores ? ROLE_POLICY : ROLE_JUDGE, ROLE_POLICY};
    /* only policy (and, when free, judge) ranks: the third role slot repeats nothing */
    int n = cfg->rl.train_ranks;
    stage_group g;
    int rc = stage_group_create(ctx, order, n > 0 ? n : cc->count[ROLE_POLICY], &g, e);
    if (rc) return rc;
    comm_role srole = judge_scores ? ROLE_JUDGE : ROLE_REWARD;
    int S = cc->count[srole];
    if (cc->role == ROLE_COORD) {
        static const char *const comps[2] = {"policy", "value"};
        stage_group_free(&g);
        return run_coord_serve(ctx, STAGE_RL, 1 + S, comps, 2, NULL, NULL, e);
    }
    int *servers = xmalloc(sizeof(int) * (size_t)(S > 0 ? S : 1));
    for (int s = 0; s < S; s++) servers[s] = comm_world_rank(cc, srole, s);
    if (g.member) {
        rc = policy_work(ctx, &g, servers, S, from_step, e);
    } else if (cc->role == srole) {
        /* my clients: the group members i with i mod S == my index; member i is policy rank i,
         * then judge rank i - (policy ranks) */
        int me = cc->role_rank, nc = 0, np = cc->count[ROLE_POLICY];
        int *clients = xmalloc(sizeof(int) * (size_t)(g.size / S + 1));
        for (int i = me; i < g.size; i += S)
            clients[nc++] = i < np ? comm_world_rank(cc, ROLE_POLICY, i)
                                   : comm_world_rank(cc, ROLE_JUDGE, i - np);
        rc = scorer_work(ctx, clients, nc, e);
        free(clients);
    }
    free(servers);
    stage_group_free(&g);
    return rc;
}
