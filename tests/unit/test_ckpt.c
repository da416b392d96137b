/* ckpt: round trip of every kind, precise read errors, and every way a checkpoint breaks:
 * truncation at several offsets, a flipped byte in tensor data and in metadata, a .tmp left by
 * a crash before the rename, a crash between the renames and the commit, a missing MANIFEST,
 * ckpt/latest pointing nowhere or holding garbage. Each must be detected, said precisely, and
 * resume must fall back to the previous whole checkpoint. */
#include "test_util.h"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "rng.h"

#define NPARAM 1000

static void expect_ok(int rc, const rl_err *e) {
    if (rc != ERR_OK) fail_msg("status %d: %s", rc, e->msg);
}

static void params_for(int64_t step, float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)step + 0.001f * (float)i;
}

/* Writes components "coordinator" and "policy" of one step and commits it. */
static void write_step(const char *run, int64_t step) {
    rl_err e;
    expect_ok(ckpt_step_begin(run, step, &e), &e);
    ckpt_file *f = NULL;
    expect_ok(ckpt_file_begin(run, step, "coordinator", &f, &e), &e);
    expect_ok(ckpt_write_i64_scalar(f, "step", step, &e), &e);
    expect_ok(ckpt_write_string(f, "stage", "rl", &e), &e);
    expect_ok(ckpt_file_commit(f, &e), &e);
    float *p = malloc(NPARAM * sizeof *p);
    params_for(step, p, NPARAM);
    expect_ok(ckpt_file_begin(run, step, "policy", &f, &e), &e);
    expect_ok(ckpt_write_f32(f, "policy/params", p, NPARAM, &e), &e);
    expect_ok(ckpt_write_f32(f, "policy/adam_m", p, NPARAM, &e), &e);
    expect_ok(ckpt_file_commit(f, &e), &e);
    free(p);
    const char *comps[2] = {"coordinator", "policy"};
    expect_ok(ckpt_commit_step(run, step, comps, 2, &e), &e);
}

static void file_path(char *buf, size_t n, const char *run, int64_t step, const char *name) {
    snprintf(buf, n, "%s/ckpt/step_%08lld/%s", run, (long long)step, name);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void copy_file(const char *from, const char *to, long limit) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    long done = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (limit >= 0 && done + (long)n > limit) n = (size_t)(limit - done);
        fwrite(buf, 1, n, b);
        done += (long)n;
        if (limit >= 0 && done >= limit) break;
    }
    fclose(a);
    fclose(b);
}

