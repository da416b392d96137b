/* trainer: language-model training steps shared by the stages that fine-tune a model on token
 * sequences (sft, judge_sft; the reward stage may reuse the optimiser and checkpoint parts).
 *
 * A step takes this rank's part of the batch: sequences of tokens with a loss weight on every
 * target position (0 leaves it out: prompts, padding; the judge's comparisons weigh only the
 * label token). The loss is the weighted mean of -log p(target) over the whole batch of every
 * rank of the communicator: the ranks agree on the total weight first, each computes its part,
 * and one allreduce of the flat gradient buffer averages them, so the result does not depend on
 * how the batch is split (up to float summation order). Then AdamW with warm-up and cosine decay.
 * A loss or gradient that is NaN or Inf stops the step with ERR_NUMERIC naming the stage, the
 * step and (for gradients) the tensor.
 *
 * Checkpoints hold the parameters, both Adam moments and the step count under one group, so a
 * restored trainer continues bit-identically.
 * Not here: where the data comes from (the caller keys it by step, so no data state is needed),
 * losses other than the weighted cross-entropy. */
#ifndef RLAIF_TRAINER_H
#define RLAIF_TRAINER_H

#include <mpi.h>

#include "ckpt.h"
#include "config.h"
#include "err.h"
#include "model.h"
#include "optim.h"

typedef struct trainer {
    model *m; /* not owned */
    optim opt;
    model_acts acts;
    MPI_Comm comm; /* the ranks that train together (MPI_COMM_SELF: alone) */
    int rank, size;
    int Bmax, Tmax; /* this rank's capacity: sequences per step, tokens per sequence */
    /* the batch being assembled: B sequences padded to T (the longest) */
    int B, T;
    int packed;    /* the rows are (B, T), no longer (B, Tmax) */
    int *tokens;   /* (Bmax, Tmax) inputs */
    int *targets;  /* (Bmax, Tmax) the next token, -1 where none */
    float *weight; /* (Bmax, Tmax) loss weight of each target */
    char what[64]; /* "sft", "judge_sft finetune": names the stage in messages */
} trainer;

typedef struct trainer_stats {
    double loss;      /* weighted mean over the global batch */
    double weight;    /* global sum of weights (e.g. target tokens) */
    double grad_norm; /* before clipping */
    double lr;
} trainer_stats;

/* The optimiser settings of a deck section, with total_steps for the cosine schedule. */
void trainer_optim_config(const config_optim *c, optim_config *oc);

/* Sets up AdamW for m (allocating its gradients) and activations for Bmax sequences of at most
 * Tmax tokens. `what` names the training in messages. */
int trainer_init(trainer *t, model *m, const optim_config *oc, int Bmax, int Tmax, MPI_Comm comm,
                 const char *what, rl_err *e);
void trainer_free(trainer *t);

/* Starts a new local batch. */
void trainer_batch_clear(trainer *t);
/* Adds a sequence tokens (len) with weights (len): weights[k] (k >= 1) weighs the prediction of
 * tokens[k] from tokens[0..k-1]; weights[0] is ignored. NULL weights: every target weighs 1.
 * Fails when the batch is full or len is not in [2, Tmax]. */
int trainer_batch_add(trainer *t, const int *tokens, int len, const float *weights, rl_err *e);

/* One optimiser step on the assembled batch (collective over the communicator: every rank
 * calls it, with a batch of zero or more sequences). `step` is the 1-based step number used in
 * messages. */
int trainer_step(trainer *t, long step, trainer_stats *st, rl_err *e);
/* The weighted loss of the assembled batch without training (collective, like trainer_step). */
int trainer_eval(trainer *t, trainer_stats *st, rl_err *e);

/* Checkpoint: <group>/params, <group>/adam_m, <group>/adam_v, <group>/step and the model's
 * dimensions (checked on load). */
int trainer_save(const trainer *t, ckpt_file *f, const char *group, rl_err *e);
int trainer_load(trainer *t, ckpt_file *f, const char *group, rl_err *e);

#endif
