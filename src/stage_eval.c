/* stage_eval: the trained policy against the SFT policy on held-out prompts.
 *
 * The policy ranks answer eval.prompts test documents with both policies (and with the policy of
 * eval.versus when given), sampling at eval.temperature, each policy with its own random stream
 * per prompt: the win rate of independent samples, as human raters of the paper saw them
 * (eval.paired: the same stream for every policy, a coupled comparison where the policies'
 * agreement shows as identical responses, i.e. ties). Then:
 *   - the gold rater compares each pair (a tie counts half): win_rate_gold_vs_sft;
 *   - the judge ranks compare each pair in both orders (judge_label_pairs with position
 *     debiasing), the trained policy winning when P(it is better) > 0.5: win_rate_judge_vs_sft;
 *   - kl_to_sft: the mean over prompts of log pi(y) - log pi_sft(y) for the trained policy's
 *     responses y (at the sampling temperature; at T = 1 for greedy decoding);
 *   - mean response lengths (tokens), EOS rates and gold scores of both;
 *   - a side-by-side table of eval.samples prompts.
 * Evaluation is where the gold rater belongs: the functions that call it are *_eval_*.
 * Not here: training. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "judge.h"
#include "log.h"
#include "msg.h"
#include "reward.h"
#include "rl.h"
#include "run.h"
#include "stage.h"
#include "stage_util.h"
#include "task_lm.h"

enum { EV_JUDGE = 1, EV_DONE = 2 };

/* ------------------------------------------------------------------ the judge ranks */

static int judge_serve(run_ctx *ctx, int n_clients, rl_err *e) {
    const config *cfg = &ctx->cfg;
    char path[4400];
    if (cfg->judge_model.gguf[0])
        snprintf(path, sizeof path, "%s", cfg->judge_model.gguf);
    else
        stage_model_path(ctx, "judge.gguf", path, sizeof path);
    model jm;
    tokenizer *jt = NULL;
    judge *jd = NULL;
    judge_opts jo;
    memset(&jo, 0, sizeof jo);
    int rc = task_lm_load_model(path, cfg->judge_model.max_seq, &jm, &jt, e);
    if (!rc) rc = judge_opts_from_config(cfg, &jo, e);
    if (!rc) {
        /* a score-mode judge (d-RLAIF) compares with its preference prompt here */
        if (jo.mode != JUDGE_LIKELIHOOD) jo.mode = JUDGE_PREFERENCE;
        jo.position_debias = 1; /* the eval always judges both orders */
        rc = judge_create(&jd, &jm, jt, &jo, cfg->judge.batch_pairs, e);
    }
    int done = 0;
    while (done < n_clients) {
        void *buf = NULL;
        int len = 0;
        MPI_Status st;
        if (comm_recv_alloc(&buf, &len, MPI_BYTE, MPI_ANY_SOURCE, TAG_WORK, MPI_COMM_WORLD, &st)) {
            rc = err_set(e, ERR_MPI, "eval: lost contact with the policy ranks");
            break;
        }
        msg_reader r;
        msg_reader_init(&r, buf, (size_t)len);
        int kind = msg_get_i32(&r), n = msg_get_i32(&r);
        if (kind == EV_DONE) {
            done++;
            free(buf);
            continue;
        }
        if (n < 0 || n > (1 << 20)) r.bad = 1;
        judge_pair *pairs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *pairs);
        char **strs = xcalloc(3 * (size_t)(n > 0 ? n : 1), sizeof *strs);
        for (int i = 0; i < n && !r.bad; i++) {
            pairs[i].id = msg_get_i64(&r);
            strs[3 * i] = msg_get_str(&r), strs[3 * i + 1] = msg_get_str(&r);
            strs[3 * i + 2] = msg_get_str(&r);
            pairs[i].context = strs[3 * i], pairs[i].a = strs[3 * i + 1],
            pairs[i].b = strs[3 * i + 2];
        }
        free(buf);
        judge_label *out = xcalloc((size_t)(n > 0 ? n : 1), sizeof *out);
        int rc2 = rc;
        rl_err e2 = {0};
        if (!rc2 && r.bad)
            rc2 = err_set(&e2, ERR_MPI, "eval: a malformed request from rank %d", st.MPI_SOURCE);
        if (!rc2)
            rc2 = judge_label_pairs(jd, pairs, n, out, &e2);
        else if (rc)
            e2 = *e;
        msg_writer w;
        msg_init(&w);
        msg_put_i32(&w, rc2);
        if (rc2) msg_put_str(&w, e2.msg);
        for (int i = 0; i < n && !rc2; i++) {
            msg_put_f64(&w, out[i].p);
            msg_put_i32(&w, judge_same_position(&out[i]));
        }
        comm_send(w.buf, (int)w.len, MPI_BYTE, st.MPI_SOURCE, TAG_RESULT, MPI_COMM_WORLD);
        msg_free(&w);
        for (int i = 0; i < n && !rc2; i++) judge_label_free(&out[i]);
        for (int i = 0; i < 3 * n; i++) free(strs[i]);
        free(strs), free(pairs), free(out);
    }
    if (jd) judge_free(jd);
    judge_opts_free(&jo);
    model_free(&jm);
    if (jt) tokenizer_free(jt);
    return rc;
}

