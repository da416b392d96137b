/* model: a Llama-family transformer (Llama, Mistral, Qwen2 style) for training and inference.
 *
 * Token embedding, RMSNorm, rotary embeddings (adjacent pairs as in llama GGUF files, or
 * half-split "neox" as in Qwen2), grouped-query causal attention, SwiGLU feed-forward, optional
 * q/k/v biases, LM head tied to the embedding or separate, and an optional scalar head (vector +
 * bias on the final normed hidden state) for reward and value models.
 *
 * How the roles use it (shapes in the legend below):
 *   SFT / judge fine-tuning  model_forward, model_ce(mask excludes prompt and padding, backward),
 *                            model_backward, [model_allreduce_grads], optim_step
 *   reward model             model_forward, model_score_forward at each sequence's last token,
 *                            caller's pairwise loss -> model_score_backward(dscore), model_backward
 *   PPO policy               model_forward, model_lm_forward (log-probs of the taken tokens and
 *                            entropies at response positions), caller's PPO loss ->
 *                            model_lm_backward(dlogprob, dentropy), model_backward
 *   value model              as the reward model, with a score at every response position
 *   frozen reference         model_forward + model_lm_forward only (no gradient buffer)
 *   judge scoring            model_step on a kvcache: prefill the shared preamble once,
 *                            kvcache_copy_prefix into other slots, prefill each rest, logits at
 *                            the last position only; sample_generate for rationales
 *   policy sampling          sample_generate (sample.h): batched, per-sequence rng streams
 * Not here: file formats (gguf, ckpt), tokenisers, the losses of PPO and reward modelling,
 * mixed precision, multi-threading beyond BLAS's threads, model parallelism.
 *
 * Dimension legend, used in every shape comment of the engine:
 *   B batch, T time (sequence positions), C channels (dim), V vocab, L layers,
 *   NH query heads, NKV key/value heads, HS head size, FF feed-forward hidden size.
 *
 * All parameters live in one contiguous float buffer with a table of named views; the names and
 * the row-major [out][in] shapes are llama.cpp's GGUF names, so GGUF import/export is one table
 * walk. Gradients and both AdamW moments mirror the buffer (same offsets).
 *
 *   token_embd.weight        (V, C)
 *   blk.N.attn_norm.weight   (C)
 *   blk.N.attn_q.weight      (NH*HS, C)     blk.N.attn_q.bias (NH*HS)   when qkv_bias
 *   blk.N.attn_k.weight      (NKV*HS, C)    blk.N.attn_k.bias (NKV*HS)  when qkv_bias
 *   blk.N.attn_v.weight      (NKV*HS, C)    blk.N.attn_v.bias (NKV*HS)  when qkv_bias
 *   blk.N.attn_output.weight (C, NH*HS)
 *   blk.N.ffn_norm.weight    (C)
 *   blk.N.ffn_gate.weight    (FF, C)
 *   blk.N.ffn_up.weight      (FF, C)
 *   blk.N.ffn_down.weight    (C, FF)
 *   output_norm.weight       (C)
 *   output.weight            (V, C)         absent when tied_output (token_embd is used)
 *   score_head.weight        (C)            when scalar_head (reward and value models)
 *   score_head.bias          (1)            when scalar_head
 */
#ifndef RLAIF_MODEL_H
#define RLAIF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct model_config {
    int dim;          /* C */
    int n_layers;     /* L */
    int n_heads;      /* NH */
    int n_kv_heads;   /* NKV; NH % NKV == 0 */
    int head_dim;     /* HS; usually C / NH */
    int ffn_dim;      /* FF */
    int vocab_size;   /* V */
    int max_seq;      /* longest sequence the model is used with (KV cache, rotary tables) */
    float rope_theta; /* rotary base frequency, e.g. 10000 */
    int rope_neox;    /* 0: rotate adjacent pairs (x[2i], x[2i+1]) as llama GGUF files;
                         1: rotate half-split pairs (x[i], x[i+HS/2]) as Qwen2 / GPT-NeoX */
    float norm_eps;   /* RMSNorm epsilon */
    int qkv_bias;     /* q/k/v projections carry biases (Qwen2) */
    int tied_output;  /* LM head is token_embd.weight */
    int scalar_head;  /* score_head present (reward and value models) */
} model_config;

