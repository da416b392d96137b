/* model: configuration checks, the parameter buffer and its table of named tensors, views,
 * deterministic initialisation, copying between models, gradient norms and the data-parallel
 * gradient average.
 * Not here: arithmetic of the layers (model_train.c, model_head.c, model_infer.c), file
 * formats (gguf, ckpt). */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "rng.h"

int model_config_validate(const model_config *c, rl_err *e) {
#define NEED(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) return err_set(e, ERR_INPUT, "model config: " __VA_ARGS__);                   \
    } while (0)
    NEED(c->dim > 0, "dim must be > 0 (got %d)", c->dim);
    NEED(c->n_layers > 0, "n_layers must be > 0 (got %d)", c->n_layers);
    NEED(c->n_heads > 0, "n_heads must be > 0 (got %d)", c->n_heads);
    NEED(c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads == 0,
         "n_kv_heads (%d) must be > 0 and divide n_heads (%d)", c->n_kv_heads, c->n_heads);
    NEED(c->head_dim > 0 && c->head_dim % 2 == 0,
         "head_dim must be even and > 0 for rotary embeddings (got %d)", c->head_dim);
    NEED(c->ffn_dim > 0, "ffn_dim must be > 0 (got %d)", c->ffn_dim);
    NEED(c->vocab_size > 1, "vocab_size must be > 1 (got %d)", c->vocab_size);
    NEED(c->max_seq > 0, "max_seq must be > 0 (got %d)", c->max_seq);
    NEED(isfinite(c->rope_theta) && c->rope_theta > 1.0f, "rope_theta must be > 1 (got %g)",
         (double)c->rope_theta);
    NEED(isfinite(c->norm_eps) && c->norm_eps > 0.0f && c->norm_eps < 1.0f,
         "norm_eps must be in (0, 1) (got %g)", (double)c->norm_eps);
    NEED(c->rope_neox == 0 || c->rope_neox == 1, "rope_neox must be 0 or 1");
    NEED(c->qkv_bias == 0 || c->qkv_bias == 1, "qkv_bias must be 0 or 1");
    NEED(c->tied_output == 0 || c->tied_output == 1, "tied_output must be 0 or 1");
    NEED(c->scalar_head == 0 || c->scalar_head == 1, "scalar_head must be 0 or 1");
    /* every GEMM dimension is an int; products of two must fit size_t */
    long long qkv = (long long)(c->n_heads + 2LL * c->n_kv_heads) * c->head_dim;
    NEED(qkv < INT_MAX / 2 && 2LL * c->ffn_dim < INT_MAX, "model dimensions too large");
    size_t t;
    NEED(!size_mul((size_t)c->vocab_size, (size_t)c->dim, &t) &&
             !size_mul((size_t)c->max_seq, (size_t)c->head_dim, &t),
         "model dimensions overflow");
#undef NEED
    return ERR_OK;
}

/* ------------------------------------------------------------------------ tensor table */

static void add_tensor(model *m, int *cap, const char *name, int ndim, int64_t rows, int64_t cols,
                       int decay) {
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        m->tensors = xrealloc(m->tensors, sizeof(model_tensor) * (size_t)*cap);
    }
    model_tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = rows;
    t->shape[1] = ndim == 2 ? cols : 1;
    t->numel = (size_t)rows * (size_t)(ndim == 2 ? cols : 1);
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->numel;
}

static void set_views(const model *m, float *base, model_views *v) {
    const model_config *c = &m->cfg;
    if (!v->layers) v->layers = xcalloc((size_t)c->n_layers, sizeof(model_layer));
    char name[MODEL_NAME_MAX];
#define AT(n)     (base + model_find_tensor(m, (n))->offset)
#define ATL(l, s) (snprintf(name, sizeof name, "blk.%d.%s", (l), (s)), AT(name))
    v->tok_embd = AT("token_embd.weight");
    for (int l = 0; l < c->n_layers; l++) {
        model_layer *L = &v->layers[l];
        L->attn_norm = ATL(l, "attn_norm.weight");
        L->wqkv = ATL(l, "attn_q.weight");
        L->bqkv = c->qkv_bias ? ATL(l, "attn_q.bias") : NULL;
        L->wo = ATL(l, "attn_output.weight");
        L->ffn_norm = ATL(l, "ffn_norm.weight");
        L->wgu = ATL(l, "ffn_gate.weight");
        L->wdown = ATL(l, "ffn_down.weight");
    }
    v->out_norm = AT("output_norm.weight");
    v->out = c->tied_output ? v->tok_embd : AT("output.weight");
    v->score_w = c->scalar_head ? AT("score_head.weight") : NULL;
    v->score_b = c->scalar_head ? AT("score_head.bias") : NULL;
#undef AT
#undef ATL
}

