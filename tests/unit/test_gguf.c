/* gguf: the reader against a file laid out by hand from the GGUF specification (not by our
 * writer), a set of broken files (truncated at every offset, wrong counts, huge lengths, bad
 * types, bad dimensions, misaligned, out-of-range and overlapping tensors, duplicates), single
 * byte corruptions everywhere, the writer byte-for-byte against the hand layout, and the
 * F16/BF16/Q8_0 conversions against hand-derived values. */
#include "test_util.h"

#include <math.h>

#include "gguf.h"

/* ------------------------------------------------------------------ a byte builder */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void put(bb *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void u8(bb *b, uint8_t v) {
    put(b, &v, 1);
}
static void u32(bb *b, uint32_t v) {
    put(b, &v, 4);
} /* the test host is little-endian */
static void u64(bb *b, uint64_t v) {
    put(b, &v, 8);
}
static void f32(bb *b, float v) {
    put(b, &v, 4);
}
static void str(bb *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad(bb *b, size_t a) {
    while (b->n % a) u8(b, 0);
}
static void set_u32(bb *b, size_t at, uint32_t v) {
    memcpy(b->p + at, &v, 4);
}
static void set_u64(bb *b, size_t at, uint64_t v) {
    memcpy(b->p + at, &v, 8);
}

/* Where the fields that the corruption tests patch are. */
typedef struct layout {
    size_t version, n_tensors, n_kv;
    size_t key0_len, kv1_key, kv1_type, arr_type, arr_n, strs_len1, flag_val, align_type, align_val;
    size_t t0_name, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off;
    size_t t1_name, t1_ne0, t1_type, t1_off;
    size_t data;
} layout;

/* A valid v3 file: 6 metadata pairs, tensor "a" (F32, 2 x 4) and tensor "b" (Q8_0, 32). */
static bb valid_file(layout *o) {
    bb b = {0};
    put(&b, "GGUF", 4);
    o->version = b.n;
    u32(&b, 3);
    o->n_tensors = b.n;
    u64(&b, 2);
    o->n_kv = b.n;
    u64(&b, 6);
    o->key0_len = b.n;
    str(&b, "general.architecture");
    u32(&b, GGUF_TYPE_STRING);
    str(&b, "llama");
    o->kv1_key = b.n;
    str(&b, "test.u32");
    o->kv1_type = b.n;
    u32(&b, GGUF_TYPE_UINT32);
    u32(&b, 7);
    str(&b, "test.arr");
    u32(&b, GGUF_TYPE_ARRAY);
    o->arr_type = b.n;
    u32(&b, GGUF_TYPE_FLOAT32);
    o->arr_n = b.n;
    u64(&b, 2);
    f32(&b, 1.5f);
    f32(&b, -2.0f);
    str(&b, "test.strs");
    u32(&b, GGUF_TYPE_ARRAY);
    u32(&b, GGUF_TYPE_STRING);
    u64(&b, 2);
    str(&b, "a");
    o->strs_len1 = b.n;
    str(&b, "bc");
    str(&b, "test.flag");
    u32(&b, GGUF_TYPE_BOOL);
    o->flag_val = b.n;
    u8(&b, 1);
    str(&b, "general.alignment");
    o->align_type = b.n;
    u32(&b, GGUF_TYPE_UINT32);
    o->align_val = b.n;
    u32(&b, 32);
    o->t0_name = b.n;
    str(&b, "a");
    o->t0_ndims = b.n;
    u32(&b, 2);
    o->t0_ne0 = b.n;
    u64(&b, 4);
    o->t0_ne1 = b.n;
    u64(&b, 2);
    o->t0_type = b.n;
    u32(&b, GGML_TYPE_F32);
    o->t0_off = b.n;
    u64(&b, 0);
    o->t1_name = b.n;
    str(&b, "b");
    u32(&b, 1);
    o->t1_ne0 = b.n;
    u64(&b, 32);
    o->t1_type = b.n;
    u32(&b, GGML_TYPE_Q8_0);
    o->t1_off = b.n;
    u64(&b, 32);
    pad(&b, 32);
    o->data = b.n;
    for (int i = 0; i < 8; i++) f32(&b, (float)i - 3.25f);
    u8(&b, 0x00); /* F16 0x3800 = 0.5 */
    u8(&b, 0x38);
    for (int i = 0; i < 32; i++) u8(&b, (uint8_t)(int8_t)(i - 16));
    return b;
}

static void test_valid_file(void **state) {
    (void)state;
    layout o;
    bb b = valid_file(&o);
    gguf_file *f;
    rl_err e = {0};
    int rc = gguf_open_memory(b.p, b.n, "valid", &f, &e);
    if (rc) fail_msg("%s", e.msg);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_n_kv(f), 6);
    assert_int_equal(gguf_n_tensors(f), 2);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_data_offset(f), o.data);
    uint32_t v = 0;
    assert_int_equal(gguf_get_u32(f, "test.u32", &v, 1, &e), ERR_OK);
    assert_int_equal(v, 7);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "general.architecture", &s, 1, &e), ERR_OK);
    assert_true(gguf_str_eq(s, "llama"));
    const gguf_kv *kv;
    assert_int_equal(gguf_get_arr(f, "test.arr", GGUF_TYPE_FLOAT32, &kv, 1, &e), ERR_OK);
    assert_int_equal(kv->arr_n, 2);
    assert_true(gguf_arr_f64(kv, 0) == 1.5 && gguf_arr_f64(kv, 1) == -2.0);
    assert_int_equal(gguf_get_arr(f, "test.strs", GGUF_TYPE_STRING, &kv, 1, &e), ERR_OK);
    assert_true(gguf_str_eq(gguf_arr_str(f, kv, 0), "a"));
    assert_true(gguf_str_eq(gguf_arr_str(f, kv, 1), "bc"));
    int flag = 0;
    assert_int_equal(gguf_get_bool(f, "test.flag", &flag, 1, &e), ERR_OK);
    assert_int_equal(flag, 1);
    /* wrong types and missing keys are precise errors */
    assert_int_equal(gguf_get_str(f, "test.u32", &s, 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "test.u32"));
    assert_int_equal(gguf_get_u32(f, "no.such.key", &v, 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "no.such.key"));
    assert_int_equal(gguf_get_u32(f, "no.such.key", &v, 0, &e), ERR_OK);
    const gguf_tensor_info *a = gguf_find_tensor(f, "a"), *bt = gguf_find_tensor(f, "b");
    assert_non_null(a);
    assert_non_null(bt);
    assert_null(gguf_find_tensor(f, "c"));
    assert_int_equal(a->ne[0], 4);
    assert_int_equal(a->ne[1], 2);
    assert_int_equal(a->nbytes, 32);
    assert_int_equal(bt->nbytes, 34);
    float x[32];
    assert_int_equal(gguf_tensor_to_f32(f, a, x, 8, &e), ERR_OK);
    for (int i = 0; i < 8; i++) assert_true(x[i] == (float)i - 3.25f);
    assert_int_equal(gguf_tensor_to_f32(f, bt, x, 32, &e), ERR_OK);
    for (int i = 0; i < 32; i++) assert_true(x[i] == 0.5f * (float)(i - 16));
    char buf[256];
    gguf_kv_format(f, gguf_find_kv(f, "test.strs"), buf, sizeof buf, 8);
    assert_string_equal(buf, "[str x 2] \"a\" \"bc\"");
    gguf_close(f);
    free(b.p);
}