static void flip_byte(const char *path, long at) {
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_round_trip_every_kind(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_rt");
    rl_err e;
    float t3[3 * 4 * 5];
    for (int i = 0; i < 60; i++) t3[i] = (float)i * 0.5f - 7.0f;
    double d[3] = {1e-300, -2.5, 3.0e300};
    int64_t iv[4] = {INT64_MIN, -1, 0, INT64_MAX};
    unsigned char blob[300];
    for (int i = 0; i < 300; i++) blob[i] = (unsigned char)(i * 7);
    rng r;
    rng_init(&r, 42, RNG_SAMPLE, 3);
    for (int i = 0; i < 13; i++) (void)rng_u32(&r); /* mid-block */
    uint64_t states[3][RNG_STATE_WORDS];
    for (int k = 0; k < 3; k++) {
        rng q;
        rng_init(&q, 42, RNG_DATA, (uint32_t)k);
        for (int i = 0; i < k * 5; i++) (void)rng_u32(&q);
        rng_state_get(&q, states[k]);
    }
    const char *text = "policy: tiny\nnote: \"quotes\", tabs\tand ümlauts\n";

    ckpt_file *f = NULL;
    expect_ok(ckpt_file_begin(run, 7, "policy", &f, &e), &e);
    size_t dims[3] = {3, 4, 5};
    expect_ok(ckpt_write_f32_shape(f, "policy/layers.0/attn_q", t3, 3, dims, &e), &e);
    expect_ok(ckpt_write_f32(f, "policy/empty", NULL, 0, &e), &e);
    expect_ok(ckpt_write_f64(f, "kl/coef", d, 3, &e), &e);
    expect_ok(ckpt_write_i64(f, "data/cursors", iv, 4, &e), &e);
    expect_ok(ckpt_write_i64_scalar(f, "step", 7, &e), &e);
    expect_ok(ckpt_write_string(f, "deck", text, &e), &e);
    expect_ok(ckpt_write_string(f, "empty_text", "", &e), &e);
    expect_ok(ckpt_write_bytes(f, "optim/blob", blob, sizeof blob, &e), &e);
    expect_ok(ckpt_write_rng(f, "rng/sample", &r, &e), &e);
    expect_ok(ckpt_write_rng_states(f, "rng/data_per_rank", &states[0][0], 3, &e), &e);
    /* refused names: reserved, duplicate, malformed */
    assert_int_equal(ckpt_write_i64_scalar(f, "_ckpt_index", 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "reserved"));
    assert_int_equal(ckpt_write_i64_scalar(f, "step", 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "written twice"));
    assert_int_equal(ckpt_write_i64_scalar(f, "a//b", 1, &e), ERR_INPUT);
    expect_ok(ckpt_file_commit(f, &e), &e);
    const char *comps[1] = {"policy"};
    expect_ok(ckpt_commit_step(run, 7, comps, 1, &e), &e);

    int64_t step = -5;
    char notes[4096];
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 7);
    assert_string_equal(notes, "");

    expect_ok(ckpt_file_open(run, 7, "policy", &f, &e), &e);
    assert_true(ckpt_has(f, "policy/layers.0/attn_q"));
    assert_false(ckpt_has(f, "policy/layers.1/attn_q"));
    int nd = 0;
    size_t sd[CKPT_MAX_DIMS];
    expect_ok(ckpt_shape(f, "policy/layers.0/attn_q", &nd, sd, &e), &e);
    assert_int_equal(nd, 3);
    assert_int_equal(sd[0], 3);
    assert_int_equal(sd[2], 5);
    float t3b[60];
    expect_ok(ckpt_read_f32_shape(f, "policy/layers.0/attn_q", t3b, 3, dims, &e), &e);
    assert_memory_equal(t3, t3b, sizeof t3);
    memset(t3b, 0, sizeof t3b);
    expect_ok(ckpt_read_f32(f, "policy/layers.0/attn_q", t3b, 60, &e), &e); /* flat view */
    assert_memory_equal(t3, t3b, sizeof t3);
    expect_ok(ckpt_read_f32(f, "policy/empty", NULL, 0, &e), &e);
    double d2[3];
    expect_ok(ckpt_read_f64(f, "kl/coef", d2, 3, &e), &e);
    assert_memory_equal(d, d2, sizeof d);
    int64_t iv2[4], s = 0;
    expect_ok(ckpt_read_i64(f, "data/cursors", iv2, 4, &e), &e);
    assert_memory_equal(iv, iv2, sizeof iv);
    expect_ok(ckpt_read_i64_scalar(f, "step", &s, &e), &e);
    assert_int_equal(s, 7);
    char *t2 = NULL;
    expect_ok(ckpt_read_string(f, "deck", &t2, &e), &e);
    assert_string_equal(t2, text);
    free(t2);
    expect_ok(ckpt_read_string(f, "empty_text", &t2, &e), &e);
    assert_string_equal(t2, "");
    free(t2);
    void *b2 = NULL;
    size_t nb = 0;
    expect_ok(ckpt_read_bytes(f, "optim/blob", &b2, &nb, &e), &e);
    assert_int_equal(nb, sizeof blob);
    assert_memory_equal(blob, b2, sizeof blob);
    free(b2);
    /* the restored generator continues the saved sequence */
    rng r2;
    rng_init(&r2, 0, 0, 0);
    expect_ok(ckpt_read_rng(f, "rng/sample", &r2, &e), &e);
    for (int i = 0; i < 50; i++) assert_int_equal(rng_u32(&r2), rng_u32(&r));
    uint64_t states2[3][RNG_STATE_WORDS];
    expect_ok(ckpt_read_rng_states(f, "rng/data_per_rank", &states2[0][0], 3, &e), &e);
    assert_memory_equal(states, states2, sizeof states);
    ckpt_file_close(f);
}

