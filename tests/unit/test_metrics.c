/* metrics: layout as h5py sees it, refusal to overwrite, resume and truncation, interval
 * flushing, and a SIGKILL between flushes that must leave a whole file with the flushed rows. */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "h5io.h"
#include "log.h"
#include "metrics.h"

static const char *python(void) {
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* Runs a Python snippet with the file path as sys.argv[1]; returns its exit status. */
static int run_python(const char *path, const char *code) {
    char script[1200];
    snprintf(script, sizeof script, "%s.py", path);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(code, f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s %s", python(), script, path);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int have_h5py(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -c 'import h5py' 2>/dev/null", python());
    int st = system(cmd);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static metrics_open_opts opts_new(void) {
    static const int layout[4] = {1, 2, 2, 4};
    metrics_open_opts o = {0};
    o.mode = METRICS_NEW;
    o.resume_step = METRICS_KEEP_ALL; /* ignored by METRICS_NEW */
    o.deck_yaml = "run:\n  seed: 7\n";
    o.version = "rlaif 0.1.0\nhdf5: 1.10.8\n";
    o.rank_layout = layout;
    o.n_rank_layout = 4;
    o.flush_interval = 30;
    return o;
}

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* Rows stored in the file for a series (the C API, not metrics_count); -1 when the file does
 * not open, -2 when the series does not. */
static int64_t file_rows(const char *path, const char *series, int64_t *steps, double *values,
                         size_t cap) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    char ds[256];
    snprintf(ds, sizeof ds, "metrics/%s", series);
    if (h5io_exists(f, ds) <= 0) {
        H5Fclose(f);
        return 0;
    }
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    if (d < 0) {
        H5Fclose(f);
        return -2;
    }
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    if (steps && (size_t)n <= cap) {
        struct {
            int64_t step;
            double value;
        } *rows = malloc((size_t)n * 16 + 16);
        hid_t t = H5Tcreate(H5T_COMPOUND, 16);
        H5Tinsert(t, "step", 0, H5T_NATIVE_INT64);
        H5Tinsert(t, "value", 8, H5T_NATIVE_DOUBLE);
        H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows);
        for (hssize_t i = 0; i < n; i++) steps[i] = rows[i].step, values[i] = rows[i].value;
        H5Tclose(t);
        free(rows);
    }
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
    return n;
}

static void test_layout_h5py(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_layout");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    for (int s = 0; s < 50; s++) {
        assert_int_equal(metrics_append(m, "reward", s, 0.5 * s, &e), ERR_OK);
        assert_int_equal(metrics_append(m, "judge/pairs_per_s", s, 100.0 + s, &e), ERR_OK);
        if (s == 20) assert_int_equal(metrics_flush(m, &e), ERR_OK); /* two appends to one table */
    }
    assert_int_equal(metrics_set_summary(m, "win_rate", 0.25, &e), ERR_OK);
    assert_int_equal(metrics_set_summary(m, "win_rate", 0.71, &e), ERR_OK); /* replaces */
    assert_int_equal(metrics_set_summary(m, "eval/alignment", 0.78, &e), ERR_OK);
    assert_int_equal(metrics_set_summary_str(m, "stopped_because", "max_steps", &e), ERR_OK);
    const char *cols[3] = {"prompt", "response", "reward"};
    const char *cells[6] = {"2+2=", "4", "0.9", "say hi", "héllo", "-0.1"};
    assert_int_equal(metrics_write_table(m, "rl/step_100", 2, 3, cols, cells, &e), ERR_OK);
    const char *one[2] = {"first sample", "second sample"};
    assert_int_equal(metrics_write_table(m, "sft", 2, 1, NULL, one, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);

    int64_t steps[64];
    double vals[64];
    assert_int_equal(file_rows(path, "reward", steps, vals, 64), 50);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(steps[i], i);
        assert_close(vals[i], 0.5 * i, 0, 0);
    }
    if (!have_h5py()) {
        print_message("# SKIP h5py check: %s has no h5py\n", python());
        return;
    }
    int rc = run_python(
        path, "import sys, h5py, numpy as np\n"
              "f = h5py.File(sys.argv[1], 'r')\n"
              "r = f['metrics/reward'][:]\n"
              "assert r.dtype.names == ('step', 'value'), r.dtype\n"
              "assert list(r['step']) == list(range(50))\n"
              "assert np.allclose(r['value'], 0.5 * np.arange(50))\n"
              "j = f['metrics/judge/pairs_per_s'][:]\n"
              "assert len(j) == 50 and j['value'][3] == 103.0\n"
              "assert f['summary/win_rate'][()] == 0.71\n"
              "assert f['summary/eval/alignment'][()] == 0.78\n"
              "assert f['summary/stopped_because'].asstr()[()] == 'max_steps'\n"
              "t = f['samples/rl/step_100']\n"
              "assert t.shape == (2, 3), t.shape\n"
              "assert list(t.attrs['columns']) == ['prompt', 'response', 'reward']\n"
              "assert t.asstr()[1, 1] == 'h\\u00e9llo'\n"
              "assert list(f['samples/sft'].asstr()[:]) == ['first sample', 'second sample']\n"
              "assert f['config/deck_yaml'].asstr()[()] == 'run:\\n  seed: 7\\n'\n"
              "assert f['build/version'].asstr()[()].startswith('rlaif 0.1.0')\n"
              "a = f.attrs\n"
              "assert a['status'] == 'finished', a['status']\n"
              "assert a['format'] == 'rlaif-metrics 1'\n"
              "assert list(a['rank_layout']) == [1, 2, 2, 4]\n"
              "assert a['attempts'] == 1\n"
              "assert len(a['start_time']) == 20 and a['end_time'] >= a['start_time']\n");
    assert_int_equal(rc, 0);
}

