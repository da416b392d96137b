/* sample: the fast sampler against the full-sort reference, greedy and truncation limits, the
 * empirical distribution against softmax, and generation: greedy decoding equals step-by-step
 * argmax of full forwards, EOS and length limits, and a sequence's samples do not depend on the
 * other sequences of its batch. */
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "model.h"
#include "rng.h"
#include "sample.h"

static void test_fast_equals_reference(void **state) {
    (void)state;
    int V = 3000;
    float *z = malloc(sizeof(float) * V);
    rng gz;
    rng_init(&gz, 1, RNG_TEST, 0);
    sample_scratch sc = {0};
    sample_params cases[] = {{1.0f, 0, 0}, {0.7f, 40, 0},   {1.3f, 0, 0.9f}, {0.9f, 50, 0.95f},
                             {1.0f, 1, 0}, {2.0f, 0, 0.5f}, {1.0f, V, 1.0f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int trial = 0; trial < 40; trial++) {
            for (int j = 0; j < V; j++) z[j] = 3.0f * rng_normal(&gz);
            rng a, b;
            rng_init(&a, 5, RNG_SAMPLE, (uint32_t)trial);
            rng_init(&b, 5, RNG_SAMPLE, (uint32_t)trial);
            float la, lb;
            int ta = sample_token(z, V, &cases[k], &a, &la, &sc);
            int tb = sample_token_ref(z, V, &cases[k], &b, &lb);
            assert_int_equal(ta, tb);
            assert_close(la, lb, 1e-5, 1e-5);
            assert_int_equal(a.pos, b.pos); /* one draw each */
        }
    sample_scratch_free(&sc);
    free(z);
}

static void test_limits(void **state) {
    (void)state;
    float z[6] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f, 1.0f};
    sample_scratch sc = {0};
    rng r;
    rng_init(&r, 1, RNG_SAMPLE, 0);
    sample_params greedy = {0, 0, 0}, k1 = {1.0f, 1, 0}, p0 = {1.0f, 0, 1e-6f}, k2 = {5.0f, 2, 0};
    float lp;
    assert_int_equal(sample_token(z, 6, &greedy, &r, &lp, &sc), 1);
    assert_int_equal(r.pos, 0); /* greedy draws nothing */
    double lse = 0;
    for (int j = 0; j < 6; j++) lse += exp(z[j]);
    assert_close(lp, 2.0 - log(lse), 1e-5, 1e-6);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sample_token(z, 6, &k1, &r, NULL, &sc), 1);
        assert_int_equal(sample_token(z, 6, &p0, &r, NULL, &sc), 1);
        int t = sample_token(z, 6, &k2, &r, NULL, &sc);
        assert_true(t == 1 || t == 3);
    }
    sample_scratch_free(&sc);
}

/* frequencies of 60000 draws within 5 sigma of softmax(z / T), and top-p's support */
static void test_distribution(void **state) {
    (void)state;
    float z[5] = {1.0f, 0.5f, -0.5f, 0.0f, 2.0f};
    sample_params sp = {0.8f, 0, 0};
    double p[5], s = 0;
    for (int j = 0; j < 5; j++) s += p[j] = exp(z[j] / 0.8);
    int cnt[5] = {0}, n = 60000;
    sample_scratch sc = {0};
    rng r;
    rng_init(&r, 3, RNG_SAMPLE, 0);
    for (int i = 0; i < n; i++) cnt[sample_token(z, 5, &sp, &r, NULL, &sc)]++;
    for (int j = 0; j < 5; j++) {
        double q = p[j] / s;
        assert_close(cnt[j], n * q, 0, 5 * sqrt(n * q * (1 - q)));
    }
    /* top_p = 0.7 keeps tokens 4 (0.55 at T=0.8) and 0 (0.2): 0.75 >= 0.7 */
    sp.top_p = 0.7f;
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < n; i++) cnt[sample_token(z, 5, &sp, &r, NULL, &sc)]++;
    assert_int_equal(cnt[1] + cnt[2] + cnt[3], 0);
    double q4 = p[4] / (p[4] + p[0]);
    assert_close(cnt[4], n * q4, 0, 5 * sqrt(n * q4 * (1 - q4)));
    sample_scratch_free(&sc);
}