/* P(a better) for n pairs from judge rank `server`; same_pos gets the position-bias flags. */
static int judge_remote(int server, int n, const int64_t *ids, const char *const *ctx,
                        const char *const *a, const char *const *b, double *p, int *same_pos,
                        rl_err *e) {
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, EV_JUDGE);
    msg_put_i32(&w, n);
    for (int i = 0; i < n; i++) {
        msg_put_i64(&w, ids[i]);
        msg_put_str(&w, ctx[i]), msg_put_str(&w, a[i]), msg_put_str(&w, b[i]);
    }
    int rc = comm_send(w.buf, (int)w.len, MPI_BYTE, server, TAG_WORK, MPI_COMM_WORLD);
    msg_free(&w);
    if (rc) return err_set(e, ERR_MPI, "eval: cannot reach judge rank %d", server);
    void *buf = NULL;
    int len = 0;
    if (comm_recv_alloc(&buf, &len, MPI_BYTE, server, TAG_RESULT, MPI_COMM_WORLD, NULL))
        return err_set(e, ERR_MPI, "eval: no answer from judge rank %d", server);
    msg_reader r;
    msg_reader_init(&r, buf, (size_t)len);
    int status = msg_get_i32(&r);
    if (status) {
        char *t = msg_get_str(&r);
        rc = err_set(e, status, "judge rank %d: %s", server, t);
        free(t);
    } else {
        for (int i = 0; i < n; i++) p[i] = msg_get_f64(&r), same_pos[i] = msg_get_i32(&r);
        if (r.bad) rc = err_set(e, ERR_MPI, "eval: a malformed answer from judge rank %d", server);
    }
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ the policy ranks */

typedef struct answers {
    int n;
    char **text;           /* (n) decoded responses without EOS, trimmed */
    int32_t **seq;         /* (n) prompt + response tokens */
    int *plen, *len, *eos; /* (n) */
} answers;

static void answers_free(answers *a) {
    for (int i = 0; i < a->n; i++) free(a->text[i]), free(a->seq[i]);
    free(a->text), free(a->seq), free(a->plen), free(a->len), free(a->eos);
    memset(a, 0, sizeof *a);
}

/* Samples one response per prompt: stream (who, prompt id), who = 0 for every policy when
 * eval.paired, else the policy's index (0 trained, 1 SFT, 2 versus). */
