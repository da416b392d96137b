/* optim: see include/optim.h. One fused pass over each tensor: decay, moments, update.
 * Not here: schedules other than warm-up + cosine, optimiser-state sharding. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void optim_config_default(optim_config *c) {
    memset(c, 0, sizeof *c);
    c->lr = 3e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->weight_decay = 0.0f;
    c->grad_clip = 1.0f;
    c->warmup_steps = 0;
    c->total_steps = 0;
    c->min_lr_frac = 0.1f;
}

int optim_config_validate(const optim_config *c, rl_err *e) {
    if (!(c->lr >= 0 && isfinite(c->lr))) return err_set(e, ERR_INPUT, "optim: lr must be >= 0");
    if (!(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
        return err_set(e, ERR_INPUT, "optim: betas must be in [0, 1)");
    if (!(c->eps > 0)) return err_set(e, ERR_INPUT, "optim: eps must be > 0");
    if (!(c->weight_decay >= 0)) return err_set(e, ERR_INPUT, "optim: weight_decay must be >= 0");
    if (c->warmup_steps < 0) return err_set(e, ERR_INPUT, "optim: warmup_steps must be >= 0");
    if (!(c->min_lr_frac >= 0 && c->min_lr_frac <= 1))
        return err_set(e, ERR_INPUT, "optim: min_lr_frac must be in [0, 1]");
    return ERR_OK;
}

int optim_create(optim *o, const model *mdl, const optim_config *c, rl_err *e) {
    memset(o, 0, sizeof *o);
    if (optim_config_validate(c, e)) return e ? e->code : ERR_INPUT;
    o->cfg = *c;
    o->n = mdl->n_params;
    o->m = xmalloc_aligned(sizeof(float) * o->n);
    o->v = xmalloc_aligned(sizeof(float) * o->n);
    memset(o->m, 0, sizeof(float) * o->n);
    memset(o->v, 0, sizeof(float) * o->n);
    return ERR_OK;
}

void optim_free(optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

double optim_lr(const optim_config *c, long step) {
    if (step < c->warmup_steps) return (double)c->lr * (double)(step + 1) / (double)c->warmup_steps;
    if (c->total_steps <= c->warmup_steps) return c->lr;
    double prog = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    if (prog > 1) prog = 1;
    double lo = (double)c->min_lr_frac * c->lr;
    return lo + 0.5 * ((double)c->lr - lo) * (1.0 + cos(M_PI * prog));
}

/* Vectorises only with -fno-math-errno (the Makefile's flags): otherwise gcc keeps a scalar
 * sqrtf call for errno's sake, and the step takes twice as long. */
static void adamw_tensor(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, size_t n, float decay, float b1, float b2, float gs,
                         float step_size, float inv_bc2_sqrt, float eps) {
    for (size_t j = 0; j < n; j++) {
        float gj = g[j] * gs;
        float pj = p[j] * decay;
        m[j] = b1 * m[j] + (1.0f - b1) * gj;
        v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
        float denom = sqrtf(v[j]) * inv_bc2_sqrt + eps;
        p[j] = pj - step_size * m[j] / denom;
    }
}

int optim_step(optim *o, model *mdl, optim_stats *st, rl_err *e) {
    const optim_config *c = &o->cfg;
    if (!mdl->grads) return err_set(e, ERR_INTERNAL, "optim: model has no gradients");
    if (mdl->n_params != o->n) return err_set(e, ERR_INTERNAL, "optim: made for another model");
    double norm = model_grad_norm(mdl);
    if (!isfinite(norm)) {
        for (int i = 0; i < mdl->n_tensors; i++) {
            const model_tensor *t = &mdl->tensors[i];
            for (size_t j = 0; j < t->numel; j++)
                if (!isfinite(mdl->grads[t->offset + j]))
                    return err_set(e, ERR_NUMERIC,
                                   "the gradient of '%s' is %g at element %zu: not finite; "
                                   "lower the learning rate or check the data",
                                   t->name, (double)mdl->grads[t->offset + j], j);
        }
        return err_set(e, ERR_NUMERIC, "the gradient norm is not finite");
    }
    /* torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when < 1 */
    double gs = 1.0;
    if (c->grad_clip > 0) {
        double coef = (double)c->grad_clip / (norm + 1e-6);
        if (coef < 1.0) gs = coef;
    }
    double lr = optim_lr(c, o->step);
    long t = o->step + 1;
    double bc1 = 1.0 - pow((double)c->beta1, (double)t);
    double bc2 = 1.0 - pow((double)c->beta2, (double)t);
    float step_size = (float)(lr / bc1), inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    for (int i = 0; i < mdl->n_tensors; i++) {
        const model_tensor *tt = &mdl->tensors[i];
        float decay = tt->decay ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        size_t off = tt->offset;
        adamw_tensor(mdl->params + off, mdl->grads + off, o->m + off, o->v + off, tt->numel, decay,
                     c->beta1, c->beta2, (float)gs, step_size, inv_bc2_sqrt, c->eps);
    }
    /* finite gradients can still drive the parameters to Inf (a weight-decay factor 1 - lr * wd
     * below -1 grows them geometrically): stop here, before a checkpoint or a model file holds
     * them. A double sum of floats overflows only if a value is Inf or NaN. */
    for (int i = 0; i < mdl->n_tensors; i++) {
        const model_tensor *tt = &mdl->tensors[i];
        const float *p = mdl->params + tt->offset;
        double sum = 0;
        for (size_t j = 0; j < tt->numel; j++) sum += p[j];
        if (isfinite(sum)) continue;
        size_t j = 0;
        while (j + 1 < tt->numel && isfinite(p[j])) j++;
        double decay = 1.0 - lr * c->weight_decay;
        return err_set(e, ERR_NUMERIC,
                       "the update made parameter '%s' %g at element %zu: not finite (lr %g, "
                       "weight decay factor %g); lower the learning rate%s",
                       tt->name, (double)p[j], j, lr, tt->decay ? decay : 1.0,
                       tt->decay && decay <= 0 ? " or the weight decay (lr * weight_decay >= 1)"
                                               : "");
    }
    o->step = t;
    if (st) {
        st->grad_norm = norm;
        st->clip_scale = gs;
        st->lr = lr;
    }
    return ERR_OK;
}