int model_create(model *m, const model_config *cfg, rl_err *e) {
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, e)) return e ? e->code : ERR_INPUT;
    m->cfg = *cfg;
    const model_config *c = &m->cfg;
    int cap = 0, C = c->dim, HS = c->head_dim;
    char name[MODEL_NAME_MAX];
    add_tensor(m, &cap, "token_embd.weight", 2, c->vocab_size, C, 1);
    for (int l = 0; l < c->n_layers; l++) {
#define ADD(s, nd, r, k, dec)                                                                      \
    (snprintf(name, sizeof name, "blk.%d.%s", l, s), add_tensor(m, &cap, name, nd, r, k, dec))
        ADD("attn_norm.weight", 1, C, 1, 0);
        /* q, k, v adjacent: one (QKV, C) matrix; their biases adjacent too */
        ADD("attn_q.weight", 2, (int64_t)c->n_heads * HS, C, 1);
        ADD("attn_k.weight", 2, (int64_t)c->n_kv_heads * HS, C, 1);
        ADD("attn_v.weight", 2, (int64_t)c->n_kv_heads * HS, C, 1);
        if (c->qkv_bias) {
            ADD("attn_q.bias", 1, (int64_t)c->n_heads * HS, 1, 0);
            ADD("attn_k.bias", 1, (int64_t)c->n_kv_heads * HS, 1, 0);
            ADD("attn_v.bias", 1, (int64_t)c->n_kv_heads * HS, 1, 0);
        }
        ADD("attn_output.weight", 2, C, (int64_t)c->n_heads * HS, 1);
        ADD("ffn_norm.weight", 1, C, 1, 0);
        ADD("ffn_gate.weight", 2, c->ffn_dim, C, 1);
        ADD("ffn_up.weight", 2, c->ffn_dim, C, 1);
        ADD("ffn_down.weight", 2, C, c->ffn_dim, 1);
#undef ADD
    }
    add_tensor(m, &cap, "output_norm.weight", 1, C, 1, 0);
    if (!c->tied_output) add_tensor(m, &cap, "output.weight", 2, c->vocab_size, C, 1);
    if (c->scalar_head) {
        add_tensor(m, &cap, "score_head.weight", 1, C, 1, 0);
        add_tensor(m, &cap, "score_head.bias", 1, 1, 1, 0);
    }
    size_t bytes;
    if (size_mul(m->n_params, sizeof(float), &bytes)) {
        model_free(m);
        return err_set(e, ERR_INPUT, "model config: parameter count overflows");
    }
    m->params = xmalloc_aligned(bytes);
    memset(m->params, 0, bytes);
    set_views(m, m->params, &m->p);
    size_t half = (size_t)HS / 2;
    m->rope_cos = xmalloc(sizeof(float) * (size_t)c->max_seq * half);
    m->rope_sin = xmalloc(sizeof(float) * (size_t)c->max_seq * half);
    kern_rope_tables(m->rope_cos, m->rope_sin, c->max_seq, HS, c->rope_theta);
    return ERR_OK;
}

void model_free(model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->p.layers);
    free(m->g.layers);
    free(m->rope_cos);
    free(m->rope_sin);
    memset(m, 0, sizeof *m);
}

void model_alloc_grads(model *m) {
    if (m->grads) return;
    m->grads = xmalloc_aligned(sizeof(float) * m->n_params);
    memset(m->grads, 0, sizeof(float) * m->n_params);
    set_views(m, m->grads, &m->g);
}

void model_zero_grads(model *m) {
    if (m->grads) memset(m->grads, 0, sizeof(float) * m->n_params);
}

