/* judge: the soft label equals the softmax over the two label-token logits of a full forward
 * pass (the training path, no KV cache) of the same prompt, in both orders, with and without
 * prefix reuse, exemplars and principles; swapping the candidates maps back (p(b, a) = 1 - p(a,
 * b)); batch size and reuse do not change labels; the prompt text is the paper's format; a context
 * too long is cut; d-RLAIF's expected score by hand (with "10" as two tokens) and against full
 * forwards; chain of thought: the rationale is the greedy continuation (full forwards) and the
 * label is read after rationale, newline and ending; likelihood mode against full forwards
 * and the task's SFT tokens. The model is random: only equalities are
 * tested here, not judgement. */
#include "test_util.h"

#include <math.h>

#include "judge.h"
#include "model.h"
#include "task_lm.h"
#include "tokenizer.h"
#include "tokenizer_pre.h"

typedef struct fixture {
    tokenizer *tok;
    model m;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    task_config tc;
    task_config_default(&tc);
    tc.n_docs[TASK_TRAIN] = 60;
    judge_opts o;
    judge_opts_default(&o);
    char **texts;
    int n;
    judge_opts_texts(&o, &texts, &n);
    rl_err e = {0};
    if (task_lm_train_tokenizer(&tc, (const char *const *)texts, n, 50, 500, &f->tok, &e))
        fail_msg("%s", e.msg);
    judge_texts_free(texts, n);
    judge_opts_free(&o);
    model_config mc = {.dim = 32,
                       .n_layers = 2,
                       .n_heads = 4,
                       .n_kv_heads = 2,
                       .head_dim = 8,
                       .ffn_dim = 48,
                       .vocab_size = tokenizer_n_vocab(f->tok),
                       .max_seq = 400,
                       .rope_theta = 10000,
                       .norm_eps = 1e-5f};
    if (model_create(&f->m, &mc, &e)) fail_msg("%s", e.msg);
    model_init_weights(&f->m, 7);
    /* larger weights than the default init, so the two label logits really differ */
    for (size_t i = 0; i < f->m.n_params; i++) f->m.params[i] *= 4.0f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tokenizer_free(f->tok);
    model_free(&f->m);
    free(f);
    return 0;
}

/* Logits (V) after the last token of ids, by the training-path forward of the whole sequence. */
static void full_logits(const model *m, const int *ids, int n, float *logits) {
    model_acts a;
    rl_err e = {0};
    if (model_acts_create(&a, &m->cfg, 1, n, &e)) fail_msg("%s", e.msg);
    if (model_forward(m, &a, ids, 1, n, &e)) fail_msg("%s", e.msg);
    int pos = n - 1;
    if (model_lm_logits(m, &a, &pos, 1, logits, &e)) fail_msg("%s", e.msg);
    model_acts_free(&a);
}

static double full_p1(fixture *f, const judge_prompt *p, const judge_pair *pair, int swap) {
    int *ids, n, tr;
    rl_err e = {0};
    if (judge_prompt_pair_tokens(p, pair, swap, 0, 0, &ids, &n, &tr, &e)) fail_msg("%s", e.msg);
    float *z = malloc(sizeof(float) * f->m.cfg.vocab_size);
    full_logits(&f->m, ids, n, z);
    double p1 =
        judge_pref_from_logits(z, judge_prompt_label_token(p, 1), judge_prompt_label_token(p, 2));
    free(z);
    free(ids);
    return p1;
}

static const char *const ctxs[5] = {
    "Emma had a new chair. Grace lost a clock at the market. The market was empty that day.",
    "Last week, Lucy made a wooden basket at the castle. Tom had a golden hat.",
    "In the garden, Emma lost a small map on Sunday. Not far away, Ben was working.",
    "Vera went to the farm. There she lost a blue ladder.",
    "A painting was lost by Jack at the school."};
static const char *const as[5] = {"Grace lost a clock at the market.", "Lucy made a basket.",
                                  "Emma lost a map in the garden on Sunday.",
                                  "Vera lost a ladder on the farm.", "Jack lost a painting"};
static const char *const bs[5] = {
    "Grace lost a clock.", "Lucy made a basket at the castle last week.",
    "Ben lost a map in the garden on Sunday.", "Vera lost a ladder on the farm.",
    "Jack lost a painting at the school."};

