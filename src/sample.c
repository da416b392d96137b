/* sample: see include/sample.h. sample_token avoids sorting the vocabulary: with no top-k or
 * top-p it walks the distribution in token order; otherwise it gathers the tokens above a
 * probability threshold, sorts only those, and lowers the threshold until they hold the
 * nucleus (a full sort happens only in the worst case). sample_token_ref sorts everything. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

void sample_scratch_free(sample_scratch *s) {
    if (!s) return;
    free(s->p);
    free(s->idx);
    free(s->tmp);
    memset(s, 0, sizeof *s);
}

static int argmax(const float *z, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (z[j] > z[best]) best = j;
    return best;
}

/* Sorts idx[0..n) by p descending, ties by token id (merge sort; tmp holds n ints), so both
 * versions order alike. */
static void sort_by_prob(int *idx, int n, const float *p, int *tmp) {
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {
                int ia = idx[a], ib = idx[b];
                int take_a = p[ia] > p[ib] || (p[ia] == p[ib] && ia < ib);
                tmp[k++] = take_a ? idx[a++] : idx[b++];
            }
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof(int) * n);
    }
}

/* Draws from the n candidates idx[0..n) (descending) with weights p[idx[k]]. */
static int draw_sorted(const float *p, const int *idx, int n, double mass, rng *r) {
    double u = rng_uniform_double(r) * mass, acc = 0;
    for (int k = 0; k < n; k++) {
        acc += p[idx[k]];
        if (u < acc) return idx[k];
    }
    return idx[n - 1];
}

/* How many of the sorted candidates top-k and top-p keep, and their mass. */
static int cut(const float *p, const int *idx, int n, const sample_params *sp, double *mass) {
    if (sp->top_k > 0 && sp->top_k < n) n = sp->top_k;
    double acc = 0;
    int keep = n;
    int nucleus = sp->top_p > 0 && sp->top_p < 1;
    for (int k = 0; k < n; k++) {
        acc += p[idx[k]];
        if (nucleus && acc >= sp->top_p) {
            keep = k + 1;
            break;
        }
    }
    *mass = 0;
    for (int k = 0; k < keep; k++) *mass += p[idx[k]];
    return keep;
}

int sample_token_ref(const float *logits, int V, const sample_params *sp, rng *r, float *logprob) {
    if (sp->temperature <= 0) {
        int t = argmax(logits, V);
        if (logprob) logprob[0] = logits[t] - kern_row_lse_ref(logits, V, NULL);
        return t;
    }
    float *p = malloc(sizeof(float) * V);
    int *idx = malloc(sizeof(int) * V);
    double m = -INFINITY, s = 0;
    for (int j = 0; j < V; j++) m = fmax(m, logits[j] / sp->temperature);
    for (int j = 0; j < V; j++) s += exp(logits[j] / sp->temperature - m);
    for (int j = 0; j < V; j++) {
        p[j] = (float)(exp(logits[j] / sp->temperature - m) / s);
        idx[j] = j;
    }
    /* without truncation the inverse CDF runs in token order (no sort), as in sample_token */
    int truncate = (sp->top_k > 0 && sp->top_k < V) || (sp->top_p > 0 && sp->top_p < 1);
    int *tmp = malloc(sizeof(int) * V);
    if (truncate) sort_by_prob(idx, V, p, tmp);
    free(tmp);
    double mass;
    int keep = cut(p, idx, V, sp, &mass);
    int t = draw_sorted(p, idx, keep, mass, r);
    if (logprob) logprob[0] = (float)(logits[t] / sp->temperature - m - log(s));
    free(p);
    free(idx);
    return t;
}

