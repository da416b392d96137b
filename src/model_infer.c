/* model_infer: the KV cache and model_step, the one inference entry point: it appends new
 * tokens to any set of cached sequences (prefill and decode alike), runs them through the
 * model with one GEMM per weight matrix over all new rows, and computes logits only for the
 * rows the caller asks for. Attention reads the cache; a slot can inherit another slot's prefix
 * (kvcache_copy_prefix) so that a long shared prompt is prefilled once.
 * Not here: sampling and the generation loop (sample.c), training (model_train.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kernels.h"
#include "model.h"

size_t kvcache_bytes(const model_config *cfg, int n_slots, int max_seq) {
    return 2 * sizeof(float) * (size_t)cfg->n_layers * n_slots * cfg->n_kv_heads * max_seq *
           cfg->head_dim;
}

int kvcache_create(kvcache *c, const model_config *cfg, int n_slots, int max_seq, rl_err *e) {
    memset(c, 0, sizeof *c);
    if (n_slots <= 0 || max_seq <= 0 || max_seq > cfg->max_seq)
        return err_set(e, ERR_INPUT, "kv cache: %d slots of %d tokens out of range (max_seq %d)",
                       n_slots, max_seq, cfg->max_seq);
    size_t n = (size_t)cfg->n_layers, t;
    if (size_mul(n, (size_t)n_slots, &n) || size_mul(n, (size_t)cfg->n_kv_heads, &n) ||
        size_mul(n, (size_t)max_seq, &n) || size_mul(n, (size_t)cfg->head_dim, &n) ||
        size_mul(n, sizeof(float), &t))
        return err_set(e, ERR_INPUT, "kv cache: %d slots of %d tokens overflow", n_slots, max_seq);
    c->n_layers = cfg->n_layers;
    c->n_slots = n_slots;
    c->max_seq = max_seq;
    c->n_kv_heads = cfg->n_kv_heads;
    c->head_dim = cfg->head_dim;
    c->k = xmalloc_aligned(t);
    c->v = xmalloc_aligned(t);
    c->len = xcalloc((size_t)n_slots, sizeof(int));
    return ERR_OK;
}

void kvcache_free(kvcache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->len);
    free(c->ws);
    free(c->iws);
    memset(c, 0, sizeof *c);
}

void kvcache_reset(kvcache *c, int slot) {
    if (slot >= 0 && slot < c->n_slots) c->len[slot] = 0;
}

/* Block of one layer, slot and kv head: keys (HS, max_seq) transposed, so that a decode step's
 * scores are HS axpys over the positions; values (max_seq, HS). */
static inline size_t kv_off(const kvcache *c, int l, int slot, int g) {
    return ((((size_t)l * c->n_slots + slot) * c->n_kv_heads + g) * c->max_seq) * c->head_dim;
}

int kvcache_copy_prefix(kvcache *c, int src, int dst, int n_tokens, rl_err *e) {
    if (src < 0 || src >= c->n_slots || dst < 0 || dst >= c->n_slots)
        return err_set(e, ERR_INPUT, "kv cache: slot %d or %d out of range (%d slots)", src, dst,
                       c->n_slots);
    if (n_tokens < 0 || n_tokens > c->len[src])
        return err_set(e, ERR_INPUT, "kv cache: cannot copy %d tokens from slot %d holding %d",
                       n_tokens, src, c->len[src]);
    if (src != dst)
        for (int l = 0; l < c->n_layers; l++)
            for (int g = 0; g < c->n_kv_heads; g++) {
                size_t so = kv_off(c, l, src, g), dof = kv_off(c, l, dst, g);
                for (int d = 0; d < c->head_dim; d++) /* keys are stored transposed */
                    memcpy(c->k + dof + (size_t)d * c->max_seq, c->k + so + (size_t)d * c->max_seq,
                           sizeof(float) * (size_t)n_tokens);
                memcpy(c->v + dof, c->v + so, sizeof(float) * (size_t)n_tokens * c->head_dim);
            }
    c->len[dst] = n_tokens;
    return ERR_OK;
}

