/* rl: see include/rl.h. Per-iteration arrays are (n, R) over this rank's n rollouts and R =
 * max_new response slots, with a mask; a training forward takes a (B, T) right-padded batch of
 * whole sequences and the response token k of row b sits at position plen_b + k, predicted from
 * position plen_b - 1 + k, which is also where the value model reads V_k.
 * Not here: the stage's plumbing (src/stage_rl.c), the arithmetic of the losses (ppo.c). */
#include "rl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "log.h"
#include "rng.h"

/* ------------------------------------------------------------------ set-up */

int rl_engine_init(rl_engine *E, model *policy, model *ref, model *value, const rl_cfg *c,
                   const rl_prompts *prompts, MPI_Comm comm, rl_err *e) {
    memset(E, 0, sizeof *E);
    E->cfg = *c;
    E->policy = policy, E->ref = ref, E->value = value;
    MPI_Comm_rank(comm, &E->rank);
    MPI_Comm_size(comm, &E->size);
    if (c->rollouts % E->size || c->minibatch % E->size || c->rollouts % c->minibatch)
        return err_set(e, ERR_INPUT,
                       "rl: rollouts %d and minibatch %d must be multiples of the %d policy "
                       "ranks, and the minibatch must divide the rollouts",
                       c->rollouts, c->minibatch, E->size);
    if (!(c->sp.temperature > 0))
        return err_set(e, ERR_INPUT, "rl: the sampling temperature must be > 0");
    if (!value->cfg.scalar_head)
        return err_set(e, ERR_INTERNAL, "rl: the value model has no scalar head");
    if (prompts->n < 1) return err_set(e, ERR_INPUT, "rl: no prompts");
    int pmax = 1;
    for (int i = 0; i < prompts->n; i++) {
        if (prompts->len[i] < 1) return err_set(e, ERR_INPUT, "rl: prompt %d is empty", i);
        if (prompts->len[i] > pmax) pmax = prompts->len[i];
    }
    E->Tmax = pmax + c->max_new;
    int lim = policy->cfg.max_seq;
    if (value->cfg.max_seq < lim) lim = value->cfg.max_seq;
    if (ref->cfg.max_seq < lim) lim = ref->cfg.max_seq;
    if (E->Tmax > lim)
        return err_set(e, ERR_INPUT,
                       "rl: the longest prompt (%d tokens) plus rl.max_new_tokens (%d) exceeds "
                       "the models' max_seq %d; lower rl.max_new_tokens or raise policy.max_seq",
                       pmax, c->max_new, lim);
    E->n_local = c->rollouts / E->size;
    E->mb_local = c->minibatch / E->size;
    int rc;
    if ((rc = model_acts_create(&E->acts_pol, &policy->cfg, E->n_local, E->Tmax, e)) ||
        (rc = model_acts_create(&E->acts_val, &value->cfg, E->n_local, E->Tmax, e)) ||
        (rc = kvcache_create(&E->cache, &policy->cfg, E->n_local, E->Tmax, e)) ||
        (rc = optim_create(&E->opt_pol, policy, &c->policy_opt, e)) ||
        (rc = optim_create(&E->opt_val, value, &c->value_opt, e)))
        return rc;
    model_alloc_grads(policy);
    model_alloc_grads(value);
    E->kl.coef = c->kl_coef;
    E->kl.target = c->kl_target;
    E->kl.horizon = c->kl_horizon;
    return ERR_OK;
}

void rl_engine_free(rl_engine *E) {
    if (!E) return;
    model_acts_free(&E->acts_pol);
    model_acts_free(&E->acts_val);
    kvcache_free(&E->cache);
    optim_free(&E->opt_pol);
    optim_free(&E->opt_val);
    memset(E, 0, sizeof *E);
}

void rl_stats_free(rl_stats *st) {
    if (!st) return;
    free(st->sample_prompt);
    free(st->sample_resp);
    st->sample_prompt = st->sample_resp = NULL;
}

/* ------------------------------------------------------------------ batches */

/* This iteration's rollouts on this rank. */
typedef struct rollouts {
    int n, R;
    int *prompt; /* (n) prompt index */
    int *plen, *rlen, *eos;
    int32_t **seq; /* (n) prompt + response */
    float *mask;   /* (n, R) */
    float *logp_old, *logp_ref, *values, *rewards, *adv, *ret, *kl;
    float *score, *raw;
} rollouts;