static void make_pairs(judge_pair *p, int swap_ab) {
    for (int i = 0; i < 5; i++)
        p[i] = (judge_pair){.id = 100 + i,
                            .context = ctxs[i],
                            .a = swap_ab ? bs[i] : as[i],
                            .b = swap_ab ? as[i] : bs[i]};
}

static void check_against_full(fixture *f, judge_opts *o, int max_pairs) {
    rl_err e = {0};
    judge *j;
    if (judge_create(&j, &f->m, f->tok, o, max_pairs, &e)) fail_msg("%s", e.msg);
    judge_pair pairs[5];
    judge_label l[5];
    make_pairs(pairs, 0);
    if (judge_label_pairs(j, pairs, 5, l, &e)) fail_msg("%s", e.msg);
    for (int i = 0; i < 5; i++) {
        double p_ab = full_p1(f, judge_get_prompt(j), &pairs[i], 0);
        assert_close(l[i].p_ab, p_ab, 1e-4, 1e-5);
        if (o->position_debias) {
            double p_ba = 1.0 - full_p1(f, judge_get_prompt(j), &pairs[i], 1);
            assert_close(l[i].p_ba, p_ba, 1e-4, 1e-5);
            assert_close(l[i].p, 0.5 * (p_ab + p_ba), 1e-4, 1e-5);
        } else {
            assert_true(isnan(l[i].p_ba));
            assert_close(l[i].p, p_ab, 1e-4, 1e-5);
        }
        assert_true(l[i].p_ab > 1e-4 && l[i].p_ab < 1 - 1e-4); /* not a degenerate model */
        judge_label_free(&l[i]);
    }
    const judge_stats *st = judge_get_stats(j);
    if (o->reuse_prefix)
        assert_true(st->tokens_reused > 0);
    else
        assert_int_equal(st->tokens_reused, 0);
    judge_free(j);
}

static void test_soft_label_equals_full_forward(void **state) {
    fixture *f = *state;
    for (int debias = 0; debias < 2; debias++)
        for (int reuse = 0; reuse < 2; reuse++) {
            judge_opts o;
            judge_opts_default(&o);
            o.position_debias = debias;
            o.reuse_prefix = reuse;
            check_against_full(f, &o, 3);
            judge_opts_free(&o);
        }
}