static void make_model(model *m) {
    model_config c = {.dim = 32,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = 2,
                      .head_dim = 8,
                      .ffn_dim = 64,
                      .vocab_size = 50,
                      .max_seq = 64,
                      .rope_theta = 1e4f,
                      .norm_eps = 1e-5f};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, 7);
    for (size_t j = 0; j < m->n_params; j++) m->params[j] *= 20.0f; /* peaked distributions */
    for (int l = 0; l < c.n_layers; l++)
        for (int j = 0; j < c.dim; j++)
            m->p.layers[l].attn_norm[j] = m->p.layers[l].ffn_norm[j] = 1;
    for (int j = 0; j < c.dim; j++) m->p.out_norm[j] = 1;
}

static void test_greedy_generation(void **state) {
    (void)state;
    model m;
    make_model(&m);
    int V = m.cfg.vocab_size, prompt[5] = {3, 14, 15, 9, 2}, max_new = 20;
    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m.cfg, 2, 64, &e)) fail_msg("%s", e.msg);
    int out[20];
    float lps[20];
    gen_seq s = {.prompt = prompt, .prompt_len = 5, .slot = 1, .out = out, .logprob = lps};
    gen_config g = {.sp = {0, 0, 0}, .max_new = max_new};
    if (sample_generate(&m, &c, &s, 1, &g, &e)) fail_msg("%s", e.msg);
    assert_int_equal(s.n_out, max_new);
    /* the same by full forwards */
    int seq[64];
    memcpy(seq, prompt, sizeof prompt);
    model_acts a;
    if (model_acts_create(&a, &m.cfg, 1, 64, &e)) fail_msg("%s", e.msg);
    float *logits = malloc(sizeof(float) * V);
    for (int t = 0; t < max_new; t++) {
        int n = 5 + t, pos = n - 1;
        if (model_forward(&m, &a, seq, 1, n, &e)) fail_msg("%s", e.msg);
        if (model_lm_logits(&m, &a, &pos, 1, logits, &e)) fail_msg("%s", e.msg);
        int best = 0;
        for (int j = 1; j < V; j++)
            if (logits[j] > logits[best]) best = j;
        assert_int_equal(out[t], best);
        seq[n] = best;
    }
    /* EOS: stop at the 4th generated token, keep it */
    int eos = out[3];
    int first = 0;
    while (out[first] != eos) first++;
    g.eos = &eos;
    g.n_eos = 1;
    kvcache_reset(&c, 1);
    if (sample_generate(&m, &c, &s, 1, &g, &e)) fail_msg("%s", e.msg);
    assert_int_equal(s.n_out, first + 1);
    assert_int_equal(s.hit_eos, 1);
    free(logits);
    model_acts_free(&a);
    kvcache_free(&c);
    model_free(&m);
}

/* Sequence 0 sampled alone and inside a batch of 3 (other prompts, other slots) gives the same
 * tokens: its stream is its own. */
static void test_batch_independence(void **state) {
    (void)state;
    model m;
    make_model(&m);
    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m.cfg, 4, 64, &e)) fail_msg("%s", e.msg);
    int p0[4] = {1, 2, 3, 4}, p1[7] = {9, 8, 7, 6, 5, 4, 3}, p2[2] = {11, 12};
    int out_alone[30], out_b[3][30];
    rng r0, rb[3];
    rng_init(&r0, 77, RNG_SAMPLE, 1000);
    gen_config g = {.sp = {1.0f, 20, 0.95f}, .max_new = 30};
    gen_seq s = {.prompt = p0, .prompt_len = 4, .slot = 0, .r = &r0, .out = out_alone};
    if (sample_generate(&m, &c, &s, 1, &g, &e)) fail_msg("%s", e.msg);
    const int *prompts[3] = {p1, p0, p2};
    int plen[3] = {7, 4, 2};
    uint32_t ids[3] = {1001, 1000, 1002};
    gen_seq bs[3];
    for (int i = 0; i < 3; i++) {
        rng_init(&rb[i], 77, RNG_SAMPLE, ids[i]);
        kvcache_reset(&c, i + 1);
        bs[i] = (gen_seq){.prompt = prompts[i],
                          .prompt_len = plen[i],
                          .slot = 3 - i,
                          .r = &rb[i],
                          .out = out_b[i]};
    }
    if (sample_generate(&m, &c, bs, 3, &g, &e)) fail_msg("%s", e.msg);
    assert_int_equal(bs[1].n_out, s.n_out);
    for (int t = 0; t < s.n_out; t++) assert_int_equal(out_b[1][t], out_alone[t]);
    kvcache_free(&c);
    model_free(&m);
}

int main(void) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_equals_reference), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_distribution),          cmocka_unit_test(test_greedy_generation),
        cmocka_unit_test(test_batch_independence),
    };
    return cmocka_run_group_tests_name("sample", tests, NULL, NULL);
}
