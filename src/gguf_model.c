/* gguf_model: see include/gguf_model.h. */
#include "gguf_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

const char *gguf_model_arch(const gguf_file *f, rl_err *e) {
    gguf_str a;
    if (gguf_get_str(f, "general.architecture", &a, 1, e)) return NULL;
    if (gguf_str_eq(a, "llama")) return "llama";
    if (gguf_str_eq(a, "qwen2")) return "qwen2";
    err_set(e, ERR_INPUT,
            "%s: architecture '%.*s' (general.architecture) is not supported; "
            "supported: llama (Llama 2/3, TinyLlama, SmolLM, Mistral), qwen2",
            gguf_path(f), (int)(a.len > 64 ? 64 : a.len), a.ptr);
    return NULL;
}

static int get_dim(const gguf_file *f, const char *arch, const char *name, int required, int *out,
                   rl_err *e) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    uint64_t v;
    if (!gguf_find_kv(f, key)) {
        if (required)
            return err_set(e, ERR_INPUT, "%s: required key '%s' is missing", gguf_path(f), key);
        return ERR_OK;
    }
    int rc = gguf_get_uint(f, key, 1u << 30, &v, 1, e);
    if (rc) return rc;
    if (v == 0) return err_set(e, ERR_INPUT, "%s: key '%s' is 0", gguf_path(f), key);
    *out = (int)v;
    return ERR_OK;
}

int gguf_model_config(const gguf_file *f, model_config *cfg, rl_err *e) {
    memset(cfg, 0, sizeof *cfg);
    const char *arch = gguf_model_arch(f, e);
    if (!arch) return ERR_INPUT;
    const char *path = gguf_path(f);
    char key[128];
    int rc;
    if ((rc = get_dim(f, arch, "embedding_length", 1, &cfg->dim, e))) return rc;
    if ((rc = get_dim(f, arch, "block_count", 1, &cfg->n_layers, e))) return rc;
    if ((rc = get_dim(f, arch, "attention.head_count", 1, &cfg->n_heads, e))) return rc;
    cfg->n_kv_heads = cfg->n_heads;
    if ((rc = get_dim(f, arch, "attention.head_count_kv", 0, &cfg->n_kv_heads, e))) return rc;
    if ((rc = get_dim(f, arch, "feed_forward_length", 1, &cfg->ffn_dim, e))) return rc;
    cfg->max_seq = 2048;
    if ((rc = get_dim(f, arch, "context_length", 0, &cfg->max_seq, e))) return rc;
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return err_set(e, ERR_INPUT,
                       "%s: %d attention heads are not a multiple of %d key/value "
                       "heads",
                       path, cfg->n_heads, cfg->n_kv_heads);
    cfg->head_dim = cfg->dim / cfg->n_heads;
    int klen = 0, vlen = 0, rdim = 0;
    if ((rc = get_dim(f, arch, "attention.key_length", 0, &klen, e))) return rc;
    if ((rc = get_dim(f, arch, "attention.value_length", 0, &vlen, e))) return rc;
    if (klen)
        cfg->head_dim = klen;
    else if (cfg->dim % cfg->n_heads != 0)
        return err_set(e, ERR_INPUT,
                       "%s: embedding length %d is not a multiple of %d heads and "
                       "%s.attention.key_length is absent",
                       path, cfg->dim, cfg->n_heads, arch);
    if (vlen && vlen != cfg->head_dim)
        return err_set(e, ERR_INPUT,
                       "%s: %s.attention.value_length %d differs from the key length "
                       "%d (not supported)",
                       path, arch, vlen, cfg->head_dim);
    if ((rc = get_dim(f, arch, "rope.dimension_count", 0, &rdim, e))) return rc;
    if (rdim && rdim != cfg->head_dim)
        return err_set(e, ERR_INPUT,
                       "%s: %s.rope.dimension_count %d is not the head size %d "
                       "(partial rotary embeddings are not supported)",
                       path, arch, rdim, cfg->head_dim);
    double theta = 10000.0, eps = 1e-5;
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if ((rc = gguf_get_float(f, key, &theta, 0, e))) return rc;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if ((rc = gguf_get_float(f, key, &eps, 1, e))) return rc;
    if (!(theta > 0) || !(eps > 0))
        return err_set(e, ERR_INPUT, "%s: rope base %g and RMS epsilon %g must be positive", path,
                       theta, eps);
    cfg->rope_theta = (float)theta;
    cfg->norm_eps = (float)eps;
    /* features the engine does not have */
    uint64_t experts = 0;
    snprintf(key, sizeof key, "%s.expert_count", arch);
    if ((rc = gguf_get_uint(f, key, UINT32_MAX, &experts, 0, e))) return rc;
    if (experts > 0)
        return err_set(e, ERR_INPUT,
                       "%s: %s has %llu experts; mixture-of-experts models are not "
                       "supported",
                       path, key, (unsigned long long)experts);
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    gguf_str st;
    if (gguf_find_kv(f, key)) {
        if ((rc = gguf_get_str(f, key, &st, 1, e))) return rc;
        if (!gguf_str_eq(st, "none"))
            return err_set(e, ERR_INPUT, "%s: %s is '%.*s'; rotary scaling is not supported", path,
                           key, (int)(st.len > 32 ? 32 : st.len), st.ptr);
    }
    if (gguf_find_tensor(f, "rope_freqs.weight"))
        return err_set(e, ERR_INPUT,
                       "%s: tensor 'rope_freqs.weight' (Llama 3.1-style rotary "
                       "frequency scaling) is not supported",
                       path);
    const gguf_tensor_info *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return err_set(e, ERR_INPUT, "%s: tensor 'token_embd.weight' is missing", path);
    if (emb->n_dims != 2 || emb->ne[0] != (uint64_t)cfg->dim || emb->ne[1] > (1u << 24))
        return err_set(e, ERR_INPUT,
                       "%s: tensor 'token_embd.weight' has ggml shape [%llu, %llu], "
                       "expected [%d, vocab]",
                       path, (unsigned long long)emb->ne[0], (unsigned long long)emb->ne[1],
                       cfg->dim);
    cfg->vocab_size = (int)emb->ne[1];
    cfg->rope_neox = strcmp(arch, "qwen2") == 0;
    cfg->qkv_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    cfg->tied_output = gguf_find_tensor(f, "output.weight") == NULL;
    cfg->scalar_head = 0;
    return ERR_OK;
}

