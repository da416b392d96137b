/* blas: see include/blas.h. Chooses the OpenBLAS core at start-up; wraps cblas_sgemm. */
#include "blas.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REEXEC_MARK "RLAIF_BLAS_REEXEC"

/* OpenBLAS x86 cores from weakest to strongest for single-precision GEMM. The names are the
 * ones openblas_get_corename() returns; unknown names rank 0 (never "upgraded" blindly). */
static const char *const core_rank[] = {"Prescott", "Core2",    "Penryn",      "Dunnington",
                                        "Nehalem",  "Atom",     "Sandybridge", "Haswell",
                                        "Zen",      "SkylakeX", "Cooperlake",  "SapphireRapids"};

static int rank_of(const char *name) {
    for (size_t i = 0; i < sizeof core_rank / sizeof core_rank[0]; i++)
        if (name && strcasecmp(name, core_rank[i]) == 0) return (int)i + 1;
    return 0;
}

const char *blas_core_wanted(const char *detected) {
    const char *want = NULL;
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the AVX/AVX-512 state (XCR0). */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
    if (!want) return NULL;
    int have = rank_of(detected);
    /* Only replace a known core that is weaker than the wanted one; an unknown name may be a
     * newer core than this table knows. */
    if (have == 0 || have >= rank_of(want)) return NULL;
    return want;
}

/* The decision lives in the environment (no mutable globals): REEXEC_MARK holds the core
 * OpenBLAS had detected when we re-executed; it stays set so that blas_core_origin can report
 * it and child rlaif processes, which inherit OPENBLAS_CORETYPE too, do not re-exec again. */
static void fix_core(char **argv) {
    if (getenv(REEXEC_MARK)) return;
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user && *user) return;
    const char *nofix = getenv("RLAIF_BLAS_NO_FIX");
    if (nofix && *nofix && strcmp(nofix, "0") != 0) return;
    const char *detected = openblas_get_corename();
    const char *want = blas_core_wanted(detected);
    if (!want) return;
    char det[64];
    snprintf(det, sizeof det, "%s", detected);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv(REEXEC_MARK, det, 1);
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc?): carry on with the slow kernels rather than fail the run */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARK);
}

void blas_init(int argc, char **argv) {
    (void)argc;
    fix_core(argv);
    const char *o = getenv("OPENBLAS_NUM_THREADS"), *p = getenv("OMP_NUM_THREADS");
    if (!(o && *o) && !(p && *p)) openblas_set_num_threads(1);
}

const char *blas_core_name(void) {
    return openblas_get_corename();
}
const char *blas_core_origin(void) {
    const char *mark = getenv(REEXEC_MARK), *user = getenv("OPENBLAS_CORETYPE");
    if (mark && *mark) return "set by rlaif";
    if (user && *user) return "OPENBLAS_CORETYPE from the environment";
    return "detected by OpenBLAS";
}

const char *blas_core_detected(void) {
    const char *mark = getenv(REEXEC_MARK);
    return mark && *mark ? mark : openblas_get_corename();
}

void blas_set_threads(int n) {
    openblas_set_num_threads(n < 1 ? 1 : n);
}
int blas_get_threads(void) {
    return openblas_get_num_threads();
}

void blas_gemm_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void blas_gemm_nn(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void blas_gemm_tn(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
}

void blas_gemv(int N, int K, const float *W, const float *x, float beta, float *y) {
    if (N <= 0) return;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, W, K, x, 1, beta, y, 1);
}
