/* model_head: what sits on top of the final norm in training: the LM head (cross-entropy,
 * per-token log-probs and entropies, their backward) and the scalar head of reward and value
 * models. Logits are computed only for the selected rows, in chunks of a->head_rows, so that a
 * (B, T, V) tensor exists only when the caller's log-probs are kept for a later backward and
 * fit in a->keep_limit.
 * Not here: the losses of PPO and of the reward model (their callers own them). */
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "model.h"

/* Collects the rows b*T+t where w != 0 (all when w is NULL) and the target is a token. */
static int select_rows(model_acts *a, const int *targets, const float *w, int V) {
    int N = a->B * a->T, n = 0;
    for (int i = 0; i < N; i++) {
        if (w && w[i] == 0.0f) continue;
        if (targets && (targets[i] < 0 || targets[i] >= V)) continue;
        a->sel_idx[n++] = i;
    }
    a->n_sel = n;
    return n;
}

static void gather(float *dst, const float *src, const int *idx, int n, int C) {
    for (int i = 0; i < n; i++)
        memcpy(dst + (size_t)i * C, src + (size_t)idx[i] * C, sizeof(float) * C);
}

/* dhfinal[idx[i]] += dh[i]; out.grad += dz^T h for the n rows of one chunk */
static void head_chunk_backward(model *m, model_acts *a, const float *dz, const int *idx, int n) {
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    blas_gemm_nn(n, C, V, 1.0f, dz, V, m->p.out, C, 0.0f, a->dhsel, C);
    blas_gemm_tn(V, C, n, 1.0f, dz, V, a->hsel, C, 1.0f, m->g.out, C);
    for (int i = 0; i < n; i++) {
        float *restrict d = a->dhfinal + (size_t)idx[i] * C;
        const float *restrict s = a->dhsel + (size_t)i * C;
        for (int j = 0; j < C; j++) d[j] += s[j];
    }
}

float model_ce(model *m, model_acts *a, const int *targets, const float *mask, float denom,
               int backward) {
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    int n = select_rows(a, targets, mask, V);
    if (denom <= 0) {
        double s = 0;
        for (int i = 0; i < n; i++) s += mask ? mask[a->sel_idx[i]] : 1.0f;
        denom = (float)s;
    }
    if (n == 0 || denom <= 0) return 0.0f;
    double loss = 0;
    for (int r0 = 0; r0 < n; r0 += a->head_rows) {
        int k = n - r0 < a->head_rows ? n - r0 : a->head_rows;
        const int *idx = a->sel_idx + r0;
        gather(a->hsel, a->hfinal, idx, k, C);
        blas_gemm_nt(k, V, C, 1.0f, a->hsel, C, m->p.out, C, 0.0f, a->logits, V);
        for (int i = 0; i < k; i++) {
            float *z = a->logits + (size_t)i * V;
            int y = targets[idx[i]];
            float w = mask ? mask[idx[i]] : 1.0f;
            /* loss = -sum w log p[y] / denom: d/dlogp[y] = -w / denom */
            if (backward)
                loss -= (double)w * kern_row_logp_grad(z, V, y, -w / denom);
            else
                loss -= (double)w * (z[y] - kern_row_lse(z, V, NULL));
        }
        if (backward) head_chunk_backward(m, a, a->logits, idx, k);
    }
    a->n_sel = 0; /* the logits buffer no longer holds a forward */
    return (float)(loss / denom);
}

void model_lm_forward(const model *m, model_acts *a, const int *targets, const float *sel,
                      float *logprob, float *entropy) {
    int C = m->cfg.dim, V = m->cfg.vocab_size, N = a->B * a->T;
    int n = select_rows(a, targets, sel, V);
    size_t need = (size_t)n * V;
    a->kept = 0;
    if (need * sizeof(float) <= a->keep_limit && n > 0) {
        if (need > a->logits_cap) {
            free(a->logits);
            a->logits = xmalloc_aligned(sizeof(float) * need);
            a->logits_cap = need;
        }
        a->kept = 1;
    }
    if (logprob) memset(logprob, 0, sizeof(float) * (size_t)N);
    if (entropy) memset(entropy, 0, sizeof(float) * (size_t)N);
    for (int r0 = 0; r0 < n; r0 += a->head_rows) {
        int k = n - r0 < a->head_rows ? n - r0 : a->head_rows;
        const int *idx = a->sel_idx + r0;
        float *z0 = a->kept ? a->logits + (size_t)r0 * V : a->logits;
        gather(a->hsel, a->hfinal, idx, k, C);
        blas_gemm_nt(k, V, C, 1.0f, a->hsel, C, m->p.out, C, 0.0f, z0, V);
        for (int i = 0; i < k; i++) {
            const float *z = z0 + (size_t)i * V;
            float H;
            float lse = kern_row_lse(z, V, &H);
            a->row_lse[r0 + i] = lse;
            a->row_ent[r0 + i] = H;
            if (logprob) logprob[idx[i]] = z[targets[idx[i]]] - lse;
            if (entropy) entropy[idx[i]] = H;
        }
    }
}

