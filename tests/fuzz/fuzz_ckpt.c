/* fuzz_ckpt: libFuzzer target for the checkpoint reader, in two modes chosen by the first byte.
 *
 * File mode (any first byte but 'M'): the input is the bytes of one component file (policy.h5
 * of step 3, as fuzz_ckpt_sample writes them); it goes to a file in a private directory (on
 * /dev/shm when there is one) and through what `run --resume` does with a component file:
 * open it and load its completeness marker, verify it (every dataset against the index, every
 * CRC), read every dataset back with each reader that fits its shape. These bytes reach HDF5
 * unchecked, so this mode also fuzzes libhdf5 itself: crashes inside it are recorded in
 * tests/fuzz/hdf5-crashes/ (run --resume checks a file's whole CRC before HDF5 sees it).
 *
 * Manifest mode ('M'): the rest is the text of ckpt/latest, a NUL, and the text of the step's
 * MANIFEST, next to a valid component file (sample 0): ckpt_find_latest and ckpt_verify_step,
 * i.e. our parsers and the checks that guard HDF5, with any text.
 *
 * Every call must return a status, whatever the bytes, and leave no HDF5 object open; a
 * crash, a hang or a sanitizer report is a finding. LeakSanitizer runs with
 * tests/lsan.supp: HDF5 keeps blocks on its free lists that the check between two inputs
 * takes for leaks (it frees them at exit; a program that writes and reads checkpoints is
 * clean under LeakSanitizer), and leaked HDF5 handles are caught by the object count instead. Build
 * and run with `make fuzz` (clang, -fsanitize=fuzzer,address,undefined; linked with parallel HDF5,
 * whose MPI library is linked but never initialised). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CKPT_STEP      3
#define FUZZ_CKPT_SAMPLES   4
#define FUZZ_CKPT_MAX_VALUE (1u << 20) /* larger datasets are not read: memory, not bugs */

static char fuzz_ckpt_dir[256]; /* file mode: policy.h5 goes here */
static char fuzz_ckpt_run[300]; /* manifest mode: a run directory with sample 0 at step 3 */

/* Writes sample component file `which` (0 .. FUZZ_CKPT_SAMPLES-1) of step FUZZ_CKPT_STEP under
 * run_dir with the real writer: the seeds (make_ckpt_seeds.c) and the file the manifest mode
 * checks against. 0: every kind; 1: nothing but the marker; 2: a trainer's layout; 3: empty
 * arrays and an empty string. */
static int fuzz_ckpt_sample(const char *run_dir, int which) {
    rl_err e = {0};
    ckpt_file *f = NULL;
    if (ckpt_step_begin(run_dir, FUZZ_CKPT_STEP, &e) ||
        ckpt_file_begin(run_dir, FUZZ_CKPT_STEP, "policy", &f, &e)) {
        fprintf(stderr, "fuzz_ckpt: %s\n", e.msg);
        return 1;
    }
    float p[24];
    double d[3] = {0.5, -1.25, 1e300};
    int64_t dims[8] = {8, 1, 2, 2, 4, 16, 32, 0};
    uint8_t bytes[5] = {1, 2, 3, 0, 255};
    for (int i = 0; i < 24; i++) p[i] = (float)i * 0.25f - 2.0f;
    size_t shape[2] = {4, 6};
    uint64_t states[2 * RNG_STATE_WORDS] = {1, 2, 3, 4, 5, 6, 7, 8};
    rng r;
    rng_init(&r, 7, 1, 2);
    int rc = 0;
    switch (which) {
    case 0:
        rc = ckpt_write_f32(f, "policy/params", p, 24, &e) ||
             ckpt_write_f32_shape(f, "policy/matrix", p, 2, shape, &e) ||
             ckpt_write_f64(f, "policy/stats", d, 3, &e) ||
             ckpt_write_i64(f, "policy/dims", dims, 8, &e) ||
             ckpt_write_i64_scalar(f, "policy/step", 3, &e) ||
             ckpt_write_string(f, "deck_yaml", "run:\n  seed: 3\n", &e) ||
             ckpt_write_bytes(f, "blob", bytes, 5, &e) || ckpt_write_rng(f, "rng/sample", &r, &e) ||
             ckpt_write_rng_states(f, "rng/ranks", states, 2, &e);
        break;
    case 1:
        break;
    case 2:
        rc = ckpt_write_f32(f, "policy/params", p, 24, &e) ||
             ckpt_write_f32(f, "policy/adam_m", p, 24, &e) ||
             ckpt_write_f32(f, "policy/adam_v", p + 1, 23, &e) ||
             ckpt_write_i64_scalar(f, "policy/step", 3, &e) ||
             ckpt_write_i64(f, "policy/dims", dims, 8, &e);
        break;
    case 3:
        rc = ckpt_write_f32(f, "empty", p, 0, &e) || ckpt_write_string(f, "text", "", &e) ||
             ckpt_write_bytes(f, "nobytes", bytes, 0, &e);
        break;
    }
    if (rc) {
        fprintf(stderr, "fuzz_ckpt: %s\n", e.msg);
        ckpt_file_abort(f);
        return 1;
    }
    if (ckpt_file_commit(f, &e)) {
        fprintf(stderr, "fuzz_ckpt: %s\n", e.msg);
        return 1;
    }
    return 0;
}