static void test_run_state_and_refusal(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_refuse");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_run_info info;
    rl_err e;
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.state, METRICS_ABSENT);

    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.state, METRICS_RUNNING);
    assert_int_equal(info.pid, (int64_t)getpid());
    assert_int_equal(info.attempts, 1);

    /* a second NEW while this one runs: refused, pointing at --resume */
    metrics *m2 = NULL;
    assert_int_equal(metrics_open(path, &o, &m2, &e), ERR_STATE);
    assert_null(m2);
    assert_non_null(strstr(e.msg, "unfinished"));
    assert_non_null(strstr(e.msg, "--resume"));

    assert_int_equal(metrics_append(m, "loss", 1, 2.0, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.state, METRICS_FINISHED);
    assert_true(info.end_time[0] != '\0');

    /* finished: NEW and RESUME refuse without --force, and say so */
    assert_int_equal(metrics_open(path, &o, &m2, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "finished"));
    assert_non_null(strstr(e.msg, "--force"));
    metrics_open_opts r = o;
    r.mode = METRICS_RESUME;
    assert_int_equal(metrics_open(path, &r, &m2, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "nothing to resume"));
    int64_t steps[4];
    double vals[4];
    assert_int_equal(file_rows(path, "loss", steps, vals, 4), 1); /* untouched */

    /* --force starts over: the old series is gone */
    o.force = 1;
    assert_int_equal(metrics_open(path, &o, &m2, &e), ERR_OK);
    assert_int_equal(file_rows(path, "loss", NULL, NULL, 0), 0);
    assert_int_equal(metrics_close(m2, METRICS_FAILED, &e), ERR_OK);
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.state, METRICS_FAILED);

    /* not HDF5 at all: run_state says so, NEW refuses without --force */
    char junk[1100];
    path_in(junk, sizeof junk, dir, "junk.h5");
    FILE *f = fopen(junk, "w");
    fputs("not an hdf5 file\n", f);
    fclose(f);
    assert_int_equal(metrics_run_state(junk, &info, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "cannot be opened as HDF5"));
    o.force = 0;
    assert_int_equal(metrics_open(junk, &o, &m2, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "--force"));
}

