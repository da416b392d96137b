/* model_infer: logits through the KV cache equal those of a full forward pass (max |diff| <=
 * 1e-5) for a single prefill, token-by-token decode, a ragged batch mixing prefill and decode,
 * and prefixes shared with kvcache_copy_prefix; scores through model_step equal the training
 * path's; bad calls are refused. Two configurations: multi-head with adjacent rotary, and
 * grouped-query + q/k/v biases + neox rotary + tied output. */
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "model.h"
#include "rng.h"

static const double ATOL = 1e-5;

static void make_model(model *m, int variant) {
    model_config c = {.dim = 48,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = variant ? 2 : 4,
                      .head_dim = 12,
                      .ffn_dim = 96,
                      .vocab_size = 97,
                      .max_seq = 80,
                      .rope_theta = variant ? 1e6f : 1e4f,
                      .rope_neox = variant,
                      .norm_eps = 1e-5f,
                      .qkv_bias = variant,
                      .tied_output = variant,
                      .scalar_head = 1};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, 42);
    /* larger weights than the training init, so that logits are O(1..10) and differences show */
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (strstr(t->name, "norm")) continue;
        float s = t->ndim == 2 && strcmp(t->name, "token_embd.weight")
                      ? 1.0f / (0.02f * sqrtf((float)t->shape[1]))
                      : 12.0f;
        if (strstr(t->name, "bias")) {
            rng r;
            rng_init(&r, 7, RNG_TEST, (uint32_t)i);
            for (size_t j = 0; j < t->numel; j++) m->params[t->offset + j] = 0.1f * rng_normal(&r);
            continue;
        }
        for (size_t j = 0; j < t->numel; j++) m->params[t->offset + j] *= s;
    }
}

/* Full-forward logits (n, V) and final hidden of one sequence. */
static float *full_logits(const model *m, const int *tok, int n) {
    model_acts a;
    rl_err e = {0};
    if (model_acts_create(&a, &m->cfg, 1, n, &e)) fail_msg("%s", e.msg);
    if (model_forward(m, &a, tok, 1, n, &e)) fail_msg("%s", e.msg);
    int V = m->cfg.vocab_size;
    float *out = malloc(sizeof(float) * (size_t)n * V);
    int *pos = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) pos[i] = i;
    if (model_lm_logits(m, &a, pos, n, out, &e)) fail_msg("%s", e.msg);
    free(pos);
    model_acts_free(&a);
    return out;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static void random_tokens(int *t, int n, int V, uint32_t stream) {
    rng r;
    rng_init(&r, 9, RNG_TEST, stream);
    for (int i = 0; i < n; i++) t[i] = (int)rng_below(&r, (uint32_t)V);
}

static void run_prefill_and_decode(int variant, int step_rows) {
    model m;
    make_model(&m, variant);
    int V = m.cfg.vocab_size, n = 70, split = 23;
    int tok[70];
    random_tokens(tok, n, V, 1);
    float *ref = full_logits(&m, tok, n);
    double amax = 0;
    for (size_t i = 0; i < (size_t)n * V; i++) amax = fmax(amax, fabs(ref[i]));
    assert_true(amax > 1.0); /* the comparison means something */

    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m.cfg, 3, 80, &e)) fail_msg("%s", e.msg);
    c.step_rows = step_rows; /* small: model_step cuts calls into pieces */
    /* whole sequence in one prefill, logits everywhere */
    float *got = malloc(sizeof(float) * (size_t)n * V);
    int slot = 1, nn = n;
    model_step_out out = {.all_logits = got};
    if (model_step(&m, &c, 1, &slot, &nn, tok, &out, &e)) fail_msg("%s", e.msg);
    double d = max_diff(got, ref, (size_t)n * V);
    printf("# variant %d, rows/pass %d: one prefill vs forward max|diff| %.2e (max |logit| %.1f)\n",
           variant, step_rows, d, amax);
    assert_true(d <= ATOL);
    assert_int_equal(c.len[1], n);

    /* prefill `split` tokens, then decode one at a time; last-token logits each step */
    kvcache_reset(&c, 0);
    slot = 0;
    nn = split;
    float *last = malloc(sizeof(float) * V);
    out = (model_step_out){.logits = last};
    if (model_step(&m, &c, 1, &slot, &nn, tok, &out, &e)) fail_msg("%s", e.msg);
    d = max_diff(last, ref + (size_t)(split - 1) * V, V);
    for (int t = split; t < n; t++) {
        nn = 1;
        if (model_step(&m, &c, 1, &slot, &nn, tok + t, &out, &e)) fail_msg("%s", e.msg);
        d = fmax(d, max_diff(last, ref + (size_t)t * V, V));
    }
    printf("# variant %d: decode vs forward max|diff| %.2e\n", variant, d);
    assert_true(d <= ATOL);

    /* ragged batch: slot 2 prefills 5 tokens of another sequence while slot 0 decodes */
    int tok2[12];
    random_tokens(tok2, 12, V, 2);
    float *ref2 = full_logits(&m, tok2, 12);
    kvcache_reset(&c, 0);
    kvcache_reset(&c, 2);
    int slots[2] = {0, 2}, nnew[2] = {7, 5}, buf[12];
    memcpy(buf, tok, 7 * sizeof(int));
    memcpy(buf + 7, tok2, 5 * sizeof(int));
    float two[2 * 97];
    out = (model_step_out){.logits = two};
    if (model_step(&m, &c, 2, slots, nnew, buf, &out, &e)) fail_msg("%s", e.msg);
    d = fmax(max_diff(two, ref + 6 * V, V), max_diff(two + V, ref2 + 4 * V, V));
    for (int k = 0; k < 7; k++) {
        /* slot 0 decodes one token while slot 2 prefills the rest of its sequence at once */
        int n2 = k == 0 ? 7 : 0;
        int ns = n2 ? 2 : 1;
        nnew[0] = 1, nnew[1] = n2;
        buf[0] = tok[7 + k];
        if (n2) memcpy(buf + 1, tok2 + 5, 7 * sizeof(int));
        if (model_step(&m, &c, ns, slots, nnew, buf, &out, &e)) fail_msg("%s", e.msg);
        d = fmax(d, max_diff(two, ref + (size_t)(7 + k) * V, V));
        if (n2) d = fmax(d, max_diff(two + V, ref2 + 11 * V, V));
    }
    printf("# variant %d: ragged batch vs forward max|diff| %.2e\n", variant, d);
    assert_true(d <= ATOL);

    free(ref), free(ref2), free(got), free(last);
    kvcache_free(&c);
    model_free(&m);
}

