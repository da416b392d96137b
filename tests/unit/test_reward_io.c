/* reward_io: scalar-head models as GGUF (saved and read back bit for bit, with the tokenizer and
 * the normalisation; a plain language model reads with has_head 0 and a zero head; a damaged
 * head is refused) and labels.h5 (rows with done == 1 only, in order; a label outside [0, 1]
 * and a file without /pairs are refused with the file named). */
#include "test_util.h"

#include <hdf5.h>
#include <math.h>

#include "bpe_train.h"
#include "gguf.h"
#include "gguf_model.h"
#include "h5io.h"
#include "reward.h"
#include "tokenizer.h"

static tokenizer *make_tok(void) {
    static const char *const docs[] = {"Sam hid a clock at the market.",
                                       "Anna found a map at the harbour on Monday."};
    static const char *const specials[] = {"<|bos|>", "<|eos|>"};
    bpe_train_opts o = {.vocab_size = 290,
                        .min_frequency = 1,
                        .specials = specials,
                        .n_specials = 2,
                        .bos = 0,
                        .eos = 1,
                        .pad = -1};
    tokenizer *t = NULL;
    rl_err e = {0};
    if (bpe_train(docs, NULL, 2, &o, &t, &e)) fail_msg("%s", e.msg);
    return t;
}

static void make(model *m, int vocab, int head) {
    model_config c = {.dim = 16,
                      .n_layers = 1,
                      .n_heads = 2,
                      .n_kv_heads = 2,
                      .head_dim = 8,
                      .ffn_dim = 24,
                      .vocab_size = vocab,
                      .max_seq = 32,
                      .rope_theta = 10000.0f,
                      .norm_eps = 1e-5f,
                      .scalar_head = head};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, 7);
    if (head) m->p.score_b[0] = 0.25f;
}

static void test_scalar_head_roundtrip(void **state) {
    (void)state;
    tokenizer *tok = make_tok();
    model m, r;
    make(&m, tokenizer_n_vocab(tok), 1);
    char path[1200];
    snprintf(path, sizeof path, "%s/rm.gguf", test_tmpdir("reward_io"));
    reward_norm nm = {
        .folded = 1, .gain = 0.5, .bias = -0.25, .raw_mean = 0.5, .raw_std = 2.0, .samples = 100};
    rl_err e = {0};
    if (reward_model_save(path, "test rm", &m, tok, &nm, &e)) fail_msg("%s", e.msg);
    tokenizer *t2 = NULL;
    reward_norm n2;
    int head = 0;
    if (reward_model_load(path, 0, &r, &t2, &n2, &head, &e)) fail_msg("%s", e.msg);
    assert_int_equal(head, 1);
    assert_int_equal(r.n_params, m.n_params);
    assert_int_equal(memcmp(r.params, m.params, sizeof(float) * m.n_params), 0);
    assert_int_equal(tokenizer_n_vocab(t2), tokenizer_n_vocab(tok));
    assert_int_equal(n2.folded, 1);
    assert_close(n2.gain, 0.5, 1e-7, 0);
    assert_close(n2.bias, -0.25, 1e-7, 0);
    assert_close(n2.raw_std, 2.0, 1e-7, 0);
    assert_int_equal(n2.samples, 100);
    /* the file is a plain llama file otherwise: the engine's own loader refuses only the head */
    gguf_file *f = NULL;
    if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
    assert_non_null(gguf_find_tensor(f, "score_head.weight"));
    assert_non_null(gguf_find_tensor(f, "score_head.bias"));
    gguf_close(f);
    model_free(&r);
    tokenizer_free(t2);

    /* a plain language model: no head, has_head 0, the head zero */
    model lm;
    make(&lm, tokenizer_n_vocab(tok), 0);
    char lpath[1200];
    snprintf(lpath, sizeof lpath, "%s/lm.gguf", test_tmpdir("reward_io"));
    if (gguf_model_export(lpath, "lm", &lm.cfg, lm.tensors, lm.n_tensors, lm.params, tok, NULL,
                          GGML_TYPE_F32, &e))
        fail_msg("%s", e.msg);
    if (reward_model_load(lpath, 16, &r, NULL, NULL, &head, &e)) fail_msg("%s", e.msg);
    assert_int_equal(head, 0);
    assert_int_equal(r.cfg.scalar_head, 1);
    assert_int_equal(r.cfg.max_seq, 16);
    assert_true(r.p.score_w[0] == 0 && r.p.score_b[0] == 0);
    const model_tensor *t = model_find_tensor(&r, "blk.0.ffn_up.weight");
    const model_tensor *t0 = model_find_tensor(&lm, "blk.0.ffn_up.weight");
    assert_int_equal(memcmp(r.params + t->offset, lm.params + t0->offset, sizeof(float) * t->numel),
                     0);
    model_free(&r);

    /* a model without a head cannot be saved as a reward model */
    assert_int_equal(reward_model_save(path, "x", &lm, tok, NULL, &e), ERR_INTERNAL);
    /* a non-finite weight in the head is refused by name */
    m.p.score_w[3] = NAN;
    if (reward_model_save(path, "nan", &m, tok, NULL, &e)) fail_msg("%s", e.msg);
    assert_int_equal(reward_model_load(path, 0, &r, NULL, NULL, NULL, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "score_head.weight"));
    model_free(&m), model_free(&lm);
    tokenizer_free(tok);
}

