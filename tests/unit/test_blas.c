/* blas: the core choice (only upgrades a known, weaker core; never an unknown one) and the
 * GEMM wrappers against plain loops. */
#include "test_util.h"

#include <math.h>

#include "blas.h"

static void test_core_choice(void **state) {
    (void)state;
    assert_null(blas_core_wanted("SapphireRapids")); /* already the strongest we know */
    assert_null(blas_core_wanted("SomeFutureCore")); /* unknown: trust OpenBLAS */
    const char *w = blas_core_wanted("Prescott");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        assert_string_equal(w, "SkylakeX");
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_string_equal(w, "Haswell");
    else
        assert_null(w);
    assert_non_null(blas_core_name());
    assert_non_null(blas_core_origin());
}

static void test_gemm_wrappers(void **state) {
    (void)state;
    enum { M = 5, N = 7, K = 3 };
    float A[M * K], At[K * M], B[N * K], Bt[K * N], C[M * N], D[M * N];
    for (int i = 0; i < M * K; i++) A[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < N * K; i++) B[i] = 0.5f * (float)(i % 3) - 0.3f;
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++) At[k * M + m] = A[m * K + k];
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) Bt[k * N + n] = B[n * K + k];
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < M * N; i++) C[i] = D[i] = 1.0f;
        if (pass == 0) blas_gemm_nt(M, N, K, 2.0f, A, K, B, K, 0.5f, C, N);
        if (pass == 1) blas_gemm_nn(M, N, K, 2.0f, A, K, Bt, N, 0.5f, C, N);
        if (pass == 2) blas_gemm_tn(M, N, K, 2.0f, At, M, Bt, N, 0.5f, C, N);
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++) s += (double)A[m * K + k] * B[n * K + k];
                assert_close(C[m * N + n], 2 * s + 0.5 * D[m * N + n], 1e-6, 1e-6);
            }
    }
    float y[N], x[K] = {1, -2, 0.5f};
    for (int n = 0; n < N; n++) y[n] = 3;
    blas_gemv(N, K, B, x, 1.0f, y);
    for (int n = 0; n < N; n++)
        assert_close(y[n], 3 + B[n * K] - 2 * B[n * K + 1] + 0.5 * B[n * K + 2], 1e-6, 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_choice),
        cmocka_unit_test(test_gemm_wrappers),
    };
    return cmocka_run_group_tests_name("blas", tests, NULL, NULL);
}