/* Rows up to which model_step uses kern_gemm_nt_small rather than OpenBLAS's gemm. */
#define SMALL_M 40
/* Rows one pass of model_step handles; longer calls are cut into pieces. */
#define STEP_ROWS 2048

/* y (M,N) = x (M,K) W^T (N,K) + beta y. One row goes through gemv, few rows through our
 * small-M kernel: OpenBLAS's gemm packs all of W on every call, which for decode steps costs as
 * much as the arithmetic. */
static void linear(int M, int N, int K, const float *x, const float *W, float beta, float *y) {
    if (M == 1)
        blas_gemv(N, K, W, x, beta, y);
    else if (M <= SMALL_M)
        kern_gemm_nt_small(M, N, K, x, K, W, K, beta, y, N);
    else
        blas_gemm_nt(M, N, K, 1.0f, x, K, W, K, beta, y, N);
}

/* Scratch of one model_step, carved from c->ws. */
typedef struct step_ws {
    float *x, *xn; /* (R, C) */
    float *qkv;    /* (R, QKV) */
    float *atto;   /* (R, NH*HS) */
    float *gu;     /* (R, 2FF) */
    float *hff;    /* (R, FF) */
    float *S;      /* (max n_new, max len) attention scores of one head */
    float *hsel;   /* (n_out, C) rows that reach a head */
    int *pos;      /* (R) position of each row */
    int *row0;     /* (n_seq) first row of each sequence */
    int *out_rows; /* (n_out) rows whose outputs are wanted */
} step_ws;

static void step_ws_get(kvcache *c, const model_config *cfg, int R, int n_seq, size_t s_floats,
                        int n_out, step_ws *w) {
    size_t C = (size_t)cfg->dim, QKV = (size_t)model_qkv_dim(cfg), FF = (size_t)cfg->ffn_dim;
    size_t OD = (size_t)cfg->n_heads * cfg->head_dim;
    size_t need = (size_t)R * (2 * C + QKV + OD + 3 * FF) + s_floats + (size_t)n_out * C;
    need += 16 * 8; /* alignment slack */
    if (need > c->ws_cap) {
        free(c->ws);
        c->ws = xmalloc_aligned(sizeof(float) * need);
        c->ws_cap = need;
    }
    size_t ineed = (size_t)R + (size_t)n_seq + (size_t)n_out;
    if (ineed > c->iws_cap) {
        free(c->iws);
        c->iws = xmalloc(sizeof(int) * ineed);
        c->iws_cap = ineed;
    }
    float *p = c->ws;
#define TAKE(field, n) (w->field = p, p += ((n) + 15) & ~(size_t)15)
    TAKE(x, (size_t)R * C);
    TAKE(xn, (size_t)R * C);
    TAKE(qkv, (size_t)R * QKV);
    TAKE(atto, (size_t)R * OD);
    TAKE(gu, (size_t)R * 2 * FF);
    TAKE(hff, (size_t)R * FF);
    TAKE(S, s_floats);
    TAKE(hsel, (size_t)n_out * C);
#undef TAKE
    w->pos = c->iws;
    w->row0 = c->iws + R;
    w->out_rows = c->iws + R + n_seq;
}

/* Attention of the n new rows of one sequence (positions p0..p0+n-1) over the cached keys
 * 0..p0+n-1 of its slot, for every query head. */
