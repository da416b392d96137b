/* Helpers shared by the C tests: cmocka includes, the location of ../shared, temp dirs, and a
 * main for MPI tests in which rank 0 reports and the failure count is agreed by all ranks. */
#ifndef RLAIF_TEST_UTIL_H
#define RLAIF_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* Directory of llama.cpp's published test data, or NULL (the test then skips with a message). */
static inline const char *test_shared_dir(void) {
    const char *s = getenv("RLAIF_SHARED");
    return (s && *s) ? s : NULL;
}

/* A fresh directory under $TEST_TMP (or /tmp) for this test; returned string is static. */
static inline const char *test_tmpdir(const char *name) {
    static char buf[1024];
    const char *base = getenv("TEST_TMP");
    snprintf(buf, sizeof buf, "%s/%s.XXXXXX", base && *base ? base : "/tmp", name);
    char *d = mkdtemp(buf);
    if (!d) fail_msg("mkdtemp %s failed", buf);
    return buf;
}

/* assert |a-b| <= atol + rtol*|b| */
#define assert_close(a, b, rtol, atol)                                                             \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        double d_ = a_ > b_ ? a_ - b_ : b_ - a_;                                                   \
        double tol_ = (atol) + (rtol) * (b_ < 0 ? -b_ : b_);                                       \
        if (!(d_ <= tol_))                                                                         \
            fail_msg("%s = %.9g, expected %s = %.9g (|diff| %.3g > tol %.3g)", #a, a_, #b, b_, d_, \
                     tol_);                                                                        \
    } while (0)

#ifdef RLAIF_MPI_TEST
#include <mpi.h>
#include <unistd.h>
/* Runs the group on every rank; only rank 0's TAP output reaches the runner. Exit status is the
 * largest failure count of any rank, so a failure on rank 3 fails the test. */
static inline int mpi_test_main(int argc, char **argv, const struct CMUnitTest *tests, size_t n,
                                const char *group) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) {
        if (!freopen("/dev/null", "w", stdout)) return 1;
    }
    int failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
    int worst = 0;
    MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0 && worst > failed) printf("not ok - a test failed on another rank\n");
    MPI_Finalize();
    return worst;
}
#endif

#endif
