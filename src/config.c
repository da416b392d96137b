/* config: YAML deck loader, validator and emitter driven by one schema table.
 *
 * The libyaml document API gives us a node tree with positions; we walk it against the schema,
 * collect every problem (up to a cap) as `DECK:LINE:COL: message`, and fill the typed struct.
 * Cross-key rules (that need two keys at once) live in validate_semantics(), with positions too.
 * Not here: the meaning of the keys; the modules that use them. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli.h"
#include "log.h"

typedef enum key_type {
    T_BOOL,
    T_INT,
    T_INT64,
    T_FLOAT,
    T_STRING,
    T_ENUM,
    T_STRLIST,
    T_ENUMLIST,
    T_MAPLIST /* a list of mappings, each parsed against a sub-schema into an array of structs */
} key_type;

enum {
    F_IDENT = 1,   /* string limited to [A-Za-z0-9._-] */
    F_ORDERED = 2, /* enum list must follow the order of the choices, without repeats */
};

typedef struct key_def {
    const char *path;
    key_type type;
    size_t off;
    const char *def;     /* default as YAML text; NULL: the key is required */
    double min, max;     /* numbers: value range; strings: length range; lists: count range */
    const char *choices; /* enums: "a|b|c" */
    int flags;
    const char *help;
    /* T_MAPLIST: the keys of one item (offsets into the item struct) and the item size */
    const struct key_def *sub;
    int n_sub;
    size_t elem_size;
} key_def;

#define OFF(field) offsetof(config, field)

/* The keys of a model section (config_model at `field`). */
#define MODEL_KEYS(P, field, d_dim, d_layers, d_heads, d_kv, d_ffn, d_seq, what)                   \
    {P ".gguf",                                                                                    \
     T_STRING,                                                                                     \
     OFF(field.gguf),                                                                              \
     "",                                                                                           \
     0,                                                                                            \
     4096,                                                                                         \
     NULL,                                                                                         \
     0,                                                                                            \
     "GGUF file of " what "; empty: build it from the dimensions below and train it here"},        \
        {P ".dim", T_INT, OFF(field.dim), d_dim, 8, 65536, NULL, 0, "model width C of " what},     \
        {P ".layers", T_INT, OFF(field.layers), d_layers, 1, 1024, NULL, 0, "transformer blocks"}, \
        {P ".heads", T_INT, OFF(field.heads), d_heads, 1, 1024, NULL, 0, "attention heads"},       \
        {P ".kv_heads", T_INT, OFF(field.kv_heads),                                                \
         d_kv,          1,     1024,                                                               \
         NULL,          0,     "key/value heads (grouped-query attention when fewer than heads)"}, \
        {P ".ffn", T_INT, OFF(field.ffn), d_ffn, 8, 1 << 20, NULL, 0, "SwiGLU hidden size"},       \
        {P ".max_seq", T_INT, OFF(field.max_seq),                                                  \
         d_seq,        16,    1 << 20,                                                             \
         NULL,         0,     "longest sequence (prompt + response) the model is used with"},      \
    {                                                                                              \
        P ".rope_theta", T_FLOAT, OFF(field.rope_theta), "10000", 1, 1e9, NULL, 0,                 \
            "rotary embedding base frequency"                                                      \
    }

/* The keys of an optimisation section (config_optim at `field`). */
#define OPTIM_KEYS(P, field, d_steps, d_batch, d_lr, d_warmup, what)                                \
    {P ".steps", T_INT, OFF(field.steps), d_steps, 0, 1e9, NULL, 0, "optimiser steps of " what},    \
        {P ".batch",                                                                                \
         T_INT,                                                                                     \
         OFF(field.batch),                                                                          \
         d_batch,                                                                                   \
         1,                                                                                         \
         1 << 20,                                                                                   \
         NULL,                                                                                      \
         0,                                                                                         \
         "sequences per step, over all ranks of the role (a multiple of their count)"},             \
        {P ".lr", T_FLOAT, OFF(field.lr), d_lr, 0, 10, NULL, 0, "peak learning rate (AdamW)"},      \
        {P ".min_lr_ratio",                                                                         \
         T_FLOAT,                                                                                   \
         OFF(field.min_lr_ratio),                                                                   \
         "0.1",                                                                                     \
         0,                                                                                         \
         1,                                                                                         \
         NULL,                                                                                      \
         0,                                                                                         \
         "the cosine schedule ends at this fraction of lr"},                                        \
        {P ".warmup", T_INT, OFF(field.warmup), d_warmup, 0, 1e9, NULL, 0, "linear warm-up steps"}, \
        {P ".weight_decay",                                                                         \
         T_FLOAT,                                                                                   \
         OFF(field.weight_decay),                                                                   \
         "0.01",                                                                                    \
         0,                                                                                         \
         10,                                                                                        \
         NULL,                                                                                      \
         0,                                                                                         \
         "decoupled weight decay of matrices and embeddings"},                                      \
    {                                                                                               \
        P ".grad_clip", T_FLOAT, OFF(field.grad_clip), "1.0", 0, 1e9, NULL, 0,                      \
            "global gradient-norm clip (0: off)"                                                    \
    }
#define I64MAX 9223372036854775807.0

/* The AdamW keys of an optimisation whose step count and batch come from elsewhere (the RL
 * stage's policy and value optimisers: steps follow from rl.steps, rl.epochs and the batch). */
#define ADAMW_KEYS(P, field, d_lr, d_warmup, what)                                                 \
    {                                                                                              \
        P ".lr", T_FLOAT, OFF(field.lr),                                                           \
        d_lr,    0,       10,                                                                      \
        NULL,    0,       "peak learning rate (AdamW) of " what},                                  \
        {P ".min_lr_ratio",                                                                        \
         T_FLOAT,                                                                                  \
         OFF(field.min_lr_ratio),                                                                  \
         "1.0",                                                                                    \
         0,                                                                                        \
         1,                                                                                        \
         NULL,                                                                                     \
         0,                                                                                        \
         "the cosine schedule ends at this fraction of lr (1: constant after the warm-up)"},       \
        {P ".warmup", T_INT, OFF(field.warmup),                                                    \
         d_warmup,    0,     1e9,                                                                  \
         NULL,        0,     "linear warm-up, in optimiser steps"},                                \
        {P ".weight_decay",                                                                        \
         T_FLOAT,                                                                                  \
         OFF(field.weight_decay),                                                                  \
         "0.0",                                                                                    \
         0,                                                                                        \
         10,                                                                                       \
         NULL,                                                                                     \
         0,                                                                                        \
         "decoupled weight decay of matrices and embeddings"},                                     \
    {                                                                                              \
        P ".grad_clip", T_FLOAT, OFF(field.grad_clip), "1.0", 0, 1e9, NULL, 0,                     \
            "global gradient-norm clip (0: off)"                                                   \
    }
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define XOFF(field) offsetof(config_exemplar, field)
static const struct key_def exemplar_keys[] = {
    {"context", T_STRING, XOFF(context), NULL, 1, 65536, NULL, 0, "the text"},
    {"a", T_STRING, XOFF(a), NULL, 1, 65536, NULL, 0, "response 1"},
    {"b", T_STRING, XOFF(b), NULL, 1, 65536, NULL, 0, "response 2"},
    {"label", T_INT, XOFF(label), NULL, 1, 2, NULL, 0, "the better response: 1 or 2"},
    {"rationale", T_STRING, XOFF(rationale), "", 0, 65536, NULL, 0,
     "why (shown with chain of thought)"},
};
#define N_EXEMPLAR_KEYS ((int)(sizeof exemplar_keys / sizeof exemplar_keys[0]))

/* The schema. Keys of one section stay together (the emitter relies on it). Entries leave the
 * T_MAPLIST fields out unless they need them. */
