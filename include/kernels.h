/* kernels: the engine's non-GEMM arithmetic, each as a plain reference (`*_ref`, the spec and
 * the fallback) and an optimised version written to vectorise (fast exp, fused passes, BLAS
 * for the attention products). Tests compare the two.
 *
 * Shapes use the legend of include/model.h; N is a number of rows (B*T or the rows of a step).
 * Backward kernels accumulate into gradients (+=) unless they say "writes".
 * Not here: the layer sequence (model_train.c, model_infer.c) and the LM head (model_head.c). */
#ifndef RLAIF_KERNELS_H
#define RLAIF_KERNELS_H

#include <math.h>
#include <stddef.h>

/* exp(x) for float, accurate to about 2 ulp on [-87, 88] (Cephes polynomial); vectorises. */
static inline float kern_expf(float x) {
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.37626f ? 88.37626f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick, r = x - n ln 2 in two steps */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* a NaN x gives a NaN p, which must come out (the callers' NaN checks depend on it): the
     * exponent is then built from 0 instead of (int)NaN, and shifted unsigned (a negative int
     * shifted left is undefined; UBSan caught it in a diverging run) */
    n = n == n ? n : 0.0f;
    union {
        unsigned u;
        float f;
    } s;
    s.u = (unsigned)((int)n + 127) << 23;
    return p * s.f;
}

/* Reductions with 16 independent lanes: gcc vectorises these without -ffast-math (it may not
 * reassociate a single float accumulator). Results differ from a sequential sum in rounding. */
#define KERN_LANES 16
static inline float kern_dot(const float *restrict a, const float *restrict b, int n) {
    float acc[KERN_LANES] = {0};
    int j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) acc[l] += a[j + l] * b[j + l];
    float s = 0;
    for (; j < n; j++) s += a[j] * b[j];
    for (int l = 0; l < KERN_LANES; l++) s += acc[l];
    return s;
}
static inline float kern_sum(const float *restrict a, int n) {
    float acc[KERN_LANES] = {0};
    int j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) acc[l] += a[j + l];
    float s = 0;
    for (; j < n; j++) s += a[j];
    for (int l = 0; l < KERN_LANES; l++) s += acc[l];
    return s;
}
static inline float kern_max(const float *restrict a, int n) {
    float acc[KERN_LANES];
    for (int l = 0; l < KERN_LANES; l++) acc[l] = -INFINITY;
    int j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) acc[l] = a[j + l] > acc[l] ? a[j + l] : acc[l];
    float m = -INFINITY;
    for (; j < n; j++) m = a[j] > m ? a[j] : m;
    for (int l = 0; l < KERN_LANES; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}
/* a[j] = exp(a[j] - m) for j < n; returns the sum of the new values */
static inline float kern_exp_shift_sum(float *restrict a, int n, float m) {
    float acc[KERN_LANES] = {0};
    int j = 0;
    for (; j + KERN_LANES <= n; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) {
            float e = kern_expf(a[j + l] - m);
            a[j + l] = e;
            acc[l] += e;
        }
    float s = 0;
    for (; j < n; j++) {
        a[j] = kern_expf(a[j] - m);
        s += a[j];
    }
    for (int l = 0; l < KERN_LANES; l++) s += acc[l];
    return s;
}

/* out (N,C) = x (N,C) / rms(x) * w (C); rinv (N) = 1/rms; rms = sqrt(mean(x^2) + eps) */
void kern_rmsnorm_fwd(float *out, float *rinv, const float *x, const float *w, int N, int C,
                      float eps);
void kern_rmsnorm_fwd_ref(float *out, float *rinv, const float *x, const float *w, int N, int C,
                          float eps);
/* dx (N,C) += d/dx, dw (C) += d/dw, from dout (N,C); x, w, rinv as in the forward */
void kern_rmsnorm_bwd(float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rinv, int N, int C);
void kern_rmsnorm_bwd_ref(float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rinv, int N, int C);

/* Rotary embedding in place on n_heads heads of size HS at the start of each of N rows of x
 * (row stride ld floats); row i is at position pos[i]. cos/sin tables are (max_seq, HS/2).
 * neox = 0 rotates (x[2j], x[2j+1]), neox = 1 rotates (x[j], x[j+HS/2]), by angle
 * pos * theta^(-2j/HS). inverse = 1 rotates by the negative angle (the backward). */
