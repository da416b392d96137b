/* rl: one iteration of reinforcement learning on the policy ranks: sample responses to a share
 * of prompts, have them scored (asynchronously, by whoever the caller's scorer asks), compute the
 * reference log-probs and values while the scores travel, turn everything into per-token rewards
 * and advantages (include/ppo.h), and run several epochs of minibatch updates of the policy and
 * the value model, with one gradient allreduce per optimiser step over the policy ranks.
 *
 * Two algorithms:
 *   ppo        per-token reward -beta * KL estimate + score on the last token, GAE(gamma,
 *              lambda), whitened advantages, clipped ratio, clipped value loss, adaptive beta.
 *   reinforce  the paper's: return = score (gamma = lambda = 1), advantage = return - V (a
 *              learned baseline), loss -A * ratio (no clip) + beta * KL estimate in the loss.
 *
 * Sampling and training use the same distribution, softmax(logits / temperature): the engine
 * divides the final hidden state by the temperature before the LM head (and the head's gradient
 * on the way back), so the log-probs, ratios and KL are those of the policy that sampled.
 *
 * Determinism: the prompts of iteration i are positions [i N, i N + N) of a stream of the
 * prompt set shuffled per epoch with (seed, epoch); rollout q samples from its own stream (seed,
 * RNG_SAMPLE, q); minibatch order comes from (seed, iteration, epoch). So the state to save for
 * an exact resume is: the three models' parameters (the reference never changes), both Adam
 * states with their step counts, the iteration count and the KL coefficient (rl_engine_save /
 * rl_engine_load name them).
 *
 * Not here: where prompts and scores come from (src/stage_rl.c), tokenisation, files. */
#ifndef RLAIF_RL_H
#define RLAIF_RL_H

#include <mpi.h>
#include <stdint.h>

#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "optim.h"
#include "ppo.h"
#include "sample.h"

enum rl_algorithm { RL_PPO = 0, RL_REINFORCE = 1 };

typedef struct rl_cfg {
    int algorithm;
    int rollouts;  /* per iteration, over all ranks of comm */
    int minibatch; /* per optimiser step, over all ranks */
    int epochs;
    sample_params sp; /* temperature > 0 */
    int max_new;
    const int *eos;
    int n_eos;
    double kl_coef, kl_target, kl_horizon;
    int kl_estimator; /* enum ppo_kl */
    float gamma, lambda, clip, value_clip;
    int whiten_advantages, whiten_rewards;
    float reward_clip, no_eos_penalty, entropy_coef;
    optim_config policy_opt, value_opt; /* total_steps: optimiser steps of the whole run */
    uint64_t seed;
} rl_cfg;

/* Token prompts the policy answers (every rank holds all of them). */
typedef struct rl_prompts {
    int n;
    int32_t **tok;
    int *len;
} rl_prompts;

/* The scorer: send a batch of full sequences (prompt + response; plens: the prompts' lengths),
 * later collect one score each. send may return before the scores exist; the engine computes
 * meanwhile. */
typedef struct rl_scorer {
    int (*send)(void *user, int n, const int32_t *const *seqs, const int *lens, const int *plens,
                rl_err *e);
    int (*recv)(void *user, int n, float *scores, rl_err *e);
    void *user;
} rl_scorer;

/* Figures of one iteration, over all ranks. Per-sequence means unless said otherwise. */
typedef struct rl_stats {
    double score;      /* mean score as used (after clip and the no-EOS penalty) */
    double rm_score;   /* mean raw score from the scorer */
    double reward;     /* mean sum of per-token rewards: score - beta * KL (ppo) */
    double kl;         /* mean sum over tokens of logp - logp_ref (k1): KL to the reference */
    double kl_coef;    /* beta used in this iteration */
    double entropy;    /* mean per token (first epoch) */
    double approx_kl;  /* mean per token of (logp - logp_old)^2 / 2 over the epochs */
    double clipfrac;   /* share of tokens where the policy clip was active */
    double value_loss; /* mean per token */
    double value_clipfrac;
    double explained_variance;
    double resp_len, eos_rate;
    double grad_norm, value_grad_norm; /* mean over the optimiser steps, before clipping */
    double lr;
    double t_generate, t_score_wait, t_prepare, t_train, t_total; /* seconds */
    double gen_tokens;   /* generated tokens over all ranks */
    double train_tokens; /* tokens through the policy's training forward, over all ranks */
    /* the first rollout of this rank, for sample tables (token ids; the caller decodes) */
    int32_t *sample_prompt, *sample_resp;
    int sample_prompt_len, sample_resp_len;
    float sample_score;
} rl_stats;

typedef struct rl_engine {
    rl_cfg cfg;
    model *policy, *ref, *value;
    optim opt_pol, opt_val;
    ppo_kl_ctl kl;
    long iter; /* iterations done */
    int rank, size;
    int n_local; /* rollouts per rank */
    int mb_local;
    model_acts acts_pol, acts_val;
    kvcache cache;
    int Tmax; /* longest sequence: prompt + max_new */
} rl_engine;

/* Sets up the engine on models the caller owns (the value model has a scalar head; the
 * reference is never written). prompts fixes the longest prompt. */
int rl_engine_init(rl_engine *E, model *policy, model *ref, model *value, const rl_cfg *c,
                   const rl_prompts *prompts, MPI_Comm comm, rl_err *e);
void rl_engine_free(rl_engine *E);

/* One iteration (collective over comm). The scorer is called once. ERR_NUMERIC names the phase
 * when a loss or gradient is not finite. */
int rl_iteration(rl_engine *E, const rl_prompts *prompts, const rl_scorer *scorer, MPI_Comm comm,
                 rl_stats *st, rl_err *e);
void rl_stats_free(rl_stats *st);

/* Sum of the log-probs of each response under m at temperature temp (softmax(logits / temp)):
 * seqs[i] is prompt + response, plens[i] the prompt's length, lens[i] the whole length. acts must
 * hold at least `batch` sequences of the longest length; batches of that many are run. */
int rl_response_logprobs(const model *m, model_acts *acts, int n, const int32_t *const *seqs,
                         const int *plens, const int *lens, float temp, int batch, double *out,
                         rl_err *e);

/* Checkpoint: the policy's and the value model's parameters and Adam states, the iteration and
 * the KL coefficient, under the given component files. */
int rl_engine_save_policy(const rl_engine *E, ckpt_file *f, rl_err *e);
int rl_engine_save_value(const rl_engine *E, ckpt_file *f, rl_err *e);
int rl_engine_load_policy(rl_engine *E, ckpt_file *f, rl_err *e);
int rl_engine_load_value(rl_engine *E, ckpt_file *f, rl_err *e);

#endif