static void step_attention(const model_config *cfg, const kvcache *c, int l, int slot, int p0,
                           int n, const float *qkv, float *atto, float *S) {
    int NH = cfg->n_heads, NKV = cfg->n_kv_heads, HS = cfg->head_dim, grp = NH / NKV;
    int QKV = model_qkv_dim(cfg), OD = NH * HS, len = p0 + n, ms = c->max_seq;
    float scale = 1.0f / sqrtf((float)HS);
    for (int h = 0; h < NH; h++) {
        int g = h / grp;
        const float *Kt = c->k + kv_off(c, l, slot, g), *Vc = c->v + kv_off(c, l, slot, g);
        const float *Q = qkv + (size_t)h * HS;
        float *O = atto + (size_t)h * HS;
        if (n == 1) {
            /* decode: S = scale q K^T as HS axpys over the positions; O = softmax(S) V */
            for (int j = 0; j < len; j++) S[j] = 0;
            for (int d = 0; d < HS; d++) {
                const float *restrict kd = Kt + (size_t)d * ms;
                float *restrict sj = S;
                float qd = scale * Q[d];
                for (int j = 0; j < len; j++) sj[j] += qd * kd[j];
            }
            float m = kern_max(S, len);
            float inv = 1.0f / kern_exp_shift_sum(S, len, m);
            for (int d = 0; d < HS; d++) O[d] = 0;
            for (int j = 0; j < len; j++) {
                const float *restrict v = Vc + (size_t)j * HS;
                float *restrict o = O;
                float p = S[j] * inv;
                for (int d = 0; d < HS; d++) o[d] += p * v[d];
            }
            continue;
        }
        blas_gemm_nn(n, len, HS, scale, Q, QKV, Kt, ms, 0.0f, S, len);
        for (int i = 0; i < n; i++) {
            float *row = S + (size_t)i * len;
            int valid = p0 + i + 1;
            float m = kern_max(row, valid);
            float inv = 1.0f / kern_exp_shift_sum(row, valid, m);
            for (int j = 0; j < valid; j++) row[j] *= inv;
            for (int j = valid; j < len; j++) row[j] = 0;
        }
        blas_gemm_nn(n, HS, len, 1.0f, S, len, Vc, HS, 0.0f, O, OD);
    }
}

static void step_core(const model *m, kvcache *c, int n_seq, const int *slots, const int *n_new,
                      const int *tokens, const model_step_out *out);

