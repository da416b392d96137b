/* task_lm_eval: evaluation helpers of the built-in task that call the gold rater.
 *
 * GOLD: evaluation only. Nothing here is reachable from the label, reward or RL code paths
 * except through functions named *_eval_*. */
#include <string.h>

#include "task_lm.h"

static int eval_pair_kind(const double mix[TASK_N_KINDS], rng *r) {
    if (rng_below(r, 7) == 0) return TASK_MIXED;
    double u = rng_uniform_double(r), acc = 0;
    int last = TASK_GOOD;
    for (int k = 0; k < TASK_N_KINDS; k++) {
        if (mix[k] <= 0) continue;
        acc += mix[k];
        last = k;
        if (u < acc) return k;
    }
    return last;
}

int task_lm_eval_pair(const task_config *tc, long i, task_doc *doc, task_pair *p, rl_err *e) {
    long n_test = tc->n_docs[TASK_TEST];
    if (i < 0 || i > (long)UINT32_MAX || n_test < 1)
        return err_set(e, ERR_INPUT, "eval pair %ld: out of range (%ld test documents)", i, n_test);
    memset(p, 0, sizeof *p);
    p->doc_index = i % n_test;
    int rc = task_doc_make(tc->seed, TASK_TEST, p->doc_index, doc, e);
    if (rc) return rc;
    rng r;
    rng_init(&r, tc->seed, rng_purpose(RNG_DATA, 0xe7a1), (uint32_t)i);
    p->kind_a = eval_pair_kind(tc->mix, &r);
    if ((rc = task_summary(doc, p->kind_a, &r, p->a, sizeof p->a, e))) return rc;
    int pa = task_gold_points(doc, p->a, NULL);
    for (int attempt = 0;; attempt++) {
        p->kind_b = attempt < 8 ? eval_pair_kind(tc->mix, &r) : TASK_MIXED;
        if ((rc = task_summary(doc, p->kind_b, &r, p->b, sizeof p->b, e))) return rc;
        if (task_gold_points(doc, p->b, NULL) != pa) break;
        if (attempt > 64)
            return err_set(e, ERR_INTERNAL, "eval pair %ld: no pair with a gold margin", i);
    }
    if (rng_below(&r, 2)) {
        char tmp[TASK_SUMMARY_MAX];
        memcpy(tmp, p->a, sizeof tmp);
        memcpy(p->a, p->b, sizeof tmp);
        memcpy(p->b, tmp, sizeof tmp);
        int k = p->kind_a;
        p->kind_a = p->kind_b, p->kind_b = k;
    }
    p->gold = task_gold_prefer(doc, p->a, p->b);
    p->margin = task_gold_margin(doc, p->a, p->b);
    return ERR_OK;
}