static const key_def schema[] = {
    {"run.name", T_STRING, OFF(run.name), NULL, 1, 64, NULL, F_IDENT,
     "name of the run; letters, digits, '.', '_', '-'"},
    {"run.seed", T_INT64, OFF(run.seed), NULL, 0, I64MAX, NULL, 0,
     "seed of every random stream in the run (same deck + seed + ranks = same result)"},
    {"run.out_dir", T_STRING, OFF(run.out_dir), "runs/{run.name}", 1, 4096, NULL, 0,
     "run directory: metrics.h5, labels.h5, ckpt/ (relative to the working directory)"},
    {"run.checkpoint_every", T_INT, OFF(run.checkpoint_every), "100", 0, 1e9, NULL, 0,
     "checkpoint every N optimiser steps within a stage (0: only at stage ends)"},
    {"run.keep_checkpoints", T_INT, OFF(run.keep_checkpoints), "2", 1, 1000, NULL, 0,
     "complete checkpoints kept on disk; older ones are removed once a newer one is whole"},
    {"run.log_level", T_ENUM, OFF(run.log_level), "info", 0, 0, "error|warn|info|debug", 0,
     "log verbosity (-v / -q on the command line override it)"},
    {"run.metrics_flush_seconds", T_FLOAT, OFF(run.metrics_flush_seconds), "30", 0.1, 86400, NULL,
     0, "metrics.h5 is flushed at least this often; a crash loses at most this interval"},
    {"run.progress_seconds", T_FLOAT, OFF(run.progress_seconds), "10", 0.1, 86400, NULL, 0,
     "interval of progress lines in a batch log (a terminal gets a live line)"},
    {"ranks.judge", T_INT, OFF(ranks.judge), "1", 0, 1 << 20, NULL, 0,
     "judge ranks: label response pairs with the feedback LLM"},
    {"ranks.reward", T_INT, OFF(ranks.reward), "1", 0, 1 << 20, NULL, 0,
     "reward-model ranks: data-parallel training and scoring"},
    {"ranks.policy", T_INT, OFF(ranks.policy), "1", 0, 1 << 20, NULL, 0,
     "policy ranks: sampling and PPO, data parallel"},
    {"threads_per_rank", T_INT, OFF(threads_per_rank), "1", 1, 1024, NULL, 0,
     "BLAS threads of each rank (ranks x threads should not exceed the cores)"},
    {"stages", T_ENUMLIST, OFF(stages), NULL, 0, STAGE_COUNT, "sft|judge_sft|label|reward|rl|eval",
     F_ORDERED,
     "stages to run, in pipeline order (an empty list runs only the set-up and a checkpoint)"},

    /* ---- the built-in task */
    {"task.name", T_ENUM, OFF(task.name), "summaries", 0, 0, "summaries|none", 0,
     "built-in task giving prompts, SFT data and the gold rater (none: bring your own)"},
    {"task.seed", T_INT64, OFF(task.seed), "1", 0, I64MAX, NULL, 0,
     "seed of the task's world (documents), apart from run.seed so runs share one dataset"},
    {"task.n_train", T_INT, OFF(task.n_train), "4000", 1, 1e8, NULL, 0, "training documents"},
    {"task.n_val", T_INT, OFF(task.n_val), "500", 1, 1e8, NULL, 0, "validation documents"},
    {"task.n_test", T_INT, OFF(task.n_test), "1000", 1, 1e8, NULL, 0,
     "test documents (evaluation prompts and held-out judge pairs)"},
    {"task.mix.good", T_FLOAT, OFF(task.mix_good), "0.35", 0, 1, NULL, 0,
     "share of SFT targets that are good summaries"},
    {"task.mix.verbose", T_FLOAT, OFF(task.mix_verbose), "0.25", 0, 1, NULL, 0,
     "share of SFT targets padded with filler or distractor facts"},
    {"task.mix.missing", T_FLOAT, OFF(task.mix_missing), "0.15", 0, 1, NULL, 0,
     "share of SFT targets missing a key fact"},
    {"task.mix.invented", T_FLOAT, OFF(task.mix_invented), "0.15", 0, 1, NULL, 0,
     "share of SFT targets inventing a fact"},
    {"task.mix.malformed", T_FLOAT, OFF(task.mix_malformed), "0.10", 0, 1, NULL, 0,
     "share of SFT targets that are malformed (no period, cut off)"},
    {"task.judge_pairs", T_INT, OFF(task.judge_pairs), "600", 0, 1e8, NULL, 0,
     "gold-labelled comparisons judge_sft fine-tunes on (at most a tenth of label.pairs)"},
    {"tokenizer.vocab_size", T_INT, OFF(tokenizer.vocab_size), "1024", 260, 1 << 20, NULL, 0,
     "size of the byte-level BPE vocabulary learned from the task corpus"},

    /* ---- models */
    MODEL_KEYS("policy", policy, "96", "4", "4", "4", "256", "192",
               "the policy (also the frozen reference and, via the reward model, the value model)"),
    MODEL_KEYS("judge.model", judge_model, "128", "3", "4", "4", "384", "320",
               "the judge (feedback LLM)"),

    /* ---- the judge's prompt (keys of one section stay together: judge.model above) */
    {"judge.preamble", T_STRING, OFF(judge.preamble),
     "You are an expert summary rater. Given a piece of text and two of its possible summaries, "
     "output 1 or 2 to indicate which summary is better.",
     0, 65536, NULL, 0, "the instruction that opens every prompt (the paper's base preamble)"},
    {"judge.preamble_file", T_STRING, OFF(judge.preamble_file), "", 0, 4096, NULL, 0,
     "file whose text replaces judge.preamble (e.g. a detailed preamble); empty: none"},
    {"judge.exemplars", T_MAPLIST, OFF(judge.exemplars), "", 0, 16, NULL, 0,
     "few-shot exemplars after the preamble: context, a, b, label (1 or 2), optional rationale",
     exemplar_keys, N_EXEMPLAR_KEYS, sizeof(config_exemplar)},
    {"judge.template", T_STRING, OFF(judge.template_text),
     "Text - {context}\nSummary 1 - {a}\nSummary 2 - {b}\n\n", 1, 65536, NULL, 0,
     "one sample of the prompt, with {context}, {a} and {b}"},
    {"judge.ending", T_STRING, OFF(judge.ending), "Preferred Summary=", 1, 4096, NULL, 0,
     "text after the sample; the next token is read"},
    {"judge.label_1", T_STRING, OFF(judge.label_1), "1", 1, 64, NULL, 0,
     "text of the token that says response 1 is better (must be one token)"},
    {"judge.label_2", T_STRING, OFF(judge.label_2), "2", 1, 64, NULL, 0,
     "text of the token that says response 2 is better (must be one token)"},
    {"judge.position_debias", T_BOOL, OFF(judge.position_debias), "true", 0, 0, NULL, 0,
     "judge both orders of every pair and average the two distributions"},
    {"judge.cot.enabled", T_BOOL, OFF(judge.cot.enabled), "false", 0, 0, NULL, 0,
     "chain of thought: decode a rationale, append it and the ending, then read the label"},
    {"judge.cot.ending", T_STRING, OFF(judge.cot.ending),
     "Consider the coherence, accuracy, coverage, and overall quality of each summary and "
     "explain which one is better.\n\nRationale:",
     1, 4096, NULL, 0, "text after the sample that asks for the rationale"},
    {"judge.cot.max_tokens", T_INT, OFF(judge.cot.max_tokens), "48", 1, 4096, NULL, 0,
     "rationale tokens at most (it also ends at a newline or end of text)"},
    {"judge.cot.temperature", T_FLOAT, OFF(judge.cot.temperature), "0", 0, 10, NULL, 0,
     "rationale sampling temperature (0: greedy)"},
    {"judge.cot.samples", T_INT, OFF(judge.cot.samples), "1", 1, 64, NULL, 0,
     "rationales per order, their labels averaged (self-consistency; needs temperature > 0)"},
    {"judge.principles", T_STRLIST, OFF(judge.principles), "", 0, 256, NULL, 0,
     "constitution: one principle, drawn per pair, is added on a line after the preamble"},
    {"judge.clamp.low", T_FLOAT, OFF(judge.clamp_low), "0", 0, 1, NULL, 0,
     "the soft label is clamped into [low, high] (0 and 1: no clamp)"},
    {"judge.clamp.high", T_FLOAT, OFF(judge.clamp_high), "1", 0, 1, NULL, 0,
     "upper end of the clamp band"},
    {"judge.mode", T_ENUM, OFF(judge.mode), "preference", 0, 0, "preference|score|likelihood", 0,
     "preference: which of two responses is better (the paper's prompt); score: rate one "
     "response 1..10 (d-RLAIF); likelihood: the response the judge would more likely have "
     "written (its log-probability under judge.likelihood.template)"},
    {"judge.score.preamble", T_STRING, OFF(judge.score.preamble),
     "You are an expert summary rater. Given a piece of text and a summary of it, rate the "
     "summary from 1 (worst) to 10 (best).",
     0, 65536, NULL, 0, "score mode: the instruction"},
    {"judge.score.template", T_STRING, OFF(judge.score.template_text),
     "Text - {context}\nSummary - {response}\n\n", 1, 65536, NULL, 0,
     "score mode: one sample, with {context} and {response}"},
    {"judge.score.ending", T_STRING, OFF(judge.score.ending), "Score (1-10)=", 1, 4096, NULL, 0,
     "score mode: text after the sample; the score's tokens are read next"},
    {"judge.likelihood.template", T_STRING, OFF(judge.likelihood.template_text),
     " {context}\nTL;DR: {response}", 1, 65536, NULL, 0,
     "likelihood mode: the text whose {response} part is scored, {context} before it (the "
     "default is the built-in task's format: the judge's pretraining text)"},
    {"judge.likelihood.temperature", T_FLOAT, OFF(judge.likelihood.temperature), "4", 1e-3, 1e6,
     NULL, 0,
     "likelihood mode: P(a better) = logistic((log P(a) - log P(b)) / temperature), log-probs "
     "in nats"},
    {"judge.likelihood.eos", T_BOOL, OFF(judge.likelihood.eos), "true", 0, 0, NULL, 0,
     "likelihood mode: the end-of-text token after the response counts (a response should end "
     "where it ends)"},
    {"judge.batch_pairs", T_INT, OFF(judge.batch_pairs), "8", 1, 4096, NULL, 0,
     "pairs per batch rank 0 deals to a judge rank (and per forward pass)"},

    /* ---- stages */
    OPTIM_KEYS("sft", sft, "1800", "32", "3e-3", "50", "supervised fine-tuning of the policy"),
    {"sft.train_ranks", T_INT, OFF(sft_opts.train_ranks), "0", 0, 1 << 20, NULL, 0,
     "worker ranks that train data-parallel: the policy ranks, then judge and reward ranks "
     "(0: the policy ranks only)"},
    {"sft.prompt_loss", T_FLOAT, OFF(sft_opts.prompt_loss), "1.0", 0, 1, NULL, 0,
     "loss weight of the document tokens (language modelling on the task's text; the summary "
     "weighs 1)"},
    {"sft.max_new_tokens", T_INT, OFF(sft_opts.max_new_tokens), "48", 1, 4096, NULL, 0,
     "summary tokens at most when the policy samples"},
    {"sft.eval_docs", T_INT, OFF(sft_opts.eval_docs), "500", 0, 1e8, NULL, 0,
     "test documents the SFT policy summarises for sft_gold_score_mean"},
    {"sft.eval_temperature", T_FLOAT, OFF(sft_opts.eval_temperature), "0.9", 0, 10, NULL, 0,
     "sampling temperature of that evaluation (0: greedy; otherwise sft_gold_score_greedy too)"},
    OPTIM_KEYS("judge_sft.pretrain", judge_sft.pretrain, "900", "32", "3e-3", "50",
               "judge language-model pretraining on the task corpus"),
    OPTIM_KEYS("judge_sft.finetune", judge_sft.finetune, "300", "32", "1e-3", "20",
               "judge fine-tuning on the gold-labelled comparisons"),
    {"judge_sft.train_ranks", T_INT, OFF(judge_sft.train_ranks), "0", 0, 1 << 20, NULL, 0,
     "worker ranks that train data-parallel: the judge ranks, then policy and reward ranks "
     "(0: the judge ranks only)"},
    {"judge_sft.prompt_loss", T_FLOAT, OFF(judge_sft.prompt_loss), "0.2", 0, 1, NULL, 0,
     "finetune: loss weight of the prompt's tokens (language modelling of the comparisons' texts; "
     "the label token weighs 1)"},
    {"judge_sft.policy_pairs", T_FLOAT, OFF(judge_sft.policy_pairs), "0", 0, 1, NULL, 0,
     "share of the gold-labelled comparisons whose two summaries the SFT policy samples, as the "
     "label stage will (label.temperature, label.top_p, label.max_new_tokens); the rest are drawn "
     "from the SFT mixture"},
    {"judge_sft.eval_pairs", T_INT, OFF(judge_sft.eval_pairs), "1000", 0, 1e8, NULL, 0,
     "held-out comparisons (test documents) for judge_alignment_gold"},
    {"label.source", T_ENUM, OFF(label.source), "policy", 0, 0, "policy|file", 0,
     "policy: the policy ranks sample two responses per prompt; file: label.pairs_file"},
    {"label.pairs_file", T_STRING, OFF(label.pairs_file), "", 0, 4096, NULL, 0,
     "JSONL of {\"context\", \"a\", \"b\"} rows (label.source: file)"},
    {"label.pairs", T_INT, OFF(label.pairs), "6000", 0, 1e8, NULL, 0,
     "pairs to label (prompt i is training document i mod task.n_train; file: 0 = every row)"},
    {"label.temperature", T_FLOAT, OFF(label.temperature), "0.9", 0, 10, NULL, 0,
     "sampling temperature of the candidate responses"},
    {"label.top_p", T_FLOAT, OFF(label.top_p), "1.0", 0, 1, NULL, 0,
     "nucleus sampling of the candidates (1: off)"},
    {"label.max_new_tokens", T_INT, OFF(label.max_new_tokens), "48", 1, 4096, NULL, 0,
     "tokens per candidate response at most"},

    /* ---- stage reward */
    {"reward.init", T_STRING, OFF(reward.init), "sft", 1, 4096, NULL, 0,
     "start of the reward model: sft (models/policy_sft.gguf of this run, else policy.gguf), "
     "random, a FILE.gguf, or a checkpoint component FILE.h5 holding reward/params"},
    {"reward.labels", T_ENUM, OFF(reward.labels), "ai", 0, 0, "ai|gold", 0,
     "train on the judge's soft labels (RLAIF) or on the gold rater's (the RLHF baseline)"},
    {"reward.labels_file", T_STRING, OFF(reward.labels_file), "", 0, 4096, NULL, 0,
     "labels.h5 to train on; empty: the one the label stage wrote in run.out_dir"},
    {"reward.loss", T_ENUM, OFF(reward.loss), "soft_ce", 0, 0, "soft_ce|bt|bt_margin", 0,
     "soft cross-entropy on p (the paper), hard Bradley-Terry on argmax p, or Bradley-Terry "
     "with margin reward.margin * |2p - 1|"},
    {"reward.margin", T_FLOAT, OFF(reward.margin), "1.0", 0, 100, NULL, 0,
     "margin scale of loss bt_margin"},
    {"reward.epochs", T_INT, OFF(reward.epochs), "2", 1, 1e6, NULL, 0,
     "passes over the training pairs (when reward.steps is 0)"},
    {"reward.val_fraction", T_FLOAT, OFF(reward.val_fraction), "0.1", 0, 0.9, NULL, 0,
     "share of the pairs held out for validation (split by prompt)"},
    {"reward.max_pairs", T_INT, OFF(reward.max_pairs), "0", 0, 1e9, NULL, 0,
     "use at most this many labelled pairs (0: all)"},
    {"reward.eval_every", T_INT, OFF(reward.eval_every), "50", 1, 1e9, NULL, 0,
     "validation every N optimiser steps, and after the last"},
    {"reward.norm_samples", T_INT, OFF(reward.norm_samples), "1024", 2, 1e8, NULL, 0,
     "SFT responses (from the labelled pairs) the reward normalisation is measured on"},
    {"reward.score_batch", T_INT, OFF(reward.score_batch), "64", 1, 65536, NULL, 0,
     "sequences per forward pass when scoring (validation, normalisation, the RL service)"},
    {"reward.train_ranks", T_INT, OFF(reward.train_ranks), "0", 0, 1 << 20, NULL, 0,
     "worker ranks that train data-parallel: the reward ranks, then policy and judge ranks "
     "(0: the reward ranks only; the others are idle in this stage)"},
    OPTIM_KEYS("reward", reward.optim, "0", "32", "5e-4", "10",
               "reward-model training (0: reward.epochs passes over the pairs)"),

    /* ---- stage rl */
    {"rl.algorithm", T_ENUM, OFF(rl.algorithm), "ppo", 0, 0, "ppo|reinforce", 0,
     "PPO (clipped ratio, value model, GAE), or the paper's REINFORCE with a learned value "
     "baseline (gamma 1, KL in the loss)"},
    {"rl.reward", T_ENUM, OFF(rl.reward), "model", 0, 0, "model|judge", 0,
     "rewards from the reward ranks' model, or from the judge ranks (d-RLAIF, scores 1..10)"},
    {"rl.steps", T_INT, OFF(rl.steps), "100", 0, 1e9, NULL, 0,
     "iterations: each samples rl.rollouts responses and trains on them"},
    {"rl.rollouts", T_INT, OFF(rl.rollouts), "64", 1, 1 << 20, NULL, 0,
     "responses per iteration, over all policy ranks (a multiple of their count)"},
    {"rl.minibatch", T_INT, OFF(rl.minibatch), "16", 1, 1 << 20, NULL, 0,
     "responses per optimiser step, over all policy ranks (divides rl.rollouts)"},
    {"rl.epochs", T_INT, OFF(rl.epochs), "2", 1, 1000, NULL, 0,
     "passes over each iteration's responses"},
    {"rl.temperature", T_FLOAT, OFF(rl.temperature), "0.9", 0.01, 10, NULL, 0,
     "sampling temperature of the rollouts (the log-probs are those of softmax(logits/T))"},
    {"rl.top_k", T_INT, OFF(rl.top_k), "0", 0, 1 << 20, NULL, 0,
     "sample from the k most likely tokens (0: all)"},
    {"rl.top_p", T_FLOAT, OFF(rl.top_p), "1.0", 0.01, 1, NULL, 0, "nucleus sampling mass (1: all)"},
    {"rl.max_new_tokens", T_INT, OFF(rl.max_new_tokens), "32", 1, 1 << 20, NULL, 0,
     "longest response; one that stops here without EOS gets rl.no_eos_penalty"},
    {"rl.kl_coef", T_FLOAT, OFF(rl.kl_coef), "0.05", 0, 100, NULL, 0,
     "beta of the KL penalty against the SFT policy (start value when adaptive)"},
    {"rl.kl_target", T_FLOAT, OFF(rl.kl_target), "0", 0, 1e6, NULL, 0,
     "adaptive KL controller: target KL per response (0: fixed rl.kl_coef)"},
    {"rl.kl_horizon", T_INT, OFF(rl.kl_horizon), "10000", 1, 1e9, NULL, 0,
     "adaptive KL controller: horizon in responses"},
    {"rl.kl_estimator", T_ENUM, OFF(rl.kl_estimator), "k1", 0, 0, "k1|k2|k3", 0,
     "per-token KL estimate of the penalty: k1 log r, k2 (log r)^2/2, k3 r-1-log r"},
    {"rl.gamma", T_FLOAT, OFF(rl.gamma), "1.0", 0, 1, NULL, 0, "discount"},
    {"rl.lambda", T_FLOAT, OFF(rl.lambda), "0.95", 0, 1, NULL, 0, "GAE lambda"},
    {"rl.clip", T_FLOAT, OFF(rl.clip), "0.2", 0, 10, NULL, 0, "PPO ratio clip epsilon"},
    {"rl.value_clip", T_FLOAT, OFF(rl.value_clip), "0.2", 0, 1e6, NULL, 0,
     "clip of the value change per iteration in the value loss (0: unclipped loss)"},
    {"rl.whiten_advantages", T_BOOL, OFF(rl.whiten_advantages), "true", 0, 0, NULL, 0,
     "advantages to mean 0, variance 1 over the iteration's tokens"},
    {"rl.whiten_rewards", T_BOOL, OFF(rl.whiten_rewards), "false", 0, 0, NULL, 0,
     "scale the per-token rewards to variance 1 over the iteration's tokens"},
    {"rl.reward_clip", T_FLOAT, OFF(rl.reward_clip), "0", 0, 1e6, NULL, 0,
     "clip scores to [-c, c] (0: off)"},
    {"rl.no_eos_penalty", T_FLOAT, OFF(rl.no_eos_penalty), "1.0", 0, 1e6, NULL, 0,
     "subtracted from the score of a response that never emits EOS"},
    {"rl.entropy_coef", T_FLOAT, OFF(rl.entropy_coef), "0", 0, 100, NULL, 0,
     "entropy bonus in the policy loss"},
    {"rl.sample_every", T_INT, OFF(rl.sample_every), "25", 0, 1e9, NULL, 0,
     "a table of sample responses every N iterations (0: only at the end)"},
    {"rl.train_ranks", T_INT, OFF(rl.train_ranks), "0", 0, 1 << 20, NULL, 0,
     "ranks that sample and train the policy data-parallel: the policy ranks, then judge ranks "
     "when rl.reward is model (0: the policy ranks only)"},
    ADAMW_KEYS("rl.policy", rl.policy_opt, "2e-4", "5", "the policy"),
    ADAMW_KEYS("rl.value", rl.value_opt, "5e-4", "5", "the value model"),

    /* ---- stage eval */
    {"eval.prompts", T_INT, OFF(eval.prompts), "500", 1, 1e8, NULL, 0,
     "held-out prompts (test split) both policies answer"},
    {"eval.temperature", T_FLOAT, OFF(eval.temperature), "0.9", 0, 10, NULL, 0,
     "sampling temperature of both policies (0: greedy)"},
    {"eval.max_new_tokens", T_INT, OFF(eval.max_new_tokens), "32", 1, 1 << 20, NULL, 0,
     "longest response"},
    {"eval.samples", T_INT, OFF(eval.samples), "20", 0, 1e6, NULL, 0,
     "rows of the side-by-side samples table"},
    {"eval.judge", T_BOOL, OFF(eval.judge), "true", 0, 0, NULL, 0,
     "also let the judge ranks compare the two policies (both orders)"},
    {"eval.policy", T_STRING, OFF(eval.policy), "", 0, 4096, NULL, 0,
     "GGUF of the trained policy; empty: models/policy_rl.gguf of this run"},
    {"eval.baseline", T_STRING, OFF(eval.baseline), "", 0, 4096, NULL, 0,
     "GGUF of the policy it is compared with; empty: models/policy_sft.gguf of this run"},
    {"eval.versus", T_STRING, OFF(eval.versus), "", 0, 4096, NULL, 0,
     "GGUF of another trained policy (e.g. the RLHF arm's) to compare with head to head; empty: "
     "none"},
    {"eval.paired", T_BOOL, OFF(eval.paired), "false", 0, 0, NULL, 0,
     "sample every policy with the same random stream per prompt (a coupled comparison: where "
     "the policies agree the responses are identical and tie; lower variance, but not the win "
     "rate of independent samples, which false measures)"},
};
#define N_KEYS ((int)(sizeof schema / sizeof schema[0]))

