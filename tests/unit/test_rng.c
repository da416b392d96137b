/* rng: Philox4x32-10 against the Random123 known-answer vectors, stream independence,
 * checkpoint/restore, and the distributions' first moments. */
#include "test_util.h"

#include <math.h>

#include "rng.h"

/* Known-answer vectors published with Random123 (kat_vectors, philox4x32 with 10 rounds). */
static void test_philox_known_answers(void **state) {
    (void)state;
    struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        rng_philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kat[i].out[j]);
    }
}

static void test_same_key_same_stream(void **state) {
    (void)state;
    rng a, b;
    rng_init(&a, 1234, RNG_SAMPLE, 7);
    rng_init(&b, 1234, RNG_SAMPLE, 7);
    for (int i = 0; i < 1000; i++) assert_int_equal(rng_u32(&a), rng_u32(&b));
}

/* Different seeds, purposes or streams: no shared prefix, and the pairwise correlation of their
 * uniforms over 20000 draws is within 4 standard errors of zero. */
static void test_different_keys_independent(void **state) {
    (void)state;
    const int n = 20000;
    struct {
        uint64_t seed;
        uint32_t purpose, stream;
    } keys[] = {{1, RNG_DATA, 0}, {2, RNG_DATA, 0}, {1, RNG_SAMPLE, 0}, {1, RNG_DATA, 1}};
    const int nk = 4;
    double *u = malloc(sizeof(double) * (size_t)n * nk);
    for (int k = 0; k < nk; k++) {
        rng r;
        rng_init(&r, keys[k].seed, keys[k].purpose, keys[k].stream);
        for (int i = 0; i < n; i++) u[k * n + i] = rng_uniform_double(&r) - 0.5;
    }
    for (int a = 0; a < nk; a++)
        for (int b = a + 1; b < nk; b++) {
            double sab = 0, saa = 0, sbb = 0;
            int same = 0;
            for (int i = 0; i < n; i++) {
                sab += u[a * n + i] * u[b * n + i];
                saa += u[a * n + i] * u[a * n + i];
                sbb += u[b * n + i] * u[b * n + i];
                same += u[a * n + i] == u[b * n + i];
            }
            double corr = sab / sqrt(saa * sbb);
            assert_true(fabs(corr) < 4.0 / sqrt((double)n));
            assert_true(same < 3);
        }
    free(u);
}

static void test_restore_continues_sequence(void **state) {
    (void)state;
    rng a;
    rng_init(&a, 99, RNG_INIT, 3);
    for (int i = 0; i < 37; i++) (void)rng_u32(&a); /* mid-block on purpose */
    (void)rng_normal(&a);
    uint64_t saved[RNG_STATE_WORDS];
    rng_state_get(&a, saved);
    uint32_t expect[100];
    for (int i = 0; i < 100; i++) expect[i] = rng_u32(&a);
    rng b;
    rng_init(&b, 0, 0, 0);
    (void)rng_u32(&b); /* stale cache must not leak through */
    rng_state_set(&b, saved);
    for (int i = 0; i < 100; i++) assert_int_equal(rng_u32(&b), expect[i]);
}

static void test_moments(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 5, RNG_TEST, 0);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    float umin = 1, umax = 0;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        su += u;
        umin = fminf(umin, u), umax = fmaxf(umax, u);
        double z = rng_normal(&r);
        sn += z, sn2 += z * z;
    }
    assert_true(umin >= 0.0f && umax < 1.0f);
    assert_close(su / n, 0.5, 0, 4 * sqrt(1.0 / 12 / n));
    assert_close(sn / n, 0.0, 0, 4 / sqrt((double)n));
    assert_close(sn2 / n, 1.0, 0, 4 * sqrt(2.0 / n));
    /* rng_below: every bucket of 7 within 5 sigma of n/7 */
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[rng_below(&r, 7)]++;
    for (int k = 0; k < 7; k++) assert_close(counts[k], 10000, 0, 5 * sqrt(10000 * 6.0 / 7));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_same_key_same_stream),
        cmocka_unit_test(test_different_keys_independent),
        cmocka_unit_test(test_restore_continues_sequence),
        cmocka_unit_test(test_moments),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
