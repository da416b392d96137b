/* model_train: activations of a (B, T) batch, the forward pass through the blocks to the final
 * norm, and its backward. All weight products are single GEMMs over the B*T rows (q|k|v and
 * gate|up fused); attention, norms, rotary and SwiGLU are the kernels of kernels.c.
 * Not here: the LM and scalar heads (model_head.c), the KV-cache path (model_infer.c), the
 * optimiser (optim.c). */
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "model.h"

/* Every buffer of model_acts with its size in floats, in one table so that create, free and
 * the byte count agree. */
typedef struct acts_plan {
    float **ptr;
    size_t n;
} acts_plan;

static int head_rows_for(const model_config *c, int N) {
    /* 128 MiB of logits per chunk: the head's three GEMMs (over V) run ~8% slower with 512-row
     * chunks than with 1024, and memory grows only with this constant, not with B*T */
    size_t rows = ((size_t)128 << 20) / (sizeof(float) * (size_t)c->vocab_size);
    if (rows < 16) rows = 16;
    if (rows > (size_t)N) rows = (size_t)N;
    return (int)rows;
}

static int plan(model_acts *a, const model_config *c, int B, int T, acts_plan *p) {
    size_t N = (size_t)B * T, C = (size_t)c->dim, L = (size_t)c->n_layers;
    size_t QKV = (size_t)model_qkv_dim(c), FF = (size_t)c->ffn_dim;
    size_t OD = (size_t)c->n_heads * c->head_dim, NH = (size_t)c->n_heads;
    size_t big = 2 * FF > QKV ? 2 * FF : QKV, small = FF > OD ? FF : OD;
    size_t hr = (size_t)head_rows_for(c, (int)N);
    int k = 0;
#define P(field, count) (p[k].ptr = &a->field, p[k].n = (count), k++)
    P(x, (L + 1) * N * C);
    P(xmid, L * N * C);
    P(xn1, L * N * C);
    P(xn2, L * N * C);
    P(rinv1, L * N);
    P(rinv2, L * N);
    P(qkv, L * N * QKV);
    P(att, L * (size_t)B * NH * T * T);
    P(atto, L * N * OD);
    P(gu, L * N * 2 * FF);
    P(hff, L * N * FF);
    P(hfinal, N * C);
    P(rinvf, N);
    P(dhfinal, N * C);
    P(dx, N * C);
    P(dxmid, N * C);
    P(dxn, N * C);
    P(dbig, N * big);
    P(dsmall, N * small);
    P(datt, (size_t)T * T);
    P(logits, hr * (size_t)c->vocab_size);
    P(hsel, hr * C);
    P(dhsel, hr * C);
    P(row_lse, N);
    P(row_ent, N);
#undef P
    return k;
}

#define MAX_PLAN 32

size_t model_acts_bytes(const model_config *cfg, int B, int T) {
    model_acts a;
    acts_plan p[MAX_PLAN];
    int k = plan(&a, cfg, B, T, p);
    size_t total = (size_t)B * T * 2 * sizeof(int); /* sel_idx, pos */
    for (int i = 0; i < k; i++) total += p[i].n * sizeof(float);
    return total;
}

int model_acts_create(model_acts *a, const model_config *cfg, int Bmax, int Tmax, rl_err *e) {
    memset(a, 0, sizeof *a);
    if (Bmax <= 0 || Tmax <= 0 || Tmax > cfg->max_seq)
        return err_set(e, ERR_INPUT, "activations: batch %d x %d out of range (max_seq %d)", Bmax,
                       Tmax, cfg->max_seq);
    size_t N;
    if (size_mul((size_t)Bmax, (size_t)Tmax, &N) || N > (size_t)INT32_MAX / 4)
        return err_set(e, ERR_INPUT, "activations: batch %d x %d too large", Bmax, Tmax);
    a->cfg = *cfg;
    a->Bmax = Bmax;
    a->Tmax = Tmax;
    acts_plan p[MAX_PLAN];
    int k = plan(a, cfg, Bmax, Tmax, p);
    for (int i = 0; i < k; i++) {
        *p[i].ptr = xmalloc_aligned(sizeof(float) * (p[i].n ? p[i].n : 1));
        memset(*p[i].ptr, 0, sizeof(float) * p[i].n);
    }
    a->head_rows = head_rows_for(cfg, (int)N);
    a->logits_cap = (size_t)a->head_rows * cfg->vocab_size;
    a->sel_idx = xmalloc(sizeof(int) * N);
    a->pos = xmalloc(sizeof(int) * N);
    a->keep_limit = (size_t)1 << 30;
    return ERR_OK;
}

