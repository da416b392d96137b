/* reward: see include/reward.h. The training step is the engine's forward, the scalar head at the
 * last token of each sequence, the pairwise loss, and the backward; scoring goes through the
 * KV-cache path (model_step), which takes a ragged batch without padding.
 * Not here: file formats and the stage's bookkeeping (src/stage_reward.c). */
#include "reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "log.h"
#include "msg.h"
#include "rng.h"

/* log s(x) without overflow: -log(1 + e^-x) */
static double log_sigmoid(double x) {
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}
static double sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double z = exp(x);
    return z / (1.0 + z);
}

double reward_pair_loss(int kind, double d, double p, double margin, double *dd) {
    if (kind == REWARD_SOFT_CE) {
        /* "L = -[p log s(d) + (1-p) log s(-d)]"; dL/dd = -p s(-d) + (1-p) s(d) = s(d) - p */
        *dd = sigmoid(d) - p;
        return -(p * log_sigmoid(d) + (1.0 - p) * log_sigmoid(-d));
    }
    if (p == 0.5) {
        *dd = 0.0;
        return 0.0;
    }
    double y = p > 0.5 ? 1.0 : -1.0;
    double m = kind == REWARD_BT_MARGIN ? margin * fabs(2.0 * p - 1.0) : 0.0;
    double z = y * d - m;
    /* "L = -log s(y d - m)"; dL/dd = -y s(-z) */
    *dd = -y * sigmoid(-z);
    return -log_sigmoid(z);
}

/* ------------------------------------------------------------------ data */

void reward_data_alloc(reward_data *d, int n) {
    memset(d, 0, sizeof *d);
    d->n = n;
    size_t k = (size_t)(n > 0 ? n : 1);
    d->a = xcalloc(k, sizeof *d->a);
    d->b = xcalloc(k, sizeof *d->b);
    d->len_a = xcalloc(k, sizeof *d->len_a);
    d->len_b = xcalloc(k, sizeof *d->len_b);
    d->p = xcalloc(k, sizeof *d->p);
    d->prompt_id = xcalloc(k, sizeof *d->prompt_id);
    d->is_val = xcalloc(k, sizeof *d->is_val);
}

void reward_data_free(reward_data *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) free(d->a[i]), free(d->b[i]);
    free(d->a), free(d->b), free(d->len_a), free(d->len_b), free(d->p), free(d->prompt_id);
    free(d->is_val);
    memset(d, 0, sizeof *d);
}

int reward_data_split(reward_data *d, double fraction, uint64_t seed) {
    int n_val = 0;
    for (int i = 0; i < d->n; i++) {
        rng r;
        rng_init(&r, seed, rng_purpose(RNG_DATA, 0x5e1), (uint32_t)d->prompt_id[i]);
        /* the prompt id's high bits too, for ids beyond 2^32 */
        for (int64_t h = d->prompt_id[i] >> 32; h > 0; h >>= 32) rng_u32(&r);
        d->is_val[i] = rng_uniform_double(&r) < fraction;
        n_val += d->is_val[i];
    }
    return n_val;
}

/* ------------------------------------------------------------------ training */

static int max_len(const reward_data *d, int i) {
    return d->len_a[i] > d->len_b[i] ? d->len_a[i] : d->len_b[i];
}

