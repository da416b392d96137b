/* trainer: see include/trainer.h. */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

void trainer_optim_config(const config_optim *c, optim_config *oc) {
    optim_config_default(oc);
    oc->lr = (float)c->lr;
    oc->weight_decay = (float)c->weight_decay;
    oc->grad_clip = (float)c->grad_clip;
    oc->warmup_steps = c->warmup;
    oc->total_steps = c->steps;
    oc->min_lr_frac = (float)c->min_lr_ratio;
    oc->beta2 = 0.99f; /* short runs: the second moment should follow the gradients quickly */
}

int trainer_init(trainer *t, model *m, const optim_config *oc, int Bmax, int Tmax, MPI_Comm comm,
                 const char *what, rl_err *e) {
    memset(t, 0, sizeof *t);
    t->m = m;
    t->comm = comm;
    MPI_Comm_rank(comm, &t->rank);
    MPI_Comm_size(comm, &t->size);
    snprintf(t->what, sizeof t->what, "%s", what);
    if (Bmax < 1) Bmax = 1;
    if (Tmax < 2 || Tmax > m->cfg.max_seq)
        return err_set(e, ERR_INPUT, "%s: sequences of %d tokens do not fit the model (max_seq %d)",
                       what, Tmax, m->cfg.max_seq);
    int rc = optim_create(&t->opt, m, oc, e);
    if (rc) return rc;
    if ((rc = model_acts_create(&t->acts, &m->cfg, Bmax, Tmax, e))) {
        optim_free(&t->opt);
        return rc;
    }
    model_alloc_grads(m);
    t->Bmax = Bmax;
    t->Tmax = Tmax;
    size_t n = (size_t)Bmax * Tmax;
    t->tokens = xcalloc(n, sizeof *t->tokens);
    t->targets = xcalloc(n, sizeof *t->targets);
    t->weight = xcalloc(n, sizeof *t->weight);
    return ERR_OK;
}

void trainer_free(trainer *t) {
    if (!t) return;
    optim_free(&t->opt);
    model_acts_free(&t->acts);
    free(t->tokens);
    free(t->targets);
    free(t->weight);
    memset(t, 0, sizeof *t);
}

void trainer_batch_clear(trainer *t) {
    t->B = 0;
    t->T = 0;
    t->n_real = 0;
    t->packed = 0;
}

int trainer_batch_add(trainer *t, const int *tokens, int len, const float *weights, rl_err *e) {
    if (t->packed)
        return err_set(e, ERR_INTERNAL, "%s: batch_add after a step; clear the batch first",
                       t->what);
    if (t->B >= t->Bmax)
        return err_set(e, ERR_INTERNAL, "%s: batch holds %d sequences already", t->what, t->Bmax);
    if (len < 2 || len > t->Tmax)
        return err_set(e, ERR_INPUT,
                       "%s: a sequence of %d tokens does not fit (2 .. %d); raise the model's "
                       "max_seq",
                       t->what, len, t->Tmax);
    int b = t->B++;
    int *tok = t->tokens + (size_t)b * t->Tmax, *tgt = t->targets + (size_t)b * t->Tmax;
    float *w = t->weight + (size_t)b * t->Tmax;
    for (int k = 0; k < t->Tmax; k++) {
        tok[k] = k < len ? tokens[k] : 0;
        tgt[k] = k + 1 < len ? tokens[k + 1] : -1;
        w[k] = k + 1 < len ? (weights ? weights[k + 1] : 1.0f) : 0.0f;
    }
    if (len > t->T) t->T = len;
    t->n_real += len;
    return ERR_OK;
}

/* Repacks the (B, Tmax) rows to (B, T) in place, T <= Tmax, for model_forward. */
static void pack(trainer *t) {
    int B = t->B, T = t->T, Tm = t->Tmax;
    if (t->packed) return;
    t->packed = 1;
    if (T == Tm) return;
    for (int b = 1; b < B; b++) {
        memmove(t->tokens + (size_t)b * T, t->tokens + (size_t)b * Tm, sizeof(int) * T);
        memmove(t->targets + (size_t)b * T, t->targets + (size_t)b * Tm, sizeof(int) * T);
        memmove(t->weight + (size_t)b * T, t->weight + (size_t)b * Tm, sizeof(float) * T);
    }
}

