/* reward: the reward model. Pairwise losses on soft labels and their gradients, data-parallel
 * training on tokenised pairs, validation, the normalisation of the scores, batched scoring, and
 * the scoring service the RL stage's policy ranks call point to point.
 *
 * A reward model is a transformer with the scalar head (score_head.*, include/model.h); the score
 * of a sequence (prompt + response + EOS) is the head at its last token. For a pair (a, b) with
 * soft label p = P(a better) and d = r(a) - r(b), s the logistic function:
 *
 *   soft_ce     L = -[p log s(d) + (1 - p) log s(-d)]           dL/dd = s(d) - p   (the paper)
 *   bt          the same with p rounded to 0 or 1; a tie (p = 0.5) carries no loss
 *   bt_margin   L = -log s(y d - m),  y = +-1 the preferred side, m = margin * |2p - 1|
 *
 * Data parallel: every rank holds the whole (tokenised) dataset and walks the same shuffled
 * stream of training pairs; step s takes the global batch at positions [s B, s B + B) of that
 * stream and rank r its r-th share of B / R pairs, padded to the longest sequence of the whole
 * global batch, so one rank with batch B and R ranks with B / R each compute the same sums.
 * Each rank's loss is scaled by R / B and model_allreduce_grads averages: one allreduce per step.
 *
 * Normalisation: after training, gain and bias such that gain * r + bias has mean 0 and standard
 * deviation 1 over SFT responses; reward_fold_norm writes them into the head (exact: the head is
 * linear), so a saved reward model scores normalised.
 *
 * Scoring service (MPI_COMM_WORLD, tags TAG_SCORE_REQ / TAG_SCORE of include/comm.h): a client
 * sends a batch of token sequences to one server rank and receives one float per sequence, in
 * order; a request with no sequences and the DONE flag tells the server that client is finished.
 * Servers answer requests in arrival order and sleep between them (no spinning). A session
 * (one reward_serve call) ends when every client sent done; a client must not send to that
 * server again before the session ended (a stage boundary, or a barrier).
 *
 * Not here: reading labels.h5 and GGUF files, the stage's reporting (src/stage_reward.c). */
#ifndef RLAIF_REWARD_H
#define RLAIF_REWARD_H

#include <mpi.h>
#include <stdint.h>

#include "err.h"
#include "model.h"
#include "optim.h"

enum reward_loss_kind { REWARD_SOFT_CE = 0, REWARD_BT = 1, REWARD_BT_MARGIN = 2 };

/* Loss of one pair from d = r_a - r_b; *dd gets dL/dd. Returns 0 (and *dd = 0) for a tie under
 * bt and bt_margin. */
double reward_pair_loss(int kind, double d, double p, double margin, double *dd);

/* ------------------------------------------------------------------ data */

/* Tokenised pairs; sequences are prompt + response + EOS, ready for the model. */
typedef struct reward_data {
    int n;            /* pairs */
    int32_t **a, **b; /* (n) token sequences */
    int *len_a, *len_b;
    double *p;          /* (n) soft label P(a better) */
    int64_t *prompt_id; /* (n) */
    uint8_t *is_val;    /* (n) 1: validation pair */
} reward_data;

void reward_data_alloc(reward_data *d, int n);
void reward_data_free(reward_data *d);
/* Marks pairs whose prompt hashes (with seed) into the first `fraction` of [0, 1) as validation:
 * a split by prompt, the same on every rank. Returns the number of validation pairs. */
int reward_data_split(reward_data *d, double fraction, uint64_t seed);

/* ------------------------------------------------------------------ training */

typedef struct reward_train_cfg {
    int loss;           /* enum reward_loss_kind */
    double margin;      /* bt_margin */
    int batch;          /* pairs per step over all ranks; a multiple of the rank count */
    long steps;         /* optimiser steps in all */
    optim_config optim; /* total_steps = steps */
    uint64_t seed;      /* data order */
} reward_train_cfg;

typedef struct reward_trainer {
    reward_train_cfg cfg;
    const reward_data *data;
    model *m;
    model_acts acts;
    optim opt;
    int *train_idx; /* (n_train) indices of the training pairs */
    int n_train;
    int rank, size; /* in the role communicator */
    int Bmax, Tmax; /* capacity of acts */
    int *tok;       /* (2 Bmax / size, Tmax) */
    int *pos;
    float *score, *dscore;
} reward_trainer;

/* Steps already taken are in t->opt.step (restore it, m and v from a checkpoint to resume). */
int reward_trainer_init(reward_trainer *t, model *m, const reward_data *d,
                        const reward_train_cfg *c, MPI_Comm comm, rl_err *e);
void reward_trainer_free(reward_trainer *t);

typedef struct reward_step_stats {
    double loss;     /* mean over the global batch */
    double accuracy; /* share of non-tied pairs whose sign of d matches argmax p */
    double grad_norm, lr;
    double margin; /* mean |d| */
} reward_step_stats;

/* One optimiser step on the global batch of step t->opt.step (collective over comm). ERR_NUMERIC
 * when the loss or a gradient is not finite. */
int reward_trainer_step(reward_trainer *t, MPI_Comm comm, reward_step_stats *st, rl_err *e);

