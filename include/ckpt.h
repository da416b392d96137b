/* ckpt: HDF5 checkpoints, written by several ranks, committed atomically, verified on resume.
 *
 * Layout under run.out_dir:
 *   ckpt/latest                     "step_00000100\n": the newest committed step (the commit
 *                                   point: written as latest.tmp, fsynced, renamed)
 *   ckpt/step_00000100/MANIFEST     text, written last in the step (tmp + fsync + rename):
 *                                     rlaif-ckpt-manifest 1
 *                                     step 100
 *                                     written 2024-05-01T12:00:00Z
 *                                     component policy 123456 9f3a0c11 5be0917d
 *                                     (one line per component: name, file size in bytes,
 *                                     CRC-32C of its index, CRC-32C of the whole file; older
 *                                     manifests lack the last field and are still read)
 *                                     end
 *   ckpt/step_00000100/<component>.h5   one file per component (coordinator, policy, reward,
 *                                   value, ...), each written by one rank as <component>.h5.tmp,
 *                                   fsynced, renamed. Inside: one dataset per name the writer
 *                                   gave ("policy/params" is group policy, dataset params),
 *                                   float32/float64/int64/uint8 arrays, scalar strings, RNG
 *                                   states as uint64 (4) or (n, 4) = (seed, purpose, stream,
 *                                   position) of include/rng.h; and, written last, the
 *                                   completeness marker /_ckpt_index: a table of (name, kind,
 *                                   nbytes, crc32c) for every dataset, with attributes format
 *                                   "rlaif-ckpt 1", step, component, count, writer, written_at
 *                                   and index_crc32c (CRC-32C over the table).
 *
 * Commit protocol (several ranks, one step):
 *   rank 0:     ckpt_step_begin(dir, s)        clears leftovers of an earlier attempt at s
 *   each rank:  ckpt_file_begin(dir, s, "policy", &f); ckpt_write_*(f, ...); ckpt_file_commit(f)
 *   (ranks tell rank 0 they are done, e.g. MPI_Gather)
 *   rank 0:     ckpt_commit_step(dir, s, names, n)   checks every component's marker, writes
 *                                              MANIFEST, then latest
 *   rank 0:     ckpt_prune(dir, keep)          removes older complete steps
 * A crash anywhere before the rename of latest leaves the previous checkpoint current and whole.
 *
 * Verification (ckpt_find_latest, ckpt_verify_step): the MANIFEST parses and names the step;
 * every component file has the size and the whole-file CRC the manifest says (checked with
 * plain reads, before HDF5 parses a byte: a damaged file can crash HDF5), opens as HDF5
 * (format 1.8: checksummed metadata), has its marker with the right step, component and index CRC,
 * holds exactly the datasets of its index, and every dataset's bytes match their CRC-32C. Reads
 * through ckpt_read_* check the dataset's CRC again, so a file damaged after verification is
 * caught.
 *
 * Names: '/'-separated segments of [A-Za-z0-9_.-] (h5io_check_name); names starting with
 * "_ckpt" are reserved. Components: one segment.
 * Not here: MPI (the caller gathers RNG states and reports completion), compression. */
#ifndef RLAIF_CKPT_H
#define RLAIF_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "rng.h"

#define CKPT_MAX_DIMS 8

typedef struct ckpt_file ckpt_file;

/* "<run_dir>/ckpt/step_%08lld" into out; ERR_INPUT when it does not fit or step < 0. */
int ckpt_step_dir(const char *run_dir, int64_t step, char *out, size_t cap, rl_err *e);

/* ------------------------------------------------------------------ writing */

/* Rank 0, before any rank writes step `step`: creates the step directory and removes what an
 * earlier, uncommitted attempt at this step left there (MANIFEST, component files, .tmp).
 * Refuses (ERR_STATE) when `step` is the step ckpt/latest points to. */
int ckpt_step_begin(const char *run_dir, int64_t step, rl_err *e);

/* Starts <component>.h5.tmp in the step directory (created when missing). */
int ckpt_file_begin(const char *run_dir, int64_t step, const char *component, ckpt_file **out,
                    rl_err *e);
/* data is (n) */
int ckpt_write_f32(ckpt_file *f, const char *name, const float *data, size_t n, rl_err *e);
/* data is (dims[0], ..., dims[ndim-1]) row-major; 1 <= ndim <= CKPT_MAX_DIMS */
int ckpt_write_f32_shape(ckpt_file *f, const char *name, const float *data, int ndim,
                         const size_t *dims, rl_err *e);
int ckpt_write_f64(ckpt_file *f, const char *name, const double *data, size_t n, rl_err *e);
int ckpt_write_i64(ckpt_file *f, const char *name, const int64_t *data, size_t n, rl_err *e);
/* A scalar dataset (h5py: f[name][()]). */
int ckpt_write_i64_scalar(ckpt_file *f, const char *name, int64_t value, rl_err *e);
int ckpt_write_string(ckpt_file *f, const char *name, const char *text, rl_err *e);
/* An opaque blob, stored as uint8 (n). */
int ckpt_write_bytes(ckpt_file *f, const char *name, const void *data, size_t n, rl_err *e);
/* One generator's state, uint64 (4). */
int ckpt_write_rng(ckpt_file *f, const char *name, const rng *r, rl_err *e);
/* Several ranks' states gathered by the caller: states is (n, RNG_STATE_WORDS), from
 * rng_state_get; stored as uint64 (n, 4). */