int reward_trainer_init(reward_trainer *t, model *m, const reward_data *d,
                        const reward_train_cfg *c, MPI_Comm comm, rl_err *e) {
    memset(t, 0, sizeof *t);
    t->cfg = *c;
    t->data = d;
    t->m = m;
    MPI_Comm_rank(comm, &t->rank);
    MPI_Comm_size(comm, &t->size);
    if (c->batch <= 0 || c->batch % t->size)
        return err_set(e, ERR_INPUT, "reward: batch %d is not a multiple of the %d reward ranks",
                       c->batch, t->size);
    t->train_idx = xmalloc(sizeof(int) * (size_t)(d->n > 0 ? d->n : 1));
    int T = 1;
    for (int i = 0; i < d->n; i++) {
        if (!d->is_val[i]) t->train_idx[t->n_train++] = i;
        if (max_len(d, i) > T) T = max_len(d, i);
        if (d->len_a[i] < 1 || d->len_b[i] < 1)
            return err_set(e, ERR_INPUT, "reward: pair %d has an empty sequence", i);
    }
    if (t->n_train == 0)
        return err_set(e, ERR_INPUT, "reward: no training pairs (all are validation)");
    if (T > m->cfg.max_seq)
        return err_set(e, ERR_INPUT,
                       "reward: a pair has a sequence of %d tokens, longer than the model's "
                       "max_seq %d",
                       T, m->cfg.max_seq);
    int share = c->batch / t->size;
    t->Bmax = 2 * share;
    t->Tmax = T;
    int rc = model_acts_create(&t->acts, &m->cfg, t->Bmax, t->Tmax, e);
    if (rc) return rc;
    t->cfg.optim.total_steps = c->steps;
    if ((rc = optim_create(&t->opt, m, &t->cfg.optim, e))) return rc;
    model_alloc_grads(m);
    t->tok = xmalloc(sizeof(int) * (size_t)t->Bmax * t->Tmax);
    t->pos = xmalloc(sizeof(int) * (size_t)t->Bmax);
    t->score = xmalloc(sizeof(float) * (size_t)t->Bmax);
    t->dscore = xmalloc(sizeof(float) * (size_t)t->Bmax);
    return ERR_OK;
}

void reward_trainer_free(reward_trainer *t) {
    if (!t) return;
    model_acts_free(&t->acts);
    optim_free(&t->opt);
    free(t->train_idx), free(t->tok), free(t->pos), free(t->score), free(t->dscore);
    memset(t, 0, sizeof *t);
}

/* Pair at position q of the stream of training pairs: epoch q / n_train, shuffled per epoch. */
static int stream_pair(reward_trainer *t, long q, int *perm, long *perm_epoch) {
    long ep = q / t->n_train;
    if (ep != *perm_epoch) {
        memcpy(perm, t->train_idx, sizeof(int) * (size_t)t->n_train);
        rng r;
        rng_init(&r, t->cfg.seed, rng_purpose(RNG_DATA, 0x52), (uint32_t)ep);
        rng_shuffle_int(&r, perm, t->n_train);
        *perm_epoch = ep;
    }
    return perm[q % t->n_train];
}

