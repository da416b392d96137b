/* gguf_model: hyperparameters of the reference Llama file as its README states them, weights
 * copied by name and shape into a parameter table laid out as include/model.h describes,
 * export -> import giving back the same configuration, weights (F32 exactly, F16 rounded) and
 * tokenizer, and the refusals (architecture, tensor type, shape, missing and extra tensors,
 * rotary scaling) naming what is wrong. */
#define _GNU_SOURCE /* memmem */
#include "test_util.h"

#include <math.h>

#include "gguf.h"
#include "gguf_model.h"
#include "tokenizer.h"

/* The table of include/model.h for a configuration: names, row-major shapes, offsets. */
static model_tensor *table_for(const model_config *c, int *n, size_t *total) {
    model_tensor *t = calloc((size_t)(16 * c->n_layers + 8), sizeof(model_tensor));
    int k = 0;
    size_t off = 0;
#define ADD(nd, r, cc, ...)                                                                        \
    do {                                                                                           \
        snprintf(t[k].name, MODEL_NAME_MAX, __VA_ARGS__);                                          \
        t[k].ndim = nd;                                                                            \
        t[k].shape[0] = r;                                                                         \
        t[k].shape[1] = cc;                                                                        \
        t[k].numel = (size_t)(r) * (size_t)((nd) == 2 ? (cc) : 1);                                 \
        t[k].offset = off;                                                                         \
        off += t[k].numel;                                                                         \
        k++;                                                                                       \
    } while (0)
    int C = c->dim, HS = c->head_dim, FF = c->ffn_dim, V = c->vocab_size;
    ADD(2, V, C, "token_embd.weight");
    for (int l = 0; l < c->n_layers; l++) {
        ADD(1, C, 0, "blk.%d.attn_norm.weight", l);
        ADD(2, c->n_heads * HS, C, "blk.%d.attn_q.weight", l);
        ADD(2, c->n_kv_heads * HS, C, "blk.%d.attn_k.weight", l);
        ADD(2, c->n_kv_heads * HS, C, "blk.%d.attn_v.weight", l);
        if (c->qkv_bias) {
            ADD(1, c->n_heads * HS, 0, "blk.%d.attn_q.bias", l);
            ADD(1, c->n_kv_heads * HS, 0, "blk.%d.attn_k.bias", l);
            ADD(1, c->n_kv_heads * HS, 0, "blk.%d.attn_v.bias", l);
        }
        ADD(2, C, c->n_heads * HS, "blk.%d.attn_output.weight", l);
        ADD(1, C, 0, "blk.%d.ffn_norm.weight", l);
        ADD(2, FF, C, "blk.%d.ffn_gate.weight", l);
        ADD(2, FF, C, "blk.%d.ffn_up.weight", l);
        ADD(2, C, FF, "blk.%d.ffn_down.weight", l);
    }
    ADD(1, C, 0, "output_norm.weight");
    if (!c->tied_output) ADD(2, V, C, "output.weight");
    if (c->scalar_head) {
        ADD(1, C, 0, "score_head.weight");
        ADD(1, 1, 0, "score_head.bias");
    }
#undef ADD
    *n = k;
    *total = off;
    return t;
}

static const char *ref_path(char *buf, size_t n) {
    const char *d = test_shared_dir();
    if (!d) return NULL;
    snprintf(buf, n, "%s/reference/tiny-llama-f32.gguf", d);
    return buf;
}

static void test_reference_config_and_weights(void **state) {
    (void)state;
    char path[1100];
    if (!ref_path(path, sizeof path)) {
        printf("ok - %s # SKIP ../shared is absent\n", __func__);
        return;
    }
    gguf_file *f;
    rl_err e = {0};
    if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
    model_config c;
    if (gguf_model_config(f, &c, &e)) fail_msg("%s", e.msg);
    /* ../shared/README.md: dim 64, 2 layers, 4 heads, 2 KV heads, FFN 172, vocab 32000 */
    assert_int_equal(c.dim, 64);
    assert_int_equal(c.n_layers, 2);
    assert_int_equal(c.n_heads, 4);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 16);
    assert_int_equal(c.ffn_dim, 172);
    assert_int_equal(c.vocab_size, 32000);
    assert_int_equal(c.rope_neox, 0);
    assert_int_equal(c.qkv_bias, 0);
    assert_int_equal(c.tied_output, 0);
    assert_true(c.rope_theta == 10000.0f);
    assert_true(fabsf(c.norm_eps - 1e-5f) < 1e-9f);
    int n;
    size_t total;
    model_tensor *t = table_for(&c, &n, &total);
    float *p = malloc(sizeof(float) * total);
    if (gguf_model_load(f, &c, t, n, p, &e)) fail_msg("%s", e.msg);
    /* row r, column j of ffn_down (C, FF) is element r*FF + j of the file's [FF, C] tensor */
    const gguf_tensor_info *ti = gguf_find_tensor(f, "blk.1.ffn_down.weight");
    const float *raw = gguf_tensor_data(f, ti);
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, "blk.1.ffn_down.weight") == 0)
            for (int r = 0; r < 64; r += 7)
                for (int j = 0; j < 172; j += 13) {
                    float want;
                    memcpy(&want, raw + r * 172 + j, 4);
                    assert_true(p[t[i].offset + (size_t)r * 172 + (size_t)j] == want);
                }
    free(p);
    free(t);
    gguf_close(f);
}