static void rollouts_free(rollouts *r) {
    if (r->seq)
        for (int i = 0; i < r->n; i++) free(r->seq[i]);
    free(r->prompt), free(r->plen), free(r->rlen), free(r->eos), free(r->seq), free(r->mask);
    free(r->logp_old), free(r->logp_ref), free(r->values), free(r->rewards), free(r->adv);
    free(r->ret), free(r->kl), free(r->score), free(r->raw);
}

/* A (B, T) training batch of rollouts which[0..B): tokens, next-token targets, the positions of
 * the response tokens' predictions (pos, npos) and their (b, k) cells (cell = b * R + k). */
typedef struct fbatch {
    int B, T, npos;
    int *tok, *tgt, *pos, *cell;
    float *sel;
} fbatch;

static void fbatch_build(fbatch *f, const rollouts *r, const int *which, int B) {
    int T = 1;
    for (int i = 0; i < B; i++) {
        int L = r->plen[which[i]] + r->rlen[which[i]];
        if (L > T) T = L;
    }
    f->B = B, f->T = T, f->npos = 0;
    size_t N = (size_t)B * T;
    f->tok = xrealloc(f->tok, sizeof(int) * N);
    f->tgt = xrealloc(f->tgt, sizeof(int) * N);
    f->sel = xrealloc(f->sel, sizeof(float) * N);
    f->pos = xrealloc(f->pos, sizeof(int) * (size_t)B * r->R);
    f->cell = xrealloc(f->cell, sizeof(int) * (size_t)B * r->R);
    for (int b = 0; b < B; b++) {
        int s = which[b], L = r->plen[s] + r->rlen[s];
        for (int t = 0; t < T; t++) {
            f->tok[(size_t)b * T + t] = t < L ? r->seq[s][t] : 0;
            f->tgt[(size_t)b * T + t] = t + 1 < L ? r->seq[s][t + 1] : -1;
            f->sel[(size_t)b * T + t] = 0.0f;
        }
        for (int k = 0; k < r->rlen[s]; k++) {
            int t = r->plen[s] - 1 + k;
            f->sel[(size_t)b * T + t] = 1.0f;
            f->pos[f->npos] = b * T + t;
            f->cell[f->npos] = s * r->R + k;
            f->npos++;
        }
    }
}

static void fbatch_free(fbatch *f) {
    free(f->tok), free(f->tgt), free(f->pos), free(f->cell), free(f->sel);
    memset(f, 0, sizeof *f);
}