static void test_read_errors_are_precise(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_err");
    write_step(run, 1);
    rl_err e;
    ckpt_file *f = NULL;
    expect_ok(ckpt_file_open(run, 1, "policy", &f, &e), &e);
    float *buf = calloc(2 * NPARAM, sizeof *buf);
    assert_int_equal(ckpt_read_f32(f, "policy/params", buf, NPARAM + 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "policy.h5"));
    assert_non_null(strstr(e.msg, "'policy/params'"));
    assert_non_null(strstr(e.msg, "(1000)"));
    assert_non_null(strstr(e.msg, "expected 1001 values"));
    size_t dims[2] = {10, 100};
    assert_int_equal(ckpt_read_f32_shape(f, "policy/params", buf, 2, dims, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "expected (10, 100)"));
    assert_int_equal(ckpt_read_f32(f, "policy/missing", buf, 1, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "no dataset 'policy/missing'"));
    int64_t v[NPARAM];
    assert_int_equal(ckpt_read_i64(f, "policy/params", v, NPARAM, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "holds float32, expected int64"));
    rng r;
    assert_int_equal(ckpt_read_rng(f, "policy/params", &r, &e), ERR_INPUT);
    ckpt_file_close(f);
    free(buf);
    assert_int_equal(ckpt_file_open(run, 1, "value", &f, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "value.h5 is missing"));
    assert_int_equal(ckpt_file_open(run, 1, "a/b", &f, &e), ERR_INPUT);
}

/* Truncating a committed file anywhere is caught, by HDF5 or by our checks, never a crash;
 * resume then falls back to the previous step and says why. */
static void test_truncation_at_several_offsets(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_trunc");
    write_step(run, 10);
    write_step(run, 20);
    char path[1200], good[1300];
    file_path(path, sizeof path, run, 20, "policy.h5");
    snprintf(good, sizeof good, "%s.good", path);
    copy_file(path, good, -1);
    long size = file_size(path);
    assert_true(size > 8000);
    long offsets[] = {0, 4, 8, 30, 47, 200, size / 3, size / 2, size - 4096, size - 100, size - 1};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        copy_file(good, path, offsets[i]);
        assert_int_equal(file_size(path), offsets[i]);
        rl_err e;
        /* the file alone, without the manifest's size check */
        ckpt_file *f = NULL;
        int rc = ckpt_file_open(run, 20, "policy", &f, &e);
        if (rc == ERR_OK) {
            rc = ckpt_verify_step(run, 20, CKPT_VERIFY_FULL, &e);
            ckpt_file_close(f);
        }
        if (rc != ERR_STATE)
            fail_msg("truncation at %ld of %ld bytes not detected", offsets[i], size);
        assert_non_null(strstr(e.msg, "policy.h5"));
        /* the whole resume path */
        int64_t step = -1;
        char notes[8192];
        expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
        assert_int_equal(step, 10);
        if (getenv("CKPT_TEST_VERBOSE"))
            print_message("# offset %ld: file alone: %s\n# resume notes: %s", offsets[i], e.msg,
                          notes);
        assert_non_null(strstr(notes, "step 20 (ckpt/latest) is not usable"));
        assert_non_null(strstr(notes, "truncated"));
    }
    copy_file(good, path, -1);
    int64_t step = -1;
    rl_err e;
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 20);
}

static long dataset_offset(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t a = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
    return (long)a;
}