int model_step(const model *m, kvcache *c, int n_seq, const int *slots, const int *n_new,
               const int *tokens, const model_step_out *out, rl_err *e) {
    const model_config *cfg = &m->cfg;
    int V = cfg->vocab_size, NKV = cfg->n_kv_heads, HS = cfg->head_dim;
    if (c->n_layers != cfg->n_layers || c->n_kv_heads != NKV || c->head_dim != HS)
        return err_set(e, ERR_INTERNAL, "model_step: the KV cache was made for another model");
    int R = 0;
    for (int i = 0; i < n_seq; i++) {
        int s = slots[i];
        if (s < 0 || s >= c->n_slots)
            return err_set(e, ERR_INPUT, "model_step: slot %d out of range (%d slots)", s,
                           c->n_slots);
        for (int j = 0; j < i; j++)
            if (slots[j] == s) return err_set(e, ERR_INPUT, "model_step: slot %d twice", s);
        if (n_new[i] < 1 || c->len[s] + n_new[i] > c->max_seq)
            return err_set(e, ERR_INPUT,
                           "model_step: slot %d holds %d tokens, %d more exceed the cache's %d", s,
                           c->len[s], n_new[i], c->max_seq);
        R += n_new[i];
    }
    for (int r = 0; r < R; r++)
        if (tokens[r] < 0 || tokens[r] >= V)
            return err_set(e, ERR_INPUT,
                           "model_step: token %d at row %d outside the vocabulary "
                           "(%d)",
                           tokens[r], r, V);
    if (out && out->score && !m->p.score_w)
        return err_set(e, ERR_INPUT,
                       "model_step: a score was asked of a model without a scalar "
                       "head");
    int max_rows = c->step_rows > 0 ? c->step_rows : STEP_ROWS;
    if (R <= max_rows) {
        step_core(m, c, n_seq, slots, n_new, tokens, out);
        return ERR_OK;
    }
    /* Too many rows for one pass (scratch grows with rows x context): cut the sequences into
     * pieces of at most STEP_ROWS rows, in order, and run groups of pieces with distinct slots.
     * Rows stay in order, so all_logits / hidden of a group are a contiguous range; per-sequence
     * outputs come from the piece that holds the sequence's last token. */
    int *gs = xmalloc(sizeof(int) * n_seq), *gn = xmalloc(sizeof(int) * n_seq);
    int *gi = xmalloc(sizeof(int) * n_seq);
    float *glog = out && out->logits ? xmalloc(sizeof(float) * (size_t)n_seq * V) : NULL;
    float *gsc = out && out->score ? xmalloc(sizeof(float) * n_seq) : NULL;
    int ng = 0, grows = 0, grow0 = 0;
    for (int i = 0; i <= n_seq; i++) {
        int left = i < n_seq ? n_new[i] : 0, done = 0;
        do {
            int piece = left - done < max_rows ? left - done : max_rows;
            int clash = 0;
            for (int k = 0; k < ng && i < n_seq; k++) clash |= gs[k] == slots[i];
            if (ng > 0 && (i == n_seq || grows + piece > max_rows || clash)) {
                model_step_out o = {0};
                if (out) {
                    o.logits = glog, o.score = gsc;
                    o.all_logits = out->all_logits ? out->all_logits + (size_t)grow0 * V : NULL;
                    o.hidden = out->hidden ? out->hidden + (size_t)grow0 * cfg->dim : NULL;
                }
                step_core(m, c, ng, gs, gn, tokens + grow0, out ? &o : NULL);
                for (int k = 0; k < ng; k++) {
                    int q = gi[k];
                    if (q < 0) continue; /* not the sequence's last piece */
                    if (glog)
                        memcpy(out->logits + (size_t)q * V, glog + (size_t)k * V,
                               sizeof(float) * V);
                    if (gsc) out->score[q] = gsc[k];
                }
                grow0 += grows;
                ng = 0, grows = 0;
            }
            if (i == n_seq) break;
            gs[ng] = slots[i], gn[ng] = piece;
            gi[ng] = done + piece == left ? i : -1;
            ng++, grows += piece, done += piece;
        } while (done < left);
    }
    free(gs), free(gn), free(gi), free(glog), free(gsc);
    return ERR_OK;
}