void kern_rope(float *x, int N, int ld, int n_heads, int HS, const int *pos, const float *cos_t,
               const float *sin_t, int neox, int inverse);
void kern_rope_ref(float *x, int N, int ld, int n_heads, int HS, const int *pos, float theta,
                   int neox, int inverse);
/* Fills the tables: cos_t[p*HS/2 + j] = cos(p * theta^(-2j/HS)) (computed in double). */
void kern_rope_tables(float *cos_t, float *sin_t, int max_seq, int HS, float theta);

/* h (N,FF) = silu(gu[:, :FF]) * gu[:, FF:]   (gu is (N, 2FF): gate | up) */
void kern_swiglu_fwd(float *h, const float *gu, int N, int FF);
void kern_swiglu_fwd_ref(float *h, const float *gu, int N, int FF);
/* dgu (N,2FF) writes d/dgate | d/dup from dh (N,FF) */
void kern_swiglu_bwd(float *dgu, const float *dh, const float *gu, int N, int FF);
void kern_swiglu_bwd_ref(float *dgu, const float *dh, const float *gu, int N, int FF);

/* Log-softmax statistics of one row z (V): returns log-sum-exp; *ent (may be NULL) gets the
 * entropy -sum p log p. Writes nothing. */
float kern_row_lse(const float *z, int V, float *ent);
float kern_row_lse_ref(const float *z, int V, float *ent);
/* dz (V) writes the gradient of (dlp * log p[y] + dent * H) with respect to the logits z (V),
 * given lse = log-sum-exp(z) and H: dz = dlp*(onehot(y) - p) - dent * p * (log p + H).
 * dz may alias z. y < 0 means no target (dlp ignored). */
void kern_row_lse_bwd(float *dz, const float *z, int V, float lse, float H, int y, float dlp,
                      float dent);
void kern_row_lse_bwd_ref(float *dz, const float *z, int V, float lse, float H, int y, float dlp,
                          float dent);

/* Cross-entropy row, fused for training: returns log p[y] of the logits z (V) and overwrites z
 * with dlp * (onehot(y) - p), the gradient of dlp * log p[y]. One exp per logit. */
float kern_row_logp_grad(float *z, int V, int y, float dlp);
float kern_row_logp_grad_ref(float *z, int V, int y, float dlp);

/* C (M,N) = A (M,K) W (N,K)^T + beta C for few rows M (decode steps): every W row is read
 * once, straight from the caller's matrix, with no packed copy (OpenBLAS packs all of W on
 * every call, which at M = 32 costs as much as the arithmetic). 4x4 blocks of dot products with
 * 16-lane accumulators, reduced by a transpose-and-add tree. */
void kern_gemm_nt_small(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                        float beta, float *C, int ldc);
void kern_gemm_nt_small_ref(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                            float beta, float *C, int ldc);

/* Causal self-attention over full sequences of one batch (positions 0..T-1).
 * qkv (B,T,QKV) holds q (NH*HS) | k (NKV*HS) | v (NKV*HS) per row, after rotary. Query head h
 * reads kv head h / (NH/NKV). Writes att (B,NH,T,T) (probabilities; only j <= t is meaningful)
 * and out (B,T,NH*HS). Scale 1/sqrt(HS). */
void kern_attn_fwd(float *out, float *att, const float *qkv, int B, int T, int NH, int NKV, int HS);
void kern_attn_fwd_ref(float *out, float *att, const float *qkv, int B, int T, int NH, int NKV,
                       int HS);
/* dqkv (B,T,QKV) writes the gradient w.r.t. q, k, v (post-rotary) from dout (B,T,NH*HS);
 * scratch (T,T). */
void kern_attn_bwd(float *dqkv, float *scratch, const float *dout, const float *att,
                   const float *qkv, int B, int T, int NH, int NKV, int HS);
void kern_attn_bwd_ref(float *dqkv, const float *dout, const float *att, const float *qkv, int B,
                       int T, int NH, int NKV, int HS);
/* Multiply-adds the blocked attention performs for (T, HS) per (b, head), forward only (QK^T
 * and AV); the backward does twice as many. For the FLOP count of the benchmark. */
double kern_attn_fwd_macs(int T, int HS);

#endif