int ckpt_write_rng_states(ckpt_file *f, const char *name, const uint64_t *states, size_t n,
                          rl_err *e);
/* Writes the marker, closes, fsyncs, renames to <component>.h5, fsyncs the directory. Frees f,
 * also on failure (the .tmp is then removed). */
int ckpt_file_commit(ckpt_file *f, rl_err *e);
/* Drops an unfinished file: closes it, removes the .tmp, frees f. */
void ckpt_file_abort(ckpt_file *f);

/* Rank 0, after every rank committed its component of `step`: checks that each named
 * component is there with its marker for this step, writes MANIFEST (tmp, fsync, rename), then
 * points ckpt/latest at the step (tmp, fsync, rename, fsync of the directory). */
int ckpt_commit_step(const char *run_dir, int64_t step, const char *const *components, size_t n,
                     rl_err *e);

/* Removes committed steps older than the `keep` newest (keep >= 1), and uncommitted leftovers
 * older than latest. Never touches latest's step or steps newer than it (being written). */
int ckpt_prune(const char *run_dir, int keep, rl_err *e);

/* ------------------------------------------------------------------ finding and verifying */

enum {
    CKPT_VERIFY_FULL = 0, /* the whole-file CRCs first, then every dataset and its CRC */
    CKPT_VERIFY_QUICK = 1 /* structure, sizes, markers, index CRCs, every dataset's header;
                             data CRCs are then checked as ckpt_read_* reads (no whole-file
                             CRC: HDF5 parses files not checked byte for byte) */
};

/* Verifies one step as described above; the message says which file and which check failed. */
int ckpt_verify_step(const char *run_dir, int64_t step, int mode, rl_err *e);

/* The step ckpt/latest names, without verifying it; *step = -1 with ERR_OK when there is no
 * ckpt/latest. ERR_STATE when the file does not read "step_NNNNNNNN". */
int ckpt_latest(const char *run_dir, int64_t *step, rl_err *e);

/* Verifies one open component file on its own (no MANIFEST): the datasets in the file are
 * exactly those of its marker, each has the indexed size, and (CKPT_VERIFY_FULL) every CRC. */
int ckpt_file_verify(ckpt_file *f, int mode, rl_err *e);

/* Opens a component file by path (ckpt_file_open builds the path from a run directory): the
 * marker must name `component` and `step`. */
int ckpt_file_open_path(const char *path, const char *component, int64_t step, ckpt_file **out,
                        rl_err *e);

/* The step to resume from: the one ckpt/latest names if it verifies, else the newest older
 * step directory that does. Every step skipped, and why, is appended to notes (one line each,
 * may be NULL) for the caller to print. *step = -1 with ERR_OK when there is no checkpoint at
 * all; ERR_STATE when there are step directories but none verifies. */
int ckpt_find_latest(const char *run_dir, int64_t *step, int mode, char *notes, size_t notes_cap,
                     rl_err *e);

/* ------------------------------------------------------------------ reading */

/* Opens <component>.h5 of a step and loads its index (marker, step, component, index CRC). */
int ckpt_file_open(const char *run_dir, int64_t step, const char *component, ckpt_file **out,
                   rl_err *e);
/* 1 when the file holds a dataset of that name. */
int ckpt_has(const ckpt_file *f, const char *name);
/* The datasets of the file's index, in the order they were written: i in 0 .. count-1. */
size_t ckpt_count(const ckpt_file *f);
const char *ckpt_name_at(const ckpt_file *f, size_t i);
/* Shape of a dataset (a scalar has ndim 0). */
int ckpt_shape(ckpt_file *f, const char *name, int *ndim, size_t dims[CKPT_MAX_DIMS], rl_err *e);
/* Reads into out, which holds expected_count values; the stored count must match exactly.
 * Errors name the file, the dataset, and expected against found (shape and type). */
int ckpt_read_f32(ckpt_file *f, const char *name, float *out, size_t expected_count, rl_err *e);
int ckpt_read_f32_shape(ckpt_file *f, const char *name, float *out, int ndim, const size_t *dims,
                        rl_err *e);
int ckpt_read_f64(ckpt_file *f, const char *name, double *out, size_t expected_count, rl_err *e);
int ckpt_read_i64(ckpt_file *f, const char *name, int64_t *out, size_t expected_count, rl_err *e);
int ckpt_read_i64_scalar(ckpt_file *f, const char *name, int64_t *out, rl_err *e);
/* *out is malloc'd and NUL-terminated. */
int ckpt_read_string(ckpt_file *f, const char *name, char **out, rl_err *e);
/* *out is malloc'd (*n bytes). */
int ckpt_read_bytes(ckpt_file *f, const char *name, void **out, size_t *n, rl_err *e);
/* Restores a generator so that it continues the sequence it was saved at. */
int ckpt_read_rng(ckpt_file *f, const char *name, rng *r, rl_err *e);
/* states is (n, RNG_STATE_WORDS); the stored count must be n. */
int ckpt_read_rng_states(ckpt_file *f, const char *name, uint64_t *states, size_t n, rl_err *e);
void ckpt_file_close(ckpt_file *f);

#endif