static void test_exemplars_and_principles(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    o.n_exemplars = 1;
    o.exemplars = calloc(1, sizeof *o.exemplars);
    o.exemplars[0] =
        (judge_exemplar){strdup("Anna found a map at the harbour."), strdup("Anna found a map."),
                         strdup("Anna found a map at the harbour."), strdup(""), 2};
    o.n_principles = 3;
    o.principles = calloc(3, sizeof(char *));
    o.principles[0] = strdup("Prefer the summary that names every key fact.");
    o.principles[1] = strdup("Prefer the shorter summary.");
    o.principles[2] = strdup("Prefer a summary that invents nothing.");
    check_against_full(f, &o, 2);
    /* the principle drawn is in the text, and drawn the same way every time */
    rl_err e = {0};
    judge_prompt *p;
    if (judge_prompt_create(&p, &o, f->tok, 400, &e)) fail_msg("%s", e.msg);
    int seen[3] = {0, 0, 0};
    for (int64_t id = 0; id < 60; id++) {
        int k = judge_prompt_principle(p, id);
        assert_true(k >= 0 && k < 3);
        assert_int_equal(k, judge_prompt_principle(p, id));
        seen[k] = 1;
        judge_pair pr = {.id = id, .context = "x", .a = "y", .b = "z"};
        char *t = judge_prompt_pair_text(p, &pr, 0, 0, -1);
        assert_non_null(strstr(t, o.principles[k]));
        assert_non_null(
            strstr(t, "Summary 2 - Anna found a map at the harbour.\n\nPreferred Summary=2"));
        free(t);
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    judge_prompt_free(p);
    judge_opts_free(&o);
}

static void test_swap_maps_back(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    rl_err e = {0};
    judge *j;
    if (judge_create(&j, &f->m, f->tok, &o, 5, &e)) fail_msg("%s", e.msg);
    judge_pair ab[5], ba[5];
    judge_label la[5], lb[5];
    make_pairs(ab, 0);
    make_pairs(ba, 1);
    if (judge_label_pairs(j, ab, 5, la, &e) || judge_label_pairs(j, ba, 5, lb, &e))
        fail_msg("%s", e.msg);
    for (int i = 0; i < 5; i++) {
        /* the b-first judgement of (a, b) is the a-first judgement of (b, a), mapped back */
        assert_close(la[i].p_ba, 1.0 - lb[i].p_ab, 1e-5, 1e-6);
        assert_close(la[i].p, 1.0 - lb[i].p, 1e-5, 1e-6);
        assert_int_equal(judge_same_position(&la[i]), judge_same_position(&lb[i]));
        judge_label_free(&la[i]);
        judge_label_free(&lb[i]);
    }
    judge_free(j);
    judge_opts_free(&o);
}

static void test_batch_and_reuse_invariance(void **state) {
    fixture *f = *state;
    double ref[5];
    for (int variant = 0; variant < 3; variant++) {
        judge_opts o;
        judge_opts_default(&o);
        o.reuse_prefix = variant != 1;
        int max_pairs = variant == 2 ? 1 : 5;
        rl_err e = {0};
        judge *j;
        if (judge_create(&j, &f->m, f->tok, &o, max_pairs, &e)) fail_msg("%s", e.msg);
        judge_pair pairs[5];
        judge_label l[5];
        make_pairs(pairs, 0);
        if (judge_label_pairs(j, pairs, 5, l, &e)) fail_msg("%s", e.msg);
        for (int i = 0; i < 5; i++) {
            if (variant == 0)
                ref[i] = l[i].p;
            else
                assert_close(l[i].p, ref[i], 1e-5, 1e-6);
            judge_label_free(&l[i]);
        }
        judge_free(j);
        judge_opts_free(&o);
    }
}

static void test_prompt_format_and_truncation(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    rl_err e = {0};
    judge_prompt *p;
    if (judge_prompt_create(&p, &o, f->tok, 400, &e)) fail_msg("%s", e.msg);
    judge_pair pr = {
        .id = 1, .context = "  Anna found a map.\n", .a = " Anna found a map.", .b = "A map."};
    char *t = judge_prompt_pair_text(p, &pr, 1, 0, -1);
    assert_string_equal(t, "You are an expert summary rater. Given a piece of text and two of its "
                           "possible summaries, output 1 or 2 to indicate which summary is "
                           "better.\n\nText - Anna found a map.\nSummary 1 - A map.\nSummary 2 - "
                           "Anna found a map.\n\nPreferred Summary=");
    free(t);
    t = judge_prompt_pair_text(p, &pr, 0, 1, -1);
    assert_non_null(strstr(t, "Summary 2 - A map.\n\nConsider the coherence"));
    assert_non_null(strstr(t, "explain which one is better.\n\nRationale:"));
    free(t);
    judge_prompt_free(p);
    /* a context too long for the model is cut to fit, and says so */
    if (judge_prompt_create(&p, &o, f->tok, 120, &e)) fail_msg("%s", e.msg);
    char longctx[4000] = "";
    for (int i = 0; i < 40; i++) strcat(longctx, "Grace lost a clock at the market on Monday. ");
    judge_pair lp = {.id = 2, .context = longctx, .a = "Grace lost a clock.", .b = "Grace."};
    int *ids, n, tr;
    if (judge_prompt_pair_tokens(p, &lp, 0, 0, 5, &ids, &n, &tr, &e)) fail_msg("%s", e.msg);
    assert_int_equal(tr, 1);
    assert_true(n <= 115 && n > 80);
    free(ids);
    if (judge_prompt_pair_tokens(p, &pr, 0, 0, 5, &ids, &n, &tr, &e)) fail_msg("%s", e.msg);
    assert_int_equal(tr, 0);
    free(ids);
    judge_prompt_free(p);
    judge_opts_free(&o);
}

static void test_score_by_hand(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    o.mode = JUDGE_SCORE;
    rl_err e = {0};
    judge_prompt *p;
    if (judge_prompt_create(&p, &o, f->tok, 400, &e)) fail_msg("%s", e.msg);
    int V = tokenizer_n_vocab(f->tok);
    int t1 = tokenizer_single_token(f->tok, "1"), t5 = tokenizer_single_token(f->tok, "5");
    int t0 = tokenizer_single_token(f->tok, "0");
    assert_true(t1 >= 0 && t5 >= 0 && t0 >= 0);
    assert_int_equal(tokenizer_single_token(f->tok, "10"), -1); /* "10" is "1" "0" here */
    float *z = calloc((size_t)V, sizeof(float)), *z2 = calloc((size_t)V, sizeof(float));
    for (int v = 0; v < V; v++) z[v] = -1e4f, z2[v] = -1e4f;
    /* among the score tokens: P("1") = 0.4, P("5") = 0.6; other tokens do not count */
    z[t1] = logf(0.4f), z[t5] = logf(0.6f);
    z[tokenizer_single_token(f->tok, "the") >= 0 ? tokenizer_single_token(f->tok, "the") : 0] = 5;
    /* after "1": P("0") = 0.25 over the whole vocabulary */
    z2[t0] = logf(0.25f), z2[t1] = logf(0.75f);
    judge_score s;
    judge_score_from_logits(p, z, z2, &s);
    assert_close(s.prob[0], 0.4 * 0.75, 1e-6, 1e-7);
    assert_close(s.prob[4], 0.6, 1e-6, 1e-7);
    assert_close(s.prob[9], 0.4 * 0.25, 1e-6, 1e-7);
    double ex = 1 * 0.3 + 5 * 0.6 + 10 * 0.1;
    assert_close(s.expected, ex, 1e-6, 1e-7);
    assert_close(s.reward, (ex - 5.5) / 4.5, 1e-6, 1e-7);
    /* the extremes map to -1 and 1 */
    for (int v = 0; v < V; v++) z[v] = -1e4f;
    z[t1] = 0;
    z2[t0] = 10, z2[t1] = -1e4f;
    judge_score_from_logits(p, z, z2, &s);
    assert_close(s.reward, 1.0, 1e-4, 1e-4);
    z2[t0] = -1e4f, z2[t1] = 0;
    judge_score_from_logits(p, z, z2, &s);
    assert_close(s.reward, -1.0, 1e-6, 1e-6);
    free(z), free(z2);
    judge_prompt_free(p);
    judge_opts_free(&o);
}

static void test_score_full_forward(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    o.mode = JUDGE_SCORE;
    rl_err e = {0};
    judge *j;
    if (judge_create(&j, &f->m, f->tok, &o, 2, &e)) fail_msg("%s", e.msg);
    judge_response r[5];
    judge_score s[5];
    for (int i = 0; i < 5; i++) r[i] = (judge_response){i, ctxs[i], as[i]};
    if (judge_score_responses(j, r, 5, s, &e)) fail_msg("%s", e.msg);
    int V = f->m.cfg.vocab_size, t1 = tokenizer_single_token(f->tok, "1");
    float *z = malloc(sizeof(float) * V), *z2 = malloc(sizeof(float) * V);
    for (int i = 0; i < 5; i++) {
        int *ids, n, tr;
        if (judge_prompt_score_tokens(judge_get_prompt(j), ctxs[i], as[i], &ids, &n, &tr, &e))
            fail_msg("%s", e.msg);
        full_logits(&f->m, ids, n, z);
        ids = realloc(ids, sizeof(int) * (size_t)(n + 1));
        ids[n] = t1;
        full_logits(&f->m, ids, n + 1, z2);
        judge_score ref;
        judge_score_from_logits(judge_get_prompt(j), z, z2, &ref);
        for (int k = 0; k < 10; k++) assert_close(s[i].prob[k], ref.prob[k], 1e-4, 1e-6);
        assert_close(s[i].expected, ref.expected, 1e-4, 1e-5);
        double tot = 0;
        for (int k = 0; k < 10; k++) tot += s[i].prob[k];
        assert_close(tot, 1.0, 1e-9, 1e-9);
        free(ids);
    }
    free(z), free(z2);
    judge_free(j);
    judge_opts_free(&o);
}

static int has_newline(const tokenizer *t, int id) {
    size_t len;
    const char *s = tokenizer_piece(t, id, &len);
    return s && memchr(s, '\n', len) != NULL;
}

static void test_cot_flow(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    o.cot = 1;
    o.cot_max_tokens = 6;
    rl_err e = {0};
    judge *j;
    if (judge_create(&j, &f->m, f->tok, &o, 2, &e)) fail_msg("%s", e.msg);
    judge_pair pairs[5];
    judge_label l[5];
    make_pairs(pairs, 0);
    if (judge_label_pairs(j, pairs, 5, l, &e)) fail_msg("%s", e.msg);
    int V = f->m.cfg.vocab_size, eos = tokenizer_eos(f->tok);
    float *z = malloc(sizeof(float) * V);
    int generated_something = 0;
    for (int i = 0; i < 5; i++)
        for (int ord = 0; ord < 2; ord++) {
            int *ids, n, tr;
            if (judge_prompt_pair_tokens(judge_get_prompt(j), &pairs[i], ord, 1, 40, &ids, &n, &tr,
                                         &e))
                fail_msg("%s", e.msg);
            ids = realloc(ids, sizeof(int) * (size_t)(n + 64));
            /* greedy rationale by full forwards, ending at EOS or a token with a newline */
            int n0 = n, last = -1;
            for (int k = 0; k < o.cot_max_tokens; k++) {
                full_logits(&f->m, ids, n, z);
                int best = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[best]) best = v;
                ids[n++] = best;
                last = best;
                if (best == eos || has_newline(f->tok, best)) break;
            }
            generated_something |= n > n0;
            int nl = last >= 0 && last != eos && has_newline(f->tok, last);
            if (last == eos) n--;
            char *rat = NULL;
            size_t rl;
            if (tokenizer_decode(f->tok, ids + n0, n - n0, 0, &rat, &rl, &e)) fail_msg("%s", e.msg);
            size_t cl;
            char *clean = tokenizer_utf8_sanitize(rat, rl, &cl); /* rationales are valid UTF-8 */
            free(rat);
            rat = clean;
            char *cut = strchr(rat, '\n');
            if (cut) *cut = '\0';
            char *trimmed = task_lm_trim(rat);
            assert_string_equal(ord ? l[i].rationale_ba : l[i].rationale_ab, trimmed);
            free(rat), free(trimmed);
            /* then the ending (after a newline) and the label */
            int *end, ne;
            if (task_lm_encode(f->tok, nl ? "Preferred Summary=" : "\nPreferred Summary=", 0, &end,
                               &ne, &e))
                fail_msg("%s", e.msg);
            memcpy(ids + n, end, sizeof(int) * (size_t)ne);
            n += ne;
            free(end);
            full_logits(&f->m, ids, n, z);
            double p1 = judge_pref_from_logits(z, judge_prompt_label_token(judge_get_prompt(j), 1),
                                               judge_prompt_label_token(judge_get_prompt(j), 2));
            assert_close(ord ? l[i].p_ba : l[i].p_ab, ord ? 1 - p1 : p1, 1e-4, 1e-5);
            free(ids);
        }
    assert_true(generated_something);
    for (int i = 0; i < 5; i++) judge_label_free(&l[i]);
    free(z);
    judge_free(j);
    judge_opts_free(&o);
}

