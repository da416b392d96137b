/* ppo: the arithmetic of policy optimisation on per-token arrays, as pure functions: KL
 * estimators, per-token rewards, generalised advantage estimation, whitening, the clipped
 * policy and value losses with their gradients, the adaptive KL controller and a few figures
 * (explained variance). Each is checked against PyTorch (tests/ref/gen_ppo_ref.py) or values
 * derived by hand (tests/unit/test_ppo.c).
 *
 * Layout: a rollout batch of B responses is held as (B, R) arrays over response tokens: entry
 * (b, k) belongs to the k-th generated token of response b; mask (B, R) is 1 on the tokens a
 * response has (a prefix of its row) and 0 on the padding after it. logp (B, R) is the log-prob
 * of that token under the policy, given everything before it.
 *
 * Conventions (those most PPO implementations for language models agree on):
 *   r_k      = -beta * kl_k                        every token (k1/k2/k3 estimate, see below)
 *   r_last  += score                               the sequence's score on its last token
 *   delta_k  = r_k + gamma V_{k+1} - V_k           V past the last token is 0
 *   A_k      = delta_k + gamma lambda A_{k+1}      returns G_k = A_k + V_k
 *   policy   = max(-A ratio, -A clip(ratio, 1-eps, 1+eps)),  ratio = exp(logp - logp_old)
 *   value    = 0.5 max((V - G)^2, (V_old + clip(V - V_old, -c, c) - G)^2)
 * Losses are sums over the masked tokens times a caller-given `scale` (1 / tokens for a token
 * mean; data-parallel ranks pass ranks / global tokens, since the gradient allreduce averages).
 *
 * Not here: models, sampling, communication (whitening statistics over several ranks come from
 * ppo_moments + an allreduce by the caller). */
#ifndef RLAIF_PPO_H
#define RLAIF_PPO_H

#include <stddef.h>

/* KL estimators of KL(pi || ref) from one sample, with d = logp - logp_ref (Schulman's k1, k2,
 * k3): k1 = d, k2 = d^2 / 2, k3 = exp(-d) - 1 + d. k1 and k3 are unbiased; k3 is never
 * negative. Order as enum config_kl_estimator. */
enum ppo_kl { PPO_KL_K1 = 0, PPO_KL_K2 = 1, PPO_KL_K3 = 2 };
double ppo_kl_est(double logp, double logp_ref, int estimator);
/* d(estimate)/d(logp) */
double ppo_kl_est_grad(double logp, double logp_ref, int estimator);

/* Per-token rewards (B, R): -beta * kl estimate on every masked token, plus score[b] on the
 * last masked token of row b. kl_tok (B, R) (may be NULL) gets the raw estimates (0 off the
 * mask). Rows without tokens get nothing. */
void ppo_token_rewards(int B, int R, const float *mask, const float *logp, const float *logp_ref,
                       const float *score, float beta, int estimator, float *rewards,
                       float *kl_tok);

/* GAE per row, backwards from each row's last masked token (see the header comment). adv and
 * ret (B, R) are written on the mask and set to 0 off it. */
void ppo_gae(int B, int R, const float *mask, const float *rewards, const float *values,
             float gamma, float lambda, float *adv, float *ret);

/* Sums over the masked entries of x (n): out[0] = count, out[1] = sum x, out[2] = sum x^2
 * (double). Add these over ranks, then ppo_whiten_apply. */
void ppo_moments(size_t n, const float *x, const float *mask, double out[3]);
/* Mean and variance from summed moments; the variance is unbiased (n - 1), as torch.var. */
void ppo_moments_stats(const double m[3], double *mean, double *var);
/* x = (x - mean) / sqrt(var + 1e-8) on the mask, or x / sqrt(var + 1e-8) + 0 when !shift_mean
 * (then the mean is kept: x = (x - mean) / sd + mean). Entries off the mask are set to 0. */
void ppo_whiten_apply(size_t n, float *x, const float *mask, double mean, double var,
                      int shift_mean);
/* Both steps on one array (a single rank). */
void ppo_whiten(size_t n, float *x, const float *mask, int shift_mean);

/* Statistics of one loss evaluation: sums over the masked tokens (divide by count). */
typedef struct ppo_stats {
    double count;     /* masked tokens */
    double loss;      /* sum of per-token losses (unscaled) */
    double clipped;   /* tokens where the clipped term was the active one */
    double approx_kl; /* sum of (logp_old - logp)^2 / 2 */
    double ratio;     /* sum of ratios */
} ppo_stats;

/* Clipped surrogate policy loss. Returns scale * sum of per-token losses; dlogp (n) gets
 * scale * d(loss)/d(logp) (written, 0 off the mask). clip <= 0: no clipping (the importance-
 * weighted REINFORCE loss -A ratio, whose gradient at ratio 1 is the REINFORCE gradient). st
 * (may be NULL) is accumulated into. */
double ppo_policy_loss(size_t n, const float *mask, const float *logp, const float *logp_old,
                       const float *adv, float clip, float scale, float *dlogp, ppo_stats *st);

/* Clipped value loss (see the header comment); clip <= 0: plain 0.5 (V - G)^2. Returns scale *
 * the sum; dv (n) gets scale * d/dV (written). st->clipped counts tokens where the clipped
 * term is active. */
double ppo_value_loss(size_t n, const float *mask, const float *v, const float *v_old,
                      const float *ret, float clip, float scale, float *dv, ppo_stats *st);

/* KL as a loss term (REINFORCE, the paper's form): coef * scale * sum kl_est(logp, ref) over
 * the mask; its gradient is ADDED to dlogp. Returns the (scaled) loss. */
double ppo_kl_loss(size_t n, const float *mask, const float *logp, const float *logp_ref,
                   int estimator, float coef, float scale, float *dlogp);

/* Entropy bonus: returns -coef * scale * sum H over the mask and writes dH = -coef * scale
 * (0 off the mask) into dent (n). */
double ppo_entropy_bonus(size_t n, const float *mask, const float *entropy, float coef, float scale,
                         float *dent);

/* Adaptive KL controller (Ziegler et al. 2019): after an iteration of n_seqs responses with
 * mean KL kl per response,
 *   e = clip(kl / target - 1, -0.2, 0.2);  coef *= 1 + e * n_seqs / horizon.
 * A target <= 0 keeps coef fixed. */
typedef struct ppo_kl_ctl {
    double coef, target;
    double horizon;
} ppo_kl_ctl;
void ppo_kl_ctl_update(ppo_kl_ctl *c, double kl, double n_seqs);

/* Explained variance 1 - Var(ret - v) / Var(ret) from summed moments:
 * m = {count, sum ret, sum ret^2, sum (ret-v), sum (ret-v)^2}. NaN when Var(ret) is 0. */
void ppo_explained_variance_moments(size_t n, const float *mask, const float *v, const float *ret,
                                    double m[5]);
double ppo_explained_variance(const double m[5]);

#endif