/* ------------------------------------------------------------------ scoring and validation */

/* Scores n sequences seqs[i] (lens[i] tokens each) with the KV-cache path, in chunks of at most
 * `chunk` sequences per model_step; scratch cache c is (re)made as needed. */
typedef struct reward_scorer {
    kvcache cache;
    int slots, max_seq;
} reward_scorer;
int reward_score(const model *m, reward_scorer *s, int n, const int32_t *const *seqs,
                 const int *lens, int chunk, float *scores, rl_err *e);
void reward_scorer_free(reward_scorer *s);

#define REWARD_N_REFS 2
typedef struct reward_val_stats {
    double n, loss;            /* validation pairs, mean loss (soft cross-entropy on p) */
    double acc_label, n_label; /* agreement with argmax p (ties left out) and pairs counted */
    double acc_ref[REWARD_N_REFS], n_ref[REWARD_N_REFS]; /* agreement with each ref[] */
    double mean, std; /* of the scores of all validation responses */
} reward_val_stats;

/* Scores every validation pair (rank r of comm takes pairs r, r+R, ...) and sums the figures
 * over comm. refs[k] (n pairs; it or refs may be NULL): 1 when a is better, 2 when b is, 0 to
 * leave the pair out (e.g. the judge's labels, the gold rater's). */
int reward_validate(const model *m, reward_scorer *s, const reward_data *d,
                    const int8_t *const refs[REWARD_N_REFS], int chunk, MPI_Comm comm,
                    reward_val_stats *st, rl_err *e);

/* Mean and standard deviation of the scores of the first n_samples responses (a_0, b_0, a_1,
 * ...) over comm (collective). */
int reward_norm_stats(const model *m, reward_scorer *s, const reward_data *d, int n_samples,
                      int chunk, MPI_Comm comm, double *mean, double *std, rl_err *e);
/* score_head becomes gain * head + bias with gain = 1/std, bias = -mean/std. */
void reward_fold_norm(model *m, double mean, double std);

/* ------------------------------------------------------------------ scoring service */

/* Client: sends n sequences to server (a world rank) without waiting; plens (may be NULL) gives
 * each one's prompt length, which a judge that scores responses needs. */
typedef struct reward_request {
    int server;
    MPI_Request req;
    unsigned char *buf;
    int active;
} reward_request;
int reward_client_send(reward_request *r, int server, int n, const int32_t *const *seqs,
                       const int *lens, const int *plens, rl_err *e);
/* Waits (sleeping) for the n scores of the request. */
int reward_client_recv(reward_request *r, int n, float *scores, rl_err *e);
/* Tells server this client is done. */
int reward_client_done(int server, rl_err *e);

/* Server: answers requests until every client listed (world ranks) sent done. fn scores a
 * batch; plens[i] is the prompt's share of sequence i (0 when the client did not say). */
typedef int (*reward_score_fn)(void *user, int n, const int32_t *const *seqs, const int *lens,
                               const int *plens, float *scores, rl_err *e);
typedef struct reward_serve_stats {
    long requests, sequences, tokens;
    double busy_seconds, wall_seconds;
} reward_serve_stats;
int reward_serve(const int *clients, int n_clients, reward_score_fn fn, void *user,
                 reward_serve_stats *st, rl_err *e);

/* ------------------------------------------------------------------ files (src/reward_io.c) */

struct tokenizer;

/* The normalisation stored with a reward model: raw scores r become gain * r + bias. folded: the
 * head already includes it (what the reward stage writes). */
typedef struct reward_norm {
    int folded;
    double gain, bias, raw_mean, raw_std;
    long samples;
} reward_norm;

/* A model with a scalar head as GGUF: llama.cpp's layout, score_head.weight (C) and
 * score_head.bias (1), rlaif.scalar_head and the rlaif.reward.* normalisation (norm may be
 * NULL). Written through a temporary file and renamed. */
int reward_model_save(const char *path, const char *name, const model *m,
                      const struct tokenizer *tok, const reward_norm *norm, rl_err *e);
/* Reads such a file, or a plain language model (its head is then zero and *has_head 0); the
 * model always gets a scalar head. max_seq > 0 caps the context. tok, norm, has_head may be
 * NULL. */
int reward_model_load(const char *path, int max_seq, model *m, struct tokenizer **tok,
                      reward_norm *norm, int *has_head, rl_err *e);

/* The tokens of a prompt as the policy saw it when it sampled (the SFT stage's encoding,
 * include/task_lm.h): reward, rl and eval all encode prompts through this one function. *ids is
 * malloc'd. */
int reward_prompt_tokens(const struct tokenizer *tok, const char *prompt, int **ids, int *n,
                         rl_err *e);

/* The labelled pairs of a labels.h5 (docs/RUNFILES.md): rows with done == 1, in row order. */
typedef struct reward_labels {
    long n;    /* labelled rows read */
    long rows; /* rows in the file */
    char **context, **a, **b;
    double *p;
    int64_t *prompt_id;
} reward_labels;
int reward_labels_read(const char *path, reward_labels *l, rl_err *e);
void reward_labels_free(reward_labels *l);

#endif
