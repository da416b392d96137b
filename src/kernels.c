/* kernels: see include/kernels.h. Reference kernels first accumulate in double and use libm;
 * the optimised ones use float accumulators, kern_expf and restrict pointers so that gcc
 * vectorises them at -O3 -march=native, and BLAS for the attention products.
 * Not here: GEMMs of the weight matrices (model_train.c) and anything that allocates. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#include "blas.h"

/* ------------------------------------------------------------------------ RMSNorm */

void kern_rmsnorm_fwd_ref(float *out, float *rinv, const float *x, const float *w, int N, int C,
                          float eps) {
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xi[c] * xi[c];
        double r = 1.0 / sqrt(ss / C + eps);
        rinv[i] = (float)r;
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = (float)(xi[c] * r) * w[c];
    }
}

void kern_rmsnorm_fwd(float *restrict out, float *restrict rinv, const float *restrict x,
                      const float *restrict w, int N, int C, float eps) {
    for (int i = 0; i < N; i++) {
        const float *restrict xi = x + (size_t)i * C;
        float *restrict oi = out + (size_t)i * C;
        float r = 1.0f / sqrtf(kern_dot(xi, xi, C) / (float)C + eps);
        rinv[i] = r;
        for (int c = 0; c < C; c++) oi[c] = (xi[c] * r) * w[c];
    }
}

void kern_rmsnorm_bwd_ref(float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rinv, int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
        double r = rinv[i], s = 0;
        for (int c = 0; c < C; c++) s += (double)di[c] * w[c] * xi[c];
        /* out = x * r * w with r = (mean(x^2) + eps)^-1/2, dr/dx_c = -r^3 x_c / C */
        for (int c = 0; c < C; c++) {
            dx[(size_t)i * C + c] += (float)(di[c] * w[c] * r - xi[c] * r * r * r * s / C);
            dw[c] += (float)(di[c] * xi[c] * r);
        }
    }
}

void kern_rmsnorm_bwd(float *restrict dx, float *restrict dw, const float *restrict dout,
                      const float *restrict x, const float *restrict w, const float *restrict rinv,
                      int N, int C) {
    for (int i = 0; i < N; i++) {
        const float *restrict xi = x + (size_t)i * C;
        const float *restrict di = dout + (size_t)i * C;
        float *restrict dxi = dx + (size_t)i * C;
        float r = rinv[i], acc[KERN_LANES] = {0}, s = 0;
        int c0 = 0;
        for (; c0 + KERN_LANES <= C; c0 += KERN_LANES)
            for (int l = 0; l < KERN_LANES; l++) acc[l] += di[c0 + l] * w[c0 + l] * xi[c0 + l];
        for (; c0 < C; c0++) s += di[c0] * w[c0] * xi[c0];
        for (int l = 0; l < KERN_LANES; l++) s += acc[l];
        float k = r * r * r * s / (float)C;
        for (int c = 0; c < C; c++) {
            dxi[c] += di[c] * w[c] * r - xi[c] * k;
            dw[c] += di[c] * xi[c] * r;
        }
    }
}

/* ------------------------------------------------------------------------ rotary */

void kern_rope_tables(float *cos_t, float *sin_t, int max_seq, int HS, float theta) {
    int half = HS / 2;
    for (int p = 0; p < max_seq; p++)
        for (int j = 0; j < half; j++) {
            double freq = pow((double)theta, -2.0 * j / HS);
            double a = p * freq;
            cos_t[(size_t)p * half + j] = (float)cos(a);
            sin_t[(size_t)p * half + j] = (float)sin(a);
        }
}

void kern_rope_ref(float *x, int N, int ld, int n_heads, int HS, const int *pos, float theta,
                   int neox, int inverse) {
    int half = HS / 2;
    for (int i = 0; i < N; i++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)i * ld + (size_t)h * HS;
            for (int j = 0; j < half; j++) {
                double a = pos[i] * pow((double)theta, -2.0 * j / HS);
                double c = cos(a), s = inverse ? -sin(a) : sin(a);
                int i0 = neox ? j : 2 * j, i1 = neox ? j + half : 2 * j + 1;
                double x0 = v[i0], x1 = v[i1];
                v[i0] = (float)(x0 * c - x1 * s);
                v[i1] = (float)(x0 * s + x1 * c);
            }
        }
}