/* A small random model with the tokenizer of the reference file: export, import, compare. */
static void test_export_import(void **state) {
    (void)state;
    char path[1100];
    if (!ref_path(path, sizeof path)) {
        printf("ok - %s # SKIP ../shared is absent\n", __func__);
        return;
    }
    gguf_file *rf;
    rl_err e = {0};
    if (gguf_open(path, &rf, &e)) fail_msg("%s", e.msg);
    tokenizer *tok;
    if (tokenizer_from_gguf(rf, &tok, &e)) fail_msg("%s", e.msg);
    /* descriptive metadata of the source travels along; what export sets itself does not */
    gguf_writer *kw = gguf_writer_new();
    gguf_writer_set_str(kw, "general.architecture", "gemma");
    gguf_writer_set_str(kw, "general.name", "source");
    gguf_writer_set_str(kw, "general.license", "apache-2.0");
    gguf_writer_set_str(kw, "tokenizer.chat_template", "{{ messages }}");
    gguf_writer_set_u32(kw, "llama.block_count", 99);
    uint8_t *kbuf;
    size_t ksize;
    assert_int_equal(gguf_writer_to_buffer(kw, &kbuf, &ksize, &e), 0);
    gguf_file *keep;
    if (gguf_open_memory(kbuf, ksize, "keep", &keep, &e)) fail_msg("%s", e.msg);
    for (int variant = 0; variant < 4; variant++) {
        /* llama untied, llama tied with a reward head (dropped on export), qwen2 with biases, and
           head size != C / NH */
        model_config c = {.dim = 24,
                          .n_layers = 2,
                          .n_heads = 3,
                          .n_kv_heads = 1,
                          .head_dim = 8,
                          .ffn_dim = 40,
                          .vocab_size = 32000,
                          .max_seq = 64,
                          .rope_theta = 500000.0f,
                          .norm_eps = 1e-6f};
        c.tied_output = variant == 1;
        c.scalar_head = variant == 1;
        c.rope_neox = c.qkv_bias = variant == 2;
        if (variant == 3) c.head_dim = 12;
        int n;
        size_t total;
        model_tensor *t = table_for(&c, &n, &total);
        float *p = malloc(sizeof(float) * total), *q = calloc(total, sizeof(float));
        for (size_t i = 0; i < total; i++) p[i] = sinf((float)i * 0.37f) * 0.1f;
        for (uint32_t wt = 0; wt <= 1; wt++) { /* f32, f16 */
            char out[1200];
            snprintf(out, sizeof out, "%s/m.gguf", test_tmpdir("gguf_model"));
            if (gguf_model_export(out, "test", &c, t, n, p, tok, keep, wt, &e))
                fail_msg("%s", e.msg);
            gguf_file *f;
            if (gguf_open(out, &f, &e)) fail_msg("%s", e.msg);
            model_config d;
            if (gguf_model_config(f, &d, &e)) fail_msg("%s", e.msg);
            model_config want = c;
            want.scalar_head = 0;
            assert_memory_equal(&d, &want, sizeof d);
            gguf_str arch;
            assert_int_equal(gguf_get_str(f, "general.architecture", &arch, 1, &e), 0);
            assert_true(gguf_str_eq(arch, variant == 2 ? "qwen2" : "llama"));
            assert_int_equal(gguf_get_str(f, "general.name", &arch, 1, &e), 0);
            assert_true(gguf_str_eq(arch, "test"));
            assert_int_equal(gguf_get_str(f, "general.license", &arch, 1, &e), 0);
            assert_true(gguf_str_eq(arch, "apache-2.0"));
            assert_int_equal(gguf_get_str(f, "tokenizer.chat_template", &arch, 1, &e), 0);
            assert_true(gguf_str_eq(arch, "{{ messages }}"));
            memset(q, 0, sizeof(float) * total);
            if (gguf_model_load(f, &d, t, n, q, &e)) fail_msg("%s", e.msg);
            for (int i = 0; i < n; i++) {
                if (strncmp(t[i].name, "score_head", 10) == 0) continue;
                for (size_t j = 0; j < t[i].numel; j++) {
                    float a = p[t[i].offset + j], b = q[t[i].offset + j];
                    /* 1-D tensors are always written as F32, as llama.cpp does */
                    float w = (wt == 0 || t[i].ndim == 1) ? a : gguf_f16_to_f32(gguf_f32_to_f16(a));
                    if (b != w)
                        fail_msg("variant %d type %u: %s[%zu] = %g, expected %g", variant, wt,
                                 t[i].name, j, b, w);
                }
            }
            tokenizer *u;
            if (tokenizer_from_gguf(f, &u, &e)) fail_msg("%s", e.msg);
            int *a, na, *b, nb;
            const char *txt = " Hello, world! 123\n";
            assert_int_equal(tokenizer_encode(tok, txt, strlen(txt), TOK_ADD_SPECIAL, &a, &na, &e),
                             0);
            assert_int_equal(tokenizer_encode(u, txt, strlen(txt), TOK_ADD_SPECIAL, &b, &nb, &e),
                             0);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, sizeof(int) * (size_t)na);
            free(a), free(b);
            tokenizer_free(u);
            gguf_close(f);
        }
        free(p), free(q), free(t);
    }
    tokenizer_free(tok);
    gguf_close(keep);
    free(kbuf);
    gguf_writer_free(kw);
    gguf_close(rf);
}