static void scale_floats(float *x, size_t n, float s) {
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* Log-probs (and entropies, may be NULL) of the batch's response tokens under m at temperature
 * temp, written into cells of out (n, R). Leaves acts ready for model_lm_backward. */
static int policy_logprobs(const model *m, model_acts *a, const fbatch *f, float temp,
                           float *lp_full, float *ent_full, rl_err *e) {
    int rc = model_forward(m, a, f->tok, f->B, f->T, e);
    if (rc) return rc;
    scale_floats(a->hfinal, (size_t)f->B * f->T * m->cfg.dim, 1.0f / temp);
    model_lm_forward(m, a, f->tgt, f->sel, lp_full, ent_full);
    return ERR_OK;
}

/* ------------------------------------------------------------------ one iteration */

static int prompt_at(const rl_engine *E, long q, int n_prompts, int *perm, long *perm_epoch) {
    long ep = q / n_prompts;
    if (ep != *perm_epoch) {
        for (int i = 0; i < n_prompts; i++) perm[i] = i;
        rng r;
        rng_init(&r, E->cfg.seed, rng_purpose(RNG_DATA, 0x71), (uint32_t)ep);
        rng_shuffle_int(&r, perm, n_prompts);
        *perm_epoch = ep;
    }
    return perm[q % n_prompts];
}

static int numeric(rl_err *e, const char *what, long iter) {
    (void)iter; /* the stage names the step */
    return err_set(e, ERR_NUMERIC, "the %s is not finite; lower the learning rate", what);
}

int rl_iteration(rl_engine *E, const rl_prompts *P, const rl_scorer *scorer, MPI_Comm comm,
                 rl_stats *st, rl_err *e) {
    const rl_cfg *c = &E->cfg;
    double t0 = log_now();
    int n = E->n_local, R = c->max_new, rc = ERR_OK;
    float temp = c->sp.temperature;
    rollouts r = {0};
    r.n = n, r.R = R;
    size_t NR = (size_t)n * R;
    r.prompt = xcalloc((size_t)n, sizeof(int));
    r.plen = xcalloc((size_t)n, sizeof(int));
    r.rlen = xcalloc((size_t)n, sizeof(int));
    r.eos = xcalloc((size_t)n, sizeof(int));
    r.seq = xcalloc((size_t)n, sizeof(int32_t *));
#define ARR(x) r.x = xcalloc(NR, sizeof(float))
    ARR(mask), ARR(logp_old), ARR(logp_ref), ARR(values), ARR(rewards), ARR(adv), ARR(ret), ARR(kl);
#undef ARR
    r.score = xcalloc((size_t)n, sizeof(float));
    r.raw = xcalloc((size_t)n, sizeof(float));
    memset(st, 0, sizeof *st);
    st->kl_coef = E->kl.coef;

    /* ---- prompts and generation */
    {
        int *perm = xmalloc(sizeof(int) * (size_t)P->n);
        long perm_epoch = -1;
        long q0 = E->iter * (long)c->rollouts + (long)E->rank * n;
        gen_seq *gs = xcalloc((size_t)n, sizeof *gs);
        rng *rs = xcalloc((size_t)n, sizeof *rs);
        int *out = xmalloc(sizeof(int) * NR);
        for (int i = 0; i < n; i++) {
            r.prompt[i] = prompt_at(E, q0 + i, P->n, perm, &perm_epoch);
            r.plen[i] = P->len[r.prompt[i]];
            kvcache_reset(&E->cache, i);
            rng_init(&rs[i], c->seed, rng_purpose(RNG_SAMPLE, 0x71), (uint32_t)(q0 + i));
            gs[i].prompt = P->tok[r.prompt[i]];
            gs[i].prompt_len = r.plen[i];
            gs[i].slot = i;
            gs[i].r = &rs[i];
            gs[i].out = out + (size_t)i * R;
        }
        gen_config g = {.sp = c->sp, .max_new = R, .eos = c->eos, .n_eos = c->n_eos};
        rc = sample_generate(E->policy, &E->cache, gs, n, &g, e);
        for (int i = 0; i < n && !rc; i++) {
            r.rlen[i] = gs[i].n_out;
            r.eos[i] = gs[i].hit_eos;
            r.seq[i] = xmalloc(sizeof(int32_t) * (size_t)(r.plen[i] + r.rlen[i]));
            memcpy(r.seq[i], P->tok[r.prompt[i]], sizeof(int32_t) * (size_t)r.plen[i]);
            for (int k = 0; k < r.rlen[i]; k++) {
                r.seq[i][r.plen[i] + k] = gs[i].out[k];
                r.mask[(size_t)i * R + k] = 1.0f;
            }
        }
        free(perm), free(gs), free(rs), free(out);
    }
    st->t_generate = log_now() - t0;
    /* a failure anywhere must not leave the other ranks waiting in a collective */
    int bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) {
        rollouts_free(&r);
        return rc ? rc : err_set(e, ERR_INTERNAL, "rl: generation failed on another policy rank");
    }

    /* ---- scores travel while we compute reference log-probs, old log-probs and values */
    int *lens = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) lens[i] = r.plen[i] + r.rlen[i];
    rc = scorer->send(scorer->user, n, (const int32_t *const *)r.seq, lens, r.plen, e);
    double t1 = log_now();
    fbatch fb = {0};
    int *all = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) all[i] = i;
    size_t NT = (size_t)n * E->Tmax;
    float *lp_full = xmalloc(sizeof(float) * NT), *ent_full = xmalloc(sizeof(float) * NT);
    float *dlp_full = xmalloc(sizeof(float) * NT), *dent_full = xmalloc(sizeof(float) * NT);
    float *vbuf = xmalloc(sizeof(float) * NR);
    if (!rc) {
        fbatch_build(&fb, &r, all, n);
        rc = policy_logprobs(E->ref, &E->acts_pol, &fb, temp, lp_full, NULL, e);
        for (int j = 0; j < fb.npos && !rc; j++) r.logp_ref[fb.cell[j]] = lp_full[fb.pos[j]];
        if (!rc) rc = policy_logprobs(E->policy, &E->acts_pol, &fb, temp, lp_full, NULL, e);
        for (int j = 0; j < fb.npos && !rc; j++) r.logp_old[fb.cell[j]] = lp_full[fb.pos[j]];
        if (!rc) rc = model_forward(E->value, &E->acts_val, fb.tok, fb.B, fb.T, e);
        if (!rc) rc = model_score_forward(E->value, &E->acts_val, fb.pos, fb.npos, vbuf, e);
        for (int j = 0; j < fb.npos && !rc; j++) r.values[fb.cell[j]] = vbuf[j];
    }
    st->t_prepare = log_now() - t1;
    double t2 = log_now();
    if (!rc) rc = scorer->recv(scorer->user, n, r.raw, e);
    st->t_score_wait = log_now() - t2;
    free(lens);
    bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) {
        rc = rc ? rc : err_set(e, ERR_INTERNAL, "rl: scoring failed on another policy rank");
        goto out;
    }
    double t3 = log_now();

    /* ---- scores, per-token rewards, advantages */
    for (int i = 0; i < n; i++) {
        double s = r.raw[i];
        if (!isfinite(s)) {
            rc = err_set(e, ERR_NUMERIC, "the scorer returned %g for rollout %d: not finite", s, i);
            break;
        }
        if (c->reward_clip > 0)
            s = s < -c->reward_clip ? -c->reward_clip : s > c->reward_clip ? c->reward_clip : s;
        if (!r.eos[i]) s -= c->no_eos_penalty;
        r.score[i] = (float)s;
    }
    bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) {
        rc = rc ? rc : err_set(e, ERR_NUMERIC, "rl: a score is not finite on another policy rank");
        goto out;
    }
    int reinforce = c->algorithm == RL_REINFORCE;
    ppo_token_rewards(n, R, r.mask, r.logp_old, r.logp_ref, r.score,
                      reinforce ? 0.0f : (float)E->kl.coef, c->kl_estimator, r.rewards, r.kl);
    /* the KL figure is always k1 (log pi - log ref), whatever the penalty's estimator */
    double kl_seq = 0, reward_seq = 0;
    for (size_t j = 0; j < NR; j++) {
        if (r.mask[j] == 0.0f) continue;
        kl_seq += (double)r.logp_old[j] - r.logp_ref[j];
        reward_seq += r.rewards[j];
    }
    if (c->whiten_rewards) {
        double m[3], mean, var;
        ppo_moments(NR, r.rewards, r.mask, m);
        comm_allreduce_sum_f64(m, 3, comm);
        ppo_moments_stats(m, &mean, &var);
        ppo_whiten_apply(NR, r.rewards, r.mask, mean, var, 0);
    }
    if (reinforce)
        ppo_gae(n, R, r.mask, r.rewards, r.values, 1.0f, 1.0f, r.adv, r.ret);
    else
        ppo_gae(n, R, r.mask, r.rewards, r.values, c->gamma, c->lambda, r.adv, r.ret);
    double ev[5];
    ppo_explained_variance_moments(NR, r.mask, r.values, r.ret, ev);
    comm_allreduce_sum_f64(ev, 5, comm);
    st->explained_variance = ppo_explained_variance(ev);
    if (c->whiten_advantages) {
        double m[3], mean, var;
        ppo_moments(NR, r.adv, r.mask, m);
        comm_allreduce_sum_f64(m, 3, comm);
        ppo_moments_stats(m, &mean, &var);
        ppo_whiten_apply(NR, r.adv, r.mask, mean, var, 1);
    }

    /* ---- epochs of minibatches */
    {
        int nmb = n / E->mb_local;
        int *order = xmalloc(sizeof(int) * (size_t)n);
        double *counts = xmalloc(sizeof(double) * (size_t)nmb);
        size_t cap = (size_t)E->mb_local * R;
        float *ones = xmalloc(sizeof(float) * cap), *g_lp = xmalloc(sizeof(float) * cap);
        float *g_old = xmalloc(sizeof(float) * cap), *g_adv = xmalloc(sizeof(float) * cap);
        float *g_ref = xmalloc(sizeof(float) * cap), *g_ent = xmalloc(sizeof(float) * cap);
        float *g_d = xmalloc(sizeof(float) * cap), *g_de = xmalloc(sizeof(float) * cap);
        float *g_v = xmalloc(sizeof(float) * cap), *g_vold = xmalloc(sizeof(float) * cap);
        float *g_ret = xmalloc(sizeof(float) * cap);
        for (size_t j = 0; j < cap; j++) ones[j] = 1.0f;
        ppo_stats pst = {0}, vst = {0};
        double ent_sum = 0, ent_n = 0, gn_sum = 0, vgn_sum = 0, lr = 0;
        int n_steps = 0;
        for (int ep = 0; ep < c->epochs && !rc; ep++) {
            for (int i = 0; i < n; i++) order[i] = i;
            rng sr;
            rng_init(&sr, c->seed, rng_purpose(RNG_DATA, 0x72),
                     (uint32_t)(E->iter * 1000 + ep) * 4096u + (uint32_t)E->rank);
            rng_shuffle_int(&sr, order, n);
            for (int mb = 0; mb < nmb; mb++) {
                double cnt = 0;
                for (int i = 0; i < E->mb_local; i++) cnt += r.rlen[order[mb * E->mb_local + i]];
                counts[mb] = cnt;
            }
            comm_allreduce_sum_f64(counts, (size_t)nmb, comm);
            for (int mb = 0; mb < nmb && !rc; mb++) {
                const int *which = order + mb * E->mb_local;
                fbatch_build(&fb, &r, which, E->mb_local);
                int np = fb.npos;
                float scale = counts[mb] > 0 ? (float)(E->size / counts[mb]) : 0.0f;
                for (int j = 0; j < np; j++) {
                    int cl = fb.cell[j];
                    g_old[j] = r.logp_old[cl], g_adv[j] = r.adv[cl], g_ref[j] = r.logp_ref[cl];
                    g_vold[j] = r.values[cl], g_ret[j] = r.ret[cl];
                }
                /* policy */
                model_zero_grads(E->policy);
                rc = policy_logprobs(E->policy, &E->acts_pol, &fb, temp, lp_full, ent_full, e);
                /* a failure must not leave the other ranks in the allreduce */
                int bad_mb = rc != ERR_OK;
                comm_allreduce_max_int(&bad_mb, comm);
                if (bad_mb) {
                    if (!rc) rc = err_set(e, ERR_INTERNAL, "rl: another policy rank failed");
                    break;
                }
                for (int j = 0; j < np; j++)
                    g_lp[j] = lp_full[fb.pos[j]], g_ent[j] = ent_full[fb.pos[j]];
                if (ep == 0)
                    for (int j = 0; j < np; j++) ent_sum += g_ent[j], ent_n += 1;
                double loss = ppo_policy_loss((size_t)np, ones, g_lp, g_old, g_adv,
                                              reinforce ? 0.0f : c->clip, scale, g_d, &pst);
                if (reinforce)
                    loss += ppo_kl_loss((size_t)np, ones, g_lp, g_ref, c->kl_estimator,
                                        (float)E->kl.coef, scale, g_d);
                int use_ent = c->entropy_coef > 0;
                if (use_ent)
                    loss +=
                        ppo_entropy_bonus((size_t)np, ones, g_ent, c->entropy_coef, scale, g_de);
                if (!isfinite(loss)) {
                    rc = numeric(e, "policy loss", E->iter);
                    break;
                }
                memset(dlp_full, 0, sizeof(float) * (size_t)fb.B * fb.T);
                if (use_ent) memset(dent_full, 0, sizeof(float) * (size_t)fb.B * fb.T);
                for (int j = 0; j < np; j++) {
                    dlp_full[fb.pos[j]] = g_d[j];
                    if (use_ent) dent_full[fb.pos[j]] = g_de[j];
                }
                model_lm_backward(E->policy, &E->acts_pol, fb.tgt, dlp_full,
                                  use_ent ? dent_full : NULL);
                /* "h' = h / temperature" */
                scale_floats(E->acts_pol.dhfinal, (size_t)fb.B * fb.T * E->policy->cfg.dim,
                             1.0f / temp);
                model_backward(E->policy, &E->acts_pol, fb.tok);
                if ((rc = model_allreduce_grads(E->policy, comm, e))) break;
                optim_stats os;
                if ((rc = optim_step(&E->opt_pol, E->policy, &os, e))) {
                    err_prefix(e, "policy update");
                    break;
                }
                gn_sum += os.grad_norm, lr = os.lr;
                /* value */
                model_zero_grads(E->value);
                /* the same tokens went through the policy: no failure is possible here that
                 * the check above did not see (valid ids and shapes) */
                if ((rc = model_forward(E->value, &E->acts_val, fb.tok, fb.B, fb.T, e)) ||
                    (rc = model_score_forward(E->value, &E->acts_val, fb.pos, np, g_v, e)))
                    break;
                double vloss = ppo_value_loss((size_t)np, ones, g_v, g_vold, g_ret,
                                              reinforce ? 0.0f : c->value_clip, scale, g_d, &vst);
                if (!isfinite(vloss)) {
                    rc = numeric(e, "value loss", E->iter);
                    break;
                }
                if ((rc = model_score_backward(E->value, &E->acts_val, fb.pos, np, g_d, e))) break;
                model_backward(E->value, &E->acts_val, fb.tok);
                if ((rc = model_allreduce_grads(E->value, comm, e))) break;
                if ((rc = optim_step(&E->opt_val, E->value, &os, e))) {
                    err_prefix(e, "value update");
                    break;
                }
                vgn_sum += os.grad_norm;
                n_steps++;
                st->train_tokens += (double)fb.B * fb.T;
            }
        }
        free(order), free(counts), free(ones), free(g_lp), free(g_old), free(g_adv), free(g_ref);
        free(g_ent), free(g_d), free(g_de), free(g_v), free(g_vold), free(g_ret);
        if (rc) goto out; /* every rank fails the same collective sequence, or MPI aborts */

        /* ---- figures over all ranks, then the KL controller */
        double gen_tok = 0, eos = 0, sc = 0, raw = 0;
        for (int i = 0; i < n; i++)
            gen_tok += r.rlen[i], eos += r.eos[i], sc += r.score[i], raw += r.raw[i];
        double v[20] = {n,
                        gen_tok,
                        eos,
                        sc,
                        raw,
                        kl_seq,
                        reward_seq,
                        ent_sum,
                        ent_n,
                        pst.count,
                        pst.approx_kl,
                        pst.clipped,
                        vst.count,
                        vst.loss,
                        vst.clipped,
                        gn_sum,
                        vgn_sum,
                        n_steps,
                        st->train_tokens,
                        0};
        comm_allreduce_sum_f64(v, 20, comm);
        double N = v[0];
        st->gen_tokens = v[1];
        st->resp_len = v[1] / N;
        st->eos_rate = v[2] / N;
        st->score = v[3] / N;
        st->rm_score = v[4] / N;
        st->kl = v[5] / N;
        st->reward = v[6] / N;
        st->entropy = v[8] > 0 ? v[7] / v[8] : NAN;
        st->approx_kl = v[9] > 0 ? v[10] / v[9] : NAN;
        st->clipfrac = v[9] > 0 ? v[11] / v[9] : NAN;
        st->value_loss = v[12] > 0 ? v[13] / v[12] : NAN;
        st->value_clipfrac = v[12] > 0 ? v[14] / v[12] : NAN;
        st->grad_norm = v[17] > 0 ? v[15] / v[17] : NAN;
        st->value_grad_norm = v[17] > 0 ? v[16] / v[17] : NAN;
        st->train_tokens = v[18];
        st->lr = lr;
        ppo_kl_ctl_update(&E->kl, st->kl, N);
    }
    st->t_train = log_now() - t3 + st->t_prepare;
    E->iter++;
    if (n > 0) {
        st->sample_prompt_len = r.plen[0];
        st->sample_resp_len = r.rlen[0];
        st->sample_prompt = xmalloc(sizeof(int32_t) * (size_t)r.plen[0]);
        st->sample_resp = xmalloc(sizeof(int32_t) * (size_t)(r.rlen[0] ? r.rlen[0] : 1));
        memcpy(st->sample_prompt, r.seq[0], sizeof(int32_t) * (size_t)r.plen[0]);
        memcpy(st->sample_resp, r.seq[0] + r.plen[0], sizeof(int32_t) * (size_t)r.rlen[0]);
        st->sample_score = r.score[0];
    }