static void fuzz_ckpt_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_ckpt_dir);
    if (fuzz_ckpt_dir[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz_ckpt: cannot remove %s\n", fuzz_ckpt_dir);
}

static int fuzz_ckpt_setup(void) {
    if (fuzz_ckpt_dir[0]) return 0;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/rlaif-fuzz-ckpt.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) return -1;
    snprintf(fuzz_ckpt_run, sizeof fuzz_ckpt_run, "%s/run", dir);
    if (fuzz_ckpt_sample(fuzz_ckpt_run, 0) != 0) return -1;
    snprintf(fuzz_ckpt_dir, sizeof fuzz_ckpt_dir, "%s", dir);
    atexit(fuzz_ckpt_cleanup);
    return 0;
}

static int fuzz_ckpt_write(const char *path, const void *data, size_t size) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t w = size ? fwrite(data, 1, size, fp) : 0;
    return fclose(fp) != 0 || w != size ? -1 : 0;
}

static void fuzz_ckpt_read_all(ckpt_file *f) {
    rl_err e = {0};
    for (size_t i = 0; i < ckpt_count(f); i++) {
        const char *name = ckpt_name_at(f, i);
        int ndim = 0;
        size_t dims[CKPT_MAX_DIMS], n = 1;
        if (ckpt_shape(f, name, &ndim, dims, &e) != ERR_OK) continue;
        for (int d = 0; d < ndim && n <= FUZZ_CKPT_MAX_VALUE; d++) n *= dims[d] ? dims[d] : 1;
        if (n > FUZZ_CKPT_MAX_VALUE) continue;
        /* exact-size buffers: an overread is reported by AddressSanitizer */
        double *buf = malloc(n * sizeof(double));
        ckpt_read_f32(f, name, (float *)buf, n, &e);
        if (ndim >= 1) ckpt_read_f32_shape(f, name, (float *)buf, ndim, dims, &e);
        ckpt_read_f64(f, name, buf, n, &e);
        ckpt_read_i64(f, name, (int64_t *)buf, n, &e);
        int64_t v;
        ckpt_read_i64_scalar(f, name, &v, &e);
        rng r;
        ckpt_read_rng(f, name, &r, &e);
        if (ndim == 2 && dims[1] == RNG_STATE_WORDS)
            ckpt_read_rng_states(f, name, (uint64_t *)buf, dims[0], &e);
        free(buf);
        char *s = NULL;
        if (ckpt_read_string(f, name, &s, &e) == ERR_OK) free(s);
        void *b = NULL;
        size_t nb = 0;
        if (ckpt_read_bytes(f, name, &b, &nb, &e) == ERR_OK) free(b);
    }
    float x;
    ckpt_read_f32(f, "no/such/dataset", &x, 1, &e); /* a name the index does not hold */
}

static void fuzz_ckpt_manifest(const uint8_t *data, size_t size) {
    char path[400];
    const uint8_t *nul = memchr(data, 0, size);
    size_t nl = nul ? (size_t)(nul - data) : size;
    snprintf(path, sizeof path, "%s/ckpt/latest", fuzz_ckpt_run);
    if (fuzz_ckpt_write(path, data, nl) != 0) return;
    snprintf(path, sizeof path, "%s/ckpt/step_%08d/MANIFEST", fuzz_ckpt_run, FUZZ_CKPT_STEP);
    if (fuzz_ckpt_write(path, nul ? nul + 1 : data, nul ? size - nl - 1 : 0) != 0) return;
    rl_err e = {0};
    int64_t step = -1, latest = -1;
    char notes[4096];
    ckpt_latest(fuzz_ckpt_run, &latest, &e);
    ckpt_find_latest(fuzz_ckpt_run, &step, CKPT_VERIFY_FULL, notes, sizeof notes, &e);
    ckpt_verify_step(fuzz_ckpt_run, FUZZ_CKPT_STEP, CKPT_VERIFY_QUICK, &e);
}

/* the sample file is written once, before the first input: HDF5 keeps some of what writing
 * allocates, which the per-input leak check would otherwise report */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (fuzz_ckpt_setup() != 0) {
        fprintf(stderr, "fuzz_ckpt: cannot set up a directory for the files\n");
        exit(1);
    }
    return 0;
}

/* every HDF5 object the reader opened (file, dataset, group, attribute) is closed again, on
 * every path: LeakSanitizer cannot see a leaked handle, HDF5 frees them all at exit. (Dataspace
 * and property-list ids are not counted: H5Inmembers refuses the library's own id types.) */
static void fuzz_ckpt_check_ids(void) {
    ssize_t open_objs = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (open_objs != 0) {
        fprintf(stderr,
                "fuzz_ckpt: %zd HDF5 objects left open after the input: one was not "
                "closed\n",
                open_objs);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_ckpt_setup() != 0) return 0;
    if (size > 0 && data[0] == 'M') {
        fuzz_ckpt_manifest(data + 1, size - 1);
        fuzz_ckpt_check_ids();
        return 0;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/policy.h5", fuzz_ckpt_dir);
    if (fuzz_ckpt_write(path, data, size) != 0) return 0;
    ckpt_file *f = NULL;
    rl_err e = {0};
    if (ckpt_file_open_path(path, "policy", FUZZ_CKPT_STEP, &f, &e) != ERR_OK) {
        fuzz_ckpt_check_ids();
        return 0;
    }
    ckpt_file_verify(f, CKPT_VERIFY_QUICK, &e);
    ckpt_file_verify(f, CKPT_VERIFY_FULL, &e);
    fuzz_ckpt_read_all(f);
    ckpt_file_close(f);
    fuzz_ckpt_check_ids();
    return 0;
}