static int answer(const model *m, const tokenizer *tok, kvcache *kv, int n, int32_t **ptok,
                  const int *pl, const int *ids, double temp, int max_new, uint64_t seed, int who,
                  answers *out, rl_err *e) {
    memset(out, 0, sizeof *out);
    out->n = n;
    out->text = xcalloc((size_t)n + 1, sizeof *out->text);
    out->seq = xcalloc((size_t)n + 1, sizeof *out->seq);
    out->plen = xcalloc((size_t)n + 1, sizeof(int));
    out->len = xcalloc((size_t)n + 1, sizeof(int));
    out->eos = xcalloc((size_t)n + 1, sizeof(int));
    int slots = kv->n_slots, eos = tokenizer_eos(tok), rc = ERR_OK;
    gen_seq *gs = xcalloc((size_t)slots, sizeof *gs);
    rng *rs = xcalloc((size_t)slots, sizeof *rs);
    int *buf = xmalloc(sizeof(int) * (size_t)slots * max_new);
    sample_params sp = {.temperature = (float)temp, .top_k = 0, .top_p = 1.0f};
    for (int i0 = 0; i0 < n && !rc; i0 += slots) {
        int k = n - i0 < slots ? n - i0 : slots;
        int mn = max_new;
        for (int j = 0; j < k; j++) {
            kvcache_reset(kv, j);
            rng_init(&rs[j], seed, rng_purpose(RNG_SAMPLE, 0xe7a + (uint32_t)who),
                     (uint32_t)ids[i0 + j]);
            gs[j] = (gen_seq){.prompt = ptok[i0 + j],
                              .prompt_len = pl[i0 + j],
                              .slot = j,
                              .r = &rs[j],
                              .out = buf + (size_t)j * max_new};
            if (kv->max_seq - pl[i0 + j] < mn) mn = kv->max_seq - pl[i0 + j];
        }
        if (mn < 1) {
            rc = err_set(e, ERR_INPUT, "eval: a prompt fills the model's context");
            break;
        }
        gen_config g = {.sp = sp, .max_new = mn, .eos = &eos, .n_eos = eos >= 0};
        if ((rc = sample_generate(m, kv, gs, k, &g, e))) break;
        for (int j = 0; j < k && !rc; j++) {
            int i = i0 + j, no = gs[j].n_out;
            out->eos[i] = gs[j].hit_eos;
            out->plen[i] = pl[i];
            out->len[i] = pl[i] + no;
            out->seq[i] = xmalloc(sizeof(int32_t) * (size_t)out->len[i]);
            memcpy(out->seq[i], ptok[i], sizeof(int32_t) * (size_t)pl[i]);
            for (int q = 0; q < no; q++) out->seq[i][pl[i] + q] = gs[j].out[q];
            char *t = NULL;
            size_t tl;
            rc = tokenizer_decode(tok, gs[j].out, no - (gs[j].hit_eos ? 1 : 0), 0, &t, &tl, e);
            if (!rc) {
                out->text[i] = task_lm_trim(t);
                free(t);
            }
        }
    }
    free(gs), free(rs), free(buf);
    return rc;
}

/* Gold verdicts of a against b on the same documents: 1 win, 0.5 tie, 0 loss; and each side's
 * mean gold score. */
static void policy_eval_gold(const task_doc *docs, int n, const answers *a, const answers *b,
                             double *wins, double *score_a, double *score_b) {
    *wins = *score_a = *score_b = 0;
    for (int i = 0; i < n; i++) {
        double m = task_gold_margin(&docs[i], a->text[i], b->text[i]);
        *wins += m > 0 ? 1.0 : m == 0 ? 0.5 : 0.0;
        *score_a += task_gold_score(&docs[i], a->text[i]);
        *score_b += task_gold_score(&docs[i], b->text[i]);
    }
}

static int load_policy(const run_ctx *ctx, const char *given, const char *dflt, int max_seq,
                       model *m, tokenizer **tok, rl_err *e) {
    char path[4400];
    if (given[0])
        snprintf(path, sizeof path, "%s", given);
    else
        stage_model_path(ctx, dflt, path, sizeof path);
    if (access(path, F_OK) != 0 && !given[0] && !strcmp(dflt, "policy_sft.gguf") &&
        ctx->cfg.policy.gguf[0])
        snprintf(path, sizeof path, "%s", ctx->cfg.policy.gguf);
    return task_lm_load_model(path, max_seq, m, tok, e);
}

typedef struct side {
    const char *name; /* "sft", "versus" */
    answers ans;
    double wins_gold, score, judge_wins, judge_n, same_pos;
    double *p; /* (mine) judge P(trained better) */
} side;

