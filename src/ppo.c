/* ppo: see include/ppo.h. Sums in double, per-token values in float (the model's precision).
 * Not here: anything that needs a model or another rank. */
#include "ppo.h"

#include <math.h>
#include <string.h>

double ppo_kl_est(double logp, double logp_ref, int estimator) {
    double d = logp - logp_ref;
    switch (estimator) {
    case PPO_KL_K2:
        return 0.5 * d * d;
    case PPO_KL_K3:
        return expm1(-d) + d; /* exp(-d) - 1 + d without cancellation near 0 */
    default:
        return d;
    }
}

double ppo_kl_est_grad(double logp, double logp_ref, int estimator) {
    double d = logp - logp_ref;
    switch (estimator) {
    case PPO_KL_K2:
        return d;
    case PPO_KL_K3:
        return -expm1(-d); /* 1 - exp(-d) */
    default:
        return 1.0;
    }
}

/* Index one past the last masked token of a row (its masked tokens are a prefix). */
static int row_len(const float *mask_row, int R) {
    int n = R;
    while (n > 0 && mask_row[n - 1] == 0.0f) n--;
    return n;
}

void ppo_token_rewards(int B, int R, const float *mask, const float *logp, const float *logp_ref,
                       const float *score, float beta, int estimator, float *rewards,
                       float *kl_tok) {
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * R;
        float *rw = rewards + (size_t)b * R;
        int n = row_len(m, R);
        for (int k = 0; k < R; k++) {
            size_t i = (size_t)b * R + k;
            double kl = m[k] != 0.0f ? ppo_kl_est(logp[i], logp_ref[i], estimator) : 0.0;
            if (kl_tok) kl_tok[i] = (float)kl;
            rw[k] = m[k] != 0.0f ? (float)(-(double)beta * kl) : 0.0f;
        }
        if (n > 0) rw[n - 1] += score[b];
    }
}

void ppo_gae(int B, int R, const float *mask, const float *rewards, const float *values,
             float gamma, float lambda, float *adv, float *ret) {
    for (int b = 0; b < B; b++) {
        const float *m = mask + (size_t)b * R;
        const float *r = rewards + (size_t)b * R, *v = values + (size_t)b * R;
        float *a = adv + (size_t)b * R, *g = ret + (size_t)b * R;
        int n = row_len(m, R);
        for (int k = n; k < R; k++) a[k] = 0.0f, g[k] = 0.0f;
        double next_v = 0.0, last = 0.0;
        for (int k = n - 1; k >= 0; k--) {
            double delta = (double)r[k] + (double)gamma * next_v - (double)v[k];
            last = delta + (double)gamma * (double)lambda * last;
            a[k] = (float)last;
            g[k] = (float)(last + (double)v[k]);
            next_v = v[k];
        }
    }
}

void ppo_moments(size_t n, const float *x, const float *mask, double out[3]) {
    double c = 0, s = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) continue;
        c += 1, s += x[i], q += (double)x[i] * x[i];
    }
    out[0] = c, out[1] = s, out[2] = q;
}

void ppo_moments_stats(const double m[3], double *mean, double *var) {
    double c = m[0];
    *mean = c > 0 ? m[1] / c : 0.0;
    if (c > 1) {
        double v = (m[2] - c * (*mean) * (*mean)) / (c - 1);
        *var = v > 0 ? v : 0.0;
    } else {
        *var = 0.0;
    }
}

void ppo_whiten_apply(size_t n, float *x, const float *mask, double mean, double var,
                      int shift_mean) {
    double inv = 1.0 / sqrt(var + 1e-8);
    for (size_t i = 0; i < n; i++) {
        if (mask && mask[i] == 0.0f) {
            x[i] = 0.0f;
            continue;
        }
        double w = ((double)x[i] - mean) * inv;
        x[i] = (float)(shift_mean ? w : w + mean);
    }
}

void ppo_whiten(size_t n, float *x, const float *mask, int shift_mean) {
    double m[3], mean, var;
    ppo_moments(n, x, mask, m);
    ppo_moments_stats(m, &mean, &var);
    ppo_whiten_apply(n, x, mask, mean, var, shift_mean);
}

