/* kernels: every optimised kernel against its plain reference on random data, the fast exp
 * against libm, and the rotary inverse against the forward. */
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "kernels.h"
#include "rng.h"

static float *randv(rng *r, size_t n, float scale) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * rng_normal(r);
    return v;
}

static float *copyv(const float *a, size_t n) {
    float *v = malloc(sizeof(float) * (n ? n : 1));
    memcpy(v, a, sizeof(float) * n);
    return v;
}

static void assert_all_close(const float *a, const float *b, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) assert_close(a[i], b[i], rtol, atol);
}

static void test_expf(void **state) {
    (void)state;
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        double rel = fabs((double)kern_expf(x) - exp((double)x)) / exp((double)x);
        if (rel > worst) worst = rel;
    }
    assert_true(worst < 3e-7);
    assert_true(kern_expf(-1000.0f) < 1e-37f);
    assert_true(kern_expf(-INFINITY) < 1e-37f);
}

static void test_rmsnorm(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 1, RNG_TEST, 0);
    int N = 7, C = 45;
    float *x = randv(&r, (size_t)N * C, 2), *w = randv(&r, C, 1),
          *dout = randv(&r, (size_t)N * C, 1);
    float *o1 = calloc((size_t)N * C, 4), *o2 = calloc((size_t)N * C, 4), r1[7], r2[7];
    kern_rmsnorm_fwd(o1, r1, x, w, N, C, 1e-5f);
    kern_rmsnorm_fwd_ref(o2, r2, x, w, N, C, 1e-5f);
    assert_all_close(o1, o2, (size_t)N * C, 1e-5, 1e-6);
    assert_all_close(r1, r2, N, 1e-5, 0);
    float *dx1 = randv(&r, (size_t)N * C, 1), *dx2 = copyv(dx1, (size_t)N * C);
    float *dw1 = randv(&r, C, 1), *dw2 = copyv(dw1, C);
    kern_rmsnorm_bwd(dx1, dw1, dout, x, w, r2, N, C);
    kern_rmsnorm_bwd_ref(dx2, dw2, dout, x, w, r2, N, C);
    assert_all_close(dx1, dx2, (size_t)N * C, 1e-4, 1e-5);
    assert_all_close(dw1, dw2, C, 1e-4, 1e-5);
    free(x), free(w), free(dout), free(o1), free(o2), free(dx1), free(dx2), free(dw1), free(dw2);
}

static void test_rope(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 2, RNG_TEST, 0);
    int N = 9, HS = 12, H = 3, ld = 40, S = 64;
    float theta = 10000.0f;
    float *ct = malloc(sizeof(float) * S * HS / 2), *st = malloc(sizeof(float) * S * HS / 2);
    kern_rope_tables(ct, st, S, HS, theta);
    int pos[9] = {0, 1, 2, 5, 17, 33, 40, 62, 63};
    for (int neox = 0; neox <= 1; neox++) {
        float *x = randv(&r, (size_t)N * ld, 1), *a = copyv(x, (size_t)N * ld);
        float *b = copyv(x, (size_t)N * ld);
        kern_rope(a, N, ld, H, HS, pos, ct, st, neox, 0);
        kern_rope_ref(b, N, ld, H, HS, pos, theta, neox, 0);
        assert_all_close(a, b, (size_t)N * ld, 1e-5, 1e-6);
        /* columns past the heads are untouched */
        for (int i = 0; i < N; i++)
            for (int j = H * HS; j < ld; j++) assert_true(a[i * ld + j] == x[i * ld + j]);
        kern_rope(a, N, ld, H, HS, pos, ct, st, neox, 1);
        assert_all_close(a, x, (size_t)N * ld, 1e-5, 1e-6);
        free(x), free(a), free(b);
    }
    free(ct), free(st);
}

static void test_swiglu(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 3, RNG_TEST, 0);
    int N = 5, FF = 37;
    float *gu = randv(&r, (size_t)N * 2 * FF, 3), *dh = randv(&r, (size_t)N * FF, 1);
    float *h1 = malloc(4 * N * FF), *h2 = malloc(4 * N * FF);
    kern_swiglu_fwd(h1, gu, N, FF);
    kern_swiglu_fwd_ref(h2, gu, N, FF);
    assert_all_close(h1, h2, (size_t)N * FF, 1e-5, 1e-6);
    float *d1 = malloc(8 * N * FF), *d2 = malloc(8 * N * FF);
    kern_swiglu_bwd(d1, dh, gu, N, FF);
    kern_swiglu_bwd_ref(d2, dh, gu, N, FF);
    assert_all_close(d1, d2, (size_t)N * 2 * FF, 1e-5, 1e-6);
    free(gu), free(dh), free(h1), free(h2), free(d1), free(d2);
}