int reward_trainer_step(reward_trainer *t, MPI_Comm comm, reward_step_stats *st, rl_err *e) {
    const reward_data *d = t->data;
    model *m = t->m;
    int B = t->cfg.batch, share = B / t->size;
    long q0 = t->opt.step * (long)B;
    int *perm = xmalloc(sizeof(int) * (size_t)t->n_train);
    int *idx = xmalloc(sizeof(int) * (size_t)B);
    long perm_epoch = -1;
    int T = 1;
    for (int j = 0; j < B; j++) {
        idx[j] = stream_pair(t, q0 + j, perm, &perm_epoch);
        if (max_len(d, idx[j]) > T) T = max_len(d, idx[j]);
    }
    /* this rank's share, padded to the global batch's T */
    const int *mine = idx + t->rank * share;
    for (int i = 0; i < share; i++) {
        int pi = mine[i];
        int *ra = t->tok + (size_t)(2 * i) * T, *rb = t->tok + (size_t)(2 * i + 1) * T;
        for (int k = 0; k < T; k++) {
            ra[k] = k < d->len_a[pi] ? d->a[pi][k] : 0;
            rb[k] = k < d->len_b[pi] ? d->b[pi][k] : 0;
        }
        t->pos[2 * i] = (2 * i) * T + d->len_a[pi] - 1;
        t->pos[2 * i + 1] = (2 * i + 1) * T + d->len_b[pi] - 1;
    }
    model_zero_grads(m);
    int rc = model_forward(m, &t->acts, t->tok, 2 * share, T, e);
    if (!rc) rc = model_score_forward(m, &t->acts, t->pos, 2 * share, t->score, e);
    double sums[5] = {0, 0, 0, 0, 0}; /* loss, correct, counted, |d|, pairs */
    float scale = (float)t->size / (float)B;
    for (int i = 0; i < share; i++) {
        double p = d->p[mine[i]], dd;
        double diff = (double)t->score[2 * i] - t->score[2 * i + 1];
        double l = reward_pair_loss(t->cfg.loss, diff, p, t->cfg.margin, &dd);
        t->dscore[2 * i] = (float)(dd * scale);
        t->dscore[2 * i + 1] = (float)(-dd * scale);
        sums[0] += l;
        if (p != 0.5) sums[1] += (diff > 0) == (p > 0.5), sums[2] += 1;
        sums[3] += fabs(diff);
        sums[4] += 1;
    }
    if (!rc) rc = model_score_backward(m, &t->acts, t->pos, 2 * share, t->dscore, e);
    if (!rc) model_backward(m, &t->acts, t->tok);
    free(perm);
    free(idx);
    /* every rank reaches the allreduce, also after a local failure */
    int bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) return rc ? rc : err_set(e, ERR_INTERNAL, "reward: a step failed on another rank");
    if ((rc = model_allreduce_grads(m, comm, e))) return rc;
    if (comm_allreduce_sum_f64(sums, 5, comm))
        return err_set(e, ERR_MPI, "reward: allreduce failed");
    if (!isfinite(sums[0]))
        return err_set(e, ERR_NUMERIC,
                       "the reward-model loss is %g: not finite; lower the learning rate (or "
                       "check the labels)",
                       sums[0]);
    optim_stats os;
    if ((rc = optim_step(&t->opt, m, &os, e))) return rc;
    if (st) {
        st->loss = sums[0] / sums[4];
        st->accuracy = sums[2] > 0 ? sums[1] / sums[2] : NAN;
        st->margin = sums[3] / sums[4];
        st->grad_norm = os.grad_norm;
        st->lr = os.lr;
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------ scoring */

void reward_scorer_free(reward_scorer *s) {
    if (!s) return;
    kvcache_free(&s->cache);
    memset(s, 0, sizeof *s);
}

int reward_score(const model *m, reward_scorer *s, int n, const int32_t *const *seqs,
                 const int *lens, int chunk, float *scores, rl_err *e) {
    if (n <= 0) return ERR_OK;
    if (chunk <= 0) chunk = 1;
    int need_slots = n < chunk ? n : chunk, need_seq = 1;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return err_set(e, ERR_INPUT, "score: sequence %d is empty", i);
        if (lens[i] > m->cfg.max_seq)
            return err_set(e, ERR_INPUT,
                           "score: sequence %d has %d tokens, more than the model's max_seq %d", i,
                           lens[i], m->cfg.max_seq);
        if (lens[i] > need_seq) need_seq = lens[i];
    }
    if (s->slots < need_slots || s->max_seq < need_seq) {
        kvcache_free(&s->cache);
        int slots = need_slots > s->slots ? need_slots : s->slots;
        int rc = kvcache_create(&s->cache, &m->cfg, slots, m->cfg.max_seq, e);
        if (rc) return rc;
        s->slots = slots;
        s->max_seq = m->cfg.max_seq;
    }
    int *slot = xmalloc(sizeof(int) * (size_t)need_slots);
    int *nn = xmalloc(sizeof(int) * (size_t)need_slots);
    int rc = ERR_OK;
    for (int i0 = 0; i0 < n && !rc; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        size_t total = 0;
        for (int j = 0; j < k; j++) {
            slot[j] = j;
            kvcache_reset(&s->cache, j);
            nn[j] = lens[i0 + j];
            total += (size_t)nn[j];
        }
        int *toks = xmalloc(sizeof(int) * total);
        for (int j = 0, r = 0; j < k; j++)
            for (int q = 0; q < nn[j]; q++) toks[r++] = seqs[i0 + j][q];
        model_step_out out = {.score = scores + i0};
        rc = model_step(m, &s->cache, k, slot, nn, toks, &out, e);
        free(toks);
    }
    free(slot);
    free(nn);
    return rc;
}