void kern_rope(float *x, int N, int ld, int n_heads, int HS, const int *pos, const float *cos_t,
               const float *sin_t, int neox, int inverse) {
    int half = HS / 2;
    float sgn = inverse ? -1.0f : 1.0f;
    for (int i = 0; i < N; i++) {
        const float *restrict c = cos_t + (size_t)pos[i] * half;
        const float *restrict s = sin_t + (size_t)pos[i] * half;
        for (int h = 0; h < n_heads; h++) {
            float *restrict v = x + (size_t)i * ld + (size_t)h * HS;
            if (neox) {
                for (int j = 0; j < half; j++) {
                    float x0 = v[j], x1 = v[j + half], sj = sgn * s[j];
                    v[j] = x0 * c[j] - x1 * sj;
                    v[j + half] = x0 * sj + x1 * c[j];
                }
            } else {
                for (int j = 0; j < half; j++) {
                    float x0 = v[2 * j], x1 = v[2 * j + 1], sj = sgn * s[j];
                    v[2 * j] = x0 * c[j] - x1 * sj;
                    v[2 * j + 1] = x0 * sj + x1 * c[j];
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ SwiGLU */

void kern_swiglu_fwd_ref(float *h, const float *gu, int N, int FF) {
    for (int i = 0; i < N; i++)
        for (int f = 0; f < FF; f++) {
            double g = gu[(size_t)i * 2 * FF + f], u = gu[(size_t)i * 2 * FF + FF + f];
            h[(size_t)i * FF + f] = (float)(g / (1.0 + exp(-g)) * u);
        }
}

void kern_swiglu_fwd(float *restrict h, const float *restrict gu, int N, int FF) {
    for (int i = 0; i < N; i++) {
        const float *restrict g = gu + (size_t)i * 2 * FF, *restrict u = g + FF;
        float *restrict hi = h + (size_t)i * FF;
        for (int f = 0; f < FF; f++) hi[f] = g[f] / (1.0f + kern_expf(-g[f])) * u[f];
    }
}

void kern_swiglu_bwd_ref(float *dgu, const float *dh, const float *gu, int N, int FF) {
    for (int i = 0; i < N; i++)
        for (int f = 0; f < FF; f++) {
            double g = gu[(size_t)i * 2 * FF + f], u = gu[(size_t)i * 2 * FF + FF + f];
            double s = 1.0 / (1.0 + exp(-g)), d = dh[(size_t)i * FF + f];
            /* h = g s(g) u: dh/dg = u (s + g s (1 - s)), dh/du = g s */
            dgu[(size_t)i * 2 * FF + f] = (float)(d * u * (s + g * s * (1 - s)));
            dgu[(size_t)i * 2 * FF + FF + f] = (float)(d * g * s);
        }
}

void kern_swiglu_bwd(float *restrict dgu, const float *restrict dh, const float *restrict gu, int N,
                     int FF) {
    for (int i = 0; i < N; i++) {
        const float *restrict g = gu + (size_t)i * 2 * FF, *restrict u = g + FF;
        const float *restrict d = dh + (size_t)i * FF;
        float *restrict dg = dgu + (size_t)i * 2 * FF, *restrict du = dg + FF;
        for (int f = 0; f < FF; f++) {
            float s = 1.0f / (1.0f + kern_expf(-g[f]));
            dg[f] = d[f] * u[f] * (s + g[f] * s * (1.0f - s));
            du[f] = d[f] * g[f] * s;
        }
    }
}

/* ------------------------------------------------------------------------ log-softmax rows */

float kern_row_lse_ref(const float *z, int V, float *ent) {
    double m = -INFINITY;
    for (int j = 0; j < V; j++) m = z[j] > m ? z[j] : m;
    double s = 0, sz = 0;
    for (int j = 0; j < V; j++) {
        double e = exp(z[j] - m);
        s += e;
        sz += e * (z[j] - m);
    }
    /* H = -sum p log p = log s - sum e (z - m) / s */
    if (ent) *ent = (float)(log(s) - sz / s);
    return (float)(m + log(s));
}

float kern_row_lse(const float *restrict z, int V, float *ent) {
    float m = kern_max(z, V);
    float s_acc[KERN_LANES] = {0}, z_acc[KERN_LANES] = {0}, s = 0, sz = 0;
    int j = 0;
    for (; j + KERN_LANES <= V; j += KERN_LANES)
        for (int l = 0; l < KERN_LANES; l++) {
            float d = z[j + l] - m, e = kern_expf(d);
            s_acc[l] += e;
            z_acc[l] += e * d;
        }
    for (; j < V; j++) {
        float d = z[j] - m, e = kern_expf(d);
        s += e;
        sz += e * d;
    }
    for (int l = 0; l < KERN_LANES; l++) s += s_acc[l], sz += z_acc[l];
    if (ent) *ent = logf(s) - sz / s;
    return m + logf(s);
}

void kern_row_lse_bwd_ref(float *dz, const float *z, int V, float lse, float H, int y, float dlp,
                          float dent) {
    for (int j = 0; j < V; j++) {
        double lp = (double)z[j] - lse, p = exp(lp);
        double d = -dlp * p - dent * p * (lp + H);
        if (j == y) d += dlp;
        dz[j] = (float)d;
    }
}

void kern_row_lse_bwd(float *dz, const float *z, int V, float lse, float H, int y, float dlp,
                      float dent) {
    if (y < 0) dlp = 0;
    if (dent == 0.0f) {
        for (int j = 0; j < V; j++) dz[j] = -dlp * kern_expf(z[j] - lse);
    } else {
        for (int j = 0; j < V; j++) {
            float lp = z[j] - lse, p = kern_expf(lp);
            dz[j] = -p * (dlp + dent * (lp + H));
        }
    }
    if (y >= 0 && y < V) dz[y] += dlp;
}

float kern_row_logp_grad_ref(float *z, int V, int y, float dlp) {
    float lse = kern_row_lse_ref(z, V, NULL);
    float lp = z[y] - lse;
    kern_row_lse_bwd_ref(z, z, V, lse, 0.0f, y, dlp, 0.0f);
    return lp;
}

float kern_row_logp_grad(float *z, int V, int y, float dlp) {
    float zy = z[y];
    float m = kern_max(z, V);
    float s = kern_exp_shift_sum(z, V, m); /* z now holds exp(z - m) */
    float k = -dlp / s;
    for (int j = 0; j < V; j++) z[j] *= k;
    z[y] += dlp;
    return zy - m - logf(s);
}

/* ------------------------------------------------------------------------ small-M GEMM */

void kern_gemm_nt_small_ref(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                            float beta, float *C, int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[(size_t)m * lda + k] * W[(size_t)n * ldw + k];
            float *c = C + (size_t)m * ldc + n;
            *c = (float)(s + (beta != 0.0f ? (double)beta * *c : 0.0));
        }
}

typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));

static inline v16f load16(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Given x, y (16 lanes each, partial sums of two values), returns 16 lanes holding 8 partials
 * of x then 8 of y: x.lo + x.hi | y.lo + y.hi. The next levels repeat this at 4, 2, 1 lanes. */
static inline v16f fold8(v16f x, v16f y) {
    const v16i lo = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
    const v16i hi = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
    return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}
static inline v16f fold4(v16f x, v16f y) {
    const v16i lo = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
    const v16i hi = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
    return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}
static inline v16f fold2(v16f x, v16f y) {
    const v16i lo = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
    const v16i hi = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
    return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}
static inline v16f fold1(v16f x, v16f y) {
    const v16i lo = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
    const v16i hi = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}

void kern_gemm_nt_small(int M, int N, int K, const float *A, int lda, const float *W, int ldw,
                        float beta, float *C, int ldc) {
    int K16 = K & ~15, M4 = M & ~3, N4 = N & ~3;
    /* a strip of 16 rows of W stays in L1 while every 4-row block of A passes over it, and
     * each A block stays in L1 over the strip's four 4-row blocks of W */
    for (int ns = 0; ns < N4; ns += 16)
        for (int m = 0; m < M4; m += 4)
            for (int n = ns; n < N4 && n < ns + 16; n += 4) {
                const float *w0 = W + (size_t)n * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw,
                            *w3 = w2 + ldw;
                const float *a0 = A + (size_t)m * lda, *a1 = a0 + lda, *a2 = a1 + lda,
                            *a3 = a2 + lda;
                v16f acc[16] = {0};
                for (int k = 0; k < K16; k += 16) {
                    v16f x0 = load16(a0 + k), x1 = load16(a1 + k), x2 = load16(a2 + k),
                         x3 = load16(a3 + k);
                    v16f y0 = load16(w0 + k), y1 = load16(w1 + k), y2 = load16(w2 + k),
                         y3 = load16(w3 + k);
                    acc[0] += x0 * y0, acc[1] += x0 * y1, acc[2] += x0 * y2, acc[3] += x0 * y3;
                    acc[4] += x1 * y0, acc[5] += x1 * y1, acc[6] += x1 * y2, acc[7] += x1 * y3;
                    acc[8] += x2 * y0, acc[9] += x2 * y1, acc[10] += x2 * y2, acc[11] += x2 * y3;
                    acc[12] += x3 * y0, acc[13] += x3 * y1, acc[14] += x3 * y2, acc[15] += x3 * y3;
                }
                /* 16 accumulators -> lane i holds the full sum of acc[perm(i)] */
                v16f f8[8], f4[4], f2[2];
                for (int i = 0; i < 8; i++) f8[i] = fold8(acc[2 * i], acc[2 * i + 1]);
                for (int i = 0; i < 4; i++) f4[i] = fold4(f8[2 * i], f8[2 * i + 1]);
                for (int i = 0; i < 2; i++) f2[i] = fold2(f4[2 * i], f4[2 * i + 1]);
                v16f sum = fold1(f2[0], f2[1]);
                /* after the folds, accumulator j's total sits in lane bitrev4(j): put it back */
                const v16i order = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
                v16f tot = __builtin_shuffle(sum, order); /* lane 4i + j: C[m + i][n + j] */
                if (K16 < K) {
                    float t[16];
                    memcpy(t, &tot, sizeof t);
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            for (int k = K16; k < K; k++)
                                t[4 * i + j] +=
                                    A[(size_t)(m + i) * lda + k] * W[(size_t)(n + j) * ldw + k];
                    memcpy(&tot, t, sizeof t);
                }
                float *c0 = C + (size_t)m * ldc + n;
                if (beta != 0.0f) {
                    v16f old;
                    for (int i = 0; i < 4; i++)
                        memcpy((float *)&old + 4 * i, c0 + (size_t)i * ldc, 16);
                    tot += beta * old;
                }
                for (int i = 0; i < 4; i++) memcpy(c0 + (size_t)i * ldc, (float *)&tot + 4 * i, 16);
            }
    /* ragged edges: rows past M4 (all columns) and columns past N4 */
    for (int m = 0; m < M; m++)
        for (int n = (m < M4 ? N4 : 0); n < N; n++) {
            float s = kern_dot(A + (size_t)m * lda, W + (size_t)n * ldw, K);
            float *c = C + (size_t)m * ldc + n;
            *c = beta != 0.0f ? s + beta * *c : s;
        }
}

/* ------------------------------------------------------------------------ attention */

void kern_attn_fwd_ref(float *out, float *att, const float *qkv, int B, int T, int NH, int NKV,
                       int HS) {
    int QKV = (NH + 2 * NKV) * HS, grp = NH / NKV;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / grp;
            float *A = att + ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * QKV + (size_t)h * HS;
                double m = -INFINITY;
                for (int j = 0; j < T; j++) A[(size_t)t * T + j] = 0;
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * QKV + (size_t)(NH + g) * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
                    s *= scale;
                    A[(size_t)t * T + j] = (float)s;
                    m = s > m ? s : m;
                }
                double sum = 0;
                for (int j = 0; j <= t; j++) sum += exp(A[(size_t)t * T + j] - m);
                for (int j = 0; j <= t; j++)
                    A[(size_t)t * T + j] = (float)(exp(A[(size_t)t * T + j] - m) / sum);
                float *o = out + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                for (int d = 0; d < HS; d++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++)
                        acc += (double)A[(size_t)t * T + j] *
                               qkv[((size_t)b * T + j) * QKV + (size_t)(NH + NKV + g) * HS + d];
                    o[d] = (float)acc;
                }
            }
        }
}