/* Every proper prefix of a valid file is refused with a byte offset in the message. */
static void test_truncated_everywhere(void **state) {
    (void)state;
    layout o;
    bb b = valid_file(&o);
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size: ASan sees any overread */
        memcpy(cut, b.p, n);
        gguf_file *f = NULL;
        rl_err e = {0};
        int rc = gguf_open_memory(cut, n, "cut", &f, &e);
        if (rc != ERR_INPUT) fail_msg("prefix of %zu bytes: status %d", n, rc);
        if (!strstr(e.msg, "byte ")) fail_msg("prefix of %zu bytes: '%s' has no offset", n, e.msg);
        free(cut);
    }
    free(b.p);
}

typedef struct corruption {
    const char *what;
    void (*patch)(bb *b, const layout *o);
    const char *expect[2]; /* substrings of the message */
} corruption;

#define PATCH(name, body)                                                                          \
    static void name(bb *b, const layout *o) {                                                     \
        (void)o;                                                                                   \
        body;                                                                                      \
    }
PATCH(p_magic, memcpy(b->p, "GGUX", 4))
PATCH(p_v1, set_u32(b, o->version, 1))
PATCH(p_big_endian, set_u32(b, o->version, 0x03000000))
PATCH(p_v4, set_u32(b, o->version, 4))
PATCH(p_many_tensors, set_u64(b, o->n_tensors, 1ull << 62))
PATCH(p_many_kv, set_u64(b, o->n_kv, 1ull << 40))
PATCH(p_more_tensors, set_u64(b, o->n_tensors, 3))
PATCH(p_key_len, set_u64(b, o->key0_len, 1ull << 63))
PATCH(p_empty_key, set_u64(b, o->key0_len, 0))
PATCH(p_value_type, set_u32(b, o->kv1_type, 13))
PATCH(p_nested_array, set_u32(b, o->arr_type, GGUF_TYPE_ARRAY))
PATCH(p_elem_type, set_u32(b, o->arr_type, 77))
PATCH(p_array_len, set_u64(b, o->arr_n, 1ull << 61))
PATCH(p_array_len_small_overflow, set_u64(b, o->arr_n, (1ull << 62) + 1))
PATCH(p_str_elem_len, set_u64(b, o->strs_len1, 1ull << 50))
PATCH(p_bool, b->p[o->flag_val] = 2)
PATCH(p_dup_key, memcpy(b->p + o->kv1_key + 8, "test.arr", 8))
PATCH(p_align_value, set_u32(b, o->align_val, 3))
PATCH(p_align_zero, set_u32(b, o->align_val, 0))
PATCH(p_align_type, set_u32(b, o->align_type, GGUF_TYPE_FLOAT32))
PATCH(p_removed_type, set_u32(b, o->t0_type, 4))
PATCH(p_unknown_type, set_u32(b, o->t0_type, 1000))
PATCH(p_ndims0, set_u32(b, o->t0_ndims, 0))
PATCH(p_ndims5, set_u32(b, o->t0_ndims, 5))
PATCH(p_dim0, set_u64(b, o->t0_ne0, 0))
PATCH(p_dim_negative, set_u64(b, o->t0_ne1, 1ull << 63))
PATCH(p_dim_overflow, (set_u64(b, o->t0_ne0, 1ull << 40), set_u64(b, o->t0_ne1, 1ull << 40)))
PATCH(p_block, set_u64(b, o->t1_ne0, 48))
PATCH(p_misaligned, set_u64(b, o->t1_off, 33))
PATCH(p_past_end, set_u64(b, o->t1_off, 64))
PATCH(p_far_past_end, set_u64(b, o->t1_off, 1ull << 63))
PATCH(p_overlap, set_u64(b, o->t1_off, 0))
PATCH(p_dup_tensor, b->p[o->t1_name + 8] = 'a')
PATCH(p_name_nul, b->p[o->t1_name + 8] = 0)