static const char *const stage_names[STAGE_COUNT] = {"sft",    "judge_sft", "label",
                                                     "reward", "rl",        "eval"};

const char *config_stage_name(int stage) {
    return stage >= 0 && stage < STAGE_COUNT ? stage_names[stage] : "?";
}

/* ------------------------------------------------------------------ small helpers */

#define MAX_ERRORS 20

typedef struct loader {
    const char *name;
    yaml_document_t *doc;
    config *cfg;
    char *errs;
    size_t errs_len, errs_cap;
    int n_errs;
    int set[N_KEYS];
    /* sections seen: for "missing key" positions */
    char sect_path[64][96];
    config_pos sect_pos[64];
    int n_sect;
} loader;

static void add_err(loader *ld, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_err(loader *ld, int line, int col, const char *fmt, ...) {
    ld->n_errs++;
    if (ld->n_errs > MAX_ERRORS) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line_buf[1400];
    int n = snprintf(line_buf, sizeof line_buf, "%s:%d:%d: %s\n", ld->name, line, col, msg);
    if (n < 0) return;
    size_t need = ld->errs_len + (size_t)n + 1;
    if (need > ld->errs_cap) {
        ld->errs_cap = need * 2;
        ld->errs = xrealloc(ld->errs, ld->errs_cap);
    }
    memcpy(ld->errs + ld->errs_len, line_buf, (size_t)n + 1);
    ld->errs_len += (size_t)n;
}

static int mark_line(yaml_mark_t m) {
    return (int)m.line + 1;
}
static int mark_col(yaml_mark_t m) {
    return (int)m.column + 1;
}

static int find_key(const char *path) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(schema[i].path, path) == 0) return i;
    return -1;
}