#define MODEL_NAME_MAX 64

typedef struct model_tensor {
    char name[MODEL_NAME_MAX];
    int ndim;         /* 1 or 2 */
    int64_t shape[2]; /* row-major; 2-D tensors are (rows = out, cols = in) */
    size_t offset;    /* in floats from the start of the parameter buffer */
    size_t numel;
    int decay; /* AdamW weight decay applies (matrices and embeddings, not norms/biases) */
} model_tensor;

/* Checks a configuration; on failure names the offending field. */
int model_config_validate(const model_config *cfg, rl_err *e);

/* ------------------------------------------------------------------------------------------ */
/* The model: configuration, parameter buffer, table of named tensors, views.                 */

/* Views of one layer inside a buffer (parameters or gradients). q, k and v are stored next to
 * each other, so wqkv is one (QKV, C) matrix with QKV = (NH + 2*NKV)*HS and one GEMM computes
 * all three; likewise ffn_gate and ffn_up form one (2*FF, C) matrix. */
typedef struct model_layer {
    float *attn_norm; /* (C) */
    float *wqkv;      /* (QKV, C): attn_q (NH*HS rows), attn_k (NKV*HS), attn_v (NKV*HS) */
    float *bqkv;      /* (QKV) when qkv_bias, else NULL */
    float *wo;        /* (C, NH*HS) attn_output */
    float *ffn_norm;  /* (C) */
    float *wgu;       /* (2*FF, C): ffn_gate then ffn_up */
    float *wdown;     /* (C, FF) */
} model_layer;

typedef struct model_views {
    float *tok_embd;     /* (V, C) */
    model_layer *layers; /* (L) */
    float *out_norm;     /* (C) */
    float *out;          /* (V, C); equals tok_embd when tied_output */
    float *score_w;      /* (C) or NULL */
    float *score_b;      /* (1) or NULL */
} model_views;

typedef struct model {
    model_config cfg;
    model_tensor *tensors; /* (n_tensors), in buffer order */
    int n_tensors;
    size_t n_params;
    float *params;              /* (n_params), 64-byte aligned */
    float *grads;               /* (n_params) mirror of params, or NULL until model_alloc_grads */
    model_views p;              /* views into params */
    model_views g;              /* views into grads (all NULL until model_alloc_grads) */
    float *rope_cos, *rope_sin; /* (max_seq, HS/2) */
} model;