static const corruption corruptions[] = {
    {"wrong magic", p_magic, {"magic", "byte 0"}},
    {"version 1", p_v1, {"version 1", "byte 4"}},
    {"big-endian", p_big_endian, {"big-endian", "byte 4"}},
    {"version 4", p_v4, {"version 4", NULL}},
    {"2^62 tensors", p_many_tensors, {"cannot fit", "byte 8"}},
    {"2^40 metadata pairs", p_many_kv, {"cannot fit", NULL}},
    {"one tensor too many", p_more_tensors, {"tensor", NULL}},
    {"key length 2^63", p_key_len, {"metadata pair 0", "string length"}},
    {"empty key", p_empty_key, {"empty key", NULL}},
    {"value type 13", p_value_type, {"test.u32", "value type 13"}},
    {"array of arrays", p_nested_array, {"test.arr", "arrays of arrays"}},
    {"array element type 77", p_elem_type, {"test.arr", "element type 77"}},
    {"array length 2^61", p_array_len, {"test.arr", "needs more than"}},
    {"array byte size overflows", p_array_len_small_overflow, {"test.arr", "needs more than"}},
    {"string element length 2^50", p_str_elem_len, {"test.strs", "string element 1"}},
    {"bool value 2", p_bool, {"test.flag", "bool value is 2"}},
    {"duplicate key", p_dup_key, {"test.arr", "appears twice"}},
    {"alignment 3", p_align_value, {"general.alignment", "power of two"}},
    {"alignment 0", p_align_zero, {"general.alignment", "power of two"}},
    {"alignment as f32", p_align_type, {"general.alignment", "type f32"}},
    {"removed tensor type 4", p_removed_type, {"tensor 'a'", "type 4"}},
    {"tensor type 1000", p_unknown_type, {"tensor 'a'", "type 1000"}},
    {"0 dimensions", p_ndims0, {"tensor 'a'", "0 dimensions"}},
    {"5 dimensions", p_ndims5, {"tensor 'a'", "5 dimensions"}},
    {"dimension 0", p_dim0, {"tensor 'a'", "dimension 0 is 0"}},
    {"dimension 2^63", p_dim_negative, {"tensor 'a'", "dimension 1"}},
    {"element count overflows", p_dim_overflow, {"tensor 'a'", "overflow"}},
    {"row not a multiple of the block", p_block, {"tensor 'b'", "block size 32"}},
    {"misaligned offset", p_misaligned, {"tensor 'b'", "alignment"}},
    {"data past the end", p_past_end, {"tensor 'b'", "past the end"}},
    {"offset 2^63", p_far_past_end, {"tensor 'b'", "past the end"}},
    {"overlapping tensors", p_overlap, {"overlaps", "tensor 'a'"}},
    {"duplicate tensor name", p_dup_tensor, {"tensor 'a'", "appears twice"}},
    {"NUL in a tensor name", p_name_nul, {"NUL", NULL}},
};

