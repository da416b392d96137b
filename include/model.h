/* model: a Llama-family transformer (Llama, Mistral, Qwen2 style) for training and inference.
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
    int decay;        /* AdamW weight decay applies (matrices and embeddings, not norms/biases) */
} model_tensor;

/* Checks a configuration; on failure names the offending field. */
int model_config_validate(const model_config *cfg, rl_err *e);

#endif