/* Width of the fused q|k|v projection: (NH + 2*NKV) * HS. */
static inline int model_qkv_dim(const model_config *c) {
    return (c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
}

/* Builds the tensor table and allocates the parameter buffer (zeroed). */
int model_create(model *m, const model_config *cfg, rl_err *e);
void model_free(model *m);
/* Allocates (zeroed) the gradient buffer and its views; no-op when present. */
void model_alloc_grads(model *m);
void model_zero_grads(model *m);
/* Deterministic initialisation from rng stream (seed, RNG_INIT, tensor index): matrices
 * N(0, std^2) with std = 0.02 (output projections attn_output, ffn_down scaled by 1/sqrt(2L)),
 * norms 1, biases 0, score head N(0, 1/(C+1)) weights and bias 0. Independent of rank count. */
void model_init_weights(model *m, uint64_t seed);
const model_tensor *model_find_tensor(const model *m, const char *name);
/* Copies every tensor of src whose name and shape exist in dst (e.g. value model from reward
 * model, reference from policy, reward model from an SFT model without score head). Fails on a
 * name present in both with different shapes, or when dst has a tensor other than score_head.*
 * that src lacks. Grads and optimiser state are not touched. */
int model_copy_weights(model *dst, const model *src, rl_err *e);
/* Parameters that enter a matrix product per token: every 2-D tensor but the embedding lookup,
 * plus the output matrix even when tied (the FLOP count of the benchmark). */
size_t model_matmul_params(const model_config *cfg);

/* L2 norm of the whole gradient buffer (double accumulation). NaN or Inf when any gradient is
 * not finite, which is how a caller detects a broken step. */
double model_grad_norm(const model *m);
/* 1 when every parameter (what == 0) or gradient (what == 1) is finite. */
int model_all_finite(const model *m, int what);

/* ------------------------------------------------------------------------------------------ */
/* Training: forward and backward over a (B, T) batch of full sequences.                      */

/* Activations of one (B, T) batch; allocated for a capacity and reused. */
typedef struct model_acts {
    int Bmax, Tmax; /* capacity */
    int B, T;       /* shape of the last forward */
    model_config cfg;
    float *x;       /* (L+1, B, T, C) residual stream entering each layer, x[L] leaves the last */
    float *xmid;    /* (L, B, T, C) residual after attention */
    float *xn1;     /* (L, B, T, C) attention-norm output */
    float *xn2;     /* (L, B, T, C) ffn-norm output */
    float *rinv1;   /* (L, B, T) 1/rms of attention norm */
    float *rinv2;   /* (L, B, T) */
    float *qkv;     /* (L, B, T, QKV) after bias and rotary */
    float *att;     /* (L, B, NH, T, T) attention probabilities (lower triangle) */
    float *atto;    /* (L, B, T, NH*HS) attention output before attn_output */
    float *gu;      /* (L, B, T, 2*FF) gate | up pre-activations */
    float *hff;     /* (L, B, T, FF) silu(gate) * up */
    float *hfinal;  /* (B, T, C) output_norm(x[L]): what the heads read */
    float *rinvf;   /* (B, T) */
    float *dhfinal; /* (B, T, C) gradient of hfinal, accumulated by the head backwards */
    /* backward scratch */
    float *dx, *dxmid, *dxn; /* (B, T, C) */
    float *dbig;             /* (B, T, max(2*FF, QKV)) */
    float *dsmall;           /* (B, T, max(FF, NH*HS)) */
    float *datt;             /* (T, T) */
    /* LM head */
    int head_rows;            /* rows per logits chunk */
    float *logits;            /* (head_rows, V) chunk, or (n_sel, V) when the log-probs are kept */
    size_t logits_cap;        /* floats in logits */
    float *hsel, *dhsel;      /* (head_rows, C) gathered rows */
    float *row_lse, *row_ent; /* (B*T) per selected row of the last model_lm_forward */
    int *sel_idx; /* (B*T) positions of the selected rows of the last model_lm_forward */
    int *pos;     /* (B*T) position of each row, t */
    int n_sel;
    int kept;          /* logits holds the log-probs of all n_sel rows */
    size_t keep_limit; /* bytes: keep log-probs for the backward when they fit (default 1 GiB) */
} model_acts;

int model_acts_create(model_acts *a, const model_config *cfg, int Bmax, int Tmax, rl_err *e);
void model_acts_free(model_acts *a);
/* Bytes model_acts_create(cfg, B, T) allocates (for memory planning and the benchmark). */
size_t model_acts_bytes(const model_config *cfg, int B, int T);

/* Forward of tokens (B, T) (B <= Bmax, T <= Tmax, ids in [0, V)) through the embedding, every
 * block and the final norm into a->hfinal; clears a->dhfinal. Positions are 0..T-1; pad with
 * any valid id and mask the padding out of the losses. */
int model_forward(const model *m, model_acts *a, const int *tokens, int B, int T, rl_err *e);

/* Cross-entropy of targets (B, T) weighted by mask (B, T) (0 excludes a position: prompt or
 * padding; NULL weighs all 1). A target outside [0, V) (use -1) also excludes its position; in
 * model_lm_forward too. Returns sum(mask * -log p(target)) / denom, with denom = sum(mask)
 * when denom <= 0. Data-parallel ranks holding different token counts pass
 * denom = (global sum of mask) / (number of ranks): model_allreduce_grads averages, so the
 * result is the gradient of the global mean.
 * With backward != 0 the head's gradients go straight into m->grads and a->dhfinal, chunk by
 * chunk, so no (B, T, V) tensor is ever held. Logits are computed only where mask != 0. */
float model_ce(model *m, model_acts *a, const int *targets, const float *mask, float denom,
               int backward);

/* Log-probability of targets (B, T) and the entropy of the next-token distribution at the
 * positions where sel (B, T) != 0 (NULL: all); other positions get 0. entropy may be NULL.
 * The log-probs of the selected rows are kept for model_lm_backward when they fit in
 * a->keep_limit bytes, else the backward recomputes them. */
void model_lm_forward(const model *m, model_acts *a, const int *targets, const float *sel,
                      float *logprob, float *entropy);
/* Backward of the last model_lm_forward: dlogprob and dentropy (B, T) (either may be NULL) are
 * d(loss)/d(output); accumulates into m->grads (output.weight) and a->dhfinal. */
void model_lm_backward(model *m, model_acts *a, const int *targets, const float *dlogprob,
                       const float *dentropy);
/* Raw logits (n, V) at positions pos[i] = b*T + t of the last forward. */
int model_lm_logits(const model *m, const model_acts *a, const int *pos, int n, float *logits,
                    rl_err *e);

/* Scalar head score_head.weight . hfinal[pos[i]] + score_head.bias at n positions
 * pos[i] = b*T + t; the model must have scalar_head. */
int model_score_forward(const model *m, const model_acts *a, const int *pos, int n, float *score,
                        rl_err *e);
/* Accumulates the head's gradients for dscore (n) and adds into a->dhfinal. */
int model_score_backward(model *m, model_acts *a, const int *pos, int n, const float *dscore,
                         rl_err *e);

/* Backward from a->dhfinal through the final norm, the blocks and the embedding; accumulates
 * into m->grads (model_alloc_grads first). tokens are the forward's (B, T) tokens. */
void model_backward(model *m, model_acts *a, const int *tokens);

/* ------------------------------------------------------------------------------------------ */
/* Inference: a batched KV cache with per-sequence lengths.                                    */

typedef struct kvcache {
    int n_layers, n_slots, max_seq, n_kv_heads, head_dim;
    float *k;      /* (L, S, NKV, HS, max_seq): keys transposed */
    float *v;      /* (L, S, NKV, max_seq, HS) */
    int *len;      /* (S) tokens held per slot */
    int step_rows; /* rows per pass of model_step (0: 2048); longer calls are cut in pieces */
    /* scratch of model_step, grown on demand */
    float *ws;
    size_t ws_cap; /* floats */
    int *iws;
    size_t iws_cap; /* ints */
} kvcache;

int kvcache_create(kvcache *c, const model_config *cfg, int n_slots, int max_seq, rl_err *e);
void kvcache_free(kvcache *c);
void kvcache_reset(kvcache *c, int slot);
/* Makes slot dst hold the first n_tokens of slot src (a shared prompt prefix prefilled once). */
int kvcache_copy_prefix(kvcache *c, int src, int dst, int n_tokens, rl_err *e);
size_t kvcache_bytes(const model_config *cfg, int n_slots, int max_seq);

/* What model_step returns; NULL fields are not computed. */
typedef struct model_step_out {
    float *logits;     /* (n_seq, V) at the last new token of each sequence */
    float *all_logits; /* (sum n_new, V) at every new token */
    float *score;      /* (n_seq) scalar head at the last new token */
    float *hidden;     /* (sum n_new, C) final normed hidden states */
} model_step_out;

/* Appends n_new[i] tokens to the sequence in slot slots[i] (i < n_seq; slots distinct), at
 * positions len[slot].., and runs them through the model with attention over everything the
 * slot holds: prefill (n_new > 1) and decode (n_new == 1) are the same call, and one call may
 * mix them. tokens holds the new tokens of all sequences one after the other. Logits are
 * computed only where out asks for them. */
int model_step(const model *m, kvcache *c, int n_seq, const int *slots, const int *n_new,
               const int *tokens, const model_step_out *out, rl_err *e);

/* ------------------------------------------------------------------------------------------ */
/* Data parallel                                                                              */

#include <mpi.h>
/* Averages m->grads over comm: one in-place MPI_Allreduce (sum) of the flat buffer, in chunks
 * of at most INT_MAX floats, then a scale by 1/size. */
int model_allreduce_grads(model *m, MPI_Comm comm, rl_err *e);
/* Same for any float buffer (averages n floats over comm). */
int model_allreduce_floats(float *buf, size_t n, MPI_Comm comm, rl_err *e);
/* The same with chunks of at most max_chunk floats (0: INT_MAX); lets tests exercise the
 * chunking without a 8 GiB buffer. */
int model_allreduce_chunked(float *buf, size_t n, MPI_Comm comm, size_t max_chunk, rl_err *e);

#endif