/* A section is a proper prefix of some key path, ending at a dot. */
static int is_section(const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(schema[i].path, path, n) == 0 && schema[i].path[n] == '.') return 1;
    return 0;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 120 || lb > 120) return 1000;
    int d[121][121];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
            /* adjacent transposition */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The closest known key or section to an unknown path, or NULL when none is close. */
static const char *suggest(const char *path, char *buf, size_t bufsz) {
    const char *last = strrchr(path, '.');
    last = last ? last + 1 : path;
    int best = 1000;
    buf[0] = '\0';
    /* candidates: every key and every section prefix */
    for (int i = 0; i < N_KEYS; i++) {
        char cand[128];
        snprintf(cand, sizeof cand, "%s", schema[i].path);
        for (;;) {
            int d = edit_distance(path, cand);
            /* the same last word in another section is a strong hint ("seed" -> "run.seed") */
            const char *cl = strrchr(cand, '.');
            cl = cl ? cl + 1 : cand;
            if (strcmp(cl, last) == 0 && strcmp(cand, path) != 0) d = d < 1 ? d : 1;
            if (d < best) {
                best = d;
                snprintf(buf, bufsz, "%s", cand);
            }
            char *dot = strrchr(cand, '.');
            if (!dot) break;
            *dot = '\0';
        }
    }
    size_t len = strlen(path);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : (int)(len / 4) + 1;
    return best <= limit ? buf : NULL;
}

static const char *node_kind(const yaml_node_t *n) {
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *type_desc(const key_def *k, char *buf, size_t n) {
    switch (k->type) {
    case T_BOOL:
        return "a boolean (true or false)";
    case T_INT:
    case T_INT64:
        return "an integer";
    case T_FLOAT:
        return "a number";
    case T_STRING:
        return "a string";
    case T_ENUM:
        snprintf(buf, n, "one of %s", k->choices);
        return buf;
    case T_STRLIST:
        return "a list of strings";
    case T_MAPLIST:
        return "a list of mappings";
    case T_ENUMLIST:
        snprintf(buf, n, "a list of %s", k->choices);
        return buf;
    }
    return "?";
}

static int is_null_scalar(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)n->data.scalar.value;
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static int is_quoted(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
}

/* Index of `s` among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *s) {
    int idx = 0;
    size_t n = strlen(s);
    for (const char *p = choices;; idx++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0) return idx;
        if (!bar) return -1;
        p = bar + 1;
    }
}

static void choice_name(const char *choices, int idx, char *buf, size_t n) {
    const char *p = choices;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    if (!p) {
        snprintf(buf, n, "?");
        return;
    }
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len >= n) len = n - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
}

static const char *choice_suggest(const char *choices, const char *s, char *buf, size_t n) {
    int best = 1000;
    char cand[64];
    for (int i = 0;; i++) {
        choice_name(choices, i, cand, sizeof cand);
        if (!strcmp(cand, "?")) break;
        int d = edit_distance(s, cand);
        if (d < best) best = d, snprintf(buf, n, "%s", cand);
    }
    return best <= 2 && best < (int)strlen(s) ? buf : NULL;
}

static void choices_list(const char *choices, char *buf, size_t n) {
    snprintf(buf, n, "%s", choices);
    for (char *p = buf; *p; p++)
        if (*p == '|') *p = ',';
    /* "a,b,c" -> "a, b, c" */
    char tmp[512];
    size_t j = 0;
    for (size_t i = 0; buf[i] && j + 2 < sizeof tmp; i++) {
        tmp[j++] = buf[i];
        if (buf[i] == ',') tmp[j++] = ' ';
    }
    tmp[j] = '\0';
    snprintf(buf, n, "%s", tmp);
}

/* ------------------------------------------------------------------ typed parsing */

/* Parses one scalar text for key k into the struct. Returns NULL on success, else a message
 * (static storage within `msg`). */
static const char *parse_scalar(const key_def *k, const char *v, int quoted, void *base, char *msg,
                                size_t msgsz) {
    char *field = (char *)base + k->off;
    char tdesc[256];
    switch (k->type) {
    case T_BOOL:
        if (!quoted && (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))) {
            *(int *)field = 1;
            return NULL;
        }
        if (!quoted && (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))) {
            *(int *)field = 0;
            return NULL;
        }
        snprintf(msg, msgsz, "'%s' expects true or false, got %s'%s'", k->path,
                 quoted ? "the quoted string " : "", v);
        return msg;
    case T_INT:
    case T_INT64: {
        if (quoted) {
            snprintf(msg, msgsz, "'%s' expects an integer, got the quoted string \"%s\"", k->path,
                     v);
            return msg;
        }
        errno = 0;
        char *end = NULL;
        long long x = strtoll(v, &end, 10);
        if (end == v || *end != '\0') {
            snprintf(msg, msgsz, "'%s' expects an integer, got '%s'", k->path, v);
            return msg;
        }
        if (errno == ERANGE || (double)x < k->min || (double)x > k->max) {
            if (k->max >= I64MAX)
                snprintf(msg, msgsz, "'%s' = %s is out of range: it must be >= %.0f", k->path, v,
                         k->min);
            else
                snprintf(msg, msgsz, "'%s' = %s is out of range: it must be between %.0f and %.0f",
                         k->path, v, k->min, k->max);
            return msg;
        }
        if (k->type == T_INT)
            *(int *)field = (int)x;
        else
            *(int64_t *)field = (int64_t)x;
        return NULL;
    }
    case T_FLOAT: {
        if (quoted) {
            snprintf(msg, msgsz, "'%s' expects a number, got the quoted string \"%s\"", k->path, v);
            return msg;
        }
        errno = 0;
        char *end = NULL;
        double x = strtod(v, &end);
        if (end == v || *end != '\0' || isnan(x) || isinf(x)) {
            snprintf(msg, msgsz, "'%s' expects a finite number, got '%s'", k->path, v);
            return msg;
        }
        if (x < k->min || x > k->max) {
            snprintf(msg, msgsz, "'%s' = %s is out of range: it must be between %g and %g", k->path,
                     v, k->min, k->max);
            return msg;
        }
        *(double *)field = x;
        return NULL;
    }
    case T_STRING: {
        size_t len = strlen(v);
        if ((double)len < k->min || (double)len > k->max) {
            if (len == 0)
                snprintf(msg, msgsz, "'%s' must not be empty", k->path);
            else
                snprintf(msg, msgsz, "'%s' is %zu characters long; it must have %.0f to %.0f",
                         k->path, len, k->min, k->max);
            return msg;
        }
        if (k->flags & F_IDENT)
            for (const char *p = v; *p; p++)
                if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
                    snprintf(msg, msgsz,
                             "'%s' = '%s' has the character '%c'; use only letters, digits, '.', "
                             "'_' and '-'",
                             k->path, v, *p);
                    return msg;
                }
        char **slot = (char **)field;
        free(*slot);
        *slot = xstrdup(v);
        return NULL;
    }
    case T_ENUM: {
        int idx = choice_index(k->choices, v);
        if (idx < 0 || quoted) {
            char sug[64], list[512];
            choices_list(k->choices, list, sizeof list);
            const char *s = choice_suggest(k->choices, v, sug, sizeof sug);
            if (idx >= 0) s = NULL;
            snprintf(msg, msgsz, "'%s' must be one of %s; got '%s'%s%s%s", k->path, list, v,
                     s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
            return msg;
        }
        *(int *)field = idx;
        return NULL;
    }
    default:
        snprintf(msg, msgsz, "'%s' expects %s", k->path, type_desc(k, tdesc, sizeof tdesc));
        return msg;
    }
}

static void free_item(const key_def *k, void *item);

