/* optim and model bookkeeping: the learning-rate schedule, one AdamW step against the formula
 * written out in double, clipping, refusal of a non-finite gradient (parameters untouched),
 * deterministic initialisation, the tensor table, copying between models. */
#include "test_util.h"

#include <math.h>

#include "model.h"
#include "optim.h"

static model_config small_cfg(void) {
    model_config c = {.dim = 16,
                      .n_layers = 2,
                      .n_heads = 2,
                      .n_kv_heads = 1,
                      .head_dim = 8,
                      .ffn_dim = 24,
                      .vocab_size = 30,
                      .max_seq = 8,
                      .rope_theta = 1e4f,
                      .norm_eps = 1e-5f,
                      .qkv_bias = 1,
                      .scalar_head = 1};
    return c;
}

static void test_schedule(void **state) {
    (void)state;
    optim_config c;
    optim_config_default(&c);
    c.lr = 1.0f, c.warmup_steps = 4, c.total_steps = 14, c.min_lr_frac = 0.1f;
    assert_close(optim_lr(&c, 0), 0.25, 1e-12, 0);
    assert_close(optim_lr(&c, 3), 1.0, 1e-12, 0);
    assert_close(optim_lr(&c, 4), 1.0, 1e-7, 0);             /* cosine starts at the peak */
    assert_close(optim_lr(&c, 9), 0.1 + 0.9 * 0.5, 1e-6, 0); /* half way */
    assert_close(optim_lr(&c, 14), 0.1, 1e-7, 0);
    assert_close(optim_lr(&c, 100), 0.1, 1e-7, 0);
    c.total_steps = 0;
    assert_close(optim_lr(&c, 50), 1.0, 0, 0);
}

static void test_adamw_step(void **state) {
    (void)state;
    model_config cfg = small_cfg();
    model m;
    rl_err e = {0};
    if (model_create(&m, &cfg, &e)) fail_msg("%s", e.msg);
    model_init_weights(&m, 3);
    model_alloc_grads(&m);
    for (size_t j = 0; j < m.n_params; j++) m.grads[j] = (float)sin(0.37 * (double)j) * 0.01f;
    float *p0 = malloc(sizeof(float) * m.n_params);
    memcpy(p0, m.params, sizeof(float) * m.n_params);
    optim_config c;
    optim_config_default(&c);
    c.lr = 0.01f, c.weight_decay = 0.1f, c.grad_clip = 0.05f, c.beta1 = 0.8f, c.beta2 = 0.9f;
    optim o;
    if (optim_create(&o, &m, &c, &e)) fail_msg("%s", e.msg);
    optim_stats st;
    if (optim_step(&o, &m, &st, &e)) fail_msg("%s", e.msg);
    double norm = 0;
    for (size_t j = 0; j < m.n_params; j++) norm += (double)m.grads[j] * m.grads[j];
    norm = sqrt(norm);
    assert_close(st.grad_norm, norm, 1e-6, 0);
    double gs = (double)c.grad_clip / (norm + 1e-6);
    assert_close(st.clip_scale, gs, 1e-6, 0);
    for (int i = 0; i < m.n_tensors; i++) {
        const model_tensor *t = &m.tensors[i];
        for (size_t j = 0; j < t->numel; j += 7) {
            size_t k = t->offset + j;
            double g = m.grads[k] * gs, mm = 0.2 * g, vv = 0.1 * g * g;
            double p = p0[k] * (t->decay ? 1 - 0.01 * 0.1 : 1.0);
            p -= 0.01 / 0.2 * mm / (sqrt(vv) / sqrt(0.1) + 1e-8);
            assert_close(m.params[k], p, 1e-5, 1e-7);
        }
    }
    assert_int_equal(o.step, 1);
    /* a NaN gradient: refused, named, nothing changes */
    memcpy(p0, m.params, sizeof(float) * m.n_params);
    const model_tensor *t = model_find_tensor(&m, "blk.1.ffn_up.weight");
    assert_non_null(t);
    m.grads[t->offset + 5] = NAN;
    assert_false(model_all_finite(&m, 1));
    assert_true(model_all_finite(&m, 0));
    assert_int_equal(optim_step(&o, &m, &st, &e), ERR_NUMERIC);
    assert_non_null(strstr(e.msg, "blk.1.ffn_up.weight"));
    assert_memory_equal(p0, m.params, sizeof(float) * m.n_params);
    assert_int_equal(o.step, 1);
    free(p0);
    optim_free(&o);
    model_free(&m);
}

static void test_table_init_copy(void **state) {
    (void)state;
    model_config cfg = small_cfg();
    model a, b;
    rl_err e = {0};
    if (model_create(&a, &cfg, &e) || model_create(&b, &cfg, &e)) fail_msg("%s", e.msg);
    /* the table tiles the buffer exactly, q|k|v and gate|up adjacent */
    size_t off = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        assert_int_equal(a.tensors[i].offset, off);
        off += a.tensors[i].numel;
    }
    assert_int_equal(off, a.n_params);
    const model_tensor *q = model_find_tensor(&a, "blk.0.attn_q.weight");
    const model_tensor *k = model_find_tensor(&a, "blk.0.attn_k.weight");
    const model_tensor *up = model_find_tensor(&a, "blk.1.ffn_up.weight");
    const model_tensor *gate = model_find_tensor(&a, "blk.1.ffn_gate.weight");
    assert_int_equal(q->offset + q->numel, k->offset);
    assert_int_equal(gate->offset + gate->numel, up->offset);
    assert_non_null(model_find_tensor(&a, "output.weight"));
    assert_int_equal(q->decay, 1);
    assert_int_equal(model_find_tensor(&a, "blk.0.attn_q.bias")->decay, 0);
    /* same seed, same weights; another seed differs */
    model_init_weights(&a, 11);
    model_init_weights(&b, 11);
    assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
    model_init_weights(&b, 12);
    assert_true(memcmp(a.params, b.params, sizeof(float) * a.n_params) != 0);
    assert_true(model_all_finite(&a, 0));
    /* copy: reward model without head -> value model with one */
    assert_int_equal(model_copy_weights(&b, &a, &e), ERR_OK);
    assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
    model_config nohead = cfg;
    nohead.scalar_head = 0;
    model c;
    if (model_create(&c, &nohead, &e)) fail_msg("%s", e.msg);
    model_init_weights(&b, 99);
    assert_int_equal(model_copy_weights(&b, &c, &e), ERR_OK); /* b keeps its head */
    assert_int_equal(model_copy_weights(&c, &a, &e), ERR_OK); /* head dropped */
    model_config other = cfg;
    other.ffn_dim = 32;
    model d;
    if (model_create(&d, &other, &e)) fail_msg("%s", e.msg);
    assert_int_equal(model_copy_weights(&d, &a, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "ffn_gate"));
    /* config validation names the field */
    other.n_kv_heads = 3;
    assert_int_equal(model_config_validate(&other, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "n_kv_heads"));
    model_free(&a), model_free(&b), model_free(&c), model_free(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_adamw_step),
        cmocka_unit_test(test_table_init_copy),
    };
    return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
