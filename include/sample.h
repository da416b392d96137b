/* sample: picking tokens from logits (greedy, temperature, top-k, top-p) and batched
 * generation on a KV cache: a ragged prefill of all prompts in one model_step, then one
 * decode step per token for the sequences still running, each stopping at an EOS token or its
 * length limit.
 *
 * Every sequence draws from its own rng stream (key it by the data item, not the rank) and
 * draws exactly one uniform per sampled token, so a sequence's samples do not depend on which
 * other sequences share its batch (up to floating-point differences between GEMM shapes).
 * Not here: the model arithmetic (model_step), tokenisation, judging. */
#ifndef RLAIF_SAMPLE_H
#define RLAIF_SAMPLE_H

#include "err.h"
#include "model.h"
#include "rng.h"

typedef struct sample_params {
    float temperature; /* <= 0: greedy (argmax, no random draw) */
    int top_k;         /* keep the k most likely tokens; <= 0: all */
    float top_p;       /* keep the smallest set of most likely tokens with mass >= top_p;
                          <= 0 or >= 1: all */
} sample_params;

typedef struct sample_scratch {
    float *p;
    int *idx, *tmp;
    int cap;
} sample_scratch;

void sample_scratch_free(sample_scratch *s);

/* Picks one token from logits (V). logprob (may be NULL) receives log p(token) under
 * softmax(logits / T) with T = temperature (1 when greedy), before top-k/top-p truncation:
 * the probability under the policy the caller trains (a PPO ratio's denominator). */
int sample_token(const float *logits, int V, const sample_params *sp, rng *r, float *logprob,
                 sample_scratch *s);
/* The same with plain reference code (full sort); tests compare the two. */
int sample_token_ref(const float *logits, int V, const sample_params *sp, rng *r, float *logprob);

typedef struct gen_config {
    sample_params sp;
    int max_new;    /* new tokens per sequence at most */
    const int *eos; /* stop tokens (the stop token is kept in the output) */
    int n_eos;
} gen_config;

/* One sequence of a sample_generate call. The prompt is appended to whatever its slot holds
 * (a shared prefix put there by kvcache_copy_prefix), so it needs at least one token. */
typedef struct gen_seq {
    const int *prompt;
    int prompt_len; /* >= 1 */
    int slot;       /* KV-cache slot (distinct within a call) */
    rng *r;         /* its own stream; unused when greedy */
    int *out;       /* (max_new) generated tokens */
    float *logprob; /* (max_new) their log-probs (see sample_token), or NULL */
    int n_out;      /* set: tokens generated */
    int hit_eos;    /* set: 1 when the last token is an EOS token */
} gen_seq;

int sample_generate(const model *m, kvcache *c, gen_seq *seqs, int n_seq, const gen_config *g,
                    rl_err *e);

#endif
