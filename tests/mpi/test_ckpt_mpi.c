/* ckpt under MPI (mpi-np: 3): each rank writes its own component of a step, rank 0 gathers
 * every rank's RNG state into coordinator.h5 and commits; resume finds the step, every rank
 * reads its component back and its generator continues the same sequence. A step in which one
 * rank fails is not committed and resume keeps the previous one. */
#define RLAIF_MPI_TEST
#include "test_util.h"

#include <hdf5.h>

#include "ckpt.h"
#include "rng.h"

#define NP_PARAMS 4096

static const char *component_of(int rank) {
    static const char *names[] = {"coordinator", "policy", "reward", "value", "judge"};
    return rank < 5 ? names[rank] : "extra";
}

static void fill(float *p, int rank, int64_t step) {
    for (int i = 0; i < NP_PARAMS; i++) p[i] = (float)(rank * 1000 + step) + 1e-3f * (float)i;
}

/* Every rank: writes its component of `step` (fail_rank aborts its file instead); rank 0
 * commits only when every rank reports success. Returns the commit status on every rank. */
static int checkpoint_step(const char *run, int64_t step, rng *r, int fail_rank) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rl_err e;
    int rc = ERR_OK;
    if (rank == 0) rc = ckpt_step_begin(run, step, &e);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc) return rc;

    uint64_t mine[RNG_STATE_WORDS];
    rng_state_get(r, mine);
    uint64_t *all = rank == 0 ? malloc(sizeof(uint64_t) * RNG_STATE_WORDS * (size_t)size) : NULL;
    MPI_Gather(mine, RNG_STATE_WORDS, MPI_UINT64_T, all, RNG_STATE_WORDS, MPI_UINT64_T, 0,
               MPI_COMM_WORLD);

    ckpt_file *f = NULL;
    rc = ckpt_file_begin(run, step, component_of(rank), &f, &e);
    float *p = malloc(NP_PARAMS * sizeof *p);
    fill(p, rank, step);
    if (!rc) rc = ckpt_write_f32(f, "params", p, NP_PARAMS, &e);
    if (!rc) rc = ckpt_write_i64_scalar(f, "rank", rank, &e);
    if (!rc && rank == 0) rc = ckpt_write_rng_states(f, "rng/sample", all, (size_t)size, &e);
    if (!rc && rank == fail_rank) {
        ckpt_file_abort(f); /* this rank "dies" before committing */
        rc = ERR_IO;
    } else if (!rc) {
        rc = ckpt_file_commit(f, &e);
    }
    free(p);
    free(all);

    int worst = 0;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int crc = worst;
    if (rank == 0 && worst == ERR_OK) {
        const char *comps[8];
        for (int i = 0; i < size && i < 8; i++) comps[i] = component_of(i);
        crc = ckpt_commit_step(run, step, comps, (size_t)size, &e);
        if (crc) print_message("# commit failed: %s\n", e.msg);
    }
    MPI_Bcast(&crc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return crc;
}

static void test_each_rank_writes_rank0_commits(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char run[1024] = "";
    if (rank == 0) snprintf(run, sizeof run, "%s", test_tmpdir("ckpt_mpi"));
    MPI_Bcast(run, sizeof run, MPI_CHAR, 0, MPI_COMM_WORLD);

    rng r;
    rng_init(&r, 2024, RNG_SAMPLE, (uint32_t)rank);
    for (int i = 0; i < 10 + 7 * rank; i++) (void)rng_u32(&r);
    assert_int_equal(checkpoint_step(run, 10, &r, -1), ERR_OK);
    for (int i = 0; i < 5 + rank; i++) (void)rng_u32(&r);
    rng saved = r; /* the state checkpointed at step 20 */
    assert_int_equal(checkpoint_step(run, 20, &r, -1), ERR_OK);
    uint32_t expect[64];
    for (int i = 0; i < 64; i++) expect[i] = rng_u32(&r);
    /* step 30: the last rank fails before committing its file; nothing is committed */
    assert_int_not_equal(checkpoint_step(run, 30, &r, size - 1), ERR_OK);

    /* resume: rank 0 finds the step, everyone opens their own component */
    int64_t step = -1;
    rl_err e;
    if (rank == 0) {
        char notes[4096];
        int rc = ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e);
        if (rc) fail_msg("%s", e.msg);
        assert_int_equal(ckpt_prune(run, 1, &e), ERR_OK);
    }
    MPI_Bcast(&step, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    assert_int_equal(step, 20);

    ckpt_file *f = NULL;
    int rc = ckpt_file_open(run, step, component_of(rank), &f, &e);
    if (rc) fail_msg("rank %d: %s", rank, e.msg);
    float *p = malloc(NP_PARAMS * sizeof *p), *q = malloc(NP_PARAMS * sizeof *q);
    fill(q, rank, step);
    assert_int_equal(ckpt_read_f32(f, "params", p, NP_PARAMS, &e), ERR_OK);
    assert_memory_equal(p, q, NP_PARAMS * sizeof *p);
    int64_t who = -1;
    assert_int_equal(ckpt_read_i64_scalar(f, "rank", &who, &e), ERR_OK);
    assert_int_equal(who, rank);
    free(p);
    free(q);

    /* rank 0 reads every rank's RNG state and sends each its own */
    uint64_t *all = NULL, mine[RNG_STATE_WORDS];
    if (rank == 0) {
        all = malloc(sizeof(uint64_t) * RNG_STATE_WORDS * (size_t)size);
        if (ckpt_read_rng_states(f, "rng/sample", all, (size_t)size, &e)) fail_msg("%s", e.msg);
    }
    ckpt_file_close(f);
    MPI_Scatter(all, RNG_STATE_WORDS, MPI_UINT64_T, mine, RNG_STATE_WORDS, MPI_UINT64_T, 0,
                MPI_COMM_WORLD);
    free(all);
    uint64_t want[RNG_STATE_WORDS];
    rng_state_get(&saved, want);
    assert_memory_equal(mine, want, sizeof want);
    rng restored;
    rng_init(&restored, 0, 0, 0);
    rng_state_set(&restored, mine);
    for (int i = 0; i < 64; i++) assert_int_equal(rng_u32(&restored), expect[i]);

    /* prune kept only step 20; the uncommitted step 30 (newer than latest) is left alone */
    if (rank == 0) {
        char d[1200];
        snprintf(d, sizeof d, "%s/ckpt/step_%08d", run, 10);
        assert_int_not_equal(access(d, F_OK), 0);
        snprintf(d, sizeof d, "%s/ckpt/step_%08d", run, 30);
        assert_int_equal(access(d, F_OK), 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_rank_writes_rank0_commits),
    };
    return mpi_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], "ckpt_mpi");
}