/* Likelihood mode: the tokens are exactly the SFT / judge-pretraining sequence of the task
 * (task_lm_sft_sequence: [BOS] " " context "\nTL;DR:", then " " summary, EOS); the label is
 * logistic((l_a - l_b) / T) with l the sum of log-softmax of the full forward's logits at the
 * response tokens (computed here in double from the training path); batch size and prefix reuse
 * do not change it; swapping a and b gives 1 - p; no position: p_ab = p_ba = p. */
static double full_loglik(fixture *f, const int *head, int nh, const int *resp, int nr) {
    int n = nh + nr;
    int *ids = malloc(sizeof(int) * (size_t)n);
    memcpy(ids, head, sizeof(int) * (size_t)nh);
    memcpy(ids + nh, resp, sizeof(int) * (size_t)nr);
    model_acts a;
    rl_err e = {0};
    if (model_acts_create(&a, &f->m.cfg, 1, n, &e)) fail_msg("%s", e.msg);
    if (model_forward(&f->m, &a, ids, 1, n, &e)) fail_msg("%s", e.msg);
    int V = f->m.cfg.vocab_size;
    float *z = malloc(sizeof(float) * (size_t)V);
    double s = 0;
    for (int t = nh; t < n; t++) {
        int pos = t - 1;
        if (model_lm_logits(&f->m, &a, &pos, 1, z, &e)) fail_msg("%s", e.msg);
        double mx = -INFINITY, sum = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, (double)z[v]);
        for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
        s += (double)z[ids[t]] - mx - log(sum);
    }
    free(z);
    free(ids);
    model_acts_free(&a);
    return s;
}