static int stage_eval_work(run_ctx *ctx, const stage_group *g, const int *judges, int n_judges,
                           rl_err *e) {
    const config *cfg = &ctx->cfg;
    int lead = g->rank == 0, rc;
    double t0 = log_now();
    task_config tc;
    task_lm_task_config(cfg, &tc);
    model pol, base, vs;
    memset(&pol, 0, sizeof pol), memset(&base, 0, sizeof base), memset(&vs, 0, sizeof vs);
    tokenizer *tok = NULL, *t2 = NULL, *t3 = NULL;
    int have_vs = cfg->eval.versus[0] != 0;
    int use_judge = cfg->eval.judge && n_judges > 0;
    rc = load_policy(ctx, cfg->eval.policy, "policy_rl.gguf", cfg->policy.max_seq, &pol, &tok, e);
    if (!rc)
        rc = load_policy(ctx, cfg->eval.baseline, "policy_sft.gguf", cfg->policy.max_seq, &base,
                         &t2, e);
    if (!rc && have_vs)
        rc = load_policy(ctx, cfg->eval.versus, "", cfg->policy.max_seq, &vs, &t3, e);
    if (!rc && cfg->task.name != 0)
        rc = err_set(e, ERR_INPUT,
                     "stage eval needs the built-in task's test documents (task.name: summaries)");
    /* this rank's prompts: test documents i = rank, rank + size, ... */
    int N = cfg->eval.prompts;
    if (N > tc.n_docs[TASK_TEST]) N = (int)tc.n_docs[TASK_TEST];
    int mine = 0;
    for (int i = g->rank; i < N; i += g->size) mine++;
    task_doc *docs = xcalloc((size_t)mine + 1, sizeof *docs);
    int32_t **ptok = xcalloc((size_t)mine + 1, sizeof *ptok);
    int *pl = xcalloc((size_t)mine + 1, sizeof *pl), *ids = xcalloc((size_t)mine + 1, sizeof *ids);
    char buf[TASK_PROMPT_MAX];
    for (int k = 0, i = g->rank; i < N && !rc; i += g->size, k++) {
        int *t = NULL;
        ids[k] = i;
        if (!(rc = task_doc_make(tc.seed, TASK_TEST, i, &docs[k], e)) &&
            !(rc = task_prompt(&docs[k], buf, sizeof buf, e)) &&
            !(rc = reward_prompt_tokens(tok, buf, &t, &pl[k], e)))
            ptok[k] = (int32_t *)t;
    }
    rc = stage_agree(g->comm, rc, e);
    side sides[2] = {{.name = "sft"}, {.name = "versus"}};
    int n_sides = have_vs ? 2 : 1;
    answers mine_ans = {0};
    kvcache kv;
    memset(&kv, 0, sizeof kv);
    model_acts acts;
    memset(&acts, 0, sizeof acts);
    double t_gen = log_now();
    int max_new = cfg->eval.max_new_tokens;
    if (!rc) rc = kvcache_create(&kv, &pol.cfg, 64, pol.cfg.max_seq, e);
    if (!rc)
        rc = answer(&pol, tok, &kv, mine, ptok, pl, ids, cfg->eval.temperature, max_new,
                    (uint64_t)cfg->run.seed, 0, &mine_ans, e);
    if (!rc)
        rc = answer(&base, t2, &kv, mine, ptok, pl, ids, cfg->eval.temperature, max_new,
                    (uint64_t)cfg->run.seed, cfg->eval.paired ? 0 : 1, &sides[0].ans, e);
    if (!rc && have_vs)
        rc = answer(&vs, t3, &kv, mine, ptok, pl, ids, cfg->eval.temperature, max_new,
                    (uint64_t)cfg->run.seed, cfg->eval.paired ? 0 : 2, &sides[1].ans, e);
    t_gen = log_now() - t_gen;

    /* KL to the SFT policy on the trained policy's own responses */
    double *lp_rl = xcalloc((size_t)mine + 1, sizeof(double)),
           *lp_sft = xcalloc((size_t)mine + 1, sizeof(double));
    int Tmax = 1;
    for (int k = 0; k < mine; k++)
        Tmax = mine_ans.len && mine_ans.len[k] > Tmax ? mine_ans.len[k] : Tmax;
    float temp = cfg->eval.temperature > 0 ? (float)cfg->eval.temperature : 1.0f;
    if (!rc && mine > 0) rc = model_acts_create(&acts, &pol.cfg, 32, Tmax, e);
    if (!rc && mine > 0)
        rc = rl_response_logprobs(&pol, &acts, mine, (const int32_t *const *)mine_ans.seq,
                                  mine_ans.plen, mine_ans.len, temp, 32, lp_rl, e);
    if (!rc && mine > 0)
        rc = rl_response_logprobs(&base, &acts, mine, (const int32_t *const *)mine_ans.seq,
                                  mine_ans.plen, mine_ans.len, temp, 32, lp_sft, e);
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    /* gold and judge verdicts */
    double t_judge = log_now();
    for (int s = 0; s < n_sides && !rc; s++) {
        side *sd = &sides[s];
        double score_rl = 0;
        policy_eval_gold(docs, mine, &mine_ans, &sd->ans, &sd->wins_gold, &score_rl, &sd->score);
        sd->p = xcalloc((size_t)mine + 1, sizeof(double));
        if (use_judge && mine > 0) {
            const char **cx = xcalloc((size_t)mine, sizeof *cx),
                       **a = xcalloc((size_t)mine, sizeof *a);
            const char **b = xcalloc((size_t)mine, sizeof *b);
            int64_t *pid = xcalloc((size_t)mine, sizeof *pid);
            int *same = xcalloc((size_t)mine, sizeof *same);
            for (int k = 0; k < mine; k++)
                cx[k] = task_context(&docs[k]), a[k] = mine_ans.text[k], b[k] = sd->ans.text[k],
                pid[k] = ids[k] + (int64_t)s * 1000000000;
            rc = judge_remote(judges[g->rank % n_judges], mine, pid, cx, a, b, sd->p, same, e);
            for (int k = 0; k < mine && !rc; k++) {
                sd->judge_wins += sd->p[k] > 0.5 ? 1.0 : sd->p[k] == 0.5 ? 0.5 : 0.0;
                sd->same_pos += same[k];
            }
            sd->judge_n = mine;
            free(cx), free(a), free(b), free(pid), free(same);
        }
    }
    t_judge = log_now() - t_judge;
    rc = stage_agree(g->comm, rc, e);
    if (rc) goto done;

    /* sums over the ranks */
    double v[17] = {0};
    for (int k = 0; k < mine; k++) {
        v[0] += 1;
        v[16] += !strcmp(mine_ans.text[k], sides[0].ans.text[k]);
        v[1] += lp_rl[k] - lp_sft[k];
        v[2] += mine_ans.len[k] - mine_ans.plen[k];
        v[3] += sides[0].ans.len[k] - sides[0].ans.plen[k];
        v[4] += mine_ans.eos[k];
        v[5] += sides[0].ans.eos[k];
        v[6] += task_gold_score(&docs[k], mine_ans.text[k]);
    }
    for (int s = 0; s < 2; s++) {
        v[7 + 4 * s] = sides[s].wins_gold, v[8 + 4 * s] = sides[s].score;
        v[9 + 4 * s] = sides[s].judge_wins, v[10 + 4 * s] = sides[s].same_pos;
    }
    v[15] = sides[0].judge_n;
    if (comm_allreduce_sum_f64(v, 17, g->comm)) {
        rc = err_set(e, ERR_MPI, "eval: allreduce failed");
        goto done;
    }
    if (lead) {
        double n = v[0];
        run_summary(ctx, "win_rate_gold_vs_sft", v[7] / n);
        run_summary(ctx, "eval_identical_vs_sft", v[16] / n); /* the same text: a tie */
        if (use_judge) {
            run_summary(ctx, "win_rate_judge_vs_sft", v[9] / v[15]);
            if (cfg->judge.mode != JUDGE_LIKELIHOOD) /* no positions in that mode */
                run_summary(ctx, "eval_judge_same_position", v[10] / v[15]);
        }
        run_summary(ctx, "kl_to_sft", v[1] / n);
        run_summary(ctx, "eval_response_tokens_rl", v[2] / n);
        run_summary(ctx, "eval_response_tokens_sft", v[3] / n);
        run_summary(ctx, "eval_eos_rate_rl", v[4] / n);
        run_summary(ctx, "eval_eos_rate_sft", v[5] / n);
        run_summary(ctx, "eval_gold_score_rl", v[6] / n);
        run_summary(ctx, "eval_gold_score_sft", v[8] / n);
        run_summary(ctx, "eval_prompts", n);
        if (have_vs) {
            run_summary(ctx, "win_rate_gold_vs_versus", v[11] / n);
            run_summary(ctx, "eval_gold_score_versus", v[12] / n);
            if (use_judge) run_summary(ctx, "win_rate_judge_vs_versus", v[13] / v[15]);
        }
        run_summary(ctx, "eval_generate_seconds", t_gen);
        run_summary(ctx, "eval_judge_seconds", t_judge);
        log_info("eval: %d prompts: the trained policy wins %.1f%% against SFT by gold%s%.1f%s, KL "
                 "to SFT %.2f nats",
                 (int)n, 100 * v[7] / n, use_judge ? ", " : "",
                 use_judge ? 100 * v[9] / v[15] : 0.0, use_judge ? "% by the judge" : "", v[1] / n);
        /* side by side */
        int rows = cfg->eval.samples < mine ? cfg->eval.samples : mine;
        static const char *const cols[8] = {"document",   "sft",      "rl",
                                            "gold_sft",   "gold_rl",  "judge_p_rl_better",
                                            "tokens_sft", "tokens_rl"};
        char **cells = xcalloc((size_t)rows * 8 + 1, sizeof *cells);
        for (int k = 0; k < rows; k++) {
            char tmp[64];
            cells[8 * k] = xstrdup(docs[k].text);
            cells[8 * k + 1] = xstrdup(sides[0].ans.text[k]);
            cells[8 * k + 2] = xstrdup(mine_ans.text[k]);
            snprintf(tmp, sizeof tmp, "%+.3f", task_gold_score(&docs[k], sides[0].ans.text[k]));
            cells[8 * k + 3] = xstrdup(tmp);
            snprintf(tmp, sizeof tmp, "%+.3f", task_gold_score(&docs[k], mine_ans.text[k]));
            cells[8 * k + 4] = xstrdup(tmp);
            snprintf(tmp, sizeof tmp, use_judge ? "%.3f" : "-", sides[0].p[k]);
            cells[8 * k + 5] = xstrdup(tmp);
            snprintf(tmp, sizeof tmp, "%d", sides[0].ans.len[k] - sides[0].ans.plen[k]);
            cells[8 * k + 6] = xstrdup(tmp);
            snprintf(tmp, sizeof tmp, "%d", mine_ans.len[k] - mine_ans.plen[k]);
            cells[8 * k + 7] = xstrdup(tmp);
        }
        run_table(ctx, "eval_samples", rows, 8, cols, (const char *const *)cells);
        for (int k = 0; k < rows * 8; k++) free(cells[k]);
        free(cells);
        run_summary(ctx, "eval_seconds", log_now() - t0);
    }
done:
    /* the judge ranks wait for every policy rank's done, also after a failure here */
    if (use_judge) {
        int32_t msg[2] = {EV_DONE, 0};
        comm_send(msg, (int)sizeof msg, MPI_BYTE, judges[g->rank % n_judges], TAG_WORK,
                  MPI_COMM_WORLD);
    }
    if (!rc && lead) run_report_done(ctx);
    for (int s = 0; s < 2; s++) answers_free(&sides[s].ans), free(sides[s].p);
    answers_free(&mine_ans);
    for (int k = 0; k < mine; k++) free(ptok[k]);
    free(docs), free(ptok), free(pl), free(ids), free(lp_rl), free(lp_sft);
    kvcache_free(&kv);
    model_acts_free(&acts);
    model_free(&pol), model_free(&base), model_free(&vs);
    if (tok) tokenizer_free(tok);
    if (t2) tokenizer_free(t2);
    if (t3) tokenizer_free(t3);
    return rc;
}