static void write_labels(const char *path, int n, const uint8_t *done, const double *p) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "pairs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(1, dims, NULL), st = h5io_str_type();
    char *ctx[8], *a[8], *b[8], buf[3][8][32];
    int64_t pid[8];
    for (int i = 0; i < n; i++) {
        snprintf(buf[0][i], 32, "doc %d", i / 2), snprintf(buf[1][i], 32, "a%d", i);
        snprintf(buf[2][i], 32, "b%d", i);
        ctx[i] = buf[0][i], a[i] = buf[1][i], b[i] = buf[2][i], pid[i] = i / 2;
    }
    const char *names[3] = {"context", "a", "b"};
    char **cols[3] = {ctx, a, b};
    for (int k = 0; k < 3; k++) {
        hid_t d = H5Dcreate2(g, names[k], st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, cols[k]);
        H5Dclose(d);
    }
    hid_t d = H5Dcreate2(g, "p", H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, p);
    H5Dclose(d);
    d = H5Dcreate2(g, "prompt_id", H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, pid);
    H5Dclose(d);
    d = H5Dcreate2(g, "done", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, done);
    H5Dclose(d);
    H5Tclose(st), H5Sclose(sp), H5Gclose(g), H5Fclose(f);
}

static void test_labels(void **state) {
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/labels.h5", test_tmpdir("reward_labels"));
    uint8_t done[6] = {1, 0, 1, 1, 0, 1};
    double p[6] = {0.9, 0.0, 0.2, 0.5, 0.0, 1.0};
    write_labels(path, 6, done, p);
    reward_labels l;
    rl_err e = {0};
    if (reward_labels_read(path, &l, &e)) fail_msg("%s", e.msg);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.rows, 6);
    assert_string_equal(l.a[1], "a2");
    assert_string_equal(l.b[3], "b5");
    assert_string_equal(l.context[2], "doc 1");
    assert_close(l.p[2], 0.5, 0, 0);
    assert_int_equal(l.prompt_id[3], 2);
    reward_labels_free(&l);

    p[3] = 1.5;
    write_labels(path, 6, done, p);
    assert_int_equal(reward_labels_read(path, &l, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "row 3"));
    assert_non_null(strstr(e.msg, path));

    snprintf(path, sizeof path, "%s/empty.h5", test_tmpdir("reward_labels"));
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    assert_int_equal(reward_labels_read(path, &l, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "/pairs"));
    assert_int_equal(reward_labels_read("/nonexistent/labels.h5", &l, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "run the label stage first"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_head_roundtrip),
        cmocka_unit_test(test_labels),
    };
    return cmocka_run_group_tests_name("reward_io", tests, NULL, NULL);
}