static void test_resume_truncates(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_resume");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    for (int s = 0; s < 10; s++) {
        assert_int_equal(metrics_append(m, "reward", s, s, &e), ERR_OK);
        assert_int_equal(metrics_append(m, "kl", s, -s, &e), ERR_OK);
    }
    /* the attempt dies after step 9 with its rows flushed; its checkpoint was at step 5 */
    assert_int_equal(metrics_close(m, METRICS_RUNNING, &e), ERR_OK);

    metrics_open_opts r = o;
    r.mode = METRICS_RESUME;
    r.resume_step = 5;
    r.deck_yaml = "run:\n  seed: 7\n  steps: 20\n";
    assert_int_equal(metrics_open(path, &r, &m, &e), ERR_OK);
    int64_t steps[32];
    double vals[32];
    assert_int_equal(file_rows(path, "reward", steps, vals, 32), 6);
    assert_int_equal(file_rows(path, "kl", steps, vals, 32), 6);
    for (int s = 6; s < 12; s++)
        assert_int_equal(metrics_append(m, "reward", s, 10 + s, &e), ERR_OK);
    /* one series truncated alone, pending rows included */
    assert_int_equal(metrics_truncate_after(m, "reward", 9, &e), ERR_OK);
    int64_t count = 0;
    assert_int_equal(metrics_count(m, "reward", &count, &e), ERR_OK);
    assert_int_equal(count, 10);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);

    assert_int_equal(file_rows(path, "reward", steps, vals, 32), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(steps[i], i); /* no step twice, in order */
        assert_close(vals[i], i <= 5 ? i : 10 + i, 0, 0);
    }
    assert_int_equal(file_rows(path, "kl", steps, vals, 32), 6);

    metrics_run_info info;
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.attempts, 2);
    assert_int_equal(info.state, METRICS_FINISHED);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *deck = NULL, *deck2 = NULL;
    assert_int_equal(h5io_read_str(f, "config/deck_yaml", &deck, &e), ERR_OK);
    assert_string_equal(deck, "run:\n  seed: 7\n");
    assert_int_equal(h5io_read_str(f, "config/deck_yaml_attempt2", &deck2, &e), ERR_OK);
    assert_string_equal(deck2, r.deck_yaml);
    assert_int_equal(h5io_exists(f, "build/version_attempt2"), 0); /* same build: not repeated */
    int64_t rs[4];
    size_t nrs = 0;
    assert_int_equal(h5io_read_i64_attr(f, "resume_steps", rs, 4, &nrs, &e), ERR_OK);
    assert_int_equal(nrs, 1);
    assert_int_equal(rs[0], 5);
    free(deck);
    free(deck2);
    H5Fclose(f);
}

/* resume_step -1 (no checkpoint yet: the run starts over) drops every row; KEEP_ALL none. */
static void test_resume_without_checkpoint(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_resume0");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    for (int s = 0; s < 5; s++) assert_int_equal(metrics_append(m, "loss", s, s, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_FAILED, &e), ERR_OK);
    o.mode = METRICS_RESUME;
    o.resume_step = METRICS_KEEP_ALL;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_RUNNING, &e), ERR_OK);
    assert_int_equal(file_rows(path, "loss", NULL, NULL, 0), 5);
    o.resume_step = -1;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_RUNNING, &e), ERR_OK);
    assert_int_equal(file_rows(path, "loss", NULL, NULL, 0), 0);
}

static void test_interval_flush(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_interval");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    o.flush_interval = 100;
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    double t0 = log_now();
    assert_int_equal(metrics_append(m, "x", 1, 1.0, &e), ERR_OK);
    assert_int_equal(metrics_maybe_flush(m, t0 + 1, &e), ERR_OK);
    assert_int_equal(file_rows(path, "x", NULL, NULL, 0), 0); /* still buffered */
    assert_int_equal(metrics_maybe_flush(m, t0 + 101, &e), ERR_OK);
    assert_int_equal(file_rows(path, "x", NULL, NULL, 0), 1);
    assert_int_equal(metrics_append(m, "x", 2, 2.0, &e), ERR_OK);
    assert_int_equal(metrics_maybe_flush(m, t0 + 150, &e), ERR_OK); /* 49 s after the last */
    assert_int_equal(file_rows(path, "x", NULL, NULL, 0), 1);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK); /* close always flushes */
    assert_int_equal(file_rows(path, "x", NULL, NULL, 0), 2);
}