const model_tensor *model_find_tensor(const model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void model_init_weights(model *m, uint64_t seed) {
    const model_config *c = &m->cfg;
    float resid_std = 0.02f / sqrtf(2.0f * (float)c->n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        rng r;
        rng_init(&r, seed, RNG_INIT, (uint32_t)i);
        if (ends_with(t->name, "norm.weight")) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else if (ends_with(t->name, ".bias")) {
            memset(p, 0, sizeof(float) * t->numel);
        } else {
            float std = 0.02f;
            if (ends_with(t->name, "attn_output.weight") || ends_with(t->name, "ffn_down.weight"))
                std = resid_std;
            if (strcmp(t->name, "score_head.weight") == 0) std = 1.0f / sqrtf((float)c->dim + 1);
            for (size_t j = 0; j < t->numel; j++) p[j] = std * rng_normal(&r);
        }
    }
}

int model_copy_weights(model *dst, const model *src, rl_err *e) {
    for (int i = 0; i < dst->n_tensors; i++) {
        const model_tensor *td = &dst->tensors[i];
        const model_tensor *ts = model_find_tensor(src, td->name);
        if (!ts && strcmp(td->name, "output.weight") == 0 && src->cfg.tied_output)
            ts = model_find_tensor(src, "token_embd.weight"); /* untie a tied model */
        if (!ts) {
            if (strncmp(td->name, "score_head.", 11) == 0) continue; /* keeps its own init */
            return err_set(e, ERR_INPUT, "model copy: source model has no tensor '%s'", td->name);
        }
        if (ts->shape[0] != td->shape[0] || ts->shape[1] != td->shape[1])
            return err_set(e, ERR_INPUT,
                           "model copy: tensor '%s' is (%lld, %lld) in the source, (%lld, %lld) "
                           "in the destination",
                           td->name, (long long)ts->shape[0], (long long)ts->shape[1],
                           (long long)td->shape[0], (long long)td->shape[1]);
        memcpy(dst->params + td->offset, src->params + ts->offset, sizeof(float) * td->numel);
    }
    if (dst->cfg.tied_output && !src->cfg.tied_output)
        return err_set(e, ERR_INPUT,
                       "model copy: the destination ties its output to the embedding, the "
                       "source does not; output.weight would be lost");
    return ERR_OK;
}

size_t model_matmul_params(const model_config *c) {
    size_t C = (size_t)c->dim, HS = (size_t)c->head_dim;
    size_t per_layer = C * (size_t)(c->n_heads + 2 * c->n_kv_heads) * HS +
                       C * (size_t)c->n_heads * HS + 3 * C * (size_t)c->ffn_dim;
    return per_layer * (size_t)c->n_layers + (size_t)c->vocab_size * C;
}

double model_grad_norm(const model *m) {
    if (!m->grads) return 0.0;
    /* float lanes within blocks of 4096 (vectorised), double across blocks */
    const float *g = m->grads;
    size_t n = m->n_params;
    double s = 0;
    for (size_t b = 0; b < n; b += 4096) {
        size_t e = b + 4096 < n ? b + 4096 : n;
        s += kern_dot(g + b, g + b, (int)(e - b));
    }
    return sqrt(s);
}

int model_all_finite(const model *m, int what) {
    const float *b = what ? m->grads : m->params;
    if (!b) return 1;
    /* x - x is 0 for finite x and NaN for Inf/NaN; summing keeps the loop branch-free */
    float acc[16] = {0};
    size_t n = m->n_params, j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) acc[l] += b[j + l] - b[j + l];
    float s = 0;
    for (; j < n; j++) s += b[j] - b[j];
    for (int l = 0; l < 16; l++) s += acc[l];
    return s == 0.0f;
}

/* ------------------------------------------------------------------------ data parallel */

int model_allreduce_floats(float *buf, size_t n, MPI_Comm comm, rl_err *e) {
    return model_allreduce_chunked(buf, n, comm, (size_t)INT_MAX, e);
}

int model_allreduce_chunked(float *buf, size_t n, MPI_Comm comm, size_t max_chunk, rl_err *e) {
    int size = 1;
    if (max_chunk == 0 || max_chunk > (size_t)INT_MAX) max_chunk = (size_t)INT_MAX;
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return err_set(e, ERR_MPI, "allreduce: MPI_Comm_size failed");
    if (size == 1) return ERR_OK;
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < max_chunk ? n - off : max_chunk;
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)chunk, MPI_FLOAT, MPI_SUM, comm);
        if (rc != MPI_SUCCESS)
            return err_set(e, ERR_MPI,
                           "allreduce of %zu floats at offset %zu failed (MPI error %d)", chunk,
                           off, rc);
        off += chunk;
    }
    float inv = 1.0f / (float)size;
    for (size_t j = 0; j < n; j++) buf[j] *= inv;
    return ERR_OK;
}

int model_allreduce_grads(model *m, MPI_Comm comm, rl_err *e) {
    if (!m->grads) return err_set(e, ERR_INTERNAL, "allreduce: model has no gradient buffer");
    return model_allreduce_floats(m->grads, m->n_params, comm, e);
}
