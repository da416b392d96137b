/* optim: AdamW with decoupled weight decay (Loshchilov & Hutter; the arithmetic of PyTorch's
 * torch.optim.AdamW), global gradient-norm clipping (as torch.nn.utils.clip_grad_norm_) and a
 * linear warm-up followed by a cosine decay of the learning rate.
 *
 * The two moments mirror the model's parameter buffer, so a checkpoint saves them as two flat
 * arrays plus the step count, and the GGUF/tensor table names their slices.
 * Not here: averaging gradients over ranks (model_allreduce_grads, before optim_step) and the
 * losses themselves. */
#ifndef RLAIF_OPTIM_H
#define RLAIF_OPTIM_H

#include <stddef.h>

#include "err.h"
#include "model.h"

typedef struct optim_config {
    float lr;           /* peak learning rate */
    float beta1, beta2; /* moment decay rates (0.9, 0.999) */
    float eps;          /* added to sqrt of the second moment (1e-8) */
    float weight_decay; /* decoupled; only tensors whose table entry has decay = 1 */
    float grad_clip;    /* clip the global L2 norm of the gradients to this; <= 0: never */
    long warmup_steps;  /* lr rises linearly over steps 0..warmup-1 to reach lr */
    long total_steps;   /* cosine from lr down to min_lr_frac * lr at total_steps; <= warmup:
                           constant lr after the warm-up */
    float min_lr_frac;
} optim_config;

/* lr 3e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0, clip 1.0, no warm-up, constant. */
void optim_config_default(optim_config *c);
int optim_config_validate(const optim_config *c, rl_err *e);

typedef struct optim {
    optim_config cfg;
    size_t n;  /* = model n_params */
    float *m;  /* (n) first moment */
    float *v;  /* (n) second moment */
    long step; /* steps taken so far */
} optim;

int optim_create(optim *o, const model *mdl, const optim_config *c, rl_err *e);
void optim_free(optim *o);
/* Learning rate of the step with 0-based index `step` (the one about to be taken). */
double optim_lr(const optim_config *c, long step);

typedef struct optim_stats {
    double grad_norm;  /* before clipping */
    double clip_scale; /* factor applied to the gradients (1 when not clipped) */
    double lr;         /* learning rate used */
} optim_stats;

/* One AdamW step on mdl->params from mdl->grads (already averaged over ranks). When the
 * gradient norm is NaN or Inf nothing changes and ERR_NUMERIC comes back, naming the first
 * non-finite tensor. The gradients are left as they were (the caller zeroes them). */
int optim_step(optim *o, model *mdl, optim_stats *st, rl_err *e);

#endif