/* A list of mappings: every item is a mapping of the sub-schema's keys. */
static void set_maplist(loader *ld, const key_def *k, yaml_node_t *val) {
    char msg[1024], tdesc[256];
    int line = mark_line(val->start_mark), col = mark_col(val->start_mark);
    if (val->type != YAML_SEQUENCE_NODE) {
        add_err(ld, line, col, "'%s' expects a list of mappings (each with keys %s), got %s",
                k->path, k->sub[0].path, is_null_scalar(val) ? "an empty value" : node_kind(val));
        return;
    }
    int n = (int)(val->data.sequence.items.top - val->data.sequence.items.start);
    if (n < k->min || n > k->max) {
        add_err(ld, line, col, "'%s' has %d items; it must have %.0f to %.0f", k->path, n, k->min,
                k->max);
        return;
    }
    config_maplist *l = (config_maplist *)((char *)ld->cfg + k->off);
    l->items = xcalloc((size_t)n + 1, k->elem_size);
    l->n = n;
    for (int i = 0; i < n; i++) {
        yaml_node_t *it = yaml_document_get_node(ld->doc, val->data.sequence.items.start[i]);
        int il = mark_line(it->start_mark), ic = mark_col(it->start_mark);
        char *item = (char *)l->items + (size_t)i * k->elem_size;
        if (it->type != YAML_MAPPING_NODE) {
            add_err(ld, il, ic, "item %d of '%s' must be a mapping, got %s", i + 1, k->path,
                    node_kind(it));
            continue;
        }
        int set[32] = {0};
        for (yaml_node_pair_t *p = it->data.mapping.pairs.start; p < it->data.mapping.pairs.top;
             p++) {
            yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
            yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
            int kl = mark_line(key->start_mark), kc = mark_col(key->start_mark);
            if (key->type != YAML_SCALAR_NODE) {
                add_err(ld, kl, kc, "keys must be plain names, got %s as a key", node_kind(key));
                continue;
            }
            const char *ks = (const char *)key->data.scalar.value;
            int si = -1, best = 1000, bi = -1;
            for (int j = 0; j < k->n_sub; j++) {
                if (!strcmp(k->sub[j].path, ks)) si = j;
                int d = edit_distance(ks, k->sub[j].path);
                if (d < best) best = d, bi = j;
            }
            if (si < 0) {
                if (best <= 2)
                    add_err(ld, kl, kc, "unknown key '%s' in item %d of '%s' (did you mean '%s'?)",
                            ks, i + 1, k->path, k->sub[bi].path);
                else
                    add_err(ld, kl, kc, "unknown key '%s' in item %d of '%s'", ks, i + 1, k->path);
                continue;
            }
            if (set[si]) {
                add_err(ld, kl, kc, "duplicate key '%s' in item %d of '%s'", ks, i + 1, k->path);
                continue;
            }
            set[si] = 1;
            const key_def *sk = &k->sub[si];
            int vl = mark_line(v->start_mark), vc = mark_col(v->start_mark);
            if (v->type != YAML_SCALAR_NODE || is_null_scalar(v)) {
                add_err(ld, vl, vc, "'%s' of item %d of '%s' expects %s, got %s", ks, i + 1,
                        k->path, type_desc(sk, tdesc, sizeof tdesc),
                        v->type == YAML_SCALAR_NODE ? "an empty value" : node_kind(v));
                continue;
            }
            const char *err = parse_scalar(sk, (const char *)v->data.scalar.value, is_quoted(v),
                                           item, msg, sizeof msg);
            if (err) add_err(ld, vl, vc, "item %d of '%s': %s", i + 1, k->path, err);
        }
        for (int j = 0; j < k->n_sub; j++) {
            if (set[j]) continue;
            if (!k->sub[j].def) {
                add_err(ld, il, ic, "item %d of '%s' has no '%s' (%s)", i + 1, k->path,
                        k->sub[j].path, k->sub[j].help);
                continue;
            }
            const char *err = parse_scalar(&k->sub[j], k->sub[j].def, 0, item, msg, sizeof msg);
            if (err) add_err(ld, il, ic, "internal: default of %s: %s", k->sub[j].path, err);
        }
    }
}

static void set_key(loader *ld, int ki, yaml_node_t *val) {
    const key_def *k = &schema[ki];
    char msg[1024], tdesc[256];
    int line = mark_line(val->start_mark), col = mark_col(val->start_mark);
    ld->set[ki] = 1;
    ld->cfg->pos[ki] = (config_pos){line, col};

    if (k->type == T_MAPLIST) {
        set_maplist(ld, k, val);
        return;
    }
    if (k->type == T_STRLIST || k->type == T_ENUMLIST) {
        if (val->type != YAML_SEQUENCE_NODE) {
            if (is_null_scalar(val))
                add_err(ld, line, col, "'%s' has no value; it expects %s (write [] for none)",
                        k->path, type_desc(k, tdesc, sizeof tdesc));
            else
                add_err(ld, line, col, "'%s' expects %s, got %s", k->path,
                        type_desc(k, tdesc, sizeof tdesc), node_kind(val));
            return;
        }
        int n = (int)(val->data.sequence.items.top - val->data.sequence.items.start);
        if (n < k->min || n > k->max) {
            add_err(ld, line, col, "'%s' has %d items; it must have %.0f to %.0f", k->path, n,
                    k->min, k->max);
            return;
        }
        char **strs = k->type == T_STRLIST ? xcalloc((size_t)n + 1, sizeof *strs) : NULL;
        int *ints = k->type == T_ENUMLIST ? xcalloc((size_t)n + 1, sizeof *ints) : NULL;
        int ok = 1, prev = -1;
        for (int i = 0; i < n; i++) {
            yaml_node_t *it = yaml_document_get_node(ld->doc, val->data.sequence.items.start[i]);
            int il = mark_line(it->start_mark), ic = mark_col(it->start_mark);
            if (it->type != YAML_SCALAR_NODE || is_null_scalar(it)) {
                add_err(ld, il, ic, "item %d of '%s' must be %s, got %s", i + 1, k->path,
                        k->type == T_STRLIST ? "a string" : "a name",
                        it->type == YAML_SCALAR_NODE ? "an empty value" : node_kind(it));
                ok = 0;
                continue;
            }
            const char *v = (const char *)it->data.scalar.value;
            if (k->type == T_STRLIST) {
                strs[i] = xstrdup(v);
                continue;
            }
            int idx = choice_index(k->choices, v);
            if (idx < 0) {
                char sug[64], list[512];
                choices_list(k->choices, list, sizeof list);
                const char *s = choice_suggest(k->choices, v, sug, sizeof sug);
                add_err(ld, il, ic, "item %d of '%s' must be one of %s; got '%s'%s%s%s", i + 1,
                        k->path, list, v, s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
                ok = 0;
                continue;
            }
            if ((k->flags & F_ORDERED) && idx <= prev) {
                char list[512];
                choices_list(k->choices, list, sizeof list);
                if (idx == prev)
                    add_err(ld, il, ic, "'%s' lists '%s' twice", k->path, v);
                else
                    add_err(ld, il, ic,
                            "'%s' must follow the pipeline order %s; '%s' comes too late", k->path,
                            list, v);
                ok = 0;
            }
            prev = idx > prev ? idx : prev;
            ints[i] = idx;
        }
        if (k->type == T_STRLIST) {
            config_strlist *l = (config_strlist *)((char *)ld->cfg + k->off);
            for (int i = 0; i < l->n; i++) free(l->items[i]);
            free(l->items);
            l->items = strs, l->n = n;
            if (!ok) { /* keep what parsed; the load fails anyway */
            }
        } else {
            config_intlist *l = (config_intlist *)((char *)ld->cfg + k->off);
            free(l->items);
            l->items = ints, l->n = n;
        }
        return;
    }

    if (val->type != YAML_SCALAR_NODE) {
        add_err(ld, line, col, "'%s' expects %s, got %s", k->path,
                type_desc(k, tdesc, sizeof tdesc), node_kind(val));
        return;
    }
    if (is_null_scalar(val)) {
        add_err(ld, line, col, "'%s' has no value; it expects %s", k->path,
                type_desc(k, tdesc, sizeof tdesc));
        return;
    }
    const char *err = parse_scalar(k, (const char *)val->data.scalar.value, is_quoted(val), ld->cfg,
                                   msg, sizeof msg);
    if (err) add_err(ld, line, col, "%s", err);
}

static void note_section(loader *ld, const char *path, yaml_mark_t m) {
    if (ld->n_sect >= 64) return;
    snprintf(ld->sect_path[ld->n_sect], sizeof ld->sect_path[0], "%s", path);
    ld->sect_pos[ld->n_sect] = (config_pos){mark_line(m), mark_col(m)};
    ld->n_sect++;
}

static void section_keys(const char *section, char *buf, size_t n) {
    size_t sl = strlen(section), used = 0;
    buf[0] = '\0';
    char seen[64][64];
    int nseen = 0;
    for (int i = 0; i < N_KEYS && used + 40 < n; i++) {
        if (strncmp(schema[i].path, section, sl) != 0 || schema[i].path[sl] != '.') continue;
        char word[64];
        const char *rest = schema[i].path + sl + 1;
        size_t wl = strcspn(rest, ".");
        if (wl >= sizeof word) wl = sizeof word - 1;
        memcpy(word, rest, wl);
        word[wl] = '\0';
        int dup = 0;
        for (int j = 0; j < nseen; j++) dup |= !strcmp(seen[j], word);
        if (dup || nseen >= 64) continue;
        snprintf(seen[nseen++], 64, "%s", word);
        used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", word);
    }
}

static void walk_map(loader *ld, yaml_node_t *map, const char *prefix) {
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(ld->doc, p->value);
        int kl = mark_line(key->start_mark), kc = mark_col(key->start_mark);
        if (key->type != YAML_SCALAR_NODE) {
            add_err(ld, kl, kc, "keys must be plain names, got %s as a key", node_kind(key));
            continue;
        }
        const char *ks = (const char *)key->data.scalar.value;
        int dup = 0;
        for (yaml_node_pair_t *q = start; q < p && !dup; q++) {
            yaml_node_t *k2 = yaml_document_get_node(ld->doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && !strcmp((const char *)k2->data.scalar.value, ks)) {
                add_err(ld, kl, kc, "duplicate key '%s%s%s' (first given at line %d)",
                        prefix ? prefix : "", prefix ? "." : "", ks, mark_line(k2->start_mark));
                dup = 1;
            }
        }
        if (dup) continue;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", ks);
        int ki = find_key(path);
        if (ki >= 0) {
            set_key(ld, ki, val);
        } else if (is_section(path)) {
            note_section(ld, path, key->start_mark);
            if (val->type != YAML_MAPPING_NODE) {
                char keys[512];
                section_keys(path, keys, sizeof keys);
                add_err(ld, mark_line(val->start_mark), mark_col(val->start_mark),
                        "'%s' is a section: it expects a mapping of keys (%s), got %s", path, keys,
                        is_null_scalar(val) ? "an empty value" : node_kind(val));
                continue;
            }
            walk_map(ld, val, path);
        } else {
            char sug[128];
            const char *s = suggest(path, sug, sizeof sug);
            if (s)
                add_err(ld, kl, kc, "unknown key '%s' (did you mean '%s'?)", path, s);
            else if (prefix)
                add_err(ld, kl, kc,
                        "unknown key '%s'; see `rlaif check --schema` for the keys of '%s'", path,
                        prefix);
            else
                add_err(ld, kl, kc, "unknown key '%s'; see `rlaif check --schema` for every key",
                        path);
        }
    }
}