static void test_corruptions(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof corruptions / sizeof corruptions[0]; k++) {
        const corruption *c = &corruptions[k];
        layout o;
        bb b = valid_file(&o);
        c->patch(&b, &o);
        gguf_file *f = NULL;
        rl_err e = {0};
        int rc = gguf_open_memory(b.p, b.n, "bad.gguf", &f, &e);
        if (rc != ERR_INPUT) fail_msg("%s: status %d (expected a refusal)", c->what, rc);
        if (!strstr(e.msg, "bad.gguf: byte "))
            fail_msg("%s: '%s' lacks file and offset", c->what, e.msg);
        for (int j = 0; j < 2; j++)
            if (c->expect[j] && !strstr(e.msg, c->expect[j]))
                fail_msg("%s: '%s' does not mention '%s'", c->what, e.msg, c->expect[j]);
        free(b.p);
    }
    printf("# %zu corrupted files refused with precise messages\n",
           sizeof corruptions / sizeof corruptions[0]);
}

static void test_long_tensor_name(void **state) {
    (void)state;
    bb b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 1);
    u64(&b, 0);
    char name[80];
    memset(name, 'x', 64);
    name[64] = '\0';
    str(&b, name);
    u32(&b, 1);
    u64(&b, 1);
    u32(&b, GGML_TYPE_F32);
    u64(&b, 0);
    pad(&b, 32);
    f32(&b, 1.0f);
    gguf_file *f;
    rl_err e = {0};
    assert_int_equal(gguf_open_memory(b.p, b.n, "long", &f, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "name of 64 bytes"));
    free(b.p);
}

/* Every single-byte change of the valid file either still parses (then every accessor must be
 * safe) or is refused; under AddressSanitizer this is the crash test. */
static void test_byte_corruptions_never_crash(void **state) {
    (void)state;
    layout o;
    bb b = valid_file(&o);
    static const uint8_t masks[] = {0x01, 0x02, 0x10, 0x80, 0xff};
    int refused = 0, parsed = 0;
    for (size_t i = 0; i < b.n; i++)
        for (size_t m = 0; m < sizeof masks; m++) {
            uint8_t *c = malloc(b.n);
            memcpy(c, b.p, b.n);
            c[i] ^= masks[m];
            gguf_file *f = NULL;
            rl_err e = {0};
            int rc = gguf_open_memory(c, b.n, "flip", &f, &e);
            if (rc == ERR_OK) {
                parsed++;
                char buf[512];
                for (int64_t k = 0; k < gguf_n_kv(f); k++)
                    gguf_kv_format(f, gguf_kv_at(f, k), buf, sizeof buf, 8);
                for (int64_t k = 0; k < gguf_n_tensors(f); k++) {
                    const gguf_tensor_info *t = gguf_tensor_at(f, k);
                    if (t->nelements > 4096) continue;
                    float *x = malloc(sizeof(float) * t->nelements);
                    gguf_tensor_to_f32(f, t, x, t->nelements, &e);
                    free(x);
                }
                gguf_close(f);
            } else {
                if (rc != ERR_INPUT) fail_msg("byte %zu ^ 0x%02x: status %d", i, masks[m], rc);
                refused++;
            }
            free(c);
        }
    printf("# %zu bytes x %zu masks: %d refused, %d still valid\n", b.n, sizeof masks, refused,
           parsed);
    free(b.p);
}

