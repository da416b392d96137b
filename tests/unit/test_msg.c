/* msg: round trip of every field type, and reads past the end of short or hostile messages. */
#include "test_util.h"

#include <math.h>

#include "msg.h"

static void test_round_trip(void **state) {
    (void)state;
    msg_writer w;
    msg_init(&w);
    msg_put_i32(&w, -7);
    msg_put_i64(&w, INT64_MIN);
    msg_put_f32(&w, -0.0f);
    msg_put_f64(&w, 1.0 / 3.0);
    msg_put_str(&w, "héllo\nwörld");
    msg_put_str(&w, NULL);
    int32_t iv[3] = {1, -2, 3};
    float fv[2] = {INFINITY, 1e-30f};
    msg_put_i32s(&w, iv, 3);
    msg_put_f32s(&w, fv, 2);
    /* little-endian on the wire whatever the host: the first field's bytes */
    assert_int_equal(w.buf[0], 0xf9);
    assert_int_equal(w.buf[3], 0xff);

    msg_reader r;
    msg_reader_init(&r, w.buf, w.len);
    assert_int_equal(msg_get_i32(&r), -7);
    assert_true(msg_get_i64(&r) == INT64_MIN);
    float z = msg_get_f32(&r);
    assert_true(z == 0.0f && signbit(z));
    assert_true(msg_get_f64(&r) == 1.0 / 3.0);
    char *s = msg_get_str(&r), *s2 = msg_get_str(&r);
    assert_string_equal(s, "héllo\nwörld");
    assert_string_equal(s2, "");
    size_t n = 0;
    int32_t *iv2 = msg_get_i32s(&r, &n, 10);
    assert_int_equal(n, 3);
    assert_memory_equal(iv, iv2, sizeof iv);
    float *fv2 = msg_get_f32s(&r, &n, 10);
    assert_int_equal(n, 2);
    assert_true(isinf(fv2[0]) && fv2[1] == 1e-30f);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.pos, r.len);
    /* one more read is past the end */
    (void)msg_get_i32(&r);
    assert_int_equal(r.bad, 1);
    free(s), free(s2), free(iv2), free(fv2);
    msg_free(&w);
}

/* Every truncation of a valid message reads as bad somewhere, never past the buffer. */
static void test_truncations(void **state) {
    (void)state;
    msg_writer w;
    msg_init(&w);
    msg_put_str(&w, "abcdef");
    msg_put_i64(&w, 42);
    float fv[4] = {1, 2, 3, 4};
    msg_put_f32s(&w, fv, 4);
    for (size_t cut = 0; cut < w.len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, w.buf, cut);
        msg_reader r;
        msg_reader_init(&r, copy, cut);
        char *s = msg_get_str(&r);
        (void)msg_get_i64(&r);
        size_t n;
        float *f = msg_get_f32s(&r, &n, 100);
        assert_int_equal(r.bad, 1);
        free(s), free(f), free(copy);
    }
    msg_free(&w);
}

/* Hostile lengths: a string or array length larger than the message, or over the limit. */
static void test_hostile_lengths(void **state) {
    (void)state;
    msg_writer w;
    msg_init(&w);
    msg_put_i64(&w, (int64_t)1 << 62); /* string length */
    msg_reader r;
    msg_reader_init(&r, w.buf, w.len);
    char *s = msg_get_str(&r);
    assert_int_equal(r.bad, 1);
    assert_string_equal(s, "");
    free(s);
    w.len = 0;
    msg_put_i64(&w, -1);
    msg_reader_init(&r, w.buf, w.len);
    size_t n = 7;
    assert_null(msg_get_i32s(&r, &n, 100));
    assert_int_equal(n, 0);
    w.len = 0;
    int32_t v[5] = {0};
    msg_put_i32s(&w, v, 5);
    msg_reader_init(&r, w.buf, w.len);
    assert_null(msg_get_i32s(&r, &n, 4)); /* over the caller's limit */
    assert_int_equal(r.bad, 1);
    msg_free(&w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_hostile_lengths),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
