/* blas: OpenBLAS set-up for this program, and thin row-major GEMM wrappers.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels once, when the library is loaded,
 * from the CPU model number. It does not know recent Xeons (Sapphire/Emerald Rapids) and falls
 * back to its Prescott (SSE3) kernels, four to five times slower than its AVX-512 ones. It reads
 * OPENBLAS_CORETYPE only at load time, so the only fix from inside the program is to set the
 * variable and exec ourselves again before any work is done: blas_init() does that, once,
 * when the detected core is weaker than what the CPU (and OS) support, and never when the user
 * set OPENBLAS_CORETYPE. MPI is not yet initialised at that point; exec keeps the pid and the
 * environment, so mpirun's bookkeeping is unaffected.
 *
 * Not here: our own GEMM. The wrappers only spell out the three products the engine uses. */
#ifndef RLAIF_BLAS_H
#define RLAIF_BLAS_H

/* Call first thing in main(). Fixes the core: may not return (re-exec with OPENBLAS_CORETYPE
 * set); on return the core in use is final. Set RLAIF_BLAS_NO_FIX=1 to keep what OpenBLAS
 * chose. Then sets one BLAS thread per process (the deck's threads_per_rank default; several
 * ranks share a node) unless OPENBLAS_NUM_THREADS or OMP_NUM_THREADS says otherwise. */
void blas_init(int argc, char **argv);

/* The core OpenBLAS uses ("SkylakeX", "Haswell", "Prescott", ...). */
const char *blas_core_name(void);
/* How the core was chosen: "set by rlaif", "OPENBLAS_CORETYPE from the environment" or
 * "detected by OpenBLAS"; and the core OpenBLAS itself had detected. */
const char *blas_core_origin(void);
const char *blas_core_detected(void);
/* The core blas_init would choose for this CPU, or NULL when OpenBLAS's choice is fine. */
const char *blas_core_wanted(const char *detected);

/* Threads per rank for BLAS calls (the deck's threads_per_rank); n >= 1. */
void blas_set_threads(int n);
int blas_get_threads(void);

/* C (M,N) = alpha * A (M,K) . B(N,K)^T + beta * C   -- y = x W^T with W stored (out,in) */
void blas_gemm_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);
/* C (M,N) = alpha * A (M,K) . B (K,N) + beta * C    -- dx = dy W */
void blas_gemm_nn(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);
/* C (M,N) = alpha * A (K,M)^T . B (K,N) + beta * C  -- dW += dy^T x */
void blas_gemm_tn(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);
/* y (N) = W (N,K) . x (K) + beta * y   -- one row of y = x W^T */
void blas_gemv(int N, int K, const float *W, const float *x, float beta, float *y);

#endif