void kern_attn_bwd_ref(float *dqkv, const float *dout, const float *att, const float *qkv, int B,
                       int T, int NH, int NKV, int HS) {
    int QKV = (NH + 2 * NKV) * HS, grp = NH / NKV;
    double scale = 1.0 / sqrt((double)HS);
    memset(dqkv, 0, sizeof(float) * (size_t)B * T * QKV);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / grp;
            const float *A = att + ((size_t)b * NH + h) * T * T;
            for (int t = 0; t < T; t++) {
                const float *dO = dout + ((size_t)b * T + t) * NH * HS + (size_t)h * HS;
                const float *q = qkv + ((size_t)b * T + t) * QKV + (size_t)h * HS;
                float *dq = dqkv + ((size_t)b * T + t) * QKV + (size_t)h * HS;
                /* out_t = sum_j A_tj v_j  ->  dA_tj = dO . v_j, dv_j += A_tj dO */
                double dot = 0;
                for (int j = 0; j <= t; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * QKV + (size_t)(NH + NKV + g) * HS;
                    double da = 0;
                    for (int d = 0; d < HS; d++) da += (double)dO[d] * v[d];
                    dot += da * A[(size_t)t * T + j];
                }
                for (int j = 0; j <= t; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * QKV + (size_t)(NH + g) * HS;
                    const float *v = qkv + ((size_t)b * T + j) * QKV + (size_t)(NH + NKV + g) * HS;
                    float *dk = dqkv + ((size_t)b * T + j) * QKV + (size_t)(NH + g) * HS;
                    float *dv = dqkv + ((size_t)b * T + j) * QKV + (size_t)(NH + NKV + g) * HS;
                    double a = A[(size_t)t * T + j], da = 0;
                    for (int d = 0; d < HS; d++) da += (double)dO[d] * v[d];
                    /* softmax: dS_tj = A_tj (dA_tj - sum_i A_ti dA_ti); S = scale q.k */
                    double ds = a * (da - dot) * scale;
                    for (int d = 0; d < HS; d++) {
                        dq[d] += (float)(ds * k[d]);
                        dk[d] += (float)(ds * q[d]);
                        dv[d] += (float)(a * dO[d]);
                    }
                }
            }
        }
}