static void test_flipped_byte_in_tensor_data(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_flip");
    write_step(run, 10);
    write_step(run, 20);
    char path[1200];
    file_path(path, sizeof path, run, 20, "policy.h5");
    long off = dataset_offset(path, "policy/adam_m");
    assert_true(off > 0);
    flip_byte(path, off + 4 * 517 + 2); /* inside element 517 */
    rl_err e;
    /* HDF5 reads it without complaint; our checksums do not: the whole file's (in the
     * MANIFEST, checked before HDF5 opens the file) and the dataset's (in the file's index) */
    assert_int_equal(ckpt_verify_step(run, 20, CKPT_VERIFY_FULL, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "policy.h5 fails its file checksum"));
    int64_t step = -1;
    char notes[4096];
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    if (getenv("CKPT_TEST_VERBOSE")) print_message("# resume notes: %s", notes);
    assert_int_equal(step, 10);
    assert_non_null(strstr(notes, "policy.h5"));
    ckpt_file *g = NULL;
    expect_ok(ckpt_file_open(run, 20, "policy", &g, &e), &e);
    assert_int_equal(ckpt_file_verify(g, CKPT_VERIFY_FULL, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "'policy/adam_m' fails its checksum"));
    ckpt_file_close(g);
    /* quick verification does not read data; the read itself then refuses the tensor */
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_QUICK, NULL, 0, &e), &e);
    assert_int_equal(step, 20);
    ckpt_file *f = NULL;
    expect_ok(ckpt_file_open(run, 20, "policy", &f, &e), &e);
    float *p = malloc(NPARAM * sizeof *p);
    expect_ok(ckpt_read_f32(f, "policy/params", p, NPARAM, &e), &e); /* untouched tensor */
    assert_int_equal(ckpt_read_f32(f, "policy/adam_m", p, NPARAM, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "checksum"));
    free(p);
    ckpt_file_close(f);
}

static void test_flipped_byte_in_metadata(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_meta");
    write_step(run, 10);
    write_step(run, 20);
    char path[1200];
    file_path(path, sizeof path, run, 20, "coordinator.h5");
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    H5O_info_t oi;
    assert_true(H5Oget_info_by_name2(h, "step", &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
    H5Fclose(h);
    flip_byte(path, (long)oi.addr + 10); /* object header of dataset "step" */
    rl_err e;
    assert_int_equal(ckpt_verify_step(run, 20, CKPT_VERIFY_QUICK, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "coordinator.h5"));
    flip_byte(path, 20); /* and the superblock (v2, checksummed) */
    assert_int_equal(ckpt_verify_step(run, 20, CKPT_VERIFY_QUICK, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "does not open as HDF5"));
    int64_t step = -1;
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 10);
}

/* A child writes part of step 30 and is killed before ckpt_file_commit: its .tmp stays. */
static void test_crash_before_rename(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_crash");
    write_step(run, 20);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        rl_err e;
        ckpt_file *f = NULL;
        float *p = calloc(1 << 20, sizeof *p);
        if (ckpt_step_begin(run, 30, &e) || ckpt_file_begin(run, 30, "policy", &f, &e) ||
            ckpt_write_f32(f, "policy/params", p, 1 << 20, &e))
            _exit(3);
        if (write(fds[1], "k", 1) != 1) _exit(4);
        for (;;) pause();
    }
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    char tmp[1200];
    file_path(tmp, sizeof tmp, run, 30, "policy.h5.tmp");
    assert_true(file_size(tmp) >= 0);
    /* a stale .tmp inside the committed step is ignored too */
    char stale[1200];
    file_path(stale, sizeof stale, run, 20, "value.h5.tmp");
    write_text(stale, "half a file");
    rl_err e;
    int64_t step = -1;
    char notes[4096];
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 20);
    assert_string_equal(notes, "");
    /* committing step 30 with the unfinished component is refused, latest unchanged */
    const char *comps[1] = {"policy"};
    assert_int_equal(ckpt_commit_step(run, 30, comps, 1, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "policy.h5 is missing"));
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 20);
    /* a file without its marker (renamed by hand) is named as incomplete */
    char h5[1200];
    file_path(h5, sizeof h5, run, 30, "policy.h5");
    assert_int_equal(rename(tmp, h5), 0);
    assert_int_equal(ckpt_commit_step(run, 30, comps, 1, &e), ERR_STATE);
    assert_true(strstr(e.msg, "no completeness marker") || strstr(e.msg, "does not open"));
}

