/* config: the YAML input deck -> one typed, validated struct.
 *
 * One schema table (src/config.c) lists every key: its dotted path, type, default, allowed range
 * and one line of help. The loader walks the libyaml document against that table and reports
 * every problem as `DECK:LINE:COL: message` (syntax errors, unknown keys with a did-you-mean,
 * duplicate keys, wrong types, values out of range, missing required keys, wrong list/map
 * shapes). `config_emit` writes the effective deck (defaults filled in) as YAML that loads back
 * to the same struct; that text is what rank 0 broadcasts and what metrics.h5 keeps.
 *
 * Relative paths in a deck are relative to the directory rlaif is started in.
 * Not here: reading the files a deck names (models, datasets); the stages do that. */
#ifndef RLAIF_CONFIG_H
#define RLAIF_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* The pipeline's stages, in the only order they may run. */
enum config_stage {
    STAGE_SFT = 0,
    STAGE_JUDGE_SFT,
    STAGE_LABEL,
    STAGE_REWARD,
    STAGE_RL,
    STAGE_EVAL,
    STAGE_COUNT
};
const char *config_stage_name(int stage);

enum config_reward_labels { REWARD_LABELS_AI = 0, REWARD_LABELS_GOLD };
enum config_reward_loss { REWARD_LOSS_SOFT_CE = 0, REWARD_LOSS_BT, REWARD_LOSS_BT_MARGIN };
enum config_rl_algorithm { RL_ALGO_PPO = 0, RL_ALGO_REINFORCE };
enum config_rl_reward { RL_REWARD_MODEL = 0, RL_REWARD_JUDGE };
enum config_kl_estimator { KL_K1 = 0, KL_K2, KL_K3 };

typedef struct config_intlist {
    int *items;
    int n;
} config_intlist;

typedef struct config_strlist {
    char **items;
    int n;
} config_strlist;

/* A list of mappings parsed into an array of structs (the type depends on the key). */
typedef struct config_maplist {
    void *items;
    int n;
} config_maplist;

/* Where a key was set in the deck (1-based); line 0 means it took its default. */
typedef struct config_pos {
    int line, col;
} config_pos;

/* A transformer: read from a GGUF file, or built from these dimensions and trained here. */
typedef struct config_model {
    char *gguf; /* "" : from scratch */
    int dim, layers, heads, kv_heads, ffn, max_seq;
    double rope_theta;
} config_model;

/* One optimisation: AdamW with warm-up and cosine decay to min_lr_ratio * lr. */
typedef struct config_optim {
    int steps; /* optimiser steps */
    int batch; /* sequences per step, summed over the ranks of the role */
    double lr, min_lr_ratio, weight_decay, grad_clip;
    int warmup; /* steps */
} config_optim;

/* One few-shot exemplar of the judge's prompt (judge.exemplars). */
typedef struct config_exemplar {
    char *context, *a, *b;
    char *rationale; /* "" : none */
    int label;       /* 1 or 2 */
} config_exemplar;

enum { CONFIG_LABEL_POLICY = 0, CONFIG_LABEL_FILE = 1 };