double ppo_policy_loss(size_t n, const float *mask, const float *logp, const float *logp_old,
                       const float *adv, float clip, float scale, float *dlogp, ppo_stats *st) {
    double total = 0, clipped = 0, akl = 0, rsum = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f) {
            if (dlogp) dlogp[i] = 0.0f;
            continue;
        }
        double d = (double)logp[i] - (double)logp_old[i];
        double ratio = exp(d), A = adv[i];
        double l1 = -A * ratio, loss = l1, g = -A * ratio;
        if (clip > 0) {
            double rc = ratio < 1.0 - clip ? 1.0 - clip : ratio > 1.0 + clip ? 1.0 + clip : ratio;
            double l2 = -A * rc;
            if (l2 > l1) {
                /* "max(-A ratio, -A clip(ratio))" picks the clipped term: constant in logp */
                loss = l2;
                g = rc == ratio ? -A * ratio : 0.0;
                clipped += 1;
            }
        }
        total += loss;
        akl += 0.5 * d * d;
        rsum += ratio;
        count += 1;
        if (dlogp) dlogp[i] = (float)(scale * g);
    }
    if (st) {
        st->count += count, st->loss += total, st->clipped += clipped;
        st->approx_kl += akl, st->ratio += rsum;
    }
    return scale * total;
}

double ppo_value_loss(size_t n, const float *mask, const float *v, const float *v_old,
                      const float *ret, float clip, float scale, float *dv, ppo_stats *st) {
    double total = 0, clipped = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f) {
            if (dv) dv[i] = 0.0f;
            continue;
        }
        double e1 = (double)v[i] - ret[i], l = 0.5 * e1 * e1, g = e1;
        if (clip > 0) {
            double dd = (double)v[i] - v_old[i];
            double dc = dd < -clip ? -clip : dd > clip ? clip : dd;
            double e2 = (double)v_old[i] + dc - ret[i], l2 = 0.5 * e2 * e2;
            if (l2 > l) {
                /* "max(.., (V_old + clip(V - V_old) - G)^2)": gradient through the clip only
                 * inside the band */
                l = l2;
                g = dc == dd ? e2 : 0.0;
                clipped += 1;
            }
        }
        total += l;
        count += 1;
        if (dv) dv[i] = (float)(scale * g);
    }
    if (st) st->count += count, st->loss += total, st->clipped += clipped;
    return scale * total;
}

double ppo_kl_loss(size_t n, const float *mask, const float *logp, const float *logp_ref,
                   int estimator, float coef, float scale, float *dlogp) {
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f) continue;
        total += ppo_kl_est(logp[i], logp_ref[i], estimator);
        if (dlogp)
            dlogp[i] +=
                (float)((double)coef * scale * ppo_kl_est_grad(logp[i], logp_ref[i], estimator));
    }
    return (double)coef * scale * total;
}

double ppo_entropy_bonus(size_t n, const float *mask, const float *entropy, float coef, float scale,
                         float *dent) {
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        int on = mask[i] != 0.0f;
        if (on) total += entropy[i];
        if (dent) dent[i] = on ? -coef * scale : 0.0f;
    }
    return -(double)coef * scale * total;
}

void ppo_kl_ctl_update(ppo_kl_ctl *c, double kl, double n_seqs) {
    if (c->target <= 0 || c->horizon <= 0) return;
    double err = kl / c->target - 1.0;
    err = err < -0.2 ? -0.2 : err > 0.2 ? 0.2 : err;
    c->coef *= 1.0 + err * n_seqs / c->horizon;
}

void ppo_explained_variance_moments(size_t n, const float *mask, const float *v, const float *ret,
                                    double m[5]) {
    memset(m, 0, 5 * sizeof *m);
    for (size_t i = 0; i < n; i++) {
        if (mask[i] == 0.0f) continue;
        double g = ret[i], r = (double)ret[i] - v[i];
        m[0] += 1, m[1] += g, m[2] += g * g, m[3] += r, m[4] += r * r;
    }
}

double ppo_explained_variance(const double m[5]) {
    if (m[0] < 2) return NAN;
    double mg = m[1] / m[0], vg = m[2] / m[0] - mg * mg;
    double mr = m[3] / m[0], vr = m[4] / m[0] - mr * mr;
    if (!(vg > 0)) return NAN;
    return 1.0 - vr / vg;
}
