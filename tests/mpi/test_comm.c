/* comm: role split, the sleeping wait, chunked allreduce.  mpi-np: 4 */
#define RLAIF_MPI_TEST
#include "test_util.h"

#include "comm.h"
#include "log.h"

/* 4 ranks: coordinator + 1 judge + 1 reward + 1 policy; each role has its own communicator. */
static void test_role_split(void **state) {
    (void)state;
    comm_ctx c;
    rl_err e = {0};
    assert_int_equal(comm_setup(&c, 1, 1, 1, &e), ERR_OK);
    const comm_role expect[4] = {ROLE_COORD, ROLE_JUDGE, ROLE_REWARD, ROLE_POLICY};
    assert_int_equal(c.role, expect[c.rank]);
    assert_int_equal(c.role_size, 1);
    assert_int_equal(c.role_rank, 0);
    assert_int_equal(comm_world_rank(&c, ROLE_POLICY, 0), 3);
    /* an allreduce on the role communicator only sums the role's own ranks */
    int v = c.rank + 1;
    assert_int_equal(comm_allreduce_max_int(&v, c.role_comm), ERR_OK);
    assert_int_equal(v, c.rank + 1);
    comm_teardown(&c);
}

static void test_split_two_policy(void **state) {
    (void)state;
    comm_ctx c;
    rl_err e = {0};
    /* 4 ranks = 1 + 0 judge + 1 reward + 2 policy */
    assert_int_equal(comm_setup(&c, 0, 1, 2, &e), ERR_OK);
    if (c.rank >= 2) {
        assert_int_equal(c.role, ROLE_POLICY);
        assert_int_equal(c.role_size, 2);
        assert_int_equal(c.role_rank, c.rank - 2);
        float x[3] = {1.0f * (float)c.rank, 2, 3};
        assert_int_equal(comm_allreduce_sum_f32(x, 3, c.role_comm), ERR_OK);
        assert_close(x[0], 5.0, 0, 0);
        assert_close(x[2], 6.0, 0, 0);
    }
    comm_teardown(&c);
}

/* A world of the wrong size is refused on every rank with both numbers named. */
static void test_size_mismatch(void **state) {
    (void)state;
    comm_ctx c;
    rl_err e = {0};
    assert_int_equal(comm_setup(&c, 2, 2, 4, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "asks for 9 ranks"));
    assert_non_null(strstr(e.msg, "mpirun started 4"));
}

/* Chunking: 1000 floats summed in chunks of 7 equal the unchunked sum. */
static void test_chunked_allreduce(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float a[1000], b[1000];
    for (int i = 0; i < 1000; i++) a[i] = b[i] = (float)(i * (rank + 1)) * 0.5f;
    assert_int_equal(comm_allreduce_sum_f32_chunked(a, 1000, 7, MPI_COMM_WORLD), ERR_OK);
    MPI_Allreduce(MPI_IN_PLACE, b, 1000, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < 1000; i++) assert_true(a[i] == b[i]);
    assert_close(a[999], 999 * 0.5 * size * (size + 1) / 2.0, 0, 0);
}

/* Rank 1 waits 2 s for a message from rank 0; its CPU time must stay under 5% of the wall time. */
static void test_waiting_rank_sleeps(void **state) {
    (void)state;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    comm_barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        comm_sleep_us(2000000);
        int token = 42;
        assert_int_equal(comm_send(&token, 1, MPI_INT, 1, TAG_CONTROL, MPI_COMM_WORLD), ERR_OK);
    } else if (rank == 1) {
        double w0 = log_now(), c0 = log_cpu_seconds();
        int token = 0;
        assert_int_equal(comm_recv(&token, 1, MPI_INT, 0, TAG_CONTROL, MPI_COMM_WORLD, NULL),
                         ERR_OK);
        double wall = log_now() - w0, cpu = log_cpu_seconds() - c0;
        assert_int_equal(token, 42);
        assert_true(wall > 1.9);
        double fig[2] = {wall, cpu};
        comm_send(fig, 2, MPI_DOUBLE, 0, TAG_STATUS, MPI_COMM_WORLD);
        if (cpu >= 0.05 * wall) fail_msg("waiting rank used %.1f%% of a core", 100 * cpu / wall);
    }
    if (rank == 0) {
        double fig[2];
        comm_recv(fig, 2, MPI_DOUBLE, 1, TAG_STATUS, MPI_COMM_WORLD, NULL);
        printf("# measured: a rank waiting %.2f s in comm_recv used %.4f s of CPU (%.2f%% of the "
               "wall time; the limit is 5%%)\n",
               fig[0], fig[1], 100 * fig[1] / fig[0]);
        fflush(stdout);
    }
    /* the other ranks wait at a sleeping barrier meanwhile */
    double w0 = log_now(), c0 = log_cpu_seconds();
    comm_barrier(MPI_COMM_WORLD);
    if (rank >= 2) {
        double wall = log_now() - w0, cpu = log_cpu_seconds() - c0;
        if (wall > 1.0 && cpu >= 0.05 * wall)
            fail_msg("rank %d at the barrier used %.1f%% of a core", rank, 100 * cpu / wall);
    }
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_split),          cmocka_unit_test(test_split_two_policy),
        cmocka_unit_test(test_size_mismatch),       cmocka_unit_test(test_chunked_allreduce),
        cmocka_unit_test(test_waiting_rank_sleeps),
    };
    return mpi_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], "comm");
}