int stage_eval(run_ctx *ctx, int64_t from_step, rl_err *e) {
    (void)from_step; /* eval is one unit of work: it restarts from the beginning */
    const comm_ctx *cc = &ctx->comm;
    static const comm_role order[3] = {ROLE_POLICY, ROLE_POLICY, ROLE_POLICY};
    stage_group g;
    int rc = stage_group_create(ctx, order, cc->count[ROLE_POLICY], &g, e);
    if (rc) return rc;
    int J = ctx->cfg.eval.judge ? cc->count[ROLE_JUDGE] : 0;
    if (cc->role == ROLE_COORD) {
        stage_group_free(&g);
        return run_coord_serve(ctx, STAGE_EVAL, 1, NULL, 0, NULL, NULL, e);
    }
    int *judges = xmalloc(sizeof(int) * (size_t)(J > 0 ? J : 1));
    for (int j = 0; j < J; j++) judges[j] = comm_world_rank(cc, ROLE_JUDGE, j);
    if (g.member) {
        rc = stage_eval_work(ctx, &g, judges, J, e);
    } else if (cc->role == ROLE_JUDGE && J > 0) {
        int nc = 0;
        for (int i = cc->role_rank; i < g.size; i += J) nc++;
        rc = judge_serve(ctx, nc, e);
    }
    free(judges);
    stage_group_free(&g);
    return rc;
}
