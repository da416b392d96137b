/* gguf_model: Llama-family models in GGUF files <-> the engine's configuration and its flat
 * float32 parameter buffer (the named-tensor table of include/model.h).
 *
 * Architectures: `llama` (Llama 2/3, TinyLlama, SmolLM, Mistral-style; adjacent-pair rotary, the
 * q/k rows as llama.cpp's converter permutes them) and `qwen2` (q/k/v biases, half-split "neox"
 * rotary). A file without output.weight has a tied LM head. Anything else is refused by name:
 * another architecture, mixture-of-experts, rotary scaling, partial rotary, extra tensors,
 * tensor types other than F32/F16/BF16/Q8_0.
 *
 * Shapes: GGUF lists dimensions innermost first (ne[0] = row length), so a row-major (out, in)
 * matrix of the table is ne = {in, out} in the file. */
#ifndef RLAIF_GGUF_MODEL_H
#define RLAIF_GGUF_MODEL_H

#include "err.h"
#include "gguf.h"
#include "model.h"

struct tokenizer;

/* Architecture name of a supported file ("llama" or "qwen2"), or NULL with an error. */
const char *gguf_model_arch(const gguf_file *f, rl_err *e);

/* Fills cfg from the file's hyperparameters and tensor shapes. max_seq is the file's
 * context_length (callers may lower it); scalar_head is 0. */
int gguf_model_config(const gguf_file *f, model_config *cfg, rl_err *e);

/* Copies every tensor of `table` (n entries) from the file into params, converting to float32.
 * Each must exist with the table's shape; score_head.* and, when cfg->tied_output,
 * output.weight are skipped. Every tensor of the file must be used. */
int gguf_model_load(const gguf_file *f, const model_config *cfg, const model_tensor *table, int n,
                    float *params, rl_err *e);

/* Writes a model as GGUF in llama.cpp's layout and naming: general.* and {arch}.* metadata, the
 * tokenizer's metadata, and every tensor of the table except score_head.* as `wtype`
 * (GGML_TYPE_F32 or GGML_TYPE_F16; 1-D tensors always F32, as llama.cpp does). When keep_from
 * is given (the file the model came from), its descriptive metadata travels along: the chat
 * template (tokenizer.chat_template*) and the general.* keys this function does not set. */
int gguf_model_export(const char *path, const char *name, const model_config *cfg,
                      const model_tensor *table, int n, const float *params,
                      const struct tokenizer *tok, const gguf_file *keep_from, uint32_t wtype,
                      rl_err *e);

#endif
