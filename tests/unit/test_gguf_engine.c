/* GGUF models through the engine: the causal forward pass of ../shared's tiny Llama against
 * llama.cpp's logits (max abs difference <= 1e-4), and export -> import giving bit-identical
 * logits for F32 files (the reference model, and random llama and qwen2 models with a trained
 * BPE tokenizer, tied and untied), F16 files within F16 rounding. */
#include "test_util.h"

#include <math.h>

#include "bpe_train.h"
#include "gguf.h"
#include "gguf_model.h"
#include "model.h"
#include "tokenizer.h"

static int load(const char *path, int max_seq, model *m, tokenizer **tok) {
    gguf_file *f;
    rl_err e = {0};
    if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
    model_config c;
    if (gguf_model_config(f, &c, &e)) fail_msg("%s", e.msg);
    if (max_seq > 0) c.max_seq = max_seq;
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    if (gguf_model_load(f, &m->cfg, m->tensors, m->n_tensors, m->params, &e)) fail_msg("%s", e.msg);
    if (tok && tokenizer_from_gguf(f, tok, &e)) fail_msg("%s", e.msg);
    gguf_close(f);
    return 0;
}

/* logits (n, V) of one causal pass over ids */
static float *forward(const model *m, const int *ids, int n) {
    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m->cfg, 1, n, &e)) fail_msg("%s", e.msg);
    float *logits = malloc(sizeof(float) * (size_t)n * (size_t)m->cfg.vocab_size);
    int slot = 0;
    model_step_out o = {.all_logits = logits};
    if (model_step(m, &c, 1, &slot, &n, ids, &o, &e)) fail_msg("%s", e.msg);
    kvcache_free(&c);
    return logits;
}

static void test_reference_logits(void **state) {
    (void)state;
    const char *d = test_shared_dir();
    if (!d) {
        printf("ok - %s # SKIP ../shared is absent\n", __func__);
        return;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/reference/tiny-llama-f32.ids.txt", d);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int ids[512], n = 0;
    while (n < 512 && fscanf(fp, "%d", &ids[n]) == 1) {
        n++;
        if (fgetc(fp) == EOF) break;
    }
    fclose(fp);
    assert_int_equal(n, 100);
    assert_int_equal(ids[0], 1); /* BOS first, as the README says */
    snprintf(path, sizeof path, "%s/reference/tiny-llama-f32.logits.f32", d);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t total = (size_t)n * 32000;
    float *want = malloc(sizeof(float) * total);
    assert_int_equal(fread(want, sizeof(float), total, fp), total);
    fclose(fp);
    snprintf(path, sizeof path, "%s/reference/tiny-llama-f32.gguf", d);
    model m;
    load(path, n, &m, NULL);
    float *got = forward(&m, ids, n);
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < total; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        if (!(diff <= worst)) worst = diff, at = i;
    }
    printf("# %d positions x 32000: max |ours - llama.cpp| = %.3g (position %zu, token %zu)\n", n,
           worst, at / 32000, at % 32000);
    assert_true(worst <= 1e-4);
    free(got);
    free(want);
    model_free(&m);
}

/* Export m with tok, import, run the same ids; returns the largest difference. */
static double roundtrip(const model *m, const tokenizer *tok, uint32_t wt, const int *ids, int n) {
    char out[1200];
    snprintf(out, sizeof out, "%s/rt.gguf", test_tmpdir("gguf_engine"));
    rl_err e = {0};
    if (gguf_model_export(out, "rt", &m->cfg, m->tensors, m->n_tensors, m->params, tok, NULL, wt,
                          &e))
        fail_msg("%s", e.msg);
    model m2;
    tokenizer *t2;
    load(out, m->cfg.max_seq, &m2, &t2);
    model_config want = m->cfg;
    want.scalar_head = 0;
    assert_memory_equal(&m2.cfg, &want, sizeof want);
    assert_int_equal(tokenizer_n_vocab(t2), tokenizer_n_vocab(tok));
    float *a = forward(m, ids, n), *b = forward(&m2, ids, n);
    double worst = 0;
    for (size_t i = 0; i < (size_t)n * (size_t)m->cfg.vocab_size; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d;
    }
    free(a), free(b);
    tokenizer_free(t2);
    model_free(&m2);
    return worst;
}