/* The writer produces exactly the hand layout for the same content. */
static void test_writer_matches_hand_layout(void **state) {
    (void)state;
    layout o;
    bb ref = valid_file(&o);
    /* the writer: no general.alignment (it writes the default), no Q8_0 tensor; build the
       matching reference by hand */
    bb b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 2);
    u64(&b, 3);
    str(&b, "general.architecture");
    u32(&b, GGUF_TYPE_STRING);
    str(&b, "llama");
    str(&b, "test.u32");
    u32(&b, GGUF_TYPE_UINT32);
    u32(&b, 7);
    str(&b, "test.strs");
    u32(&b, GGUF_TYPE_ARRAY);
    u32(&b, GGUF_TYPE_STRING);
    u64(&b, 2);
    str(&b, "a");
    str(&b, "bc");
    str(&b, "a");
    u32(&b, 2);
    u64(&b, 4);
    u64(&b, 2);
    u32(&b, GGML_TYPE_F32);
    u64(&b, 0);
    str(&b, "h");
    u32(&b, 1);
    u64(&b, 3);
    u32(&b, GGML_TYPE_F16);
    u64(&b, 32);
    pad(&b, 32);
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = (float)i - 3.25f, f32(&b, a[i]);
    float h[3] = {1.0f, -2.0f, 65504.0f};
    uint16_t hb[3] = {0x3c00, 0xc000, 0x7bff};
    put(&b, hb, 6);
    pad(&b, 32);

    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_u32(w, "test.u32", 99);
    const char *strs[2] = {"a", "bc"};
    gguf_writer_set_arr_str(w, "test.strs", strs, NULL, 2);
    gguf_writer_set_u32(w, "test.u32", 7); /* replaces, keeps the position */
    rl_err e = {0};
    uint64_t ne_a[2] = {4, 2}, ne_h[1] = {3};
    assert_int_equal(gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 2, ne_a, a, &e), ERR_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "h", GGML_TYPE_F16, 1, ne_h, h, &e), ERR_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "h", GGML_TYPE_F16, 1, ne_h, h, &e), ERR_INTERNAL);
    uint8_t *out;
    size_t n;
    assert_int_equal(gguf_writer_to_buffer(w, &out, &n, &e), ERR_OK);
    assert_int_equal(n, b.n);
    assert_memory_equal(out, b.p, n);
    /* and through a file: write, mmap, read back */
    char path[1100];
    snprintf(path, sizeof path, "%s/w.gguf", test_tmpdir("gguf"));
    assert_int_equal(gguf_writer_write(w, path, &e), ERR_OK);
    gguf_file *f;
    if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
    float x[3];
    assert_int_equal(gguf_tensor_to_f32(f, gguf_find_tensor(f, "h"), x, 3, &e), ERR_OK);
    for (int i = 0; i < 3; i++) assert_true(x[i] == h[i]);
    gguf_close(f);
    free(out);
    gguf_writer_free(w);
    free(b.p);
    free(ref.p);
}