void model_lm_backward(model *m, model_acts *a, const int *targets, const float *dlogprob,
                       const float *dentropy) {
    int C = m->cfg.dim, V = m->cfg.vocab_size, n = a->n_sel;
    for (int r0 = 0; r0 < n; r0 += a->head_rows) {
        int k = n - r0 < a->head_rows ? n - r0 : a->head_rows;
        const int *idx = a->sel_idx + r0;
        float *z0 = a->kept ? a->logits + (size_t)r0 * V : a->logits;
        gather(a->hsel, a->hfinal, idx, k, C);
        if (!a->kept) blas_gemm_nt(k, V, C, 1.0f, a->hsel, C, m->p.out, C, 0.0f, z0, V);
        for (int i = 0; i < k; i++) {
            float *z = z0 + (size_t)i * V;
            float dlp = dlogprob ? dlogprob[idx[i]] : 0.0f;
            float dent = dentropy ? dentropy[idx[i]] : 0.0f;
            kern_row_lse_bwd(z, z, V, a->row_lse[r0 + i], a->row_ent[r0 + i], targets[idx[i]], dlp,
                             dent);
        }
        head_chunk_backward(m, a, z0, idx, k);
    }
    a->n_sel = 0;
    a->kept = 0;
}

/* Positions must index rows of the last forward; a bad one is a caller bug, refused. */
static int check_pos(const model_acts *a, const int *pos, int n, const char *what, rl_err *e) {
    int N = a->B * a->T;
    for (int i = 0; i < n; i++)
        if (pos[i] < 0 || pos[i] >= N)
            return err_set(e, ERR_INPUT, "%s: position %d (entry %d) outside the batch's %d x %d",
                           what, pos[i], i, a->B, a->T);
    return ERR_OK;
}

int model_lm_logits(const model *m, const model_acts *a, const int *pos, int n, float *logits,
                    rl_err *e) {
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    if (check_pos(a, pos, n, "model_lm_logits", e)) return e ? e->code : ERR_INPUT;
    for (int r0 = 0; r0 < n; r0 += a->head_rows) {
        int k = n - r0 < a->head_rows ? n - r0 : a->head_rows;
        gather(a->hsel, a->hfinal, pos + r0, k, C);
        blas_gemm_nt(k, V, C, 1.0f, a->hsel, C, m->p.out, C, 0.0f, logits + (size_t)r0 * V, V);
    }
    return ERR_OK;
}

int model_score_forward(const model *m, const model_acts *a, const int *pos, int n, float *score,
                        rl_err *e) {
    int C = m->cfg.dim;
    if (!m->p.score_w)
        return err_set(e, ERR_INPUT, "model_score_forward: model has no scalar head");
    if (check_pos(a, pos, n, "model_score_forward", e)) return e ? e->code : ERR_INPUT;
    for (int i = 0; i < n; i++)
        score[i] = kern_dot(m->p.score_w, a->hfinal + (size_t)pos[i] * C, C) + m->p.score_b[0];
    return ERR_OK;
}

int model_score_backward(model *m, model_acts *a, const int *pos, int n, const float *dscore,
                         rl_err *e) {
    int C = m->cfg.dim;
    if (!m->p.score_w || !m->g.score_w)
        return err_set(e, ERR_INPUT, "model_score_backward: no scalar head or no gradient buffer");
    if (check_pos(a, pos, n, "model_score_backward", e)) return e ? e->code : ERR_INPUT;
    for (int i = 0; i < n; i++) {
        float d = dscore[i];
        const float *restrict h = a->hfinal + (size_t)pos[i] * C;
        float *restrict dh = a->dhfinal + (size_t)pos[i] * C;
        for (int j = 0; j < C; j++) {
            m->g.score_w[j] += d * h[j];
            dh[j] += d * m->p.score_w[j];
        }
        m->g.score_b[0] += d;
    }
    return ERR_OK;
}