static config_pos section_pos(const loader *ld, const char *path) {
    /* the innermost section of `path` that the deck has */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (;;) {
        char *dot = strrchr(buf, '.');
        if (!dot) break;
        *dot = '\0';
        for (int i = 0; i < ld->n_sect; i++)
            if (!strcmp(ld->sect_path[i], buf)) return ld->sect_pos[i];
    }
    return (config_pos){1, 1};
}

static char *expand_default(const char *def, const config *cfg) {
    const char *tok = strstr(def, "{run.name}");
    if (!tok) return xstrdup(def);
    const char *name = cfg->run.name ? cfg->run.name : "run";
    size_t n = strlen(def) + strlen(name);
    char *out = xmalloc(n + 1);
    snprintf(out, n + 1, "%.*s%s%s", (int)(tok - def), def, name, tok + strlen("{run.name}"));
    return out;
}

static void apply_defaults(loader *ld) {
    for (int i = 0; i < N_KEYS; i++) {
        if (ld->set[i]) continue;
        const key_def *k = &schema[i];
        if (!k->def) {
            config_pos p = section_pos(ld, k->path);
            add_err(ld, p.line, p.col, "missing required key '%s' (%s)", k->path, k->help);
            continue;
        }
        char msg[512];
        if (k->type == T_ENUMLIST || k->type == T_STRLIST || k->type == T_MAPLIST)
            continue; /* defaults are empty lists */
        char *v = expand_default(k->def, ld->cfg);
        const char *err = parse_scalar(k, v, 0, ld->cfg, msg, sizeof msg);
        free(v);
        if (err) add_err(ld, 0, 0, "internal: default of %s does not parse: %s", k->path, err);
    }
}

/* Rules that involve more than one key. */
static void check_model(loader *ld, const char *p, const config_model *m) {
    char key[128];
    if (m->gguf && m->gguf[0]) return; /* the file says */
    snprintf(key, sizeof key, "%s.kv_heads", p);
    if (m->heads % m->kv_heads) {
        config_pos pos = config_key_pos(ld->cfg, key);
        add_err(ld, pos.line, pos.col, "'%s' = %d must divide %s.heads = %d", key, m->kv_heads, p,
                m->heads);
    }
    snprintf(key, sizeof key, "%s.heads", p);
    if (m->dim % m->heads || (m->dim / m->heads) % 2) {
        config_pos pos = config_key_pos(ld->cfg, key);
        add_err(ld, pos.line, pos.col,
                "'%s' = %d must divide %s.dim = %d into heads of even size (rotary pairs)", key,
                m->heads, p, m->dim);
    }
}

/* Where to point for a rule about `key`: where it was set, else its section, else the top. */
static config_pos rule_pos(loader *ld, const char *key) {
    config_pos p = config_key_pos(ld->cfg, key);
    return p.line ? p : section_pos(ld, key);
}

/* The reward, rl and eval sections against each other and the rank counts. */
static void check_reward_rl_eval(loader *ld) {
    config *c = ld->cfg;
    config_pos p;
    if (config_has_stage(c, STAGE_REWARD)) {
        if (c->ranks.reward < 1) {
            p = rule_pos(ld, "ranks.reward");
            add_err(ld, p.line, p.col,
                    "stage 'reward' needs at least one reward rank (ranks.reward)");
        } else {
            int workers = c->ranks.judge + c->ranks.reward + c->ranks.policy;
            int n = c->reward.train_ranks ? c->reward.train_ranks : c->ranks.reward;
            if (c->reward.train_ranks > workers) {
                p = rule_pos(ld, "reward.train_ranks");
                add_err(ld, p.line, p.col,
                        "'reward.train_ranks' = %d is more than the %d worker ranks the deck has",
                        c->reward.train_ranks, workers);
            } else if (c->reward.optim.batch % n) {
                p = rule_pos(ld, "reward.batch");
                add_err(ld, p.line, p.col,
                        "'reward.batch' = %d must be a multiple of the %d rank%s that train it "
                        "(each takes the same share)",
                        c->reward.optim.batch, n, n == 1 ? "" : "s");
            }
        }
        if (c->reward.labels == REWARD_LABELS_GOLD && c->task.name != 0) {
            p = rule_pos(ld, "reward.labels");
            add_err(ld, p.line, p.col,
                    "'reward.labels' = gold needs the built-in task's gold rater (task.name: "
                    "summaries)");
        }
        const char *init = c->reward.init;
        size_t n = strlen(init);
        int ok = !strcmp(init, "sft") || !strcmp(init, "random") ||
                 (n > 5 && !strcmp(init + n - 5, ".gguf")) ||
                 (n > 3 && !strcmp(init + n - 3, ".h5"));
        if (!ok) {
            p = rule_pos(ld, "reward.init");
            add_err(ld, p.line, p.col,
                    "'reward.init' = '%s' must be sft, random, a .gguf file or a checkpoint "
                    "component .h5 file",
                    init);
        }
    }
    if (config_has_stage(c, STAGE_RL)) {
        if (c->ranks.policy < 1) {
            p = rule_pos(ld, "ranks.policy");
            add_err(ld, p.line, p.col, "stage 'rl' needs at least one policy rank (ranks.policy)");
            return;
        }
        if (c->rl.reward == RL_REWARD_MODEL && c->ranks.reward < 1) {
            p = rule_pos(ld, "ranks.reward");
            add_err(ld, p.line, p.col,
                    "stage 'rl' with rl.reward: model needs at least one reward rank to serve "
                    "scores (ranks.reward)");
        }
        if (c->rl.reward == RL_REWARD_JUDGE && c->ranks.judge < 1) {
            p = rule_pos(ld, "rl.reward");
            add_err(ld, p.line, p.col,
                    "'rl.reward' = judge needs at least one judge rank (ranks.judge)");
        }
        int extra = c->rl.reward == RL_REWARD_MODEL ? c->ranks.judge : 0;
        int n = c->rl.train_ranks ? c->rl.train_ranks : c->ranks.policy;
        const char *nk = c->rl.train_ranks ? "rl.train_ranks" : "ranks.policy";
        if (c->rl.train_ranks > c->ranks.policy + extra) {
            p = rule_pos(ld, "rl.train_ranks");
            add_err(ld, p.line, p.col,
                    "'rl.train_ranks' = %d is more than the policy ranks (%d) plus the judge "
                    "ranks free in this stage (%d)",
                    c->rl.train_ranks, c->ranks.policy, extra);
        } else if (c->rl.rollouts % n) {
            p = rule_pos(ld, "rl.rollouts");
            add_err(ld, p.line, p.col, "'rl.rollouts' = %d must be a multiple of %s = %d",
                    c->rl.rollouts, nk, n);
        } else if (c->rl.minibatch > c->rl.rollouts || c->rl.rollouts % c->rl.minibatch ||
                   c->rl.minibatch % n) {
            p = rule_pos(ld, "rl.minibatch");
            add_err(ld, p.line, p.col,
                    "'rl.minibatch' = %d must divide rl.rollouts = %d and be a multiple of "
                    "%s = %d",
                    c->rl.minibatch, c->rl.rollouts, nk, n);
        }
        if (c->rl.algorithm == RL_ALGO_REINFORCE && c->rl.gamma != 1.0) {
            p = rule_pos(ld, "rl.gamma");
            add_err(ld, p.line, p.col,
                    "'rl.gamma' = %g: rl.algorithm reinforce uses undiscounted returns (gamma 1)",
                    c->rl.gamma);
        }
        if (c->rl.kl_target > 0 && c->rl.kl_coef <= 0) {
            p = rule_pos(ld, "rl.kl_coef");
            add_err(ld, p.line, p.col,
                    "'rl.kl_coef' must be > 0 when rl.kl_target sets an adaptive controller "
                    "(it is the start value)");
        }
    }
    if (config_has_stage(c, STAGE_EVAL)) {
        if (c->ranks.policy < 1) {
            p = rule_pos(ld, "ranks.policy");
            add_err(ld, p.line, p.col,
                    "stage 'eval' needs at least one policy rank (ranks.policy)");
        }
        p = config_key_pos(c, "eval.judge");
        if (c->eval.judge && p.line && c->ranks.judge < 1)
            add_err(ld, p.line, p.col,
                    "'eval.judge' = true needs at least one judge rank (ranks.judge)");
    }
}
static void validate_stage_keys(loader *ld);

static void validate_semantics(loader *ld) {
    config *c = ld->cfg;
    if (ld->n_errs) return; /* the struct may be half-filled */
    check_reward_rl_eval(ld);
    check_model(ld, "policy", &c->policy);
    check_model(ld, "judge.model", &c->judge_model);
    double mix = c->task.mix_good + c->task.mix_verbose + c->task.mix_missing +
                 c->task.mix_invented + c->task.mix_malformed;
    if (mix < 0.999 || mix > 1.001) {
        config_pos p = config_key_pos(c, "task.mix.good");
        if (!p.line) p = section_pos(ld, "task.mix.good");
        add_err(ld, p.line, p.col, "the shares of task.mix add up to %g; they must add up to 1",
                mix);
    }
    if (c->ranks.judge + c->ranks.reward + c->ranks.policy < 1) {
        config_pos p = config_key_pos(c, "ranks.judge");
        if (!p.line) p = section_pos(ld, "ranks.judge");
        add_err(ld, p.line, p.col,
                "the deck asks for no worker ranks: give at least one of "
                "ranks.judge, ranks.reward, ranks.policy");
    }
    validate_stage_keys(ld);
}

/* The position of a key for a message: where it was set, else its innermost section in the
 * deck, else the stages list (the reason the key matters). */
static config_pos key_or_section_pos(loader *ld, const char *path) {
    config_pos p = config_key_pos(ld->cfg, path);
    if (!p.line) {
        int have_section = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", path);
        for (char *dot = strrchr(buf, '.'); dot && !have_section; dot = strrchr(buf, '.')) {
            *dot = '\0';
            for (int i = 0; i < ld->n_sect; i++) have_section |= !strcmp(ld->sect_path[i], buf);
        }
        p = have_section ? section_pos(ld, path) : config_key_pos(ld->cfg, "stages");
    }
    if (!p.line) p = (config_pos){1, 1};
    return p;
}