static void test_likelihood_mode(void **state) {
    fixture *f = *state;
    rl_err e = {0};
    double ref[5];
    for (int variant = 0; variant < 4; variant++) {
        judge_opts o;
        judge_opts_default(&o);
        o.mode = JUDGE_LIKELIHOOD;
        o.lik_temperature = 2.5;
        o.reuse_prefix = variant != 1;
        o.position_debias = variant != 3;
        judge *j;
        if (judge_create(&j, &f->m, f->tok, &o, variant == 2 ? 2 : 5, &e)) fail_msg("%s", e.msg);
        const judge_prompt *jp = judge_get_prompt(j);
        judge_pair pairs[5];
        judge_label l[5];
        make_pairs(pairs, 0);
        if (judge_label_pairs(j, pairs, 5, l, &e)) fail_msg("%s", e.msg);
        for (int i = 0; i < 5; i++) {
            double ll[2];
            for (int s = 0; s < 2; s++) {
                const char *r = s ? pairs[i].b : pairs[i].a;
                int *h, nh, *t, nt, tr;
                if (judge_prompt_likelihood_tokens(jp, pairs[i].context, r, &h, &nh, &t, &nt, &tr,
                                                   &e))
                    fail_msg("%s", e.msg);
                assert_int_equal(tr, 0);
                /* the task's SFT sequence, tokenised by task_lm */
                task_example ex;
                memset(&ex, 0, sizeof ex);
                snprintf(ex.prompt, sizeof ex.prompt, "%s\nTL;DR:", pairs[i].context);
                snprintf(ex.target, sizeof ex.target, " %s", r);
                int *ids, n, np;
                if (task_lm_sft_sequence(f->tok, &ex, &ids, &n, &np, &e)) fail_msg("%s", e.msg);
                assert_int_equal(nh, np);
                assert_int_equal(nh + nt, n);
                assert_memory_equal(h, ids, sizeof(int) * (size_t)nh);
                assert_memory_equal(t, ids + np, sizeof(int) * (size_t)nt);
                assert_int_equal(t[nt - 1], tokenizer_eos(f->tok));
                ll[s] = full_loglik(f, h, nh, t, nt);
                free(ids), free(h), free(t);
            }
            double want = 1.0 / (1.0 + exp(-(ll[0] - ll[1]) / 2.5));
            assert_close(l[i].p, want, 1e-4, 1e-5);
            assert_close(l[i].p_ab, want, 1e-4, 1e-5);
            if (variant == 3)
                assert_true(isnan(l[i].p_ba));
            else
                assert_close(l[i].p_ba, want, 1e-4, 1e-5);
            if (variant == 0)
                ref[i] = l[i].p;
            else
                assert_close(l[i].p, ref[i], 1e-5, 1e-6);
            judge_label_free(&l[i]);
        }
        /* a pair and its mirror */
        make_pairs(pairs, 1);
        if (judge_label_pairs(j, pairs, 5, l, &e)) fail_msg("%s", e.msg);
        for (int i = 0; i < 5; i++) {
            assert_close(l[i].p, 1.0 - ref[i], 1e-5, 1e-6);
            judge_label_free(&l[i]);
        }
        /* identical responses: no preference */
        pairs[0].b = pairs[0].a;
        if (judge_label_pairs(j, pairs, 1, l, &e)) fail_msg("%s", e.msg);
        assert_close(l[0].p, 0.5, 0, 1e-6);
        judge_label_free(&l[0]);
        const judge_stats *st = judge_get_stats(j);
        if (o.reuse_prefix)
            assert_true(st->tokens_reused > 0);
        else
            assert_int_equal(st->tokens_reused, 0);
        judge_free(j);
        judge_opts_free(&o);
    }
    /* not a degenerate check: the two responses of a pair differ in likelihood */
    int differ = 0;
    for (int i = 0; i < 5; i++) differ += fabs(ref[i] - 0.5) > 1e-3;
    assert_true(differ >= 4);
}

static void test_bad_labels_refused(void **state) {
    fixture *f = *state;
    judge_opts o;
    judge_opts_default(&o);
    free(o.label_1);
    o.label_1 = strdup("Summary one");
    rl_err e = {0};
    judge_prompt *p = NULL;
    assert_int_equal(judge_prompt_create(&p, &o, f->tok, 400, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "'Summary one' is not one token"));
    judge_opts_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soft_label_equals_full_forward),
        cmocka_unit_test(test_exemplars_and_principles),
        cmocka_unit_test(test_swap_maps_back),
        cmocka_unit_test(test_batch_and_reuse_invariance),
        cmocka_unit_test(test_prompt_format_and_truncation),
        cmocka_unit_test(test_score_by_hand),
        cmocka_unit_test(test_score_full_forward),
        cmocka_unit_test(test_cot_flow),
        cmocka_unit_test(test_bad_labels_refused),
        cmocka_unit_test(test_likelihood_mode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