int sample_token(const float *logits, int V, const sample_params *sp, rng *r, float *logprob,
                 sample_scratch *s) {
    if (sp->temperature <= 0) {
        int t = argmax(logits, V);
        if (logprob) logprob[0] = logits[t] - kern_row_lse(logits, V, NULL);
        return t;
    }
    if (s->cap < V) {
        free(s->p);
        free(s->idx);
        free(s->tmp);
        s->p = xmalloc(sizeof(float) * V);
        s->idx = xmalloc(sizeof(int) * V);
        s->tmp = xmalloc(sizeof(int) * V);
        s->cap = V;
    }
    float *p = s->p;
    int *idx = s->idx;
    float inv_t = 1.0f / sp->temperature;
    for (int j = 0; j < V; j++) p[j] = logits[j] * inv_t;
    float m = kern_max(p, V);
    float sum = kern_exp_shift_sum(p, V, m);
    float inv = 1.0f / sum;
    for (int j = 0; j < V; j++) p[j] *= inv;
    int t;
    int truncate = (sp->top_k > 0 && sp->top_k < V) || (sp->top_p > 0 && sp->top_p < 1);
    if (!truncate) {
        /* inverse CDF in token order: skip whole blocks by their (vectorised) sums first */
        double u = rng_uniform_double(r), acc = 0;
        int j0 = 0;
        for (; j0 + 256 <= V; j0 += 256) {
            double bs = kern_sum(p + j0, 256);
            if (u < acc + bs) break;
            acc += bs;
        }
        t = V - 1;
        for (int j = j0; j < V; j++) {
            acc += p[j];
            if (u < acc) {
                t = j;
                break;
            }
        }
    } else {
        /* Candidates p >= thr, sorted. They contain the top-k / nucleus once there are at least
         * k of them (or the whole vocabulary) and their mass reaches top_p. */
        float pmax = 0;
        for (int j = 0; j < V; j++) pmax = p[j] > pmax ? p[j] : pmax;
        float thr = pmax * 1e-3f;
        int n;
        for (;;) {
            n = 0;
            double got = 0;
            for (int j = 0; j < V; j++)
                if (p[j] >= thr) idx[n++] = j, got += p[j];
            int enough_k = sp->top_k <= 0 || n >= sp->top_k;
            int enough_p = !(sp->top_p > 0 && sp->top_p < 1) || got >= sp->top_p;
            if ((enough_k && enough_p) || n == V) break;
            thr = thr > 1e-30f ? thr * 1e-3f : 0.0f; /* 0 takes everything */
        }
        sort_by_prob(idx, n, p, s->tmp);
        double mass;
        int keep = cut(p, idx, n, sp, &mass);
        t = draw_sorted(p, idx, keep, mass, r);
    }
    if (logprob) logprob[0] = logits[t] * inv_t - m - logf(sum);
    return t;
}

static int is_eos(const gen_config *g, int tok) {
    for (int i = 0; i < g->n_eos; i++)
        if (g->eos[i] == tok) return 1;
    return 0;
}

int sample_generate(const model *m, kvcache *c, gen_seq *seqs, int n_seq, const gen_config *g,
                    rl_err *e) {
    int V = m->cfg.vocab_size;
    if (n_seq <= 0) return ERR_OK;
    if (g->max_new < 0) return err_set(e, ERR_INPUT, "generate: max_new must be >= 0");
    int *slots = xmalloc(sizeof(int) * n_seq), *n_new = xmalloc(sizeof(int) * n_seq);
    int *active = xmalloc(sizeof(int) * n_seq), *toks = xmalloc(sizeof(int) * n_seq);
    float *logits = xmalloc_aligned(sizeof(float) * (size_t)n_seq * V);
    sample_scratch sc = {0};
    int rc = ERR_OK;
    size_t total = 0;
    for (int i = 0; i < n_seq; i++) {
        seqs[i].n_out = 0;
        seqs[i].hit_eos = 0;
        if (seqs[i].prompt_len < 1) {
            rc = err_set(e, ERR_INPUT, "generate: sequence %d has an empty prompt", i);
            goto done;
        }
        if (g->sp.temperature > 0 && !seqs[i].r) {
            rc = err_set(e, ERR_INPUT, "generate: sequence %d samples but has no rng stream", i);
            goto done;
        }
        slots[i] = seqs[i].slot;
        n_new[i] = seqs[i].prompt_len;
        total += (size_t)seqs[i].prompt_len;
    }
    if (g->max_new == 0) goto done;
    {
        /* prefill: all prompts in one ragged step, logits at each prompt's last token */
        int *all = xmalloc(sizeof(int) * (total ? total : 1));
        for (int i = 0, r = 0; i < n_seq; i++)
            for (int k = 0; k < seqs[i].prompt_len; k++) all[r++] = seqs[i].prompt[k];
        model_step_out out = {.logits = logits};
        rc = model_step(m, c, n_seq, slots, n_new, all, &out, e);
        free(all);
        if (rc) goto done;
    }
    int n_act = n_seq;
    for (int i = 0; i < n_seq; i++) active[i] = i;
    for (;;) {
        /* sample for every active sequence from its row of logits */
        int keep = 0;
        for (int a = 0; a < n_act; a++) {
            gen_seq *s = &seqs[active[a]];
            float lp = 0;
            int t = sample_token(logits + (size_t)a * V, V, &g->sp, s->r, &lp, &sc);
            s->out[s->n_out] = t;
            if (s->logprob) s->logprob[s->n_out] = lp;
            s->n_out++;
            if (is_eos(g, t)) s->hit_eos = 1;
            int room = c->len[s->slot] < c->max_seq;
            if (!s->hit_eos && s->n_out < g->max_new && room) active[keep++] = active[a];
        }
        n_act = keep;
        if (n_act == 0) break;
        for (int a = 0; a < n_act; a++) {
            gen_seq *s = &seqs[active[a]];
            slots[a] = s->slot;
            n_new[a] = 1;
            toks[a] = s->out[s->n_out - 1];
        }
        model_step_out out = {.logits = logits};
        rc = model_step(m, c, n_act, slots, n_new, toks, &out, e);
        if (rc) goto done;
    }
done:
    free(slots), free(n_new), free(active), free(toks), free(logits);
    sample_scratch_free(&sc);
    return rc;
}