/* The step itself, on validated arguments and few enough rows. */
static void step_core(const model *m, kvcache *c, int n_seq, const int *slots, const int *n_new,
                      const int *tokens, const model_step_out *out) {
    const model_config *cfg = &m->cfg;
    int C = cfg->dim, QKV = model_qkv_dim(cfg), FF = cfg->ffn_dim, V = cfg->vocab_size;
    int NH = cfg->n_heads, NKV = cfg->n_kv_heads, HS = cfg->head_dim, OD = NH * HS;
    int R = 0;
    size_t s_floats = 0;
    for (int i = 0; i < n_seq; i++) {
        size_t sf = (size_t)n_new[i] * (size_t)(c->len[slots[i]] + n_new[i]);
        if (sf > s_floats) s_floats = sf;
        R += n_new[i];
    }
    int want_all = out && (out->all_logits || out->hidden);
    int want_last = out && (out->logits || out->score);
    int n_out = want_all ? R : want_last ? n_seq : 0;
    step_ws w;
    step_ws_get(c, cfg, R, n_seq, s_floats, n_out, &w);
    for (int i = 0, r = 0; i < n_seq; i++) {
        w.row0[i] = r;
        for (int k = 0; k < n_new[i]; k++, r++) w.pos[r] = c->len[slots[i]] + k;
    }
    for (int r = 0; r < R; r++)
        memcpy(w.x + (size_t)r * C, m->p.tok_embd + (size_t)tokens[r] * C, sizeof(float) * C);

    for (int l = 0; l < cfg->n_layers; l++) {
        const model_layer *W = &m->p.layers[l];
        float rinv[1];
        for (int r = 0; r < R; r++)
            kern_rmsnorm_fwd(w.xn + (size_t)r * C, rinv, w.x + (size_t)r * C, W->attn_norm, 1, C,
                             cfg->norm_eps);
        linear(R, QKV, C, w.xn, W->wqkv, 0.0f, w.qkv);
        if (W->bqkv)
            for (int r = 0; r < R; r++) {
                float *restrict q = w.qkv + (size_t)r * QKV;
                for (int j = 0; j < QKV; j++) q[j] += W->bqkv[j];
            }
        kern_rope(w.qkv, R, QKV, NH, HS, w.pos, m->rope_cos, m->rope_sin, cfg->rope_neox, 0);
        kern_rope(w.qkv + OD, R, QKV, NKV, HS, w.pos, m->rope_cos, m->rope_sin, cfg->rope_neox, 0);
        /* append k, v to the cache, then attend */
        for (int i = 0; i < n_seq; i++)
            for (int k = 0; k < n_new[i]; k++) {
                int r = w.row0[i] + k;
                for (int g = 0; g < NKV; g++) {
                    size_t off = kv_off(c, l, slots[i], g);
                    const float *src = w.qkv + (size_t)r * QKV + OD + (size_t)g * HS;
                    for (int d = 0; d < HS; d++)
                        c->k[off + (size_t)d * c->max_seq + w.pos[r]] = src[d];
                    memcpy(c->v + off + (size_t)w.pos[r] * HS, src + (size_t)NKV * HS,
                           sizeof(float) * HS);
                }
            }
        for (int i = 0; i < n_seq; i++) {
            int r0 = w.row0[i];
            step_attention(cfg, c, l, slots[i], c->len[slots[i]], n_new[i],
                           w.qkv + (size_t)r0 * QKV, w.atto + (size_t)r0 * OD, w.S);
        }
        linear(R, C, OD, w.atto, W->wo, 1.0f, w.x);
        for (int r = 0; r < R; r++)
            kern_rmsnorm_fwd(w.xn + (size_t)r * C, rinv, w.x + (size_t)r * C, W->ffn_norm, 1, C,
                             cfg->norm_eps);
        linear(R, 2 * FF, C, w.xn, W->wgu, 0.0f, w.gu);
        kern_swiglu_fwd(w.hff, w.gu, R, FF);
        linear(R, C, FF, w.hff, W->wdown, 1.0f, w.x);
    }
    for (int i = 0; i < n_seq; i++) c->len[slots[i]] += n_new[i];
    if (n_out == 0) return;

    /* the heads: final norm of the wanted rows only */
    for (int k = 0; k < n_out; k++) w.out_rows[k] = want_all ? k : w.row0[k] + n_new[k] - 1;
    for (int k = 0; k < n_out; k++) {
        float rinv;
        kern_rmsnorm_fwd(w.hsel + (size_t)k * C, &rinv, w.x + (size_t)w.out_rows[k] * C,
                         m->p.out_norm, 1, C, cfg->norm_eps);
    }
    if (out->hidden && want_all) memcpy(out->hidden, w.hsel, sizeof(float) * (size_t)R * C);
    if (out->all_logits) linear(R, V, C, w.hsel, m->p.out, 0.0f, out->all_logits);
    if (out->logits) {
        if (want_all) {
            for (int i = 0; i < n_seq; i++) {
                int r = w.row0[i] + n_new[i] - 1;
                if (out->all_logits)
                    memcpy(out->logits + (size_t)i * V, out->all_logits + (size_t)r * V,
                           sizeof(float) * V);
                else
                    linear(1, V, C, w.hsel + (size_t)r * C, m->p.out, 0.0f,
                           out->logits + (size_t)i * V);
            }
        } else {
            linear(n_seq, V, C, w.hsel, m->p.out, 0.0f, out->logits);
        }
    }
    if (out->score) {
        for (int i = 0; i < n_seq; i++) {
            int k = want_all ? w.row0[i] + n_new[i] - 1 : i;
            out->score[i] = kern_dot(m->p.score_w, w.hsel + (size_t)k * C, C) + m->p.score_b[0];
        }
    }
}