int reward_validate(const model *m, reward_scorer *s, const reward_data *d,
                    const int8_t *const refs[REWARD_N_REFS], int chunk, MPI_Comm comm,
                    reward_val_stats *st, rl_err *e) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int nv = 0;
    for (int i = 0; i < d->n; i++) nv += d->is_val[i];
    int *mine = xmalloc(sizeof(int) * (size_t)(nv > 0 ? nv : 1));
    int k = 0, j = 0;
    for (int i = 0; i < d->n; i++)
        if (d->is_val[i] && j++ % size == rank) mine[k++] = i;
    const int32_t **seqs = xmalloc(sizeof *seqs * (size_t)(2 * k + 1));
    int *lens = xmalloc(sizeof(int) * (size_t)(2 * k + 1));
    float *sc = xmalloc(sizeof(float) * (size_t)(2 * k + 1));
    for (int i = 0; i < k; i++) {
        seqs[2 * i] = d->a[mine[i]], lens[2 * i] = d->len_a[mine[i]];
        seqs[2 * i + 1] = d->b[mine[i]], lens[2 * i + 1] = d->len_b[mine[i]];
    }
    int rc = reward_score(m, s, 2 * k, seqs, lens, chunk, sc, e);
    /* sums: n, loss, acc_label, n_label, sum s, sum s^2, then (acc, n) per ref */
    double v[6 + 2 * REWARD_N_REFS] = {0};
    if (!rc) {
        for (int i = 0; i < k; i++) {
            double p = d->p[mine[i]], dd, diff = (double)sc[2 * i] - sc[2 * i + 1];
            v[0] += 1;
            v[1] += reward_pair_loss(REWARD_SOFT_CE, diff, p, 0, &dd);
            if (p != 0.5) v[2] += (diff > 0) == (p > 0.5), v[3] += 1;
            for (int q = 0; q < 2; q++)
                v[4] += sc[2 * i + q], v[5] += (double)sc[2 * i + q] * sc[2 * i + q];
            for (int r = 0; r < REWARD_N_REFS; r++) {
                const int8_t *ref = refs ? refs[r] : NULL;
                if (ref && ref[mine[i]])
                    v[6 + 2 * r] += (diff > 0) == (ref[mine[i]] == 1), v[7 + 2 * r] += 1;
            }
        }
    }
    free(mine), free(seqs), free(lens), free(sc);
    /* every rank takes part in the allreduce, also after a local failure, so none hangs */
    int bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) return rc ? rc : err_set(e, ERR_INTERNAL, "reward: validation failed on another rank");
    if (comm_allreduce_sum_f64(v, sizeof v / sizeof v[0], comm))
        return err_set(e, ERR_MPI, "reward: allreduce failed");
    memset(st, 0, sizeof *st);
    st->n = v[0];
    st->loss = v[0] > 0 ? v[1] / v[0] : NAN;
    st->n_label = v[3];
    st->acc_label = v[3] > 0 ? v[2] / v[3] : NAN;
    for (int r = 0; r < REWARD_N_REFS; r++) {
        st->n_ref[r] = v[7 + 2 * r];
        st->acc_ref[r] = v[7 + 2 * r] > 0 ? v[6 + 2 * r] / v[7 + 2 * r] : NAN;
    }
    double ns = 2 * v[0];
    st->mean = ns > 0 ? v[4] / ns : NAN;
    st->std = ns > 1 ? sqrt(fmax(0.0, (v[5] - ns * st->mean * st->mean) / (ns - 1))) : NAN;
    return ERR_OK;
}