/* Every component renamed into place, then a crash before ckpt_commit_step. */
static void test_crash_between_rename_and_commit(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_nocommit");
    write_step(run, 20);
    rl_err e;
    ckpt_file *f = NULL;
    expect_ok(ckpt_step_begin(run, 30, &e), &e);
    expect_ok(ckpt_file_begin(run, 30, "coordinator", &f, &e), &e);
    expect_ok(ckpt_write_i64_scalar(f, "step", 30, &e), &e);
    expect_ok(ckpt_file_commit(f, &e), &e);
    int64_t step = -1;
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 20);
    /* and latest removed by hand: the uncommitted step is still not taken */
    char latest[1200];
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run);
    unlink(latest);
    char notes[4096];
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 20);
    assert_non_null(strstr(notes, "step 30 was never committed"));
}

static void test_missing_manifest_and_bad_latest(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_manifest");
    write_step(run, 10);
    write_step(run, 20);
    write_step(run, 30);
    char mpath[1200], latest[1200], notes[8192];
    rl_err e;
    int64_t step = -1;
    file_path(mpath, sizeof mpath, run, 30, "MANIFEST");
    unlink(mpath);
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 20);
    assert_non_null(strstr(notes, "step 30 (ckpt/latest) is not usable"));
    assert_non_null(strstr(notes, "no MANIFEST"));

    /* a manifest cut short */
    file_path(mpath, sizeof mpath, run, 20, "MANIFEST");
    char full[1300];
    snprintf(full, sizeof full, "%s.full", mpath);
    copy_file(mpath, full, -1);
    copy_file(full, mpath, file_size(full) - 4);
    snprintf(latest, sizeof latest, "%s/ckpt/latest", run);
    write_text(latest, "step_00000020\n");
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 10);
    assert_non_null(strstr(notes, "truncated"));
    copy_file(full, mpath, -1);

    /* latest names a directory that is gone */
    write_text(latest, "step_00000040\n");
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 20);
    assert_non_null(strstr(notes, "step_00000040 is missing"));

    /* latest holds garbage: every committed step directory is considered */
    write_text(latest, "\x01garbage");
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, 20);
    assert_non_null(strstr(notes, "ckpt/latest is unusable"));

    /* nothing usable at all */
    char p[1200];
    file_path(p, sizeof p, run, 20, "policy.h5");
    assert_int_equal(truncate(p, 0), 0);
    file_path(p, sizeof p, run, 10, "policy.h5");
    unlink(p);
    assert_int_equal(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e),
                     ERR_STATE);
    assert_int_equal(step, -1);
    assert_non_null(strstr(e.msg, "no usable checkpoint"));

    /* no checkpoint at all */
    const char *empty = test_tmpdir("ckpt_none");
    expect_ok(ckpt_find_latest(empty, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e), &e);
    assert_int_equal(step, -1);
}

/* A component rewritten after the commit (an attempt that skipped ckpt_step_begin) no longer
 * matches the MANIFEST, even when the size happens to be the same. */
static void test_rewritten_component_is_refused(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_rewrite");
    write_step(run, 10);
    write_step(run, 20);
    rl_err e;
    ckpt_file *f = NULL;
    float *p = malloc(NPARAM * sizeof *p);
    params_for(21, p, NPARAM);
    expect_ok(ckpt_file_begin(run, 20, "policy", &f, &e), &e);
    expect_ok(ckpt_write_f32(f, "policy/params", p, NPARAM, &e), &e);
    expect_ok(ckpt_write_f32(f, "policy/adam_m", p, NPARAM, &e), &e);
    expect_ok(ckpt_file_commit(f, &e), &e);
    free(p);
    char path[1200];
    file_path(path, sizeof path, run, 20, "policy.h5");
    assert_int_equal(ckpt_verify_step(run, 20, CKPT_VERIFY_QUICK, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "not the file that was committed"));
    int64_t step = -1;
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 10);
}

