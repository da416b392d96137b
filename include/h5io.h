/* h5io: small HDF5 helpers shared by the run files (metrics, ckpt, labels).
 *
 * - HDF5 prints its error stack to stderr by default. Library code must not print, so every
 *   entry point that calls HDF5 brackets its work with h5io_quiet_begin/end (which save and
 *   restore the caller's handler) and turns a failure into one rl_err line with h5io_err, which
 *   appends the most specific message of the HDF5 error stack ("truncated file: eof = ...").
 * - Files are created with h5io_fapl(): format bounds 1.8 (superblock v2 and object headers
 *   with checksums, so flipped metadata bytes are detected; readable by HDF5 >= 1.8 and h5py),
 *   strong close, and no file locking: a user watching metrics.h5 from h5py holds a lock that
 *   would otherwise make the run's next flush fail (and Lustre often has flock disabled). Every
 *   run file has one writer by construction (rank 0, or one rank per checkpoint component).
 * - Object names are '/'-separated paths of [A-Za-z0-9_.-] segments; h5io_check_name refuses
 *   anything else (empty segments, "." or "..", spaces) so names map 1:1 to HDF5 paths.
 * Does not do: parallel (MPI-IO) access; every run file is written by one rank. */
#ifndef RLAIF_H5IO_H
#define RLAIF_H5IO_H

#include <hdf5.h>
#include <stdint.h>

#include "err.h"

typedef struct h5io_quiet {
    H5E_auto2_t func;
    void *data;
} h5io_quiet;

void h5io_quiet_begin(h5io_quiet *q);
void h5io_quiet_end(const h5io_quiet *q);

/* err_set with fmt, then " (HDF5: <innermost message>)" when the HDF5 error stack has one.
 * Call it right after the failing call: every HDF5 API call (even H5Pclose) clears the stack. */
int h5io_err(rl_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* File access list described above; close with H5Pclose. Negative on failure. */
hid_t h5io_fapl(void);
/* Link-creation list that creates missing intermediate groups; close with H5Pclose. */
hid_t h5io_lcpl(void);
/* Variable-length UTF-8 string type; close with H5Tclose. */
hid_t h5io_str_type(void);

/* ERR_OK when name is a valid object path (see above), else ERR_INPUT naming `what`. */
int h5io_check_name(const char *name, const char *what, rl_err *e);
/* 1 when every component of path exists under loc, 0 when not, negative on HDF5 failure. */
int h5io_exists(hid_t loc, const char *path);

/* Scalar string dataset / attribute; an existing one of the same name is replaced. */
int h5io_write_str(hid_t loc, const char *name, const char *text, rl_err *e);
int h5io_write_str_attr(hid_t obj, const char *name, const char *text, rl_err *e);
/* Reads a scalar string dataset / attribute (variable or fixed length) into a malloc'd
 * NUL-terminated string. */
int h5io_read_str(hid_t loc, const char *name, char **out, rl_err *e);
int h5io_read_str_attr(hid_t obj, const char *name, char **out, rl_err *e);
/* 1-D int64 / double attributes; an existing one of the same name is replaced. */
int h5io_write_i64_attr(hid_t obj, const char *name, const int64_t *v, size_t n, rl_err *e);
int h5io_write_f64_attr(hid_t obj, const char *name, const double *v, size_t n, rl_err *e);
/* Reads up to cap values of an integer attribute; *n gets the count stored. */
int h5io_read_i64_attr(hid_t obj, const char *name, int64_t *v, size_t cap, size_t *n, rl_err *e);

/* Every dataset below group `group` of loc, recursively, as paths relative to the group
 * ("a", "sub/b"), in name order; *names is malloc'd (free each, then the array). A missing
 * group gives zero names. An object that cannot be opened (damaged header) is listed too, so
 * that the caller's attempt to open it reports the damage. */
int h5io_list_datasets(hid_t loc, const char *group, char ***names, size_t *n, rl_err *e);
void h5io_free_names(char **names, size_t n);

/* fsync a file by path, and a directory (so a rename in it is durable). */
int h5io_fsync_path(const char *path, rl_err *e);
int h5io_fsync_dir(const char *dir, rl_err *e);

/* The current time as "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
void h5io_utc_now(char out[32]);

#endif