int reward_norm_stats(const model *m, reward_scorer *s, const reward_data *d, int n_samples,
                      int chunk, MPI_Comm comm, double *mean, double *std, rl_err *e) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int total = n_samples < 2 * d->n ? n_samples : 2 * d->n;
    int k = 0;
    const int32_t **seqs = xmalloc(sizeof *seqs * (size_t)(total / size + 2));
    int *lens = xmalloc(sizeof(int) * (size_t)(total / size + 2));
    for (int q = rank; q < total; q += size) {
        int i = q / 2;
        seqs[k] = q % 2 ? d->b[i] : d->a[i];
        lens[k] = q % 2 ? d->len_b[i] : d->len_a[i];
        k++;
    }
    float *sc = xmalloc(sizeof(float) * (size_t)(k + 1));
    int rc = reward_score(m, s, k, seqs, lens, chunk, sc, e);
    double v[3] = {0, 0, 0};
    if (!rc)
        for (int i = 0; i < k; i++) v[0] += 1, v[1] += sc[i], v[2] += (double)sc[i] * sc[i];
    free(seqs), free(lens), free(sc);
    int bad = rc != ERR_OK;
    comm_allreduce_max_int(&bad, comm);
    if (bad) return rc ? rc : err_set(e, ERR_INTERNAL, "reward: scoring failed on another rank");
    if (comm_allreduce_sum_f64(v, 3, comm)) return err_set(e, ERR_MPI, "reward: allreduce failed");
    if (v[0] < 2) return err_set(e, ERR_INPUT, "reward: fewer than 2 responses to normalise on");
    *mean = v[1] / v[0];
    double var = (v[2] - v[0] * (*mean) * (*mean)) / (v[0] - 1);
    *std = sqrt(var > 0 ? var : 0);
    return ERR_OK;
}

void reward_fold_norm(model *m, double mean, double std) {
    double gain = std > 1e-8 ? 1.0 / std : 1.0;
    double bias = -mean * gain;
    int C = m->cfg.dim;
    for (int j = 0; j < C; j++) m->p.score_w[j] = (float)(gain * m->p.score_w[j]);
    m->p.score_b[0] = (float)(gain * m->p.score_b[0] + bias);
}

/* ------------------------------------------------------------------ scoring service */

enum { SVC_SCORE = 1, SVC_DONE = 2 };

int reward_client_send(reward_request *r, int server, int n, const int32_t *const *seqs,
                       const int *lens, const int *plens, rl_err *e) {
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, SVC_SCORE);
    msg_put_i32(&w, n);
    for (int i = 0; i < n; i++) {
        msg_put_i32(&w, plens ? plens[i] : 0);
        msg_put_i32s(&w, seqs[i], (size_t)lens[i]);
    }
    if (w.len > (size_t)INT32_MAX) {
        msg_free(&w);
        return err_set(e, ERR_INPUT, "score request of %d sequences is too large", n);
    }
    r->server = server;
    r->buf = w.buf;
    r->active = 1;
    if (MPI_Isend(w.buf, (int)w.len, MPI_BYTE, server, TAG_SCORE_REQ, MPI_COMM_WORLD, &r->req) !=
        MPI_SUCCESS) {
        free(w.buf);
        r->active = 0;
        return err_set(e, ERR_MPI, "cannot send a score request to rank %d", server);
    }
    return ERR_OK;
}

int reward_client_recv(reward_request *r, int n, float *scores, rl_err *e) {
    if (!r->active) return err_set(e, ERR_INTERNAL, "score: no request in flight");
    int rc = comm_wait(&r->req, NULL);
    free(r->buf);
    r->buf = NULL;
    r->active = 0;
    if (rc) return err_set(e, ERR_MPI, "sending a score request to rank %d failed", r->server);
    void *buf = NULL;
    int len = 0;
    if (comm_recv_alloc(&buf, &len, MPI_BYTE, r->server, TAG_SCORE, MPI_COMM_WORLD, NULL))
        return err_set(e, ERR_MPI, "no scores from rank %d", r->server);
    msg_reader rd;
    msg_reader_init(&rd, buf, (size_t)len);
    int32_t status = msg_get_i32(&rd);
    size_t got = 0;
    float *s = NULL;
    if (status == ERR_OK)
        s = msg_get_f32s(&rd, &got, (size_t)n);
    else {
        char *text = msg_get_str(&rd);
        rc = err_set(e, status, "rank %d could not score: %s", r->server, text);
        free(text);
        free(buf);
        return rc;
    }
    free(buf);
    if (rd.bad || !s || got != (size_t)n) {
        free(s);
        return err_set(e, ERR_MPI, "rank %d sent %zu scores for %d sequences", r->server, got, n);
    }
    memcpy(scores, s, sizeof(float) * (size_t)n);
    free(s);
    return ERR_OK;
}