/* Forward (and backward) of the local batch; the loss is normalised by the global weight. */
static int run_batch(trainer *t, int backward, trainer_stats *st, long step, rl_err *e) {
    double wsum = 0;
    pack(t);
    for (size_t i = 0; i < (size_t)t->B * t->T; i++) wsum += t->weight[i];
    double glob[1] = {wsum};
    if (comm_allreduce_sum_f64(glob, 1, t->comm))
        return err_set(e, ERR_MPI, "%s: allreduce of the batch weight failed", t->what);
    double local_sum = 0; /* sum of w * -log p over this rank's batch */
    if (t->B > 0 && wsum > 0) {
        int rc = model_forward(t->m, &t->acts, t->tokens, t->B, t->T, e);
        if (rc) return err_prefix(e, "%s", t->what); /* only a bug gets here: ids are checked */
        /* model_ce returns local_sum / denom with denom = global / size; averaging the
         * gradients over the ranks then gives the gradient of the global mean */
        float denom = (float)(glob[0] / t->size);
        float l =
            model_ce(t->m, &t->acts, t->targets, t->weight, denom > 0 ? denom : 1.0f, backward);
        local_sum = (double)l * denom;
        if (backward) model_backward(t->m, &t->acts, t->tokens);
    }
    double ls[1] = {local_sum};
    if (comm_allreduce_sum_f64(ls, 1, t->comm))
        return err_set(e, ERR_MPI, "%s: allreduce of the loss failed", t->what);
    st->weight = glob[0];
    st->loss = glob[0] > 0 ? ls[0] / glob[0] : 0.0;
    if (!isfinite(st->loss))
        return err_set(
            e, ERR_NUMERIC,
            "stage %s, step %ld: the loss is %g; lower the learning rate (or check the data)",
            t->what, step, st->loss);
    return ERR_OK;
}

int trainer_step(trainer *t, long step, trainer_stats *st, rl_err *e) {
    trainer_stats s = {0};
    model_zero_grads(t->m);
    int rc = run_batch(t, 1, &s, step, e);
    if (rc) return rc;
    /* the gradient average: a sleeping wait (comm.h), so that a rank that finished its part
     * early leaves its core to the others instead of spinning in MPI_Allreduce */
    if (t->size > 1) {
        if (comm_allreduce_sum_f32(t->m->grads, t->m->n_params, t->comm))
            return err_set(e, ERR_MPI, "%s step %ld: gradient allreduce failed", t->what, step);
        float inv = 1.0f / (float)t->size;
        for (size_t j = 0; j < t->m->n_params; j++) t->m->grads[j] *= inv;
    }
    optim_stats os;
    if ((rc = optim_step(&t->opt, t->m, &os, e)))
        return err_prefix(e, "stage %s, step %ld", t->what, step);
    s.grad_norm = os.grad_norm;
    s.lr = os.lr;
    if (st) *st = s;
    return ERR_OK;
}

int trainer_eval(trainer *t, trainer_stats *st, rl_err *e) {
    trainer_stats s = {0};
    int rc = run_batch(t, 0, &s, t->opt.step, e);
    if (st) *st = s;
    return rc;
}

static void dims_of(const model_config *c, int64_t d[8]) {
    d[0] = c->dim, d[1] = c->n_layers, d[2] = c->n_heads, d[3] = c->n_kv_heads;
    d[4] = c->head_dim, d[5] = c->ffn_dim, d[6] = c->vocab_size, d[7] = c->scalar_head;
}

int trainer_save(const trainer *t, ckpt_file *f, const char *group, rl_err *e) {
    char name[256];
    int64_t dims[8];
    dims_of(&t->m->cfg, dims);
    int rc;
#define NAME(s) (snprintf(name, sizeof name, "%s/%s", group, s), name)
    if ((rc = ckpt_write_f32(f, NAME("params"), t->m->params, t->m->n_params, e)) ||
        (rc = ckpt_write_f32(f, NAME("adam_m"), t->opt.m, t->opt.n, e)) ||
        (rc = ckpt_write_f32(f, NAME("adam_v"), t->opt.v, t->opt.n, e)) ||
        (rc = ckpt_write_i64_scalar(f, NAME("step"), t->opt.step, e)) ||
        (rc = ckpt_write_i64(f, NAME("dims"), dims, 8, e)))
        return rc;
    return ERR_OK;
}

int trainer_load(trainer *t, ckpt_file *f, const char *group, rl_err *e) {
    char name[256];
    int64_t dims[8], want[8], step = 0;
    dims_of(&t->m->cfg, want);
    int rc;
    if ((rc = ckpt_read_i64(f, NAME("dims"), dims, 8, e))) return rc;
    if (memcmp(dims, want, sizeof dims) != 0)
        return err_set(e, ERR_STATE,
                       "%s: the checkpoint's model (C %lld, L %lld, NH %lld, NKV %lld, HS %lld, FF "
                       "%lld, V %lld) is not the deck's (C %lld, L %lld, ...)",
                       t->what, (long long)dims[0], (long long)dims[1], (long long)dims[2],
                       (long long)dims[3], (long long)dims[4], (long long)dims[5],
                       (long long)dims[6], (long long)want[0], (long long)want[1]);
    if ((rc = ckpt_read_f32(f, NAME("params"), t->m->params, t->m->n_params, e)) ||
        (rc = ckpt_read_f32(f, NAME("adam_m"), t->opt.m, t->opt.n, e)) ||
        (rc = ckpt_read_f32(f, NAME("adam_v"), t->opt.v, t->opt.n, e)) ||
        (rc = ckpt_read_i64_scalar(f, NAME("step"), &step, e)))
        return rc;
#undef NAME
    t->opt.step = (long)step;
    return ERR_OK;
}