void model_acts_free(model_acts *a) {
    if (!a || !a->x) return;
    acts_plan p[MAX_PLAN];
    int k = plan(a, &a->cfg, a->Bmax, a->Tmax, p);
    for (int i = 0; i < k; i++) free(*p[i].ptr);
    free(a->sel_idx);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

int model_forward(const model *m, model_acts *a, const int *tokens, int B, int T, rl_err *e) {
    const model_config *c = &m->cfg;
    if (B < 1 || T < 1 || B > a->Bmax || T > a->Tmax)
        return err_set(e, ERR_INPUT,
                       "model_forward: batch %d x %d outside the activations' %d x %d", B, T,
                       a->Bmax, a->Tmax);
    if (a->cfg.dim != c->dim || a->cfg.n_layers != c->n_layers ||
        a->cfg.vocab_size != c->vocab_size || a->cfg.ffn_dim != c->ffn_dim ||
        a->cfg.n_heads != c->n_heads || a->cfg.n_kv_heads != c->n_kv_heads ||
        a->cfg.head_dim != c->head_dim)
        return err_set(e, ERR_INTERNAL, "model_forward: activations made for another model");
    int N = B * T, C = c->dim, QKV = model_qkv_dim(c), FF = c->ffn_dim;
    int NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, OD = NH * HS;
    for (int i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return err_set(e, ERR_INPUT,
                           "model_forward: token %d at (%d, %d) outside the vocabulary (%d)",
                           tokens[i], i / T, i % T, c->vocab_size);
    a->B = B;
    a->T = T;
    a->n_sel = 0;
    for (int i = 0; i < N; i++) {
        memcpy(a->x + (size_t)i * C, m->p.tok_embd + (size_t)tokens[i] * C, sizeof(float) * C);
        a->pos[i] = i % T;
    }
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer *W = &m->p.layers[l];
        float *x = a->x + (size_t)l * N * C, *xnext = x + (size_t)N * C;
        float *xmid = a->xmid + (size_t)l * N * C;
        float *xn1 = a->xn1 + (size_t)l * N * C, *xn2 = a->xn2 + (size_t)l * N * C;
        float *qkv = a->qkv + (size_t)l * N * QKV, *atto = a->atto + (size_t)l * N * OD;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *gu = a->gu + (size_t)l * N * 2 * FF, *hff = a->hff + (size_t)l * N * FF;

        kern_rmsnorm_fwd(xn1, a->rinv1 + (size_t)l * N, x, W->attn_norm, N, C, c->norm_eps);
        blas_gemm_nt(N, QKV, C, 1.0f, xn1, C, W->wqkv, C, 0.0f, qkv, QKV);
        if (W->bqkv)
            for (int i = 0; i < N; i++) {
                float *restrict r = qkv + (size_t)i * QKV;
                for (int j = 0; j < QKV; j++) r[j] += W->bqkv[j];
            }
        kern_rope(qkv, N, QKV, NH, HS, a->pos, m->rope_cos, m->rope_sin, c->rope_neox, 0);
        kern_rope(qkv + OD, N, QKV, NKV, HS, a->pos, m->rope_cos, m->rope_sin, c->rope_neox, 0);
        kern_attn_fwd(atto, att, qkv, B, T, NH, NKV, HS);
        memcpy(xmid, x, sizeof(float) * (size_t)N * C);
        blas_gemm_nt(N, C, OD, 1.0f, atto, OD, W->wo, OD, 1.0f, xmid, C);

        kern_rmsnorm_fwd(xn2, a->rinv2 + (size_t)l * N, xmid, W->ffn_norm, N, C, c->norm_eps);
        blas_gemm_nt(N, 2 * FF, C, 1.0f, xn2, C, W->wgu, C, 0.0f, gu, 2 * FF);
        kern_swiglu_fwd(hff, gu, N, FF);
        memcpy(xnext, xmid, sizeof(float) * (size_t)N * C);
        blas_gemm_nt(N, C, FF, 1.0f, hff, FF, W->wdown, FF, 1.0f, xnext, C);
    }
    kern_rmsnorm_fwd(a->hfinal, a->rinvf, a->x + (size_t)c->n_layers * N * C, m->p.out_norm, N, C,
                     c->norm_eps);
    memset(a->dhfinal, 0, sizeof(float) * (size_t)N * C);
    return ERR_OK;
}

void model_backward(model *m, model_acts *a, const int *tokens) {
    const model_config *c = &m->cfg;
    int B = a->B, T = a->T, N = B * T, C = c->dim, QKV = model_qkv_dim(c), FF = c->ffn_dim;
    int NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, OD = NH * HS;
    float *dx = a->dx, *dxmid = a->dxmid, *dxn = a->dxn;
    memset(dx, 0, sizeof(float) * (size_t)N * C);
    kern_rmsnorm_bwd(dx, m->g.out_norm, a->dhfinal, a->x + (size_t)c->n_layers * N * C,
                     m->p.out_norm, a->rinvf, N, C);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const model_layer *W = &m->p.layers[l];
        model_layer *G = &m->g.layers[l];
        float *x = a->x + (size_t)l * N * C;
        float *xmid = a->xmid + (size_t)l * N * C;
        float *xn1 = a->xn1 + (size_t)l * N * C, *xn2 = a->xn2 + (size_t)l * N * C;
        float *qkv = a->qkv + (size_t)l * N * QKV, *atto = a->atto + (size_t)l * N * OD;
        float *att = a->att + (size_t)l * B * NH * T * T;
        float *gu = a->gu + (size_t)l * N * 2 * FF, *hff = a->hff + (size_t)l * N * FF;

        /* "xnext = xmid + hff Wdown^T" */
        memcpy(dxmid, dx, sizeof(float) * (size_t)N * C);
        blas_gemm_nn(N, FF, C, 1.0f, dx, C, W->wdown, FF, 0.0f, a->dsmall, FF);
        blas_gemm_tn(C, FF, N, 1.0f, dx, C, hff, FF, 1.0f, G->wdown, FF);
        /* "hff = silu(gate) * up", "gu = xn2 Wgu^T" */
        kern_swiglu_bwd(a->dbig, a->dsmall, gu, N, FF);
        blas_gemm_tn(2 * FF, C, N, 1.0f, a->dbig, 2 * FF, xn2, C, 1.0f, G->wgu, C);
        blas_gemm_nn(N, C, 2 * FF, 1.0f, a->dbig, 2 * FF, W->wgu, C, 0.0f, dxn, C);
        kern_rmsnorm_bwd(dxmid, G->ffn_norm, dxn, xmid, W->ffn_norm, a->rinv2 + (size_t)l * N, N,
                         C);

        /* "xmid = x + atto Wo^T" */
        memcpy(dx, dxmid, sizeof(float) * (size_t)N * C);
        blas_gemm_nn(N, OD, C, 1.0f, dxmid, C, W->wo, OD, 0.0f, a->dsmall, OD);
        blas_gemm_tn(C, OD, N, 1.0f, dxmid, C, atto, OD, 1.0f, G->wo, OD);
        kern_attn_bwd(a->dbig, a->datt, a->dsmall, att, qkv, B, T, NH, NKV, HS);
        /* rotary is a rotation: its backward rotates the gradient back */
        kern_rope(a->dbig, N, QKV, NH, HS, a->pos, m->rope_cos, m->rope_sin, c->rope_neox, 1);
        kern_rope(a->dbig + OD, N, QKV, NKV, HS, a->pos, m->rope_cos, m->rope_sin, c->rope_neox, 1);
        if (G->bqkv)
            for (int i = 0; i < N; i++) {
                const float *restrict r = a->dbig + (size_t)i * QKV;
                for (int j = 0; j < QKV; j++) G->bqkv[j] += r[j];
            }
        /* "qkv = xn1 Wqkv^T" */
        blas_gemm_tn(QKV, C, N, 1.0f, a->dbig, QKV, xn1, C, 1.0f, G->wqkv, C);
        blas_gemm_nn(N, C, QKV, 1.0f, a->dbig, QKV, W->wqkv, C, 0.0f, dxn, C);
        kern_rmsnorm_bwd(dx, G->attn_norm, dxn, x, W->attn_norm, a->rinv1 + (size_t)l * N, N, C);
    }
    for (int i = 0; i < N; i++) {
        float *restrict g = m->g.tok_embd + (size_t)tokens[i] * C;
        const float *restrict d = dx + (size_t)i * C;
        for (int j = 0; j < C; j++) g[j] += d[j];
    }
}