out:
    st->t_total = log_now() - t0;
    fbatch_free(&fb);
    free(all), free(lp_full), free(ent_full), free(dlp_full), free(dent_full), free(vbuf);
    rollouts_free(&r);
    return rc;
}

/* ------------------------------------------------------------------ log-probs of responses */

int rl_response_logprobs(const model *m, model_acts *acts, int n, const int32_t *const *seqs,
                         const int *plens, const int *lens, float temp, int batch, double *out,
                         rl_err *e) {
    if (batch < 1 || batch > acts->Bmax) batch = acts->Bmax;
    int R = 1;
    for (int i = 0; i < n; i++) {
        if (lens[i] > acts->Tmax || plens[i] < 1 || plens[i] > lens[i])
            return err_set(e, ERR_INPUT,
                           "log-probs: sequence %d (%d tokens, prompt %d) does not fit %d", i,
                           lens[i], plens[i], acts->Tmax);
        if (lens[i] - plens[i] > R) R = lens[i] - plens[i];
    }
    /* a rollouts view of the batch, so fbatch_build can lay it out */
    rollouts r = {0};
    r.R = R;
    fbatch fb = {0};
    float *lp = xmalloc(sizeof(float) * (size_t)batch * acts->Tmax);
    int *which = xmalloc(sizeof(int) * (size_t)batch);
    for (int i0 = 0; i0 < n; i0 += batch) {
        int k = n - i0 < batch ? n - i0 : batch;
        r.n = k;
        r.plen = (int *)plens + i0;
        int *rlen = xmalloc(sizeof(int) * (size_t)k);
        for (int j = 0; j < k; j++) rlen[j] = lens[i0 + j] - plens[i0 + j], which[j] = j;
        r.rlen = rlen;
        r.seq = (int32_t **)seqs + i0;
        fbatch_build(&fb, &r, which, k);
        int rc = policy_logprobs(m, acts, &fb, temp > 0 ? temp : 1.0f, lp, NULL, e);
        if (rc) {
            free(rlen);
            fbatch_free(&fb);
            free(lp), free(which);
            return rc;
        }
        for (int j = 0; j < k; j++) out[i0 + j] = 0;
        for (int q = 0; q < fb.npos; q++) out[i0 + fb.cell[q] / R] += lp[fb.pos[q]];
        free(rlen);
    }
    fbatch_free(&fb);
    free(lp), free(which);
    return ERR_OK;
}