/* Builds a small llama file with the writer, optionally damaged, and checks the message. */
typedef enum { OK, ARCH, TYPE, SHAPE, MISSING, EXTRA, SCALING, MOE } damage;

static void check_damage(damage d, const char *expect) {
    model_config c = {.dim = 8,
                      .n_layers = 1,
                      .n_heads = 2,
                      .n_kv_heads = 2,
                      .head_dim = 4,
                      .ffn_dim = 32,
                      .vocab_size = 16,
                      .max_seq = 32,
                      .rope_theta = 1e4f,
                      .norm_eps = 1e-5f};
    int n;
    size_t total;
    model_tensor *t = table_for(&c, &n, &total);
    float *p = calloc(total, sizeof(float));
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", d == ARCH ? "gemma" : "llama");
    gguf_writer_set_u32(w, "llama.embedding_length", 8);
    gguf_writer_set_u32(w, "llama.block_count", 1);
    gguf_writer_set_u32(w, "llama.attention.head_count", 2);
    gguf_writer_set_u32(w, "llama.feed_forward_length", 32);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (d == SCALING) gguf_writer_set_str(w, "llama.rope.scaling.type", "yarn");
    if (d == MOE) gguf_writer_set_u32(w, "llama.expert_count", 8);
    rl_err e = {0};
    for (int i = 0; i < n; i++) {
        if (d == MISSING && strcmp(t[i].name, "blk.0.ffn_up.weight") == 0) continue;
        uint64_t ne[2] = {(uint64_t)(t[i].ndim == 1 ? t[i].shape[0] : t[i].shape[1]),
                          (uint64_t)t[i].shape[0]};
        if (d == SHAPE && strcmp(t[i].name, "blk.0.attn_k.weight") == 0) ne[1] = 4;
        gguf_writer_add_tensor(w, t[i].name, GGML_TYPE_F32, (uint32_t)t[i].ndim, ne,
                               p + t[i].offset, &e);
    }
    if (d == EXTRA) {
        uint64_t ne[1] = {8};
        gguf_writer_add_tensor(w, "blk.0.attn_q_norm.weight", GGML_TYPE_F32, 1, ne, p, &e);
    }
    uint8_t *buf;
    size_t size;
    assert_int_equal(gguf_writer_to_buffer(w, &buf, &size, &e), 0);
    if (d == TYPE) {
        /* mark output_norm.weight (8 floats) as I32, a type of the same size that nothing
           converts */
        const char key[] = "output_norm.weight";
        uint8_t *at = memmem(buf, size, key, sizeof key - 1);
        assert_non_null(at);
        uint32_t i32 = 26;
        memcpy(at + sizeof key - 1 + 4 + 8, &i32, 4); /* n_dims, ne[0], then the type */
    }
    gguf_file *f;
    if (gguf_open_memory(buf, size, "m.gguf", &f, &e)) fail_msg("%s", e.msg);
    model_config got;
    int rc = gguf_model_config(f, &got, &e);
    if (rc == 0) rc = gguf_model_load(f, &got, t, n, p, &e);
    if (d == OK) {
        if (rc) fail_msg("%s", e.msg);
    } else {
        assert_int_equal(rc, ERR_INPUT);
        if (!strstr(e.msg, expect)) fail_msg("'%s' does not mention '%s'", e.msg, expect);
    }
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
    free(p);
    free(t);
}

static void test_refusals(void **state) {
    (void)state;
    check_damage(OK, NULL);
    check_damage(ARCH, "'gemma'");
    check_damage(TYPE, "i32");
    check_damage(SHAPE, "blk.0.attn_k.weight");
    check_damage(MISSING, "blk.0.ffn_up.weight");
    check_damage(EXTRA, "blk.0.attn_q_norm.weight");
    check_damage(SCALING, "yarn");
    check_damage(MOE, "experts");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_config_and_weights),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests_name("gguf_model", tests, NULL, NULL);
}