static void test_bad_names(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_names");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    const char *bad[] = {"", "/reward", "reward/", "a//b", "a b", "..", "a/./b", "rew\"ard"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(metrics_append(m, bad[i], 0, 0, &e), ERR_INPUT);
        assert_non_null(strstr(e.msg, "metric name"));
    }
    /* a series and a group of the same name cannot both exist */
    assert_int_equal(metrics_append(m, "judge", 0, 1, &e), ERR_OK);
    assert_int_equal(metrics_flush(m, &e), ERR_OK);
    assert_int_equal(metrics_append(m, "judge/rate", 0, 1, &e), ERR_OK);
    assert_int_not_equal(metrics_flush(m, &e), ERR_OK);
    assert_non_null(strstr(e.msg, "judge/rate"));
    assert_int_equal(metrics_truncate_after(m, "judge/rate", -1, &e), ERR_OK); /* drop it */
    assert_int_equal(metrics_close(m, METRICS_FAILED, &e), ERR_OK);
    assert_int_equal(file_rows(path, "judge", NULL, NULL, 0), 1);
}

/* A child appends and flushes, appends more, and is killed with SIGKILL before the next
 * flush. The file must open (C API and h5py) and hold exactly the flushed rows. */
static void test_sigkill_between_flushes(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_kill");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        metrics_open_opts o = opts_new();
        metrics *m = NULL;
        rl_err e;
        if (metrics_open(path, &o, &m, &e)) _exit(3);
        for (int s = 0; s < 100; s++) metrics_append(m, "reward", s, s, &e);
        if (metrics_flush(m, &e)) _exit(4);
        for (int s = 100; s < 200; s++) metrics_append(m, "reward", s, s, &e);
        if (write(fds[1], "k", 1) != 1) _exit(5);
        for (;;) pause();
    }
    close(fds[1]);
    char c = 0;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    metrics_run_info info;
    rl_err e;
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK);
    assert_int_equal(info.state, METRICS_RUNNING);
    assert_int_equal(info.pid, (int64_t)pid);
    int64_t steps[256];
    double vals[256];
    assert_int_equal(file_rows(path, "reward", steps, vals, 256), 100);
    assert_int_equal(steps[99], 99);
    /* the dead run is reported as unfinished, and its writer as gone */
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_STATE);
    assert_non_null(strstr(e.msg, "no longer running"));
    if (have_h5py())
        assert_int_equal(run_python(path, "import sys, h5py\n"
                                          "r = h5py.File(sys.argv[1], 'r')['metrics/reward'][:]\n"
                                          "assert len(r) == 100 and r['step'][-1] == 99\n"),
                         0);
    /* and it can be resumed */
    o.mode = METRICS_RESUME;
    o.resume_step = 80;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);
    assert_int_equal(file_rows(path, "reward", steps, vals, 256), 81);
}

/* A user reading metrics.h5 (h5py takes a shared file lock) must not make the run's flush fail. */
static void test_flush_while_a_reader_holds_the_file(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_reader");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    assert_int_equal(metrics_append(m, "x", 0, 0, &e), ERR_OK);
    assert_int_equal(metrics_flush(m, &e), ERR_OK);
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); /* default: with locking */
        if (f < 0) _exit(3);
        if (write(up[1], "r", 1) != 1) _exit(4);
        char c;
        if (read(down[0], &c, 1) < 0) _exit(5); /* until the parent is done */
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char c = 0;
    assert_int_equal(read(up[0], &c, 1), 1);
    assert_int_equal(metrics_append(m, "x", 1, 1, &e), ERR_OK);
    int rc = metrics_flush(m, &e);
    close(down[1]);
    int st = 0;
    waitpid(pid, &st, 0);
    close(up[0]);
    if (rc != ERR_OK) fail_msg("flush with a reader: %s", e.msg);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);
    assert_int_equal(file_rows(path, "x", NULL, NULL, 0), 2);
}

