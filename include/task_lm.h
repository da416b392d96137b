/* task_lm: where the built-in task meets the language models. The tokenizer learned from the
 * task's corpus, the token sequences of SFT examples, model files (GGUF with their tokenizer),
 * the models the deck describes, and batched sampling of completions.
 *
 * Sequences: [BOS] prompt tokens, then the target's tokens and EOS. Prompt and target are
 * tokenised separately (the target starts with a space, so its first word is the word token
 * the policy generates after "TL;DR:"), which is exactly what the policy sees when it samples.
 *
 * The gold rater is not used here; the evaluation helpers that use it are in task_lm.h's
 * EVAL section at the end, implemented in src/task_lm_eval.c, all named *_eval_*.
 * Not here: training loops (trainer.h), judging (judge.h). */
#ifndef RLAIF_TASK_LM_H
#define RLAIF_TASK_LM_H

#include "config.h"
#include "err.h"
#include "model.h"
#include "rng.h"
#include "sample.h"
#include "task.h"
#include "tokenizer.h"

#define TASK_LM_BOS "<|bos|>"
#define TASK_LM_EOS "<|eos|>"

/* The task's settings from a deck (seed, split sizes, mixture, judge pairs). */
void task_lm_task_config(const config *cfg, task_config *tc);

/* Learns a byte-level BPE vocabulary of vocab_size tokens from the task's corpus (training
 * documents, references, flawed summaries) plus n_extra texts (the judge's prompt parts, which
 * the corpus does not contain), each counted as if it appeared `extra_weight` times. Specials:
 * BOS and EOS; BOS is added by TOK_ADD_SPECIAL. Deterministic. */
int task_lm_train_tokenizer(const task_config *tc, const char *const *extra, int n_extra,
                            int extra_weight, int vocab_size, tokenizer **out, rl_err *e);
/* Writes a GGUF file holding only the tokenizer's metadata (tmp + rename), and reads one. */
int task_lm_save_tokenizer(const tokenizer *tok, const char *path, rl_err *e);
int task_lm_load_tokenizer(const char *path, tokenizer **out, rl_err *e);

/* Encodes text; with bos, BOS first. *ids is malloc'd. */
int task_lm_encode(const tokenizer *tok, const char *text, int bos, int **ids, int *n, rl_err *e);
/* The SFT sequence of an example: [BOS] prompt, target, EOS; *n_prompt tokens are the prompt.
 * *ids is malloc'd. */
int task_lm_sft_sequence(const tokenizer *tok, const task_example *ex, int **ids, int *n,
                         int *n_prompt, rl_err *e);

/* The model a deck section describes, with the tokenizer's vocabulary: llama-style, untied LM
 * head. */
void task_lm_model_config(const config_model *cm, int vocab_size, model_config *mc);
/* Loads a GGUF model and its tokenizer. max_seq > 0 caps the context (KV caches, rotary). */
int task_lm_load_model(const char *path, int max_seq, model *m, tokenizer **tok, rl_err *e);
/* Writes a model with its tokenizer as GGUF (F32; tmp + fsync + rename). */
int task_lm_save_model(const char *path, const char *name, const model *m, const tokenizer *tok,
                       rl_err *e);

/* Samples one completion for each of n prompts (texts; BOS is added) with generation settings
 * sp and at most max_new tokens, stopping at EOS. Sequence i draws from streams[i]. Completions
 * are decoded without the EOS into out[i] (malloc'd). Works in batches of the cache's slots. */
int task_lm_generate(const model *m, const tokenizer *tok, kvcache *kv, const char *const *prompts,
                     int n, const sample_params *sp, int max_new, rng *streams, char **out,
                     rl_err *e);

/* Trims ASCII whitespace on both ends into a malloc'd copy. */
char *task_lm_trim(const char *s);

/* ================================================================================================
 * EVAL (src/task_lm_eval.c): these call the gold rater. Evaluation only.
 * ================================================================================================ */

/* Held-out comparison i (0 <= i) on the test split, drawn like the judge_sft comparisons
 * (summaries of two different kinds of the SFT mixture, sometimes a doubly flawed one, never a
 * gold tie, random order), for judge alignment figures. doc receives the document. */
int task_lm_eval_pair(const task_config *tc, long i, task_doc *doc, task_pair *p, rl_err *e);

#endif