static void test_export_import_reference(void **state) {
    (void)state;
    const char *d = test_shared_dir();
    if (!d) {
        printf("ok - %s # SKIP ../shared is absent\n", __func__);
        return;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/reference/tiny-llama-f32.gguf", d);
    model m;
    tokenizer *tok;
    load(path, 64, &m, &tok);
    int *ids, n;
    rl_err e = {0};
    const char *text = "Export then import gives identical logits.";
    assert_int_equal(tokenizer_encode(tok, text, strlen(text), TOK_ADD_SPECIAL, &ids, &n, &e), 0);
    assert_true(roundtrip(&m, tok, GGML_TYPE_F32, ids, n) == 0.0);
    double f16 = roundtrip(&m, tok, GGML_TYPE_F16, ids, n);
    printf("# reference model: f32 export identical, f16 export max |diff| %.3g\n", f16);
    assert_true(f16 > 0 && f16 < 0.05);
    free(ids);
    tokenizer_free(tok);
    model_free(&m);
}

static void test_export_import_trained(void **state) {
    (void)state;
    const char *docs[] = {"the summary is better than the text", "Preferred Summary=1",
                          "Preferred Summary=2", "a b c d e f g h", "x = 42; y = x + 1"};
    const char *sp[] = {"<|bos|>", "<|eos|>", "<|pad|>"};
    bpe_train_opts o = {.vocab_size = 300,
                        .min_frequency = 1,
                        .specials = sp,
                        .n_specials = 3,
                        .bos = 0,
                        .eos = 1,
                        .pad = 2,
                        .add_bos = 1};
    tokenizer *tok;
    rl_err e = {0};
    if (bpe_train(docs, NULL, 5, &o, &tok, &e)) fail_msg("%s", e.msg);
    int *ids, n;
    assert_int_equal(tokenizer_encode(tok, docs[0], strlen(docs[0]), TOK_ADD_SPECIAL, &ids, &n, &e),
                     0);
    for (int variant = 0; variant < 3; variant++) {
        model_config c = {.dim = 32,
                          .n_layers = 2,
                          .n_heads = 4,
                          .n_kv_heads = 2,
                          .head_dim = 8,
                          .ffn_dim = 48,
                          .vocab_size = tokenizer_n_vocab(tok),
                          .max_seq = 32,
                          .rope_theta = 10000.0f,
                          .norm_eps = 1e-5f};
        c.tied_output = variant == 1;
        c.rope_neox = c.qkv_bias = variant == 2;
        model m;
        if (model_create(&m, &c, &e)) fail_msg("%s", e.msg);
        model_init_weights(&m, 1234 + (uint64_t)variant);
        /* make the biases non-zero so that their export is exercised */
        for (int i = 0; i < m.n_tensors; i++)
            if (strstr(m.tensors[i].name, ".bias"))
                for (size_t j = 0; j < m.tensors[i].numel; j++)
                    m.params[m.tensors[i].offset + j] = 0.01f * (float)(j % 7);
        double d = roundtrip(&m, tok, GGML_TYPE_F32, ids, n);
        printf("# variant %d (%s): f32 export max |diff| %g\n", variant,
               variant == 0   ? "llama"
               : variant == 1 ? "llama, tied"
                              : "qwen2",
               d);
        assert_true(d == 0.0);
        model_free(&m);
    }
    free(ids);
    tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_logits),
        cmocka_unit_test(test_export_import_reference),
        cmocka_unit_test(test_export_import_trained),
    };
    return cmocka_run_group_tests_name("gguf_engine", tests, NULL, NULL);
}