/* Every scalar and array type survives writer -> reader; tensors are aligned. */
static void test_writer_roundtrip_types(void **state) {
    (void)state;
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_u32(w, "k.u32", 4000000000u);
    gguf_writer_set_i32(w, "k.i32", -5);
    gguf_writer_set_u64(w, "k.u64", 1ull << 40);
    gguf_writer_set_f32(w, "k.f32", 0.1f);
    gguf_writer_set_bool(w, "k.bool", 1);
    gguf_writer_set_str(w, "k.str", "h\xc3\xa9llo");
    int32_t ia[3] = {-1, 0, 7};
    gguf_writer_set_arr(w, "k.ia", GGUF_TYPE_INT32, ia, 3);
    uint8_t ua[2] = {250, 1};
    gguf_writer_set_arr(w, "k.ua", GGUF_TYPE_UINT8, ua, 2);
    double da[1] = {1e300};
    gguf_writer_set_arr(w, "k.da", GGUF_TYPE_FLOAT64, da, 1);
    gguf_writer_set_arr_str(w, "k.empty", NULL, NULL, 0);
    rl_err e = {0};
    float t1[5] = {1, 2, 3, 4, 5}, t2[33];
    for (int i = 0; i < 33; i++) t2[i] = (float)i / 7.0f;
    uint64_t n1[1] = {5}, n2[3] = {11, 3, 1};
    assert_int_equal(gguf_writer_add_tensor(w, "t1", GGML_TYPE_F32, 1, n1, t1, &e), ERR_OK);
    assert_int_equal(gguf_writer_add_tensor(w, "t2", GGML_TYPE_F16, 3, n2, t2, &e), ERR_OK);
    uint8_t *buf;
    size_t n;
    assert_int_equal(gguf_writer_to_buffer(w, &buf, &n, &e), ERR_OK);
    gguf_file *f;
    if (gguf_open_memory(buf, n, "rt", &f, &e)) fail_msg("%s", e.msg);
    uint64_t u;
    assert_int_equal(gguf_get_uint(f, "k.u32", UINT64_MAX, &u, 1, &e), ERR_OK);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(gguf_get_uint(f, "k.i32", UINT64_MAX, &u, 1, &e), ERR_INPUT); /* negative */
    assert_int_equal(gguf_get_uint(f, "k.u64", UINT64_MAX, &u, 1, &e), ERR_OK);
    assert_int_equal(u, 1ull << 40);
    assert_int_equal(gguf_get_uint(f, "k.u64", UINT32_MAX, &u, 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "out of range"));
    double d;
    assert_int_equal(gguf_get_float(f, "k.f32", &d, 1, &e), ERR_OK);
    assert_true((float)d == 0.1f);
    int bv;
    assert_int_equal(gguf_get_bool(f, "k.bool", &bv, 1, &e), ERR_OK);
    assert_int_equal(bv, 1);
    gguf_str s;
    assert_int_equal(gguf_get_str(f, "k.str", &s, 1, &e), ERR_OK);
    assert_true(gguf_str_eq(s, "h\xc3\xa9llo"));
    const gguf_kv *kv;
    assert_int_equal(gguf_get_arr(f, "k.ia", GGUF_TYPE_INT32, &kv, 1, &e), ERR_OK);
    assert_int_equal(gguf_arr_i64(kv, 0), -1);
    assert_int_equal(gguf_arr_i64(kv, 2), 7);
    assert_int_equal(gguf_get_arr(f, "k.ua", GGUF_TYPE_UINT8, &kv, 1, &e), ERR_OK);
    assert_int_equal(gguf_arr_i64(kv, 0), 250);
    assert_int_equal(gguf_get_arr(f, "k.da", GGUF_TYPE_FLOAT64, &kv, 1, &e), ERR_OK);
    assert_true(gguf_arr_f64(kv, 0) == 1e300);
    assert_int_equal(gguf_get_arr(f, "k.ia", GGUF_TYPE_FLOAT32, &kv, 1, &e), ERR_INPUT);
    assert_int_equal(gguf_get_arr(f, "k.empty", GGUF_TYPE_STRING, &kv, 1, &e), ERR_OK);
    assert_int_equal(kv->arr_n, 0);
    const gguf_tensor_info *a = gguf_find_tensor(f, "t1"), *b = gguf_find_tensor(f, "t2");
    assert_int_equal((gguf_data_offset(f) + a->offset) % 32, 0);
    assert_int_equal((gguf_data_offset(f) + b->offset) % 32, 0);
    assert_int_equal(b->n_dims, 3);
    assert_int_equal(b->nelements, 33);
    float x[33];
    assert_int_equal(gguf_tensor_to_f32(f, b, x, 33, &e), ERR_OK);
    for (int i = 0; i < 33; i++) assert_true(x[i] == gguf_f16_to_f32(gguf_f32_to_f16(t2[i])));
    assert_int_equal(gguf_tensor_to_f32(f, b, x, 32, &e), ERR_INTERNAL);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
}