int reward_client_done(int server, rl_err *e) {
    int32_t msg[2] = {SVC_DONE, 0};
    if (comm_send(msg, (int)sizeof msg, MPI_BYTE, server, TAG_SCORE_REQ, MPI_COMM_WORLD))
        return err_set(e, ERR_MPI, "cannot reach scoring rank %d", server);
    return ERR_OK;
}

int reward_serve(const int *clients, int n_clients, reward_score_fn fn, void *user,
                 reward_serve_stats *st, rl_err *e) {
    reward_serve_stats s = {0};
    double t0 = log_now();
    int done = 0;
    long sleep_us = 20;
    while (done < n_clients) {
        int flag = 0;
        MPI_Status status;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_SCORE_REQ, MPI_COMM_WORLD, &flag, &status);
        if (!flag) {
            comm_sleep_us(sleep_us);
            sleep_us = sleep_us < 2000 ? sleep_us * 2 : 2000;
            continue;
        }
        sleep_us = 20;
        int src = status.MPI_SOURCE, len = 0, known = 0;
        for (int i = 0; i < n_clients; i++) known |= clients[i] == src;
        if (!known)
            return err_set(e, ERR_INTERNAL, "score service: a request from rank %d, not a client",
                           src);
        MPI_Get_count(&status, MPI_BYTE, &len);
        unsigned char *buf = xmalloc((size_t)len + 1);
        if (comm_recv(buf, len, MPI_BYTE, src, TAG_SCORE_REQ, MPI_COMM_WORLD, NULL)) {
            free(buf);
            return err_set(e, ERR_MPI, "score service: receiving from rank %d failed", src);
        }
        double tb = log_now();
        msg_reader rd;
        msg_reader_init(&rd, buf, (size_t)len);
        int32_t kind = msg_get_i32(&rd), n = msg_get_i32(&rd);
        if (kind == SVC_DONE) {
            done++;
            free(buf);
            continue;
        }
        if (kind != SVC_SCORE || n < 0 || n > (1 << 24)) rd.bad = 1;
        int32_t **seqs = NULL;
        int *lens = NULL, *plens = NULL;
        if (!rd.bad) {
            seqs = xcalloc((size_t)n + 1, sizeof *seqs);
            lens = xcalloc((size_t)n + 1, sizeof *lens);
            plens = xcalloc((size_t)n + 1, sizeof *plens);
            for (int i = 0; i < n && !rd.bad; i++) {
                size_t l = 0;
                plens[i] = msg_get_i32(&rd);
                seqs[i] = msg_get_i32s(&rd, &l, 1u << 20);
                lens[i] = (int)l;
                if (plens[i] < 0 || plens[i] > lens[i]) rd.bad = 1;
            }
        }
        free(buf);
        msg_writer w;
        msg_init(&w);
        int rc = ERR_OK;
        rl_err e2 = {0};
        if (rd.bad) rc = err_set(&e2, ERR_MPI, "malformed score request from rank %d", src);
        float *scores = xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!rc) rc = fn(user, n, (const int32_t *const *)seqs, lens, plens, scores, &e2);
        msg_put_i32(&w, rc);
        if (rc)
            msg_put_str(&w, e2.msg);
        else
            msg_put_f32s(&w, scores, (size_t)n);
        if (!rd.bad) {
            s.requests++;
            s.sequences += n;
            for (int i = 0; i < n; i++) s.tokens += lens[i];
        }
        if (seqs)
            for (int i = 0; i < n; i++) free(seqs[i]);
        free(seqs), free(lens), free(plens), free(scores);
        int src_rc = comm_send(w.buf, (int)w.len, MPI_BYTE, src, TAG_SCORE, MPI_COMM_WORLD);
        msg_free(&w);
        s.busy_seconds += log_now() - tb;
        if (src_rc) return err_set(e, ERR_MPI, "score service: answering rank %d failed", src);
        if (rc) {
            /* the client reports it; the server stops too, with the same message */
            *e = e2;
            return rc;
        }
    }
    s.wall_seconds = log_now() - t0;
    if (st) *st = s;
    return ERR_OK;
}