/* Rules of the judge, sft, judge_sft and label sections. */
static void validate_stage_keys(loader *ld) {
    config *c = ld->cfg;
    int workers = c->ranks.judge + c->ranks.reward + c->ranks.policy;
    int has_sft = config_has_stage(c, STAGE_SFT), has_jsft = config_has_stage(c, STAGE_JUDGE_SFT);
    int has_label = config_has_stage(c, STAGE_LABEL);
    config_pos p;
    /* the ranks that train: the role's own, or train_ranks of all the workers */
    struct {
        int on;
        const char *key, *batch_key, *role_key;
        int train_ranks, role_ranks;
        int batches[2];
        const char *batch_keys[2];
        int n_batches;
    } tr[2] = {
        {has_sft,
         "sft.train_ranks",
         "sft.batch",
         "ranks.policy",
         c->sft_opts.train_ranks,
         c->ranks.policy,
         {c->sft.batch, 0},
         {"sft.batch", NULL},
         1},
        {has_jsft,
         "judge_sft.train_ranks",
         NULL,
         "ranks.judge",
         c->judge_sft.train_ranks,
         c->ranks.judge,
         {c->judge_sft.pretrain.batch, c->judge_sft.finetune.batch},
         {"judge_sft.pretrain.batch", "judge_sft.finetune.batch"},
         2},
    };
    for (int i = 0; i < 2; i++) {
        if (!tr[i].on) continue;
        int n = tr[i].train_ranks ? tr[i].train_ranks : tr[i].role_ranks;
        if (tr[i].train_ranks > workers) {
            p = key_or_section_pos(ld, tr[i].key);
            add_err(ld, p.line, p.col,
                    "'%s' = %d is more than the %d worker ranks the deck has (ranks.judge + "
                    "ranks.reward + ranks.policy)",
                    tr[i].key, tr[i].train_ranks, workers);
            continue;
        }
        if (n == 0) {
            p = key_or_section_pos(ld, tr[i].role_key);
            add_err(ld, p.line, p.col,
                    "stage %s needs ranks to train on: '%s' is 0 and '%s' is 0 (give that role a "
                    "rank, or set %s)",
                    i == 0 ? "sft" : "judge_sft", tr[i].role_key, tr[i].key, tr[i].key);
            continue;
        }
        for (int b = 0; b < tr[i].n_batches; b++)
            if (tr[i].batches[b] % n) {
                p = key_or_section_pos(ld, tr[i].batch_keys[b]);
                add_err(ld, p.line, p.col,
                        "'%s' = %d must be a multiple of the %d rank%s that train it (%s)",
                        tr[i].batch_keys[b], tr[i].batches[b], n, n == 1 ? "" : "s",
                        tr[i].train_ranks ? tr[i].key : tr[i].role_key);
            }
    }
    /* (a pairs file with label.pairs: 0 is labelled whole; its size is only known at run time) */
    int label_count_known = !(c->label.source == CONFIG_LABEL_FILE && c->label.pairs == 0);
    if (has_jsft && c->task.name == 0 && label_count_known &&
        (long)c->task.judge_pairs * 10 > (long)c->label.pairs) {
        p = key_or_section_pos(ld, "task.judge_pairs");
        add_err(ld, p.line, p.col,
                "'task.judge_pairs' = %d is more than a tenth of label.pairs = %d: the feedback "
                "model's gold labels must be at most a tenth of the AI labels (the point of "
                "RLAIF); lower it or raise label.pairs",
                c->task.judge_pairs, c->label.pairs);
    }
    if (has_jsft && c->judge_sft.policy_pairs > 0 && !has_sft && !c->policy.gguf[0]) {
        p = key_or_section_pos(ld, "judge_sft.policy_pairs");
        add_err(ld, p.line, p.col,
                "'judge_sft.policy_pairs' = %g samples comparisons from the SFT policy, but there "
                "is none: add stage sft before judge_sft or give policy.gguf",
                c->judge_sft.policy_pairs);
    }
    if (has_jsft && c->task.name != 0) {
        p = config_key_pos(c, "stages");
        add_err(ld, p.line, p.col,
                "stage judge_sft fine-tunes on the built-in task's gold comparisons; it needs "
                "task.name: summaries");
    }
    if (has_sft && c->task.name != 0) {
        p = config_key_pos(c, "stages");
        add_err(ld, p.line, p.col,
                "stage sft trains on the built-in task's data; it needs task.name: summaries");
    }
    if (has_label) {
        if (c->ranks.judge < 1) {
            p = key_or_section_pos(ld, "ranks.judge");
            add_err(ld, p.line, p.col, "stage label needs at least one judge rank (ranks.judge)");
        }
        if (c->label.source == CONFIG_LABEL_POLICY) {
            if (c->ranks.policy < 1) {
                p = key_or_section_pos(ld, "ranks.policy");
                add_err(ld, p.line, p.col,
                        "label.source: policy needs at least one policy rank to sample the pairs "
                        "(ranks.policy), or use label.source: file");
            }
            if (c->task.name != 0) {
                p = key_or_section_pos(ld, "label.source");
                add_err(ld, p.line, p.col,
                        "label.source: policy takes its prompts from the built-in task; with "
                        "task.name: none use label.source: file");
            }
            if (c->label.pairs < 1) {
                p = key_or_section_pos(ld, "label.pairs");
                add_err(ld, p.line, p.col,
                        "'label.pairs' = 0 means every row of the pairs file; with label.source: "
                        "policy give the number of pairs to sample");
            }
        } else if (!c->label.pairs_file[0]) {
            p = key_or_section_pos(ld, "label.source");
            add_err(ld, p.line, p.col, "label.source: file needs label.pairs_file");
        }
    }
    if (c->judge.cot.samples > 1 && c->judge.cot.temperature <= 0) {
        p = key_or_section_pos(ld, "judge.cot.samples");
        add_err(ld, p.line, p.col,
                "'judge.cot.samples' = %d needs judge.cot.temperature > 0: greedy rationales "
                "would all be the same",
                c->judge.cot.samples);
    }
    if (c->judge.clamp_low >= c->judge.clamp_high) {
        p = key_or_section_pos(ld, "judge.clamp.low");
        add_err(ld, p.line, p.col, "judge.clamp.low = %g must be below judge.clamp.high = %g",
                c->judge.clamp_low, c->judge.clamp_high);
    }
    if (config_key_pos(c, "judge.preamble").line && c->judge.preamble_file[0]) {
        p = config_key_pos(c, "judge.preamble_file");
        add_err(ld, p.line, p.col,
                "give judge.preamble or judge.preamble_file, not both (the file replaces the "
                "text)");
    }
    if (c->judge.mode == 1 && c->judge.exemplars.n) {
        p = config_key_pos(c, "judge.exemplars");
        add_err(ld, p.line, p.col,
                "judge.exemplars are comparisons; judge.mode: score does not use them");
    }
    if (!strcmp(c->judge.label_1, c->judge.label_2)) {
        p = key_or_section_pos(ld, "judge.label_2");
        add_err(ld, p.line, p.col, "judge.label_1 and judge.label_2 are both '%s'",
                c->judge.label_1);
    }
    static const char *const need[3] = {"{context}", "{a}", "{b}"};
    for (int i = 0; i < 3; i++)
        if (!strstr(c->judge.template_text, need[i])) {
            p = key_or_section_pos(ld, "judge.template");
            add_err(ld, p.line, p.col, "judge.template has no %s", need[i]);
        }
    if (c->judge.mode == 2) {
        const char *t = c->judge.likelihood.template_text, *r = strstr(t, "{response}"),
                   *x = strstr(t, "{context}");
        p = key_or_section_pos(ld, "judge.likelihood.template");
        if (!x || !r)
            add_err(ld, p.line, p.col, "judge.likelihood.template has no %s",
                    !x ? "{context}" : "{response}");
        else if (x > r || strstr(x + 9, "{context}") || strstr(r + 10, "{response}"))
            add_err(ld, p.line, p.col,
                    "judge.likelihood.template must hold {context} once, before {response} "
                    "(the response's probability is read given the context)");
        if (c->judge.cot.enabled) {
            p = key_or_section_pos(ld, "judge.cot.enabled");
            add_err(ld, p.line, p.col,
                    "judge.cot.enabled asks the judge for a rationale; judge.mode: likelihood "
                    "reads no answer from the judge, only the responses' probabilities");
        }
        if (c->judge.exemplars.n) {
            p = config_key_pos(c, "judge.exemplars");
            add_err(ld, p.line, p.col,
                    "judge.exemplars are labelled comparisons for the preference prompt; "
                    "judge.mode: likelihood does not use them");
        }
    }
    static const char *const need_s[2] = {"{context}", "{response}"};
    for (int i = 0; i < 2; i++)
        if (!strstr(c->judge.score.template_text, need_s[i])) {
            p = key_or_section_pos(ld, "judge.score.template");
            add_err(ld, p.line, p.col, "judge.score.template has no %s", need_s[i]);
        }
}

/* ------------------------------------------------------------------ public */

static void free_item(const key_def *k, void *item) {
    for (int j = 0; j < k->n_sub; j++)
        if (k->sub[j].type == T_STRING) free(*(char **)((char *)item + k->sub[j].off));
}

void config_free(config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < N_KEYS; i++) {
        char *field = (char *)cfg + schema[i].off;
        if (schema[i].type == T_STRING) {
            free(*(char **)field);
        } else if (schema[i].type == T_STRLIST) {
            config_strlist *l = (config_strlist *)field;
            for (int j = 0; j < l->n; j++) free(l->items[j]);
            free(l->items);
        } else if (schema[i].type == T_ENUMLIST) {
            free(((config_intlist *)field)->items);
        } else if (schema[i].type == T_MAPLIST) {
            config_maplist *l = (config_maplist *)field;
            for (int j = 0; j < l->n; j++)
                free_item(&schema[i], (char *)l->items + (size_t)j * schema[i].elem_size);
            free(l->items);
        }
    }
    free(cfg->deck_path);
    free(cfg->pos);
    memset(cfg, 0, sizeof *cfg);
}