static void test_cache_mha(void **state) {
    (void)state;
    run_prefill_and_decode(0, 0);
    run_prefill_and_decode(0, 9);
}
static void test_cache_gqa_bias_neox(void **state) {
    (void)state;
    run_prefill_and_decode(1, 0);
    run_prefill_and_decode(1, 4);
}

/* A judge's pattern: one prefix prefilled once, copied into 3 slots, each finished with its
 * own suffix; logits at the last token equal a full forward of prefix + suffix. */
static void test_shared_prefix(void **state) {
    (void)state;
    model m;
    make_model(&m, 1);
    int V = m.cfg.vocab_size, P = 30;
    int seq[3][45];
    int lens[3] = {33, 40, 45};
    random_tokens(seq[0], 45, V, 3);
    for (int s = 1; s < 3; s++) {
        memcpy(seq[s], seq[0], sizeof(int) * P);
        random_tokens(seq[s] + P, 45 - P, V, 10 + s);
    }
    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m.cfg, 4, 64, &e)) fail_msg("%s", e.msg);
    c.step_rows = 6; /* the three suffixes (3, 10, 15 tokens) go in pieces */
    int slot = 3, nn = P;
    if (model_step(&m, &c, 1, &slot, &nn, seq[0], NULL, &e)) fail_msg("%s", e.msg);
    int slots[3] = {0, 1, 2}, nnew[3], buf[64];
    int r = 0;
    for (int s = 0; s < 3; s++) {
        if (kvcache_copy_prefix(&c, 3, s, P, &e)) fail_msg("%s", e.msg);
        nnew[s] = lens[s] - P;
        memcpy(buf + r, seq[s] + P, sizeof(int) * nnew[s]);
        r += nnew[s];
    }
    float logits[3 * 97], score[3];
    model_step_out out = {.logits = logits, .score = score};
    if (model_step(&m, &c, 3, slots, nnew, buf, &out, &e)) fail_msg("%s", e.msg);
    for (int s = 0; s < 3; s++) {
        float *ref = full_logits(&m, seq[s], lens[s]);
        double d = max_diff(logits + s * V, ref + (size_t)(lens[s] - 1) * V, V);
        assert_true(d <= ATOL);
        free(ref);
        /* the scalar head through the cache equals the training path's */
        model_acts a;
        if (model_acts_create(&a, &m.cfg, 1, lens[s], &e)) fail_msg("%s", e.msg);
        if (model_forward(&m, &a, seq[s], 1, lens[s], &e)) fail_msg("%s", e.msg);
        int pos = lens[s] - 1;
        float sc;
        if (model_score_forward(&m, &a, &pos, 1, &sc, &e)) fail_msg("%s", e.msg);
        pos = lens[s];
        assert_int_equal(model_score_forward(&m, &a, &pos, 1, &sc, &e), ERR_INPUT);
        assert_close(score[s], sc, 1e-5, 1e-5);
        model_acts_free(&a);
    }
    /* refusals: too long, duplicate slot, bad token, copying more than the source holds */
    nn = 64;
    slot = 0;
    assert_int_equal(model_step(&m, &c, 1, &slot, &nn, buf, NULL, &e), ERR_INPUT);
    int dup[2] = {1, 1}, ones[2] = {1, 1}, toks[2] = {1, 2};
    assert_int_equal(model_step(&m, &c, 2, dup, ones, toks, NULL, &e), ERR_INPUT);
    toks[0] = V;
    assert_int_equal(model_step(&m, &c, 1, slots, ones, toks, NULL, &e), ERR_INPUT);
    assert_int_equal(kvcache_copy_prefix(&c, 3, 0, P + 1, &e), ERR_INPUT);
    /* the training forward refuses shapes past its activations and ids outside the vocabulary */
    model_acts a;
    if (model_acts_create(&a, &m.cfg, 2, 8, &e)) fail_msg("%s", e.msg);
    int bad[16] = {0};
    assert_int_equal(model_forward(&m, &a, bad, 3, 8, &e), ERR_INPUT);
    assert_int_equal(model_forward(&m, &a, bad, 2, 9, &e), ERR_INPUT);
    bad[13] = -1;
    assert_int_equal(model_forward(&m, &a, bad, 2, 8, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "(1, 5)"));
    model_acts_free(&a);
    kvcache_free(&c);
    model_free(&m);
}

int main(void) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_mha),
        cmocka_unit_test(test_cache_gqa_bias_neox),
        cmocka_unit_test(test_shared_prefix),
    };
    return cmocka_run_group_tests_name("model_infer", tests, NULL, NULL);
}