/* Flips one byte of the object header of `obj` (checksummed in this file format). */
static void damage_header(const char *path, const char *obj) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    H5O_info_t oi;
    assert_true(H5Oget_info_by_name2(f, obj, &oi, H5O_INFO_BASIC, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    int fd = open(path, O_RDWR);
    unsigned char b;
    off_t at = (off_t)oi.addr + 8;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

/* A series torn by a kill during a flush does not stop a resume: the file is rebuilt from what
 * reads, the damaged file kept aside, the loss noted; the other series keep their rows. */
static void test_resume_salvages_damaged_series(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_damaged");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    for (int s = 0; s < 10; s++) {
        assert_int_equal(metrics_append(m, "a", s, s, &e), ERR_OK);
        assert_int_equal(metrics_append(m, "grp/b", s, s, &e), ERR_OK);
    }
    assert_int_equal(metrics_close(m, METRICS_RUNNING, &e), ERR_OK);
    damage_header(path, "metrics/grp/b");
    assert_int_equal(file_rows(path, "grp/b", NULL, NULL, 0), -2); /* unreadable now */

    o.mode = METRICS_RESUME;
    o.resume_step = 7;
    if (metrics_open(path, &o, &m, &e) != ERR_OK) fail_msg("%s", e.msg);
    assert_non_null(strstr(metrics_notes(m), "'grp/b' was damaged"));
    assert_non_null(strstr(metrics_notes(m), "metrics.h5.damaged.attempt2"));
    assert_int_equal(metrics_append(m, "grp/b", 8, 8, &e), ERR_OK);
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);
    assert_int_equal(file_rows(path, "a", NULL, NULL, 0), 8);
    assert_int_equal(file_rows(path, "grp/b", NULL, NULL, 0), 1);
    char aside[1200];
    snprintf(aside, sizeof aside, "%s.damaged.attempt2", path);
    assert_int_equal(access(aside, R_OK), 0);
    metrics_run_info info;
    assert_int_equal(metrics_run_state(path, &info, &e), ERR_OK); /* root attributes copied */
    assert_int_equal(info.state, METRICS_FINISHED);
    assert_int_equal(info.attempts, 2);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *deck = NULL;
    assert_int_equal(h5io_read_str(f, "config/deck_yaml", &deck, &e), ERR_OK);
    assert_string_equal(deck, o.deck_yaml);
    free(deck);
    H5Fclose(f);
}

/* Cost of one flush (open, append to 20 series, close, fsync) on a file with 20 series of 5000
 * rows: printed, and bounded loosely so that a pathological slowdown fails. */
static void test_flush_cost(void **state) {
    (void)state;
    const char *dir = test_tmpdir("metrics_cost");
    char path[1100];
    path_in(path, sizeof path, dir, "metrics.h5");
    metrics_open_opts o = opts_new();
    metrics *m = NULL;
    rl_err e;
    assert_int_equal(metrics_open(path, &o, &m, &e), ERR_OK);
    char name[32];
    const int nflush = 100, nseries = 20, per = 50;
    double t_total = 0, t_max = 0;
    for (int k = 0; k < nflush; k++) {
        for (int s = 0; s < nseries; s++) {
            snprintf(name, sizeof name, "group%d/series%d", s % 4, s);
            for (int i = 0; i < per; i++)
                assert_int_equal(metrics_append(m, name, k * per + i, i, &e), ERR_OK);
        }
        double t0 = log_now();
        assert_int_equal(metrics_flush(m, &e), ERR_OK);
        double dt = log_now() - t0;
        t_total += dt;
        if (dt > t_max) t_max = dt;
    }
    assert_int_equal(metrics_close(m, METRICS_FINISHED, &e), ERR_OK);
    struct stat st;
    stat(path, &st);
    print_message("# metrics flush (open+append %d series+close+fsync): mean %.2f ms, max %.2f ms; "
                  "file %lld KB for %d rows\n",
                  nseries, 1e3 * t_total / nflush, 1e3 * t_max, (long long)st.st_size / 1024,
                  nflush * nseries * per);
    assert_true(t_total / nflush < 0.5);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the tests provoke HDF5 errors on purpose */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_h5py),
        cmocka_unit_test(test_run_state_and_refusal),
        cmocka_unit_test(test_resume_truncates),
        cmocka_unit_test(test_resume_without_checkpoint),
        cmocka_unit_test(test_interval_flush),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_sigkill_between_flushes),
        cmocka_unit_test(test_flush_while_a_reader_holds_the_file),
        cmocka_unit_test(test_resume_salvages_damaged_series),
        cmocka_unit_test(test_flush_cost),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