static void test_step_begin_and_prune(void **state) {
    (void)state;
    const char *run = test_tmpdir("ckpt_prune");
    rl_err e;
    for (int s = 1; s <= 5; s++) write_step(run, s * 10);
    assert_int_equal(ckpt_step_begin(run, 50, &e), ERR_STATE); /* latest is protected */
    assert_non_null(strstr(e.msg, "latest"));
    /* leftovers of an attempt at 60 are cleared by step_begin */
    ckpt_file *f = NULL;
    expect_ok(ckpt_file_begin(run, 60, "policy", &f, &e), &e);
    expect_ok(ckpt_file_commit(f, &e), &e);
    char p[1200];
    file_path(p, sizeof p, run, 60, "policy.h5");
    assert_true(file_size(p) > 0);
    expect_ok(ckpt_step_begin(run, 60, &e), &e);
    assert_true(file_size(p) < 0);
    /* an uncommitted leftover older than latest goes; step 60 (newer) is left alone */
    file_path(p, sizeof p, run, 30, "MANIFEST");
    unlink(p);
    expect_ok(ckpt_prune(run, 2, &e), &e);
    int expect_present[7] = {0, 0, 0, 0, 1, 1, 1}; /* steps 0..60 by 10: 40, 50 kept, 60 new */
    for (int s = 1; s <= 6; s++) {
        char dir[1200];
        snprintf(dir, sizeof dir, "%s/ckpt/step_%08d", run, s * 10);
        struct stat st;
        int present = stat(dir, &st) == 0;
        if (present != expect_present[s]) fail_msg("step %d present=%d", s * 10, present);
    }
    int64_t step = -1;
    expect_ok(ckpt_find_latest(run, &step, CKPT_VERIFY_FULL, NULL, 0, &e), &e);
    assert_int_equal(step, 50);
    assert_int_equal(ckpt_prune(run, 0, &e), ERR_INPUT);
}

/* Files are readable by h5py as documented. */
static void test_h5py_reads_checkpoint(void **state) {
    (void)state;
    const char *py = getenv("PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import h5py' 2>/dev/null", py);
    if (system(cmd) != 0) {
        print_message("# SKIP: %s has no h5py\n", py);
        return;
    }
    const char *run = test_tmpdir("ckpt_h5py");
    write_step(run, 3);
    snprintf(cmd, sizeof cmd,
             "%s -c \"import h5py, numpy as np\n"
             "f = h5py.File('%s/ckpt/step_00000003/policy.h5', 'r')\n"
             "p = f['policy/params'][:]\n"
             "assert p.dtype == np.float32 and p.shape == (1000,) and abs(p[10] - 3.01) < 1e-6\n"
             "i = f['_ckpt_index']\n"
             "assert i.attrs['step'] == 3 and i.attrs['component'] == 'policy'\n"
             "assert sorted(n.decode() for n in i['name']) == ['policy/adam_m', 'policy/params']\n"
             "c = h5py.File('%s/ckpt/step_00000003/coordinator.h5', 'r')\n"
             "assert c['step'][()] == 3 and c['stage'].asstr()[()] == 'rl'\n"
             "\"",
             py, run, run);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests' own HDF5 calls on damaged files */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_kind),
        cmocka_unit_test(test_read_errors_are_precise),
        cmocka_unit_test(test_truncation_at_several_offsets),
        cmocka_unit_test(test_flipped_byte_in_tensor_data),
        cmocka_unit_test(test_flipped_byte_in_metadata),
        cmocka_unit_test(test_crash_before_rename),
        cmocka_unit_test(test_crash_between_rename_and_commit),
        cmocka_unit_test(test_missing_manifest_and_bad_latest),
        cmocka_unit_test(test_rewritten_component_is_refused),
        cmocka_unit_test(test_step_begin_and_prune),
        cmocka_unit_test(test_h5py_reads_checkpoint),
    };
    return cmocka_run_group_tests_name("ckpt", tests, NULL, NULL);
}