static void test_row_lse(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 4, RNG_TEST, 0);
    int V = 1001;
    float *z = randv(&r, V, 4);
    float e1, e2;
    float l1 = kern_row_lse(z, V, &e1), l2 = kern_row_lse_ref(z, V, &e2);
    assert_close(l1, l2, 1e-6, 1e-6);
    assert_close(e1, e2, 1e-5, 1e-6);
    assert_close(kern_row_lse(z, V, NULL), l2, 1e-6, 1e-6);
    float *d1 = malloc(4 * V), *d2 = malloc(4 * V);
    kern_row_lse_bwd(d1, z, V, l2, e2, 17, 0.7f, -0.3f);
    kern_row_lse_bwd_ref(d2, z, V, l2, e2, 17, 0.7f, -0.3f);
    assert_all_close(d1, d2, V, 1e-5, 1e-7);
    /* in place, and no target */
    float *zz = copyv(z, V);
    kern_row_lse_bwd(zz, zz, V, l2, e2, -1, 0.7f, 0.5f);
    kern_row_lse_bwd_ref(d2, z, V, l2, e2, -1, 0.0f, 0.5f);
    assert_all_close(zz, d2, V, 1e-5, 1e-7);
    /* the gradient of log p[y] sums to zero over the vocabulary */
    kern_row_lse_bwd(d1, z, V, l2, e2, 3, 1.0f, 0.0f);
    double s = 0;
    for (int j = 0; j < V; j++) s += d1[j];
    assert_close(s, 0, 0, 1e-5);
    /* the fused cross-entropy row */
    float *za = copyv(z, V), *zb = copyv(z, V);
    float lpa = kern_row_logp_grad(za, V, 11, -0.25f),
          lpb = kern_row_logp_grad_ref(zb, V, 11, -0.25f);
    assert_close(lpa, lpb, 1e-5, 1e-6);
    assert_all_close(za, zb, V, 1e-5, 1e-8);
    free(z), free(zz), free(d1), free(d2), free(za), free(zb);
}

static void attn_case(int B, int T, int NH, int NKV, int HS) {
    rng r;
    rng_init(&r, 5, RNG_TEST, (uint32_t)T);
    int QKV = (NH + 2 * NKV) * HS, OD = NH * HS;
    size_t nq = (size_t)B * T * QKV, no = (size_t)B * T * OD, na = (size_t)B * NH * T * T;
    float *qkv = randv(&r, nq, 1), *dout = randv(&r, no, 1);
    float *o1 = calloc(no, 4), *o2 = calloc(no, 4), *a1 = calloc(na, 4), *a2 = calloc(na, 4);
    kern_attn_fwd(o1, a1, qkv, B, T, NH, NKV, HS);
    kern_attn_fwd_ref(o2, a2, qkv, B, T, NH, NKV, HS);
    assert_all_close(o1, o2, no, 1e-5, 1e-6);
    for (int bh = 0; bh < B * NH; bh++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j <= t; j++)
                assert_close(a1[(size_t)bh * T * T + t * T + j], a2[(size_t)bh * T * T + t * T + j],
                             1e-5, 1e-7);
    float *d1 = malloc(4 * nq), *d2 = malloc(4 * nq), *scratch = malloc(4 * (size_t)T * T);
    kern_attn_bwd(d1, scratch, dout, a2, qkv, B, T, NH, NKV, HS);
    kern_attn_bwd_ref(d2, dout, a2, qkv, B, T, NH, NKV, HS);
    assert_all_close(d1, d2, nq, 1e-4, 1e-5);
    free(qkv), free(dout), free(o1), free(o2), free(a1), free(a2), free(d1), free(d2),
        free(scratch);
}

static void test_attention(void **state) {
    (void)state;
    attn_case(2, 7, 4, 4, 8);    /* one block */
    attn_case(2, 150, 4, 2, 16); /* several blocks, grouped-query, ragged last block */
    attn_case(1, 64, 3, 1, 6);   /* exactly one block, multi-query */
}

static void test_gemm_small(void **state) {
    (void)state;
    rng r;
    rng_init(&r, 6, RNG_TEST, 0);
    int shapes[][3] = {{4, 8, 32}, {32, 100, 288}, {7, 13, 50}, {1, 5, 3}, {9, 4, 16}, {6, 33, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int lda = K + 3, ldw = K + 1, ldc = N + 2;
        float *A = randv(&r, (size_t)M * lda, 1), *W = randv(&r, (size_t)N * ldw, 1);
        float *c1 = randv(&r, (size_t)M * ldc, 1), *c2 = copyv(c1, (size_t)M * ldc);
        for (int beta = 0; beta <= 1; beta++) {
            kern_gemm_nt_small(M, N, K, A, lda, W, ldw, (float)beta, c1, ldc);
            kern_gemm_nt_small_ref(M, N, K, A, lda, W, ldw, (float)beta, c2, ldc);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++)
                    assert_close(c1[m * ldc + n], c2[m * ldc + n], 1e-5, 1e-5);
        }
        free(A), free(W), free(c1), free(c2);
    }
}

int main(void) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expf),       cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),       cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_row_lse),    cmocka_unit_test(test_attention),
        cmocka_unit_test(test_gemm_small),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