int gguf_model_load(const gguf_file *f, const model_config *cfg, const model_tensor *table, int n,
                    float *params, rl_err *e) {
    const char *path = gguf_path(f);
    int64_t nt = gguf_n_tensors(f);
    uint8_t *used = xcalloc((size_t)(nt ? nt : 1), 1);
    int rc = ERR_OK;
    for (int i = 0; i < n && !rc; i++) {
        const model_tensor *mt = &table[i];
        if (strncmp(mt->name, "score_head.", 11) == 0) continue;
        if (cfg->tied_output && strcmp(mt->name, "output.weight") == 0) continue;
        const gguf_tensor_info *t = gguf_find_tensor(f, mt->name);
        if (!t) {
            rc = err_set(e, ERR_INPUT, "%s: tensor '%s' is missing", path, mt->name);
            break;
        }
        uint64_t want[GGUF_MAX_DIMS] = {1, 1, 1, 1};
        if (mt->ndim == 1)
            want[0] = (uint64_t)mt->shape[0];
        else
            want[0] = (uint64_t)mt->shape[1], want[1] = (uint64_t)mt->shape[0];
        int ok = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) ok &= t->ne[d] == want[d];
        if (!ok) {
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %llu: tensor '%s' has ggml shape [%llu, %llu, %llu, "
                         "%llu], the model needs [%llu, %llu]",
                         path, (unsigned long long)t->info_offset, mt->name,
                         (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                         (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                         (unsigned long long)want[0], (unsigned long long)want[1]);
            break;
        }
        rc = gguf_tensor_to_f32(f, t, params + mt->offset, mt->numel, e);
        used[t - gguf_tensor_at(f, 0)] = 1;
        /* a NaN or Inf in the weights would only show up as a NaN loss much later */
        for (size_t k = 0; !rc && k < mt->numel; k++)
            if (!isfinite(params[mt->offset + k]))
                rc = err_set(e, ERR_INPUT, "%s: tensor '%s' element %zu is not finite", path,
                             mt->name, k);
    }
    for (int64_t i = 0; i < nt && !rc; i++)
        if (!used[i])
            rc = err_set(e, ERR_INPUT,
                         "%s: tensor '%s' is not part of a %s model with this "
                         "configuration (unsupported feature?)",
                         path, gguf_tensor_at(f, i)->name, cfg->rope_neox ? "qwen2" : "llama");
    free(used);
    return rc;
}

int gguf_model_export(const char *path, const char *name, const model_config *cfg,
                      const model_tensor *table, int n, const float *params,
                      const struct tokenizer *tok, const gguf_file *keep_from, uint32_t wtype,
                      rl_err *e) {
    if (wtype != GGML_TYPE_F32 && wtype != GGML_TYPE_F16)
        return err_set(e, ERR_INPUT, "export: weight type %u (only f32 and f16 are written)",
                       wtype);
    if (cfg->rope_neox && !cfg->qkv_bias)
        return err_set(e, ERR_INPUT,
                       "export: a half-split rotary model without q/k/v biases has "
                       "no llama.cpp architecture");
    if (tok && tokenizer_n_vocab(tok) != cfg->vocab_size)
        return err_set(e, ERR_INPUT, "export: the tokenizer has %d tokens, the model %d",
                       tokenizer_n_vocab(tok), cfg->vocab_size);
    const char *arch = cfg->rope_neox ? "qwen2" : "llama";
    gguf_writer *w = gguf_writer_new();
    char key[128];
    gguf_writer_set_str(w, "general.architecture", arch);
    gguf_writer_set_str(w, "general.name", name ? name : "rlaif");
    gguf_writer_set_u32(w, "general.file_type", wtype == GGML_TYPE_F32 ? 0 : 1);
#define SETU(k, v)                                                                                 \
    (snprintf(key, sizeof key, "%s." k, arch), gguf_writer_set_u32(w, key, (uint32_t)(v)))
#define SETF(k, v)                                                                                 \
    (snprintf(key, sizeof key, "%s." k, arch), gguf_writer_set_f32(w, key, (float)(v)))
    SETU("context_length", cfg->max_seq);
    SETU("embedding_length", cfg->dim);
    SETU("block_count", cfg->n_layers);
    SETU("feed_forward_length", cfg->ffn_dim);
    SETU("attention.head_count", cfg->n_heads);
    SETU("attention.head_count_kv", cfg->n_kv_heads);
    SETF("attention.layer_norm_rms_epsilon", cfg->norm_eps);
    SETF("rope.freq_base", cfg->rope_theta);
    SETU("rope.dimension_count", cfg->head_dim);
    SETU("vocab_size", cfg->vocab_size);
    if (cfg->head_dim * cfg->n_heads != cfg->dim) {
        SETU("attention.key_length", cfg->head_dim);
        SETU("attention.value_length", cfg->head_dim);
    }
#undef SETU
#undef SETF
    if (tok) tokenizer_write_gguf(tok, w);
    for (int64_t i = 0; keep_from && i < gguf_n_kv(keep_from); i++) {
        const gguf_kv *kv = gguf_kv_at(keep_from, i);
        static const char *const own[] = {"general.architecture",
                                          "general.name",
                                          "general.file_type",
                                          "general.alignment",
                                          "general.quantization_version",
                                          NULL};
        int keep = (kv->key.len > 8 && memcmp(kv->key.ptr, "general.", 8) == 0) ||
                   (kv->key.len >= 23 && memcmp(kv->key.ptr, "tokenizer.chat_template", 23) == 0);
        for (int k = 0; keep && own[k]; k++) keep = !gguf_str_eq(kv->key, own[k]);
        if (keep) gguf_writer_copy_kv(w, keep_from, kv);
    }
    int rc = ERR_OK;
    for (int i = 0; i < n && !rc; i++) {
        const model_tensor *mt = &table[i];
        if (strncmp(mt->name, "score_head.", 11) == 0) continue;
        if (cfg->tied_output && strcmp(mt->name, "output.weight") == 0) continue;
        uint64_t ne[2];
        if (mt->ndim == 1)
            ne[0] = (uint64_t)mt->shape[0];
        else
            ne[0] = (uint64_t)mt->shape[1], ne[1] = (uint64_t)mt->shape[0];
        rc = gguf_writer_add_tensor(w, mt->name, mt->ndim == 1 ? GGML_TYPE_F32 : wtype,
                                    (uint32_t)mt->ndim, ne, params + mt->offset, e);
    }
    if (!rc) rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    return rc;
}