/* Copying every metadata pair of a file into a writer reproduces the values (alignment aside). */
static void test_writer_copy_kv(void **state) {
    (void)state;
    layout o;
    bb b = valid_file(&o);
    gguf_file *f, *g;
    rl_err e = {0};
    if (gguf_open_memory(b.p, b.n, "src", &f, &e)) fail_msg("%s", e.msg);
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(f); i++) gguf_writer_copy_kv(w, f, gguf_kv_at(f, i));
    uint8_t *buf;
    size_t n;
    assert_int_equal(gguf_writer_to_buffer(w, &buf, &n, &e), 0);
    if (gguf_open_memory(buf, n, "copy", &g, &e)) fail_msg("%s", e.msg);
    assert_int_equal(gguf_n_kv(g), gguf_n_kv(f) - 1);
    assert_null(gguf_find_kv(g, "general.alignment"));
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *a = gguf_kv_at(f, i);
        char key[64], x[256], y[256];
        snprintf(key, sizeof key, "%.*s", (int)a->key.len, a->key.ptr);
        if (strcmp(key, "general.alignment") == 0) continue;
        const gguf_kv *c = gguf_find_kv(g, key);
        assert_non_null(c);
        assert_int_equal(c->type, a->type);
        assert_string_equal(gguf_kv_format(g, c, y, sizeof y, 8),
                            gguf_kv_format(f, a, x, sizeof x, 8));
    }
    gguf_close(g);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
    free(b.p);
}

/* ------------------------------------------------------------------ conversions */