#define ATT_BLOCK 64

double kern_attn_fwd_macs(int T, int HS) {
    double macs = 0;
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T;
        macs += 2.0 * (r1 - r0) * (double)r1 * HS; /* QK^T and AV over keys 0..r1-1 */
    }
    return macs;
}

/* Softmax of the causal rows r0..r1-1 of S (ld T) over keys 0..t, zero for t < j < kend. */
static void causal_softmax_rows(float *S, int T, int r0, int r1, int kend) {
    for (int t = r0; t < r1; t++) {
        float *restrict row = S + (size_t)t * T;
        float m = kern_max(row, t + 1);
        float inv = 1.0f / kern_exp_shift_sum(row, t + 1, m);
        for (int j = 0; j <= t; j++) row[j] *= inv;
        for (int j = t + 1; j < kend; j++) row[j] = 0;
    }
}

void kern_attn_fwd(float *out, float *att, const float *qkv, int B, int T, int NH, int NKV,
                   int HS) {
    int QKV = (NH + 2 * NKV) * HS, grp = NH / NKV, OD = NH * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / grp;
            const float *Q = qkv + (size_t)b * T * QKV + (size_t)h * HS;
            const float *K = qkv + (size_t)b * T * QKV + (size_t)(NH + g) * HS;
            const float *Vv = qkv + (size_t)b * T * QKV + (size_t)(NH + NKV + g) * HS;
            float *A = att + ((size_t)b * NH + h) * T * T;
            float *O = out + (size_t)b * T * OD + (size_t)h * HS;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, n = r1 - r0;
                /* S[r0:r1, 0:r1] = scale Q[r0:r1] K[0:r1]^T */
                blas_gemm_nt(n, r1, HS, scale, Q + (size_t)r0 * QKV, QKV, K, QKV, 0.0f,
                             A + (size_t)r0 * T, T);
                causal_softmax_rows(A, T, r0, r1, r1);
                /* O[r0:r1] = A[r0:r1, 0:r1] V[0:r1] */
                blas_gemm_nn(n, HS, r1, 1.0f, A + (size_t)r0 * T, T, Vv, QKV, 0.0f,
                             O + (size_t)r0 * OD, OD);
            }
        }
}