typedef struct config {
    struct {
        char *name;
        int64_t seed;
        char *out_dir;
        int checkpoint_every;
        int keep_checkpoints;
        int log_level; /* enum log_level */
        double metrics_flush_seconds;
        double progress_seconds;
    } run;
    struct {
        int judge, reward, policy;
    } ranks;
    int threads_per_rank;
    config_intlist stages; /* enum config_stage values, in pipeline order, no repeats */

    /* ---- the built-in task (src/task*.c) */
    struct {
        int name; /* 0 summaries, 1 none */
        int64_t seed;
        int n_train, n_val, n_test;
        double mix_good, mix_verbose, mix_missing, mix_invented, mix_malformed;
        int judge_pairs;
    } task;
    struct {
        int vocab_size;
    } tokenizer;

    /* ---- models */
    config_model policy;
    config_model judge_model;

    /* ---- the judge (feedback LLM): how it is prompted (src/judge.c) */
    struct {
        char *preamble;      /* instruction text; replaced by the file's text when preamble_file */
        char *preamble_file; /* "" : use preamble */
        config_maplist exemplars; /* few-shot examples, items are config_exemplar */
        char *template_text;      /* the sample: {context}, {a}, {b} */
        char *ending;             /* "Preferred Summary=" */
        char *label_1, *label_2;  /* the tokens read for "response 1 / 2 is better" */
        int position_debias;      /* score both orders and average */
        struct {
            int enabled;
            char *ending; /* replaces the ending: asks for a rationale */
            int max_tokens;
            double temperature; /* 0: greedy */
            int samples;        /* > 1: self-consistency (needs temperature > 0) */
        } cot;
        config_strlist principles;    /* one sampled per pair and added to the preamble */
        double clamp_low, clamp_high; /* band the soft label is clamped into */
        int mode; /* enum judge_mode: 0 preference, 1 score (d-RLAIF), 2 likelihood */
        struct {
            char *preamble, *template_text, *ending; /* score mode: {context}, {response} */
        } score;
        struct {
            char *template_text; /* likelihood mode: {context} ... {response} */
            double temperature;  /* P(a better) = s((l_a - l_b) / temperature) */
            int eos;             /* the end-of-text token's log-prob counts too */
        } likelihood;
        int batch_pairs; /* pairs per batch dealt to a judge rank */
    } judge;

    /* ---- stages: each owns its section */
    config_optim sft;
    struct {
        int train_ranks;         /* worker ranks that train; 0: the policy ranks */
        double prompt_loss;      /* loss weight of the prompt (document) tokens */
        int max_new_tokens;      /* summary tokens at most when sampling */
        int eval_docs;           /* test documents for sft_gold_score_mean */
        double eval_temperature; /* 0: greedy */
    } sft_opts;
    struct {
        config_optim pretrain, finetune;
        int train_ranks;     /* worker ranks that train; 0: the judge ranks */
        double prompt_loss;  /* finetune: loss weight of the prompt's tokens (the label weighs 1) */
        double policy_pairs; /* share of the comparisons sampled from the SFT policy */
        int eval_pairs;      /* held-out comparisons for judge_alignment_gold */
    } judge_sft;
    struct {
        int source;       /* 0 policy, 1 file */
        char *pairs_file; /* JSONL {"context", "a", "b"} */
        int pairs;        /* pairs to label (file: 0 = every row) */
        double temperature, top_p;
        int max_new_tokens;
    } label;

    /* ---- stages reward, rl, eval (src/stage_reward.c, stage_rl.c, stage_eval.c) */
    struct {
        char *init;        /* "sft" | "random" | FILE.gguf | FILE.h5 (a checkpoint component) */
        int labels;        /* enum config_reward_labels */
        char *labels_file; /* "" : run.out_dir/labels.h5 */
        int loss;          /* enum config_reward_loss */
        double margin;     /* bt_margin: margin = reward.margin * |2p - 1| */
        int epochs;        /* passes over the training pairs when reward.steps is 0 */
        double val_fraction;
        int max_pairs;      /* 0: every labelled pair */
        int eval_every;     /* validation every N steps (and at the end) */
        int norm_samples;   /* SFT responses the normalisation is measured on */
        int score_batch;    /* sequences per forward of the scoring service */
        int train_ranks;    /* 0: the reward ranks; n: the first n of reward, policy, judge */
        config_optim optim; /* keys reward.steps, reward.batch, reward.lr, ... */
    } reward;
    struct {
        int algorithm; /* enum config_rl_algorithm */
        int reward;    /* enum config_rl_reward */
        int steps;     /* rollout batches (iterations) */
        int rollouts;  /* sequences per iteration, over all policy ranks */
        int minibatch; /* sequences per optimiser step, over all policy ranks */
        int epochs;    /* passes over each rollout batch */
        double temperature, top_p;
        int top_k, max_new_tokens;
        double kl_coef;   /* beta of the per-token penalty (initial value when adaptive) */
        double kl_target; /* > 0: adaptive controller towards this KL per sequence */
        int kl_horizon;   /* sequences over which the controller adapts */
        int kl_estimator; /* enum config_kl_estimator: penalty (ppo) or loss term (reinforce) */
        double gamma, lambda, clip, value_clip;
        int whiten_advantages, whiten_rewards;
        double reward_clip;    /* |score| clipped to this before the penalty; 0: off */
        double no_eos_penalty; /* subtracted from the score of a response without EOS */
        double entropy_coef;
        int sample_every; /* samples table every N iterations (0: only at the end) */
        int train_ranks;  /* 0: the policy ranks; n: the first n of policy, judge ranks */
        config_optim policy_opt, value_opt; /* keys rl.policy.*, rl.value.* (no steps/batch) */
    } rl;
    struct {
        int prompts; /* held-out prompts (test split) */
        double temperature;
        int max_new_tokens;
        int samples;    /* rows of the side-by-side table */
        int judge;      /* also judge both orders on the judge ranks */
        char *policy;   /* "" : models/policy_rl.gguf */
        char *baseline; /* "" : models/policy_sft.gguf */
        char *versus;   /* "" : none; else a third policy compared with the trained one */
        int paired;     /* 1: every policy samples prompt i with the same stream (coupled) */
    } eval;

    /* bookkeeping */
    char *deck_path; /* as given (for messages) */
    config_pos *pos; /* one per schema key, see config_key_pos */
} config;

/* Loads and validates a deck file / an in-memory deck (name is used in messages). On failure
 * e->msg holds one line per problem found (at most 20), each `NAME:LINE:COL: message`, and
 * the status is ERR_INPUT (ERR_IO when the file cannot be read). *cfg is then freed. */
int config_load_file(const char *path, config *cfg, rl_err *e);
int config_load_string(const char *name, const char *text, size_t len, config *cfg, rl_err *e);
void config_free(config *cfg);

/* The effective deck as YAML (every key, defaults filled in). Caller frees. */
char *config_emit(const config *cfg);
/* The schema table as text: path, type, default, range, help. */
void config_print_schema(FILE *f);

/* Position where a key was set; {0,0} when it took its default or is unknown. */
config_pos config_key_pos(const config *cfg, const char *path);
int config_has_stage(const config *cfg, int stage);
/* Total ranks the deck asks for: 1 (coordinator) + judge + reward + policy. */
int config_world_size(const config *cfg);

#endif