static void test_f16(void **state) {
    (void)state;
    /* IEEE half: sign 1, exponent 5 (bias 15), mantissa 10 */
    struct {
        uint16_t h;
        float f;
    } k[] = {
        {0x0000, 0.0f},
        {0x3c00, 1.0f},
        {0xc000, -2.0f},
        {0x3800, 0.5f},
        {0x7bff, 65504.0f},        /* largest finite: (2 - 2^-10) * 2^15 */
        {0x0400, 0x1p-14f},        /* smallest normal */
        {0x0001, 0x1p-24f},        /* smallest subnormal */
        {0x03ff, 1023 * 0x1p-24f}, /* largest subnormal */
        {0x3555, 1365 * 0x1p-12f}, /* 0.333251953125 */
        {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        assert_true(gguf_f16_to_f32(k[i].h) == k[i].f);
        assert_int_equal(gguf_f32_to_f16(k[i].f), k[i].h);
    }
    assert_true(signbit(gguf_f16_to_f32(0x8000)) && gguf_f16_to_f32(0x8000) == 0.0f);
    assert_true(isnan(gguf_f16_to_f32(0x7e00)));
    assert_true(isnan(gguf_f16_to_f32(gguf_f32_to_f16(NAN))));
    /* rounding to nearest, ties to even */
    assert_int_equal(gguf_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);     /* tie -> even */
    assert_int_equal(gguf_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie -> even (up) */
    assert_int_equal(gguf_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    assert_int_equal(gguf_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    assert_int_equal(gguf_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(gguf_f32_to_f16(0x1p-25f), 0x0000); /* tie -> even zero */
    assert_int_equal(gguf_f32_to_f16(3 * 0x1p-26f), 0x0001);
    assert_int_equal(gguf_f32_to_f16(1e-10f), 0x0000);
    assert_int_equal(gguf_f32_to_f16(-1e-10f), 0x8000);
    assert_int_equal(gguf_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400); /* rounds up to normal */
    /* every half survives the round trip */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = gguf_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        assert_int_equal(gguf_f32_to_f16(f), h);
    }
}

static void test_bf16(void **state) {
    (void)state;
    /* bfloat16 is the upper half of a float32 */
    assert_true(gguf_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(gguf_bf16_to_f32(0xc000) == -2.0f);
    assert_true(gguf_bf16_to_f32(0x4049) == 3.140625f); /* 0x40490000 */
    assert_true(gguf_bf16_to_f32(0x0001) == 0x1p-133f); /* smallest subnormal */
    assert_true(isinf(gguf_bf16_to_f32(0x7f80)));
}

static void test_q8_0(void **state) {
    (void)state;
    /* two blocks: d = 0.25 (0x3400) with q = -128..-97, d = -3 (0xc200) with q = 0..31 */
    uint8_t blk[68];
    blk[0] = 0x00, blk[1] = 0x34;
    for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)(int8_t)(-128 + i);
    blk[34] = 0x00, blk[35] = 0xc2;
    for (int i = 0; i < 32; i++) blk[36 + i] = (uint8_t)i;
    float x[64];
    gguf_q8_0_to_f32(blk, x, 64);
    for (int i = 0; i < 32; i++) assert_true(x[i] == 0.25f * (float)(-128 + i));
    for (int i = 0; i < 32; i++) assert_true(x[32 + i] == -3.0f * (float)i);
}

/* A tensor type the program cannot convert is refused by name. */
static void test_unconvertible_type(void **state) {
    (void)state;
    bb b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 2); /* v2 files read the same way */
    u64(&b, 1);
    u64(&b, 0);
    str(&b, "blk.0.ffn_up.weight");
    u32(&b, 2);
    u64(&b, 32);
    u64(&b, 1);
    u32(&b, 2); /* q4_0: 18 bytes per 32 */
    u64(&b, 0);
    pad(&b, 32);
    for (int i = 0; i < 18; i++) u8(&b, 0);
    gguf_file *f;
    rl_err e = {0};
    if (gguf_open_memory(b.p, b.n, "q4.gguf", &f, &e)) fail_msg("%s", e.msg);
    assert_int_equal(gguf_version(f), 2);
    float x[32];
    assert_int_equal(gguf_tensor_to_f32(f, gguf_tensor_at(f, 0), x, 32, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "blk.0.ffn_up.weight"));
    assert_non_null(strstr(e.msg, "q4_0"));
    gguf_close(f);
    free(b.p);
}

static void test_open_errors(void **state) {
    (void)state;
    gguf_file *f;
    rl_err e = {0};
    assert_int_equal(gguf_open("/nonexistent/x.gguf", &f, &e), ERR_IO);
    assert_non_null(strstr(e.msg, "/nonexistent/x.gguf"));
    char path[1100];
    snprintf(path, sizeof path, "%s/empty.gguf", test_tmpdir("gguf"));
    FILE *fp = fopen(path, "wb");
    fclose(fp);
    assert_int_equal(gguf_open(path, &f, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "empty"));
    assert_int_equal(gguf_open("/", &f, &e), ERR_INPUT);
}

/* llama.cpp's own files open and read as their README describes. */
static void test_shared_files(void **state) {
    (void)state;
    const char *dir = test_shared_dir();
    if (!dir) {
        printf("ok - %s # SKIP ../shared is absent\n", __func__);
        return;
    }
    const char *files[] = {"reference/tiny-llama-f32.gguf", "vocab/ggml-vocab-llama-spm.gguf",
                           "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-deepseek-coder.gguf"};
    for (int i = 0; i < 4; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        gguf_file *f;
        rl_err e = {0};
        if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
        if (i == 0) {
            /* dim 64, 2 layers, 4 heads, 2 KV heads, FFN 172, vocab 32000, F32 */
            uint32_t v;
            assert_int_equal(gguf_get_u32(f, "llama.embedding_length", &v, 1, &e), 0);
            assert_int_equal(v, 64);
            assert_int_equal(gguf_get_u32(f, "llama.attention.head_count_kv", &v, 1, &e), 0);
            assert_int_equal(v, 2);
            const gguf_tensor_info *t = gguf_find_tensor(f, "blk.1.ffn_down.weight");
            assert_non_null(t);
            assert_int_equal(t->ne[0], 172);
            assert_int_equal(t->ne[1], 64);
            assert_int_equal(t->type, GGML_TYPE_F32);
            assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->ne[1], 32000);
        }
        gguf_close(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_long_tensor_name),
        cmocka_unit_test(test_byte_corruptions_never_crash),
        cmocka_unit_test(test_writer_matches_hand_layout),
        cmocka_unit_test(test_writer_roundtrip_types),
        cmocka_unit_test(test_writer_copy_kv),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_unconvertible_type),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_shared_files),
    };
    return cmocka_run_group_tests_name("gguf", tests, NULL, NULL);
}