void kern_attn_bwd(float *dqkv, float *scratch, const float *dout, const float *att,
                   const float *qkv, int B, int T, int NH, int NKV, int HS) {
    int QKV = (NH + 2 * NKV) * HS, grp = NH / NKV, OD = NH * HS;
    float scale = 1.0f / sqrtf((float)HS);
    memset(dqkv, 0, sizeof(float) * (size_t)B * T * QKV);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / grp;
            size_t base = (size_t)b * T * QKV;
            const float *Q = qkv + base + (size_t)h * HS;
            const float *K = qkv + base + (size_t)(NH + g) * HS;
            const float *Vv = qkv + base + (size_t)(NH + NKV + g) * HS;
            float *dQ = dqkv + base + (size_t)h * HS;
            float *dK = dqkv + base + (size_t)(NH + g) * HS;
            float *dV = dqkv + base + (size_t)(NH + NKV + g) * HS;
            const float *A = att + ((size_t)b * NH + h) * T * T;
            const float *dO = dout + (size_t)b * T * OD + (size_t)h * HS;
            float *dS = scratch;
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T, n = r1 - r0;
                /* "O = A V": dA = dO V^T, dV += A^T dO */
                blas_gemm_nt(n, r1, HS, 1.0f, dO + (size_t)r0 * OD, OD, Vv, QKV, 0.0f,
                             dS + (size_t)r0 * T, T);
                blas_gemm_tn(r1, HS, n, 1.0f, A + (size_t)r0 * T, T, dO + (size_t)r0 * OD, OD, 1.0f,
                             dV, QKV);
                /* "A = softmax(S)": dS = A (dA - rowsum(A dA)), then the scale of S */
                for (int t = r0; t < r1; t++) {
                    const float *restrict a = A + (size_t)t * T;
                    float *restrict d = dS + (size_t)t * T;
                    float dot = kern_dot(a, d, t + 1);
                    for (int j = 0; j <= t; j++) d[j] = a[j] * (d[j] - dot) * scale;
                    for (int j = t + 1; j < r1; j++) d[j] = 0;
                }
                /* "S = Q K^T": dQ = dS K, dK += dS^T Q */
                blas_gemm_nn(n, HS, r1, 1.0f, dS + (size_t)r0 * T, T, K, QKV, 0.0f,
                             dQ + (size_t)r0 * QKV, QKV);
                blas_gemm_tn(r1, HS, n, 1.0f, dS + (size_t)r0 * T, T, Q + (size_t)r0 * QKV, QKV,
                             1.0f, dK, QKV);
            }
        }
}