/* ------------------------------------------------------------------ checkpoints */

static int save_model(ckpt_file *f, const char *g, const model *m, const optim *o, rl_err *e) {
    char name[64];
    int rc;
    snprintf(name, sizeof name, "%s/params", g);
    if ((rc = ckpt_write_f32(f, name, m->params, m->n_params, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_m", g);
    if ((rc = ckpt_write_f32(f, name, o->m, o->n, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_v", g);
    if ((rc = ckpt_write_f32(f, name, o->v, o->n, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_step", g);
    return ckpt_write_i64_scalar(f, name, o->step, e);
}

static int load_model(ckpt_file *f, const char *g, model *m, optim *o, rl_err *e) {
    char name[64];
    int rc;
    int64_t step;
    snprintf(name, sizeof name, "%s/params", g);
    if ((rc = ckpt_read_f32(f, name, m->params, m->n_params, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_m", g);
    if ((rc = ckpt_read_f32(f, name, o->m, o->n, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_v", g);
    if ((rc = ckpt_read_f32(f, name, o->v, o->n, e))) return rc;
    snprintf(name, sizeof name, "%s/adam_step", g);
    if ((rc = ckpt_read_i64_scalar(f, name, &step, e))) return rc;
    o->step = (long)step;
    return ERR_OK;
}

int rl_engine_save_policy(const rl_engine *E, ckpt_file *f, rl_err *e) {
    int rc;
    if ((rc = save_model(f, "policy", E->policy, &E->opt_pol, e))) return rc;
    if ((rc = ckpt_write_i64_scalar(f, "rl/iter", E->iter, e))) return rc;
    return ckpt_write_f64(f, "rl/kl_coef", &E->kl.coef, 1, e);
}

int rl_engine_save_value(const rl_engine *E, ckpt_file *f, rl_err *e) {
    return save_model(f, "value", E->value, &E->opt_val, e);
}

int rl_engine_load_policy(rl_engine *E, ckpt_file *f, rl_err *e) {
    int rc;
    int64_t it;
    if ((rc = load_model(f, "policy", E->policy, &E->opt_pol, e))) return rc;
    if ((rc = ckpt_read_i64_scalar(f, "rl/iter", &it, e))) return rc;
    E->iter = (long)it;
    return ckpt_read_f64(f, "rl/kl_coef", &E->kl.coef, 1, e);
}

int rl_engine_load_value(rl_engine *E, ckpt_file *f, rl_err *e) {
    return load_model(f, "value", E->value, &E->opt_val, e);
}
