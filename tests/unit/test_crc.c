/* crc: CRC-32C known answers, hardware against portable path, chunked updates. */
#include "test_util.h"

#include "crc.h"
#include "rng.h"

static void test_known_answers(void **state) {
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_portable(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0u);
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof ones);
    /* RFC 3720 B.4 test vectors */
    assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
}

static void test_paths_agree_and_chunk(void **state) {
    (void)state;
    enum { N = 100003 };
    unsigned char *buf = malloc(N);
    rng r;
    rng_init(&r, 1, RNG_TEST, 0);
    for (int i = 0; i < N; i++) buf[i] = (unsigned char)rng_u32(&r);
    uint32_t whole = crc32c(0, buf, N);
    assert_int_equal(whole, crc32c_portable(0, buf, N));
    /* odd offsets and lengths exercise the unaligned head and tail */
    for (int cut = 1; cut < 40; cut += 3) {
        uint32_t c = crc32c(0, buf, (size_t)cut);
        c = crc32c(c, buf + cut, N - (size_t)cut);
        assert_int_equal(c, whole);
        assert_int_equal(crc32c(0, buf + cut, 1000), crc32c_portable(0, buf + cut, 1000));
    }
    buf[N / 2] ^= 1;
    assert_int_not_equal(crc32c(0, buf, N), whole);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_paths_agree_and_chunk),
    };
    return cmocka_run_group_tests_name("crc", tests, NULL, NULL);
}