int config_load_string(const char *name, const char *text, size_t len, config *cfg, rl_err *e) {
    memset(cfg, 0, sizeof *cfg);
    cfg->deck_path = xstrdup(name);
    cfg->pos = xcalloc(N_KEYS, sizeof *cfg->pos);

    loader ld;
    memset(&ld, 0, sizeof ld);
    ld.name = name;
    ld.cfg = cfg;

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        config_free(cfg);
        return err_set(e, ERR_INTERNAL, "%s: cannot initialise the YAML parser", name);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        int rc = err_set(e, ERR_INPUT, "%s:%d:%d: YAML syntax error: %s%s%s", name, mark_line(m),
                         mark_col(m), parser.problem ? parser.problem : "unknown problem",
                         parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        config_free(cfg);
        return rc;
    }
    ld.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        add_err(&ld, 1, 1, "the deck is empty; it needs at least run.name, run.seed and stages");
    } else if (root->type != YAML_MAPPING_NODE) {
        add_err(&ld, mark_line(root->start_mark), mark_col(root->start_mark),
                "the deck must be a mapping of keys (run:, ranks:, stages:, ...), got %s",
                node_kind(root));
    } else {
        walk_map(&ld, root, NULL);
        apply_defaults(&ld);
        validate_semantics(&ld);
    }
    /* a second document in the stream is a mistake (a stray '---') */
    if (root && ld.n_errs == 0) {
        yaml_document_t doc2;
        if (yaml_parser_load(&parser, &doc2)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2)
                add_err(&ld, mark_line(r2->start_mark), mark_col(r2->start_mark),
                        "a second YAML document starts here; a deck is one document");
            yaml_document_delete(&doc2);
        } else {
            yaml_mark_t m = parser.problem_mark;
            add_err(&ld, mark_line(m), mark_col(m), "YAML syntax error: %s",
                    parser.problem ? parser.problem : "unknown problem");
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);

    if (ld.n_errs) {
        if (ld.n_errs > MAX_ERRORS) {
            char more[64];
            snprintf(more, sizeof more, "... and %d more problems\n", ld.n_errs - MAX_ERRORS);
            size_t need = ld.errs_len + strlen(more) + 1;
            ld.errs = xrealloc(ld.errs, need);
            memcpy(ld.errs + ld.errs_len, more, strlen(more) + 1);
            ld.errs_len += strlen(more);
        }
        if (ld.errs_len && ld.errs[ld.errs_len - 1] == '\n') ld.errs[--ld.errs_len] = '\0';
        err_set(e, ERR_INPUT, "%s", ld.errs);
        free(ld.errs);
        config_free(cfg);
        return ERR_INPUT;
    }
    free(ld.errs);
    log_set_level(cfg->run.log_level); /* harmless before log_setup; run may override */
    return ERR_OK;
}

int config_load_file(const char *path, config *cfg, rl_err *e) {
    memset(cfg, 0, sizeof *cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, ERR_INPUT, "%s: cannot open the deck: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len < cap) break;
        if (cap > (64u << 20)) {
            fclose(f);
            free(buf);
            return err_set(e, ERR_INPUT, "%s: the deck is larger than 64 MiB; is this a deck?",
                           path);
        }
        cap *= 2;
        buf = xrealloc(buf, cap);
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return err_set(e, ERR_IO, "%s: read error", path);
    }
    if (memchr(buf, '\0', len)) {
        free(buf);
        return err_set(e, ERR_INPUT, "%s:1:1: the deck contains a NUL byte; is this a YAML file?",
                       path);
    }
    int rc = config_load_string(path, buf, len, cfg, e);
    free(buf);
    return rc;
}

config_pos config_key_pos(const config *cfg, const char *path) {
    int ki = find_key(path);
    if (ki < 0 || !cfg->pos) return (config_pos){0, 0};
    return cfg->pos[ki];
}

int config_has_stage(const config *cfg, int stage) {
    for (int i = 0; i < cfg->stages.n; i++)
        if (cfg->stages.items[i] == stage) return 1;
    return 0;
}

int config_world_size(const config *cfg) {
    return 1 + cfg->ranks.judge + cfg->ranks.reward + cfg->ranks.policy;
}

/* ------------------------------------------------------------------ emit */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_quoted(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            sb_printf(b, "\\\"");
            break;
        case '\\':
            sb_printf(b, "\\\\");
            break;
        case '\n':
            sb_printf(b, "\\n");
            break;
        case '\t':
            sb_printf(b, "\\t");
            break;
        case '\r':
            sb_printf(b, "\\r");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                sb_printf(b, "\\x%02x", *p);
            else
                sb_printf(b, "%c", *p);
        }
    }
    sb_printf(b, "\"");
}

/* Shortest decimal text that reads back to the same double. */
static void fmt_double(double x, char *buf, size_t n) {
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.1f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t l = strlen(buf);
        if (l + 2 < n) memcpy(buf + l, ".0", 3);
    }
}

static void emit_value(sbuf *b, const key_def *k, const void *base, int depth);

static void emit_maplist(sbuf *b, const key_def *k, const config_maplist *l, int depth) {
    if (l->n == 0) {
        sb_printf(b, "[]");
        return;
    }
    for (int i = 0; i < l->n; i++) {
        const char *item = (const char *)l->items + (size_t)i * k->elem_size;
        for (int j = 0; j < k->n_sub; j++) {
            sb_printf(b, "\n%*s%s%s: ", 2 * depth + 2, "", j == 0 ? "- " : "  ", k->sub[j].path);
            emit_value(b, &k->sub[j], item, depth + 2);
        }
    }
}

static void emit_value(sbuf *b, const key_def *k, const void *base, int depth) {
    const char *field = (const char *)base + k->off;
    char buf[64];
    switch (k->type) {
    case T_BOOL:
        sb_printf(b, "%s", *(const int *)field ? "true" : "false");
        break;
    case T_INT:
        sb_printf(b, "%d", *(const int *)field);
        break;
    case T_INT64:
        sb_printf(b, "%lld", (long long)*(const int64_t *)field);
        break;
    case T_FLOAT:
        fmt_double(*(const double *)field, buf, sizeof buf);
        sb_printf(b, "%s", buf);
        break;
    case T_STRING:
        sb_quoted(b, *(char *const *)field ? *(char *const *)field : "");
        break;
    case T_ENUM:
        choice_name(k->choices, *(const int *)field, buf, sizeof buf);
        sb_printf(b, "%s", buf);
        break;
    case T_STRLIST: {
        const config_strlist *l = (const config_strlist *)field;
        sb_printf(b, "[");
        for (int i = 0; i < l->n; i++) {
            if (i) sb_printf(b, ", ");
            sb_quoted(b, l->items[i]);
        }
        sb_printf(b, "]");
        break;
    }
    case T_MAPLIST:
        emit_maplist(b, k, (const config_maplist *)field, depth);
        break;
    case T_ENUMLIST: {
        const config_intlist *l = (const config_intlist *)field;
        sb_printf(b, "[");
        for (int i = 0; i < l->n; i++) {
            choice_name(k->choices, l->items[i], buf, sizeof buf);
            sb_printf(b, "%s%s", i ? ", " : "", buf);
        }
        sb_printf(b, "]");
        break;
    }
    }
}

/* Length of the first `levels` dotted segments of path (0 when it has fewer sections). */
static size_t prefix_len(const char *path, int levels) {
    size_t n = 0;
    for (int l = 0; l < levels; l++) {
        const char *dot = strchr(path + n, '.');
        if (!dot) return 0;
        n = (size_t)(dot - path) + 1;
    }
    return n;
}

char *config_emit(const config *cfg) {
    sbuf b = {0};
    sb_printf(&b, "# effective deck: every key with its value, defaults filled in\n");
    const char *prev = "";
    for (int i = 0; i < N_KEYS; i++) {
        const char *path = schema[i].path;
        int depth = 0;
        for (const char *p = path; *p; p++) depth += *p == '.';
        /* open the section levels this key does not share with the previous key */
        for (int l = 0; l < depth; l++) {
            size_t n = prefix_len(path, l + 1);
            if (prefix_len(prev, l + 1) == n && strncmp(prev, path, n) == 0) continue;
            size_t start = prefix_len(path, l);
            sb_printf(&b, "%*s%.*s:\n", 2 * l, "", (int)(n - 1 - start), path + start);
        }
        const char *last = strrchr(path, '.');
        sb_printf(&b, "%*s%s: ", 2 * depth, "", last ? last + 1 : path);
        emit_value(&b, &schema[i], cfg, depth);
        sb_printf(&b, "\n");
        prev = path;
    }
    return b.s;
}

static const char *type_name(key_type t) {
    static const char *const names[] = {"bool", "int",  "int64", "float", "string",
                                        "enum", "list", "list",  "list"};
    return names[t];
}

void config_print_schema(FILE *f) {
    fprintf(f, "%-28s %-7s %-16s %-30s %s\n", "key", "type", "default", "allowed", "meaning");
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &schema[i];
        char allowed[256] = "";
        switch (k->type) {
        case T_INT:
        case T_INT64:
            if (k->max >= I64MAX)
                snprintf(allowed, sizeof allowed, ">= %.0f", k->min);
            else
                snprintf(allowed, sizeof allowed, "%.0f .. %.0f", k->min, k->max);
            break;
        case T_FLOAT:
            snprintf(allowed, sizeof allowed, "%g .. %g", k->min, k->max);
            break;
        case T_STRING:
            snprintf(allowed, sizeof allowed, "%.0f..%.0f chars%s", k->min, k->max,
                     k->flags & F_IDENT ? ", [A-Za-z0-9._-]" : "");
            break;
        case T_ENUM:
        case T_ENUMLIST:
            choices_list(k->choices, allowed, sizeof allowed);
            break;
        default:
            break;
        }
        fprintf(f, "%-28s %-7s %-16s %-30s %s\n", k->path, type_name(k->type),
                k->def ? (*k->def ? k->def : "[]") : "(required)", allowed, k->help);
    }
}

/* ------------------------------------------------------------------ `rlaif check` */

int cli_check(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf(
            "usage: rlaif check DECK      validate DECK and print the effective deck as YAML\n"
            "       rlaif check --schema  print every deck key: type, default, range, meaning\n");
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "--schema")) {
        config_print_schema(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: rlaif check DECK | rlaif check --schema\n");
        return 2;
    }
    config cfg;
    rl_err e = {0};
    int rc = config_load_file(argv[1], &cfg, &e);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        return err_exit_status(rc);
    }
    char *text = config_emit(&cfg);
    fputs(text, stdout);
    free(text);
    config_free(&cfg);
    return 0;
}
