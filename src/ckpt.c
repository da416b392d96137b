/* ckpt: checkpoints; see include/ckpt.h for the layout, the commit protocol and the checks.
 *
 * Every component file carries its own index of (name, kind, nbytes, CRC-32C) written last, so
 * a file is complete exactly when its index is there, and a byte changed anywhere in the data
 * is found even though HDF5 (which checksums only its metadata) would read it silently. The
 * manifest then ties the step to the exact files committed (size and index CRC of each). */
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc.h"
#include "h5io.h"
#include "log.h"

#define CKPT_FORMAT       "rlaif-ckpt 1"
#define CKPT_MANIFEST_HDR "rlaif-ckpt-manifest 1"
#define CKPT_INDEX        "_ckpt_index"
#define CKPT_SLAB_BYTES   ((size_t)64 << 20) /* verification reads at most this much at once */
#define CKPT_PATH_MAX     4096

enum ckpt_kind { K_F32 = 1, K_F64 = 2, K_I64 = 3, K_STR = 4, K_BYTES = 5, K_RNG = 6 };

static const char *kind_name(int k) {
    switch (k) {
    case K_F32:
        return "float32";
    case K_F64:
        return "float64";
    case K_I64:
        return "int64";
    case K_STR:
        return "string";
    case K_BYTES:
        return "bytes (uint8)";
    case K_RNG:
        return "RNG state (uint64)";
    }
    return "unknown";
}

/* native memory type of a kind (strings are handled apart) */
static hid_t kind_mem_type(int k) {
    switch (k) {
    case K_F32:
        return H5T_NATIVE_FLOAT;
    case K_F64:
        return H5T_NATIVE_DOUBLE;
    case K_I64:
        return H5T_NATIVE_INT64;
    case K_BYTES:
        return H5T_NATIVE_UINT8;
    case K_RNG:
        return H5T_NATIVE_UINT64;
    }
    return -1;
}

static hid_t kind_file_type(int k) {
    switch (k) {
    case K_F32:
        return H5T_IEEE_F32LE;
    case K_F64:
        return H5T_IEEE_F64LE;
    case K_I64:
        return H5T_STD_I64LE;
    case K_BYTES:
        return H5T_STD_U8LE;
    case K_RNG:
        return H5T_STD_U64LE;
    }
    return -1;
}

typedef struct ckpt_entry {
    char *name;
    uint8_t kind;
    uint64_t nbytes;
    uint32_t crc;
} ckpt_entry;

struct ckpt_file {
    int writing;
    hid_t h;
    char path[CKPT_PATH_MAX]; /* <step dir>/<component>.h5 */
    char tmp[CKPT_PATH_MAX];  /* writing: path + ".tmp" */
    char dir[CKPT_PATH_MAX];  /* the step directory */
    char component[128];
    int64_t step;
    ckpt_entry *idx;
    size_t n, cap;
    uint32_t index_crc;
};

/* ------------------------------------------------------------------ small helpers */

static int path_fmt(char *out, size_t cap, rl_err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int path_fmt(char *out, size_t cap, rl_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return err_set(e, ERR_INPUT, "path too long (over %zu characters): %.80s...", cap, out);
    return ERR_OK;
}

int ckpt_step_dir(const char *run_dir, int64_t step, char *out, size_t cap, rl_err *e) {
    if (step < 0) return err_set(e, ERR_INPUT, "checkpoint step %lld is negative", (long long)step);
    return path_fmt(out, cap, e, "%s/ckpt/step_%08lld", run_dir, (long long)step);
}

static int mkdir_p1(const char *p, rl_err *e) {
    if (mkdir(p, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return ERR_OK;
        return err_set(e, ERR_IO, "%s exists and is not a directory", p);
    }
    return err_set(e, ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
}

static int write_text_atomic(const char *path, const char *text, rl_err *e) {
    char tmp[CKPT_PATH_MAX];
    int rc = path_fmt(tmp, sizeof tmp, e, "%s.tmp", path);
    if (rc) return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) return err_set(e, ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            rc = err_set(e, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
        done += (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = err_set(e, ERR_IO, "fsync of %s failed: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc) rc = err_set(e, ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

/* Reads a small text file whole (at most max bytes); *out malloc'd, NUL-terminated. */
static int read_text(const char *path, size_t max, char **out, rl_err *e) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return err_set(e, errno == ENOENT ? ERR_STATE : ERR_IO, "cannot open %s: %s", path,
                       strerror(errno));
    char *buf = xmalloc(max + 1);
    size_t n = fread(buf, 1, max + 1, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return err_set(e, ERR_IO, "cannot read %s", path);
    }
    if (n > max) {
        free(buf);
        return err_set(e, ERR_STATE, "%s is larger than %zu bytes: not a file of ours", path, max);
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        return err_set(e, ERR_STATE, "%s contains NUL bytes: damaged", path);
    }
    *out = buf;
    return ERR_OK;
}

static void notes_add(char *notes, size_t cap, const char *line) {
    if (!notes || cap == 0) return;
    size_t used = strnlen(notes, cap - 1);
    snprintf(notes + used, cap - used, "%s\n", line);
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of every ckpt/step_N directory, newest first. Missing ckpt/ gives none. */
static int list_steps(const char *run_dir, int64_t **steps, size_t *n, rl_err *e) {
    *steps = NULL;
    *n = 0;
    char dir[CKPT_PATH_MAX];
    int rc = path_fmt(dir, sizeof dir, e, "%s/ckpt", run_dir);
    if (rc) return rc;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return ERR_OK;
        return err_set(e, ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (strncmp(s, "step_", 5) != 0 || !s[5]) continue;
        int digits = 1;
        for (const char *p = s + 5; *p; p++) digits &= *p >= '0' && *p <= '9';
        if (!digits || strlen(s + 5) > 18) continue;
        char full[CKPT_PATH_MAX];
        struct stat st;
        if (path_fmt(full, sizeof full, NULL, "%s/%s", dir, s) || stat(full, &st) != 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *steps = xrealloc(*steps, cap * sizeof **steps);
        }
        (*steps)[(*n)++] = strtoll(s + 5, NULL, 10);
    }
    closedir(d);
    if (*n) qsort(*steps, *n, sizeof **steps, cmp_desc);
    return ERR_OK;
}

/* The step ckpt/latest names: ERR_OK with *step (-1 when there is no latest file), ERR_STATE
 * when it is there but does not read as "step_N". */
static int read_latest(const char *run_dir, int64_t *step, rl_err *e) {
    *step = -1;
    char path[CKPT_PATH_MAX];
    int rc = path_fmt(path, sizeof path, e, "%s/ckpt/latest", run_dir);
    if (rc) return rc;
    if (access(path, F_OK) != 0 && errno == ENOENT) return ERR_OK;
    char *text = NULL;
    rc = read_text(path, 64, &text, e);
    if (rc) return rc;
    char *end = NULL;
    long long v = -1;
    if (strncmp(text, "step_", 5) == 0) v = strtoll(text + 5, &end, 10);
    if (v < 0 || !end || end == text + 5 || (*end != '\0' && strcmp(end, "\n") != 0)) {
        for (char *c = text; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' '; /* the message stays one line */
        rc = err_set(e, ERR_STATE, "%s does not read \"step_NNNNNNNN\" (it holds \"%.40s\")", path,
                     text);
        free(text);
        return rc;
    }
    free(text);
    *step = v;
    return ERR_OK;
}

/* ------------------------------------------------------------------ the index */

typedef struct index_row {
    char *name;
    uint8_t kind;
    uint64_t nbytes;
    uint32_t crc;
} index_row;

static hid_t index_type(int file) {
    hid_t st = h5io_str_type();
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(index_row));
    if (st < 0 || t < 0 || H5Tinsert(t, "name", offsetof(index_row, name), st) < 0 ||
        H5Tinsert(t, "kind", offsetof(index_row, kind), file ? H5T_STD_U8LE : H5T_NATIVE_UINT8) <
            0 ||
        H5Tinsert(t, "nbytes", offsetof(index_row, nbytes),
                  file ? H5T_STD_U64LE : H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(t, "crc32c", offsetof(index_row, crc), file ? H5T_STD_U32LE : H5T_NATIVE_UINT32) <
            0) {
        if (t >= 0) H5Tclose(t);
        t = -1;
    }
    if (st >= 0) H5Tclose(st);
    if (t >= 0 && file) H5Tpack(t);
    return t;
}

static uint32_t index_crc(const ckpt_entry *idx, size_t n) {
    uint32_t c = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char rec[13];
        rec[0] = idx[i].kind;
        for (int b = 0; b < 8; b++) rec[1 + b] = (unsigned char)(idx[i].nbytes >> (8 * b));
        for (int b = 0; b < 4; b++) rec[9 + b] = (unsigned char)(idx[i].crc >> (8 * b));
        c = crc32c(c, idx[i].name, strlen(idx[i].name) + 1);
        c = crc32c(c, rec, sizeof rec);
    }
    return c;
}

static ckpt_entry *find_entry(const ckpt_file *f, const char *name) {
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->idx[i].name, name) == 0) return &f->idx[i];
    return NULL;
}

static void file_free(ckpt_file *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) free(f->idx[i].name);
    free(f->idx);
    free(f);
}

/* ------------------------------------------------------------------ writing */

static int check_component(const char *component, rl_err *e) {
    int rc = h5io_check_name(component, "checkpoint component", e);
    if (rc) return rc;
    if (strchr(component, '/') || strlen(component) >= 100)
        return err_set(e, ERR_INPUT, "checkpoint component '%s' must be one short name without '/'",
                       component);
    return ERR_OK;
}

int ckpt_file_begin(const char *run_dir, int64_t step, const char *component, ckpt_file **out,
                    rl_err *e) {
    *out = NULL;
    int rc = check_component(component, e);
    if (rc) return rc;
    ckpt_file *f = xcalloc(1, sizeof *f);
    f->writing = 1;
    f->h = -1;
    f->step = step;
    snprintf(f->component, sizeof f->component, "%s", component);
    char ck[CKPT_PATH_MAX];
    rc = path_fmt(ck, sizeof ck, e, "%s/ckpt", run_dir);
    if (!rc) rc = ckpt_step_dir(run_dir, step, f->dir, sizeof f->dir, e);
    if (!rc) rc = path_fmt(f->path, sizeof f->path, e, "%s/%s.h5", f->dir, component);
    if (!rc) rc = path_fmt(f->tmp, sizeof f->tmp, e, "%s/%s.h5.tmp", f->dir, component);
    if (!rc) rc = mkdir_p1(run_dir, e);
    if (!rc) rc = mkdir_p1(ck, e);
    if (!rc) rc = mkdir_p1(f->dir, e);
    if (rc) {
        file_free(f);
        return rc;
    }
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    f->h = fapl < 0 ? -1 : H5Fcreate(f->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    /* the error message first: any HDF5 call (H5Pclose too) clears the error stack */
    if (f->h < 0) rc = h5io_err(e, ERR_IO, "%s: cannot create checkpoint file", f->tmp);
    if (fapl >= 0) H5Pclose(fapl);
    h5io_quiet_end(&q);
    if (rc) {
        file_free(f);
        return rc;
    }
    *out = f;
    return ERR_OK;
}

static int check_write_name(ckpt_file *f, const char *name, rl_err *e) {
    if (!f || !f->writing || f->h < 0)
        return err_set(e, ERR_INTERNAL, "ckpt_write of '%s' on a file not open for writing",
                       name ? name : "?");
    int rc = h5io_check_name(name, "checkpoint dataset", e);
    if (rc) return err_prefix(e, "%s", f->tmp);
    if (strncmp(name, "_ckpt", 5) == 0)
        return err_set(e, ERR_INPUT,
                       "%s: dataset name '%s' is reserved (names starting with _ckpt)", f->tmp,
                       name);
    if (find_entry(f, name))
        return err_set(e, ERR_INPUT, "%s: dataset '%s' written twice", f->tmp, name);
    return ERR_OK;
}

static void push_entry(ckpt_file *f, const char *name, int kind, uint64_t nbytes, uint32_t crc) {
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 32;
        f->idx = xrealloc(f->idx, f->cap * sizeof *f->idx);
    }
    ckpt_entry *en = &f->idx[f->n++];
    en->name = xstrdup(name);
    en->kind = (uint8_t)kind;
    en->nbytes = nbytes;
    en->crc = crc;
}

/* ndim 0: scalar. data holds prod(dims) values of the kind's native type. */
static int write_numeric(ckpt_file *f, const char *name, int kind, int ndim, const hsize_t *dims,
                         const void *data, rl_err *e) {
    int rc = check_write_name(f, name, e);
    if (rc) return rc;
    size_t count = 1, nbytes;
    for (int i = 0; i < ndim; i++)
        if (size_mul(count, (size_t)dims[i], &count))
            return err_set(e, ERR_INPUT, "%s: dataset '%s': shape overflows", f->tmp, name);
    size_t esz = H5Tget_size(kind_mem_type(kind));
    if (size_mul(count, esz, &nbytes))
        return err_set(e, ERR_INPUT, "%s: dataset '%s': size overflows", f->tmp, name);
    if (count > 0 && !data)
        return err_set(e, ERR_INTERNAL, "%s: dataset '%s': NULL data", f->tmp, name);
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t sp = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    hid_t lcpl = h5io_lcpl(), d = -1;
    if (sp < 0 || lcpl < 0 ||
        (d = H5Dcreate2(f->h, name, kind_file_type(kind), sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) <
            0 ||
        (count > 0 && H5Dwrite(d, kind_mem_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
        rc = h5io_err(e, ERR_IO, "%s: cannot write dataset '%s' (%zu %s values)", f->tmp, name,
                      count, kind_name(kind));
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    h5io_quiet_end(&q);
    if (!rc) push_entry(f, name, kind, nbytes, crc32c(0, data, nbytes));
    return rc;
}

int ckpt_write_f32(ckpt_file *f, const char *name, const float *data, size_t n, rl_err *e) {
    hsize_t d = n;
    return write_numeric(f, name, K_F32, 1, &d, data, e);
}

int ckpt_write_f32_shape(ckpt_file *f, const char *name, const float *data, int ndim,
                         const size_t *dims, rl_err *e) {
    if (ndim < 1 || ndim > CKPT_MAX_DIMS)
        return err_set(e, ERR_INTERNAL, "dataset '%s': %d dimensions (1..%d supported)", name, ndim,
                       CKPT_MAX_DIMS);
    hsize_t hd[CKPT_MAX_DIMS];
    for (int i = 0; i < ndim; i++) hd[i] = dims[i];
    return write_numeric(f, name, K_F32, ndim, hd, data, e);
}

int ckpt_write_f64(ckpt_file *f, const char *name, const double *data, size_t n, rl_err *e) {
    hsize_t d = n;
    return write_numeric(f, name, K_F64, 1, &d, data, e);
}

int ckpt_write_i64(ckpt_file *f, const char *name, const int64_t *data, size_t n, rl_err *e) {
    hsize_t d = n;
    return write_numeric(f, name, K_I64, 1, &d, data, e);
}

int ckpt_write_i64_scalar(ckpt_file *f, const char *name, int64_t value, rl_err *e) {
    return write_numeric(f, name, K_I64, 0, NULL, &value, e);
}

int ckpt_write_bytes(ckpt_file *f, const char *name, const void *data, size_t n, rl_err *e) {
    hsize_t d = n;
    return write_numeric(f, name, K_BYTES, 1, &d, data, e);
}

int ckpt_write_rng(ckpt_file *f, const char *name, const rng *r, rl_err *e) {
    uint64_t s[RNG_STATE_WORDS];
    rng_state_get(r, s);
    hsize_t d = RNG_STATE_WORDS;
    return write_numeric(f, name, K_RNG, 1, &d, s, e);
}

int ckpt_write_rng_states(ckpt_file *f, const char *name, const uint64_t *states, size_t n,
                          rl_err *e) {
    hsize_t d[2] = {n, RNG_STATE_WORDS};
    return write_numeric(f, name, K_RNG, 2, d, states, e);
}

int ckpt_write_string(ckpt_file *f, const char *name, const char *text, rl_err *e) {
    int rc = check_write_name(f, name, e);
    if (rc) return rc;
    if (!text) text = "";
    h5io_quiet q;
    h5io_quiet_begin(&q);
    rl_err sub;
    if (h5io_write_str(f->h, name, text, &sub) != ERR_OK)
        rc = err_set(e, ERR_IO, "%s: %s", f->tmp, sub.msg);
    h5io_quiet_end(&q);
    if (!rc) push_entry(f, name, K_STR, strlen(text), crc32c(0, text, strlen(text)));
    return rc;
}

void ckpt_file_abort(ckpt_file *f) {
    if (!f) return;
    if (f->h >= 0) {
        h5io_quiet q;
        h5io_quiet_begin(&q);
        H5Fclose(f->h);
        h5io_quiet_end(&q);
    }
    if (f->writing) unlink(f->tmp);
    file_free(f);
}

static int write_index(ckpt_file *f, rl_err *e) {
    index_row *rows = xcalloc(f->n + 1, sizeof *rows);
    for (size_t i = 0; i < f->n; i++) {
        rows[i].name = f->idx[i].name;
        rows[i].kind = f->idx[i].kind;
        rows[i].nbytes = f->idx[i].nbytes;
        rows[i].crc = f->idx[i].crc;
    }
    f->index_crc = index_crc(f->idx, f->n);
    hsize_t dim = f->n;
    hid_t ft = index_type(1), mt = index_type(0), sp = H5Screate_simple(1, &dim, NULL), d = -1;
    int rc = ERR_OK;
    if (ft < 0 || mt < 0 || sp < 0 ||
        (d = H5Dcreate2(f->h, CKPT_INDEX, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (f->n > 0 && H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0)) {
        rc = h5io_err(e, ERR_IO, "%s: cannot write the completeness marker", f->tmp);
        goto out;
    }
    char host[64], writer[128], now[32];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    snprintf(writer, sizeof writer, "%s pid %ld t %.9f", host, (long)getpid(), log_now());
    h5io_utc_now(now);
    int64_t step = f->step, count = (int64_t)f->n, icrc = f->index_crc;
    rc = h5io_write_str_attr(d, "format", CKPT_FORMAT, e);
    if (!rc) rc = h5io_write_i64_attr(d, "step", &step, 1, e);
    if (!rc) rc = h5io_write_str_attr(d, "component", f->component, e);
    if (!rc) rc = h5io_write_i64_attr(d, "count", &count, 1, e);
    if (!rc) rc = h5io_write_str_attr(d, "writer", writer, e);
    if (!rc) rc = h5io_write_str_attr(d, "written_at", now, e);
    if (!rc) rc = h5io_write_i64_attr(d, "index_crc32c", &icrc, 1, e);
    if (rc) err_prefix(e, "%s: completeness marker", f->tmp);
out:
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (mt >= 0) H5Tclose(mt);
    if (ft >= 0) H5Tclose(ft);
    free(rows);
    return rc;
}

int ckpt_file_commit(ckpt_file *f, rl_err *e) {
    if (!f || !f->writing || f->h < 0) {
        file_free(f);
        return err_set(e, ERR_INTERNAL, "ckpt_file_commit on a file not open for writing");
    }
    h5io_quiet q;
    h5io_quiet_begin(&q);
    int rc = write_index(f, e);
    herr_t cl = H5Fclose(f->h);
    f->h = -1;
    if (cl < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close (disk full?)", f->tmp);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(f->tmp, e);
    if (!rc && rename(f->tmp, f->path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
    if (!rc) rc = h5io_fsync_dir(f->dir, e);
    if (rc) unlink(f->tmp);
    file_free(f);
    return rc;
}

/* ------------------------------------------------------------------ opening for reading */

static int open_file_at(const char *path, const char *component, int64_t step, ckpt_file **out,
                        rl_err *e) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return err_set(e, ERR_STATE, "%s is missing (%s)", path, strerror(errno));
    ckpt_file *f = xcalloc(1, sizeof *f);
    f->h = -1;
    f->step = step;
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->component, sizeof f->component, "%s", component);
    h5io_quiet q;
    h5io_quiet_begin(&q);
    int rc = ERR_OK;
    hid_t fapl = h5io_fapl(), d = -1, mt = -1, sp = -1;
    index_row *rows = NULL;
    hssize_t n = 0;
    f->h = fapl < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f->h < 0)
        rc = h5io_err(e, ERR_STATE, "%s does not open as HDF5: truncated or corrupt", path);
    if (fapl >= 0) H5Pclose(fapl);
    if (rc) goto out;
    int ex = h5io_exists(f->h, CKPT_INDEX);
    if (ex <= 0) {
        rc = h5io_err(e, ERR_STATE,
                      "%s has no completeness marker (%s): its writer did not "
                      "finish",
                      path, CKPT_INDEX);
        goto out;
    }
    d = H5Dopen2(f->h, CKPT_INDEX, H5P_DEFAULT);
    if (d < 0) {
        rc = h5io_err(e, ERR_STATE, "%s: the completeness marker does not open: corrupt", path);
        goto out;
    }
    char *s = NULL;
    rl_err sub;
    if (h5io_read_str_attr(d, "format", &s, &sub) || strcmp(s, CKPT_FORMAT) != 0) {
        rc = err_set(e, ERR_STATE, "%s: marker format is '%s', expected '%s'", path,
                     s ? s : "missing", CKPT_FORMAT);
        free(s);
        goto out;
    }
    free(s);
    if (h5io_read_str_attr(d, "component", &s, &sub) || strcmp(s, component) != 0) {
        rc = err_set(e, ERR_STATE, "%s: marker says component '%s', expected '%s'", path,
                     s ? s : "missing", component);
        free(s);
        goto out;
    }
    free(s);
    int64_t v[1];
    size_t nv = 0;
    if (h5io_read_i64_attr(d, "step", v, 1, &nv, &sub) || nv != 1 || v[0] != step) {
        rc = err_set(e, ERR_STATE, "%s: marker says step %lld, expected %lld", path,
                     nv ? (long long)v[0] : -1LL, (long long)step);
        goto out;
    }
    int64_t count = -1, icrc = -1;
    if (h5io_read_i64_attr(d, "count", v, 1, &nv, &sub) == ERR_OK && nv == 1) count = v[0];
    if (h5io_read_i64_attr(d, "index_crc32c", v, 1, &nv, &sub) == ERR_OK && nv == 1) icrc = v[0];
    sp = H5Dget_space(d);
    n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    mt = index_type(0);
    if (n < 0 || mt < 0 || n != count) {
        rc = err_set(e, ERR_STATE,
                     "%s: the marker lists %lld datasets but its count says %lld: "
                     "corrupt",
                     path, (long long)n, (long long)count);
        goto out;
    }
    rows = xcalloc((size_t)n + 1, sizeof *rows);
    if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) {
        rc = h5io_err(e, ERR_STATE, "%s: cannot read the completeness marker: corrupt", path);
        goto out;
    }
    f->idx = xcalloc((size_t)n + 1, sizeof *f->idx);
    f->cap = (size_t)n + 1;
    for (hssize_t i = 0; i < n; i++) {
        ckpt_entry *en = &f->idx[f->n++];
        en->name = xstrdup(rows[i].name ? rows[i].name : "");
        en->kind = rows[i].kind;
        en->nbytes = rows[i].nbytes;
        en->crc = rows[i].crc;
    }
    if (n > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, rows);
    f->index_crc = index_crc(f->idx, f->n);
    if ((int64_t)f->index_crc != icrc) {
        rc = err_set(e, ERR_STATE,
                     "%s: completeness marker fails its checksum (stored %08llx, "
                     "computed %08x): corrupt",
                     path, (unsigned long long)icrc, f->index_crc);
        goto out;
    }
out:
    free(rows);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (rc && f->h >= 0) {
        H5Fclose(f->h);
        f->h = -1;
    }
    h5io_quiet_end(&q);
    if (rc) {
        file_free(f);
        return rc;
    }
    *out = f;
    return ERR_OK;
}

int ckpt_file_open_path(const char *path, const char *component, int64_t step, ckpt_file **out,
                        rl_err *e) {
    *out = NULL;
    int rc = check_component(component, e);
    if (rc) return rc;
    return open_file_at(path, component, step, out, e);
}

int ckpt_file_open(const char *run_dir, int64_t step, const char *component, ckpt_file **out,
                   rl_err *e) {
    *out = NULL;
    int rc = check_component(component, e);
    if (rc) return rc;
    char dir[CKPT_PATH_MAX], path[CKPT_PATH_MAX];
    rc = ckpt_step_dir(run_dir, step, dir, sizeof dir, e);
    if (!rc) rc = path_fmt(path, sizeof path, e, "%s/%s.h5", dir, component);
    if (!rc) rc = open_file_at(path, component, step, out, e);
    if (!rc) snprintf((*out)->dir, sizeof(*out)->dir, "%s", dir);
    return rc;
}

void ckpt_file_close(ckpt_file *f) {
    if (!f) return;
    if (f->writing) {
        ckpt_file_abort(f);
        return;
    }
    if (f->h >= 0) {
        h5io_quiet q;
        h5io_quiet_begin(&q);
        H5Fclose(f->h);
        h5io_quiet_end(&q);
    }
    file_free(f);
}

int ckpt_has(const ckpt_file *f, const char *name) {
    return f && find_entry(f, name) != NULL;
}

size_t ckpt_count(const ckpt_file *f) {
    return f ? f->n : 0;
}

const char *ckpt_name_at(const ckpt_file *f, size_t i) {
    return f && i < f->n ? f->idx[i].name : NULL;
}

/* ------------------------------------------------------------------ reading datasets */

static void shape_str(char *buf, size_t cap, int ndim, const hsize_t *dims) {
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
    if (used < cap) snprintf(buf + used, cap - used, "%s)", ndim == 0 ? "scalar" : "");
}

/* Opens dataset `name` of kind `kind` (0: any); ndim and dims get its shape. */
static int open_ds(ckpt_file *f, const char *name, int kind, ckpt_entry **en, hid_t *d, int *ndim,
                   hsize_t dims[CKPT_MAX_DIMS], rl_err *e) {
    *d = -1;
    if (!f || f->writing || f->h < 0)
        return err_set(e, ERR_INTERNAL, "ckpt_read of '%s' on a file not open for reading", name);
    *en = find_entry(f, name);
    if (!*en)
        return err_set(e, ERR_INPUT,
                       "%s has no dataset '%s' (it holds %zu datasets); was the "
                       "checkpoint written by another configuration?",
                       f->path, name, f->n);
    if (kind && (*en)->kind != kind)
        return err_set(e, ERR_INPUT, "%s: dataset '%s' holds %s, expected %s", f->path, name,
                       kind_name((*en)->kind), kind_name(kind));
    *d = H5Dopen2(f->h, name, H5P_DEFAULT);
    if (*d < 0)
        return h5io_err(e, ERR_STATE, "%s: dataset '%s' does not open: corrupt", f->path, name);
    hid_t sp = H5Dget_space(*d);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > CKPT_MAX_DIMS || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(*d);
        *d = -1;
        return h5io_err(e, ERR_STATE, "%s: dataset '%s': unreadable shape: corrupt", f->path, name);
    }
    H5Sclose(sp);
    *ndim = nd;
    return ERR_OK;
}

/* Reads a numeric dataset into out and checks its CRC. */
static int read_numeric_into(ckpt_file *f, const ckpt_entry *en, hid_t d, void *out, size_t nbytes,
                             rl_err *e) {
    if (nbytes != en->nbytes)
        return err_set(e, ERR_STATE,
                       "%s: dataset '%s' holds %zu bytes, its index says %llu: "
                       "corrupt",
                       f->path, en->name, nbytes, (unsigned long long)en->nbytes);
    if (nbytes > 0 && H5Dread(d, kind_mem_type(en->kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        return h5io_err(e, ERR_STATE, "%s: cannot read dataset '%s': corrupt", f->path, en->name);
    uint32_t c = crc32c(0, out, nbytes);
    if (c != en->crc)
        return err_set(e, ERR_STATE,
                       "%s: dataset '%s' fails its checksum (stored %08x, computed "
                       "%08x): the file is corrupt; resume from an earlier checkpoint",
                       f->path, en->name, en->crc, c);
    return ERR_OK;
}

static int read_checked(ckpt_file *f, const char *name, int kind, void *out, int want_ndim,
                        const hsize_t *want_dims, rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    ckpt_entry *en = NULL;
    hid_t d = -1;
    int ndim = 0;
    hsize_t dims[CKPT_MAX_DIMS];
    int rc = open_ds(f, name, kind, &en, &d, &ndim, dims, e);
    if (!rc) {
        /* want_ndim < 0: any shape with want_dims[0] values in all */
        size_t have = 1, want = 1;
        for (int i = 0; i < ndim; i++) have *= (size_t)dims[i];
        int ok;
        if (want_ndim < 0) {
            want = (size_t)want_dims[0];
            ok = have == want;
        } else {
            ok = ndim == want_ndim;
            for (int i = 0; ok && i < ndim; i++) ok = dims[i] == want_dims[i];
            for (int i = 0; i < want_ndim; i++) want *= (size_t)want_dims[i];
        }
        if (!ok) {
            char hs[160], ws[160];
            shape_str(hs, sizeof hs, ndim, dims);
            if (want_ndim < 0)
                snprintf(ws, sizeof ws, "%zu values", want);
            else
                shape_str(ws, sizeof ws, want_ndim, want_dims);
            rc = err_set(e, ERR_INPUT,
                         "%s: dataset '%s' has shape %s (%zu values), expected %s: "
                         "the checkpoint was written for a different size; resume "
                         "with the deck that wrote it",
                         f->path, name, hs, have, ws);
        } else {
            rc = read_numeric_into(f, en, d, out, have * H5Tget_size(kind_mem_type(kind)), e);
        }
    }
    if (d >= 0) H5Dclose(d);
    h5io_quiet_end(&q);
    return rc;
}

int ckpt_shape(ckpt_file *f, const char *name, int *ndim, size_t dims[CKPT_MAX_DIMS], rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    ckpt_entry *en = NULL;
    hid_t d = -1;
    hsize_t hd[CKPT_MAX_DIMS];
    int rc = open_ds(f, name, 0, &en, &d, ndim, hd, e);
    if (!rc)
        for (int i = 0; i < *ndim; i++) dims[i] = (size_t)hd[i];
    if (d >= 0) H5Dclose(d);
    h5io_quiet_end(&q);
    return rc;
}

int ckpt_read_f32(ckpt_file *f, const char *name, float *out, size_t expected_count, rl_err *e) {
    hsize_t w = expected_count;
    return read_checked(f, name, K_F32, out, -1, &w, e);
}

int ckpt_read_f32_shape(ckpt_file *f, const char *name, float *out, int ndim, const size_t *dims,
                        rl_err *e) {
    if (ndim < 1 || ndim > CKPT_MAX_DIMS)
        return err_set(e, ERR_INTERNAL, "dataset '%s': %d dimensions (1..%d supported)", name, ndim,
                       CKPT_MAX_DIMS);
    hsize_t hd[CKPT_MAX_DIMS];
    for (int i = 0; i < ndim; i++) hd[i] = dims[i];
    return read_checked(f, name, K_F32, out, ndim, hd, e);
}

int ckpt_read_f64(ckpt_file *f, const char *name, double *out, size_t expected_count, rl_err *e) {
    hsize_t w = expected_count;
    return read_checked(f, name, K_F64, out, -1, &w, e);
}

int ckpt_read_i64(ckpt_file *f, const char *name, int64_t *out, size_t expected_count, rl_err *e) {
    hsize_t w = expected_count;
    return read_checked(f, name, K_I64, out, -1, &w, e);
}

int ckpt_read_i64_scalar(ckpt_file *f, const char *name, int64_t *out, rl_err *e) {
    hsize_t w = 1;
    return read_checked(f, name, K_I64, out, -1, &w, e);
}

int ckpt_read_rng(ckpt_file *f, const char *name, rng *r, rl_err *e) {
    uint64_t s[RNG_STATE_WORDS];
    hsize_t w = RNG_STATE_WORDS;
    int rc = read_checked(f, name, K_RNG, s, 1, &w, e);
    if (!rc) rng_state_set(r, s);
    return rc;
}

int ckpt_read_rng_states(ckpt_file *f, const char *name, uint64_t *states, size_t n, rl_err *e) {
    hsize_t w[2] = {n, RNG_STATE_WORDS};
    return read_checked(f, name, K_RNG, states, 2, w, e);
}

int ckpt_read_bytes(ckpt_file *f, const char *name, void **out, size_t *n, rl_err *e) {
    *out = NULL;
    *n = 0;
    h5io_quiet q;
    h5io_quiet_begin(&q);
    ckpt_entry *en = NULL;
    hid_t d = -1;
    int ndim = 0;
    hsize_t dims[CKPT_MAX_DIMS];
    int rc = open_ds(f, name, K_BYTES, &en, &d, &ndim, dims, e);
    if (!rc) {
        size_t have = ndim == 1 ? (size_t)dims[0] : 0;
        void *buf = xmalloc(have + 1);
        rc = ndim == 1 ? read_numeric_into(f, en, d, buf, have, e)
                       : err_set(e, ERR_STATE, "%s: dataset '%s' is not 1-D", f->path, name);
        if (rc)
            free(buf);
        else
            *out = buf, *n = have;
    }
    if (d >= 0) H5Dclose(d);
    h5io_quiet_end(&q);
    return rc;
}

int ckpt_read_string(ckpt_file *f, const char *name, char **out, rl_err *e) {
    *out = NULL;
    if (!f || f->writing || f->h < 0)
        return err_set(e, ERR_INTERNAL, "ckpt_read of '%s' on a file not open for reading", name);
    ckpt_entry *en = find_entry(f, name);
    if (!en) return err_set(e, ERR_INPUT, "%s has no dataset '%s'", f->path, name);
    if (en->kind != K_STR)
        return err_set(e, ERR_INPUT, "%s: dataset '%s' holds %s, expected string", f->path, name,
                       kind_name(en->kind));
    h5io_quiet q;
    h5io_quiet_begin(&q);
    rl_err sub;
    int rc = h5io_read_str(f->h, name, out, &sub);
    h5io_quiet_end(&q);
    if (rc) return err_set(e, ERR_STATE, "%s: %s: corrupt", f->path, sub.msg);
    size_t len = strlen(*out);
    uint32_t c = crc32c(0, *out, len);
    if (len != en->nbytes || c != en->crc) {
        free(*out);
        *out = NULL;
        return err_set(e, ERR_STATE,
                       "%s: string '%s' fails its checksum (%zu bytes, index says "
                       "%llu): corrupt",
                       f->path, name, len, (unsigned long long)en->nbytes);
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------ verification */

/* CRC of a whole numeric dataset, read in slabs along its first dimension. */
static int dataset_crc(ckpt_file *f, const ckpt_entry *en, uint64_t *nbytes, uint32_t *crc,
                       rl_err *e) {
    *nbytes = 0;
    *crc = 0;
    if (en->kind == K_STR) {
        char *s = NULL;
        rl_err sub;
        if (h5io_read_str(f->h, en->name, &s, &sub))
            return err_set(e, ERR_STATE, "%s: %s: corrupt", f->path, sub.msg);
        *nbytes = strlen(s);
        *crc = crc32c(0, s, *nbytes);
        free(s);
        return ERR_OK;
    }
    if (kind_mem_type(en->kind) < 0)
        return err_set(e, ERR_STATE, "%s: dataset '%s' has unknown kind %d in the index: corrupt",
                       f->path, en->name, en->kind);
    ckpt_entry *dummy;
    hid_t d = -1;
    int ndim = 0;
    hsize_t dims[CKPT_MAX_DIMS];
    int rc = open_ds(f, en->name, en->kind, &dummy, &d, &ndim, dims, e);
    if (rc) return rc;
    hid_t mt = kind_mem_type(en->kind);
    size_t esz = H5Tget_size(mt), row = esz;
    for (int i = 1; i < ndim; i++) row *= (size_t)dims[i];
    size_t rows = ndim == 0 ? 1 : (size_t)dims[0];
    size_t total = rows * row;
    if (total != en->nbytes) {
        H5Dclose(d);
        return err_set(e, ERR_STATE,
                       "%s: dataset '%s' holds %zu bytes, its index says %llu: "
                       "corrupt",
                       f->path, en->name, total, (unsigned long long)en->nbytes);
    }
    size_t per = ndim == 0 ? 1 : (CKPT_SLAB_BYTES / (row ? row : 1));
    if (per == 0) per = 1;
    void *buf = xmalloc((per < rows ? per : rows) * row + 1);
    uint32_t c = 0;
    hid_t fs = H5Dget_space(d);
    for (size_t r0 = 0; r0 < rows && !rc && total > 0; r0 += per) {
        size_t nr = rows - r0 < per ? rows - r0 : per;
        herr_t st;
        if (ndim == 0) {
            st = H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        } else {
            hsize_t start[CKPT_MAX_DIMS] = {0}, count[CKPT_MAX_DIMS];
            start[0] = r0;
            count[0] = nr;
            for (int i = 1; i < ndim; i++) count[i] = dims[i];
            hid_t ms = H5Screate_simple(ndim, count, NULL);
            st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
            if (st >= 0) st = H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf);
            H5Sclose(ms);
        }
        if (st < 0)
            rc = h5io_err(e, ERR_STATE, "%s: cannot read dataset '%s': corrupt", f->path, en->name);
        else
            c = crc32c(c, buf, nr * row);
    }
    H5Sclose(fs);
    free(buf);
    H5Dclose(d);
    *nbytes = total;
    *crc = c;
    return rc;
}

/* Opens a numeric dataset and compares its size in bytes with the index, reading no data. */
static int dataset_size(ckpt_file *f, const ckpt_entry *en, rl_err *e) {
    if (kind_mem_type(en->kind) < 0)
        return err_set(e, ERR_STATE, "%s: dataset '%s' has unknown kind %d in the index: corrupt",
                       f->path, en->name, en->kind);
    ckpt_entry *dummy;
    hid_t d = -1;
    int ndim = 0;
    hsize_t dims[CKPT_MAX_DIMS];
    int rc = open_ds(f, en->name, en->kind, &dummy, &d, &ndim, dims, e);
    if (rc) return rc;
    size_t total = H5Tget_size(kind_mem_type(en->kind));
    for (int i = 0; i < ndim; i++) total *= (size_t)dims[i];
    H5Dclose(d);
    if (total != en->nbytes)
        return err_set(e, ERR_STATE,
                       "%s: dataset '%s' holds %zu bytes, its index says %llu: "
                       "corrupt",
                       f->path, en->name, total, (unsigned long long)en->nbytes);
    return ERR_OK;
}

/* Structure (datasets in the file = datasets in the index, each opens with the indexed size)
 * and, when full, every CRC. */
static int verify_file(ckpt_file *f, int mode, rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    char **names = NULL;
    size_t n = 0;
    int rc = h5io_list_datasets(f->h, "/", &names, &n, e);
    if (rc) err_prefix(e, "%s", f->path);
    size_t found = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (strcmp(names[i], CKPT_INDEX) == 0) continue;
        if (!find_entry(f, names[i]))
            rc = err_set(e, ERR_STATE,
                         "%s: dataset '%s' is not in the completeness marker: the "
                         "file was changed after it was written",
                         f->path, names[i]);
        found++;
    }
    h5io_free_names(names, n);
    if (!rc && found != f->n)
        rc = err_set(e, ERR_STATE,
                     "%s holds %zu datasets, its completeness marker lists %zu: "
                     "corrupt",
                     f->path, found, f->n);
    for (size_t i = 0; i < f->n && !rc; i++) {
        uint64_t nb;
        uint32_t c;
        if (mode != CKPT_VERIFY_FULL && f->idx[i].kind != K_STR) {
            /* quick: the dataset's header opens and its size agrees with the index */
            rc = dataset_size(f, &f->idx[i], e);
            continue;
        }
        rc = dataset_crc(f, &f->idx[i], &nb, &c, e);
        if (!rc && (nb != f->idx[i].nbytes || c != f->idx[i].crc))
            rc = err_set(e, ERR_STATE,
                         "%s: dataset '%s' fails its checksum (stored %08x over %llu "
                         "bytes, computed %08x over %llu): corrupt",
                         f->path, f->idx[i].name, f->idx[i].crc,
                         (unsigned long long)f->idx[i].nbytes, c, (unsigned long long)nb);
    }
    h5io_quiet_end(&q);
    return rc;
}

int ckpt_file_verify(ckpt_file *f, int mode, rl_err *e) {
    if (!f || f->writing || f->h < 0)
        return err_set(e, ERR_INTERNAL, "ckpt_file_verify on a file not open for reading");
    return verify_file(f, mode, e);
}

int ckpt_latest(const char *run_dir, int64_t *step, rl_err *e) {
    return read_latest(run_dir, step, e);
}

typedef struct manifest_comp {
    char name[128];
    long long size;
    uint32_t index_crc;
    int has_file_crc; /* manifests written before the whole-file CRC have none */
    uint32_t file_crc;
} manifest_comp;

/* CRC-32C of a whole file, read with plain I/O: checked before HDF5 sees a byte of it, since
 * HDF5 does not survive every malformed file (its global heap, for one, has no checksum). */
static int file_crc(const char *path, uint32_t *crc, rl_err *e) {
    *crc = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 20;
    unsigned char *buf = xmalloc(cap);
    uint32_t c = 0;
    int rc = ERR_OK;
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = err_set(e, ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        c = crc32c(c, buf, (size_t)n);
    }
    free(buf);
    close(fd);
    *crc = c;
    return rc;
}

/* Parses MANIFEST text; *comps malloc'd. */
static int parse_manifest(const char *path, char *text, int64_t step, manifest_comp **comps,
                          size_t *n, rl_err *e) {
    *comps = NULL;
    *n = 0;
    size_t cap = 0;
    int line_no = 0, saw_step = 0, saw_end = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        if (saw_end)
            return err_set(e, ERR_STATE, "%s:%d: text after 'end': damaged", path, line_no);
        if (line_no == 1) {
            if (strcmp(line, CKPT_MANIFEST_HDR) != 0)
                return err_set(e, ERR_STATE, "%s:1: expected '%s': not a manifest", path,
                               CKPT_MANIFEST_HDR);
            continue;
        }
        long long v;
        char name[128];
        unsigned crc, fcrc;
        int used = 0, fields = 0;
        if (sscanf(line, "step %lld%n", &v, &used) == 1 && line[used] == '\0') {
            if (v != step)
                return err_set(e, ERR_STATE,
                               "%s:%d: says step %lld, but it is in the directory of "
                               "step %lld",
                               path, line_no, v, (long long)step);
            saw_step = 1;
        } else if (strncmp(line, "written ", 8) == 0) {
            /* informational */
        } else if (((fields = sscanf(line, "component %127s %lld %8x %8x%n", name, &v, &crc, &fcrc,
                                     &used)) == 4 ||
                    (fields == 3 &&
                     sscanf(line, "component %127s %lld %8x%n", name, &v, &crc, &used) == 3)) &&
                   line[used] == '\0') {
            if (*n == cap) {
                cap = cap ? 2 * cap : 8;
                *comps = xrealloc(*comps, cap * sizeof **comps);
            }
            manifest_comp *c = &(*comps)[(*n)++];
            snprintf(c->name, sizeof c->name, "%s", name);
            c->size = v;
            c->index_crc = crc;
            c->has_file_crc = fields == 4;
            c->file_crc = fields == 4 ? fcrc : 0;
        } else if (strcmp(line, "end") == 0) {
            saw_end = 1;
        } else {
            return err_set(e, ERR_STATE, "%s:%d: unexpected line '%.60s': damaged", path, line_no,
                           line);
        }
    }
    if (!saw_end) return err_set(e, ERR_STATE, "%s ends before its 'end' line: truncated", path);
    if (!saw_step) return err_set(e, ERR_STATE, "%s has no 'step' line: damaged", path);
    if (*n == 0) return err_set(e, ERR_STATE, "%s lists no components: damaged", path);
    return ERR_OK;
}

int ckpt_verify_step(const char *run_dir, int64_t step, int mode, rl_err *e) {
    char dir[CKPT_PATH_MAX], mpath[CKPT_PATH_MAX];
    int rc = ckpt_step_dir(run_dir, step, dir, sizeof dir, e);
    if (!rc) rc = path_fmt(mpath, sizeof mpath, e, "%s/MANIFEST", dir);
    if (rc) return rc;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(e, ERR_STATE, "%s is missing", dir);
    if (stat(mpath, &st) != 0)
        return err_set(e, ERR_STATE,
                       "%s has no MANIFEST: the step was never committed (a crash "
                       "while it was being written)",
                       dir);
    char *text = NULL;
    rc = read_text(mpath, 1 << 20, &text, e);
    if (rc) return rc;
    manifest_comp *comps = NULL;
    size_t nc = 0;
    rc = parse_manifest(mpath, text, step, &comps, &nc, e);
    free(text);
    for (size_t i = 0; i < nc && !rc; i++) {
        char path[CKPT_PATH_MAX];
        rc = path_fmt(path, sizeof path, e, "%s/%s.h5", dir, comps[i].name);
        if (rc) break;
        if (stat(path, &st) != 0) {
            rc = err_set(e, ERR_STATE, "%s is missing (the MANIFEST lists it)", path);
            break;
        }
        if ((long long)st.st_size != comps[i].size) {
            rc = err_set(e, ERR_STATE, "%s is %lld bytes, the MANIFEST says %lld: %s", path,
                         (long long)st.st_size, comps[i].size,
                         (long long)st.st_size < comps[i].size ? "truncated"
                                                               : "replaced or damaged");
            break;
        }
        if (comps[i].has_file_crc && mode == CKPT_VERIFY_FULL) {
            uint32_t c = 0;
            if ((rc = file_crc(path, &c, e))) break;
            if (c != comps[i].file_crc) {
                rc = err_set(e, ERR_STATE,
                             "%s fails its file checksum (CRC-32C %08x, the MANIFEST says %08x): "
                             "corrupt",
                             path, c, comps[i].file_crc);
                break;
            }
        }
        ckpt_file *f = NULL;
        rc = open_file_at(path, comps[i].name, step, &f, e);
        if (rc) break;
        if (f->index_crc != comps[i].index_crc)
            rc = err_set(e, ERR_STATE,
                         "%s is not the file that was committed (index CRC %08x, the "
                         "MANIFEST says %08x)",
                         path, f->index_crc, comps[i].index_crc);
        if (!rc) rc = verify_file(f, mode, e);
        ckpt_file_close(f);
    }
    free(comps);
    return rc;
}

int ckpt_find_latest(const char *run_dir, int64_t *step, int mode, char *notes, size_t notes_cap,
                     rl_err *e) {
    *step = -1;
    if (notes && notes_cap) notes[0] = '\0';
    int64_t latest = -1;
    rl_err why;
    int latest_ok = read_latest(run_dir, &latest, &why) == ERR_OK;
    char line[ERR_MSG_MAX + 128];
    if (!latest_ok) {
        snprintf(line, sizeof line, "ckpt/latest is unusable (%s); looking at every step directory",
                 why.msg);
        notes_add(notes, notes_cap, line);
    }
    int64_t *steps = NULL;
    size_t n = 0;
    int rc = list_steps(run_dir, &steps, &n, e);
    if (rc) return rc;
    int tried = 0;
    if (latest >= 0) {
        tried++;
        if (ckpt_verify_step(run_dir, latest, mode, &why) == ERR_OK) {
            *step = latest;
            free(steps);
            return ERR_OK;
        }
        snprintf(line, sizeof line,
                 "checkpoint step %lld (ckpt/latest) is not usable: %s; falling "
                 "back to the previous one",
                 (long long)latest, why.msg);
        notes_add(notes, notes_cap, line);
    }
    for (size_t i = 0; i < n; i++) {
        /* newer than latest: a step being written, or one whose commit never finished */
        if (latest >= 0 && steps[i] >= latest) continue;
        char dir[CKPT_PATH_MAX], mpath[CKPT_PATH_MAX];
        if (ckpt_step_dir(run_dir, steps[i], dir, sizeof dir, NULL) == ERR_OK &&
            path_fmt(mpath, sizeof mpath, NULL, "%s/MANIFEST", dir) == ERR_OK &&
            access(mpath, F_OK) != 0) {
            snprintf(line, sizeof line,
                     "checkpoint step %lld was never committed (no MANIFEST); "
                     "skipped",
                     (long long)steps[i]);
            notes_add(notes, notes_cap, line);
            continue;
        }
        tried++;
        if (ckpt_verify_step(run_dir, steps[i], mode, &why) == ERR_OK) {
            *step = steps[i];
            free(steps);
            return ERR_OK;
        }
        snprintf(line, sizeof line, "checkpoint step %lld is not usable: %s", (long long)steps[i],
                 why.msg);
        notes_add(notes, notes_cap, line);
    }
    free(steps);
    if (tried == 0 && latest_ok) return ERR_OK; /* no committed checkpoint at all */
    return err_set(e, ERR_STATE,
                   "no usable checkpoint in %s/ckpt (%d tried%s); start without "
                   "--resume, or repair the files listed",
                   run_dir, tried, tried ? ", see the notes for each" : "");
}

/* ------------------------------------------------------------------ commit, begin, prune */

static int remove_dir_files(const char *dir, rl_err *e) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return ERR_OK;
        return err_set(e, ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    }
    int rc = ERR_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        char p[CKPT_PATH_MAX];
        if (path_fmt(p, sizeof p, e, "%s/%s", dir, de->d_name)) {
            rc = e ? e->code : ERR_INPUT;
            break;
        }
        if (unlink(p) != 0 && errno != ENOENT) {
            rc = err_set(e, ERR_IO, "cannot remove %s: %s", p, strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

int ckpt_step_begin(const char *run_dir, int64_t step, rl_err *e) {
    int64_t latest = -1;
    rl_err why;
    if (read_latest(run_dir, &latest, &why) == ERR_OK && latest == step)
        return err_set(e, ERR_STATE,
                       "checkpoint step %lld is the latest committed one in %s/ckpt; "
                       "refusing to overwrite it",
                       (long long)step, run_dir);
    char ck[CKPT_PATH_MAX], dir[CKPT_PATH_MAX];
    int rc = path_fmt(ck, sizeof ck, e, "%s/ckpt", run_dir);
    if (!rc) rc = ckpt_step_dir(run_dir, step, dir, sizeof dir, e);
    if (!rc) rc = mkdir_p1(run_dir, e);
    if (!rc) rc = mkdir_p1(ck, e);
    if (!rc) rc = mkdir_p1(dir, e);
    if (!rc) rc = remove_dir_files(dir, e);
    return rc;
}

int ckpt_commit_step(const char *run_dir, int64_t step, const char *const *components, size_t n,
                     rl_err *e) {
    if (n == 0)
        return err_set(e, ERR_INTERNAL, "ckpt_commit_step of step %lld with no components",
                       (long long)step);
    char dir[CKPT_PATH_MAX], ck[CKPT_PATH_MAX], mpath[CKPT_PATH_MAX], lpath[CKPT_PATH_MAX];
    int rc = ckpt_step_dir(run_dir, step, dir, sizeof dir, e);
    if (!rc) rc = path_fmt(ck, sizeof ck, e, "%s/ckpt", run_dir);
    if (!rc) rc = path_fmt(mpath, sizeof mpath, e, "%s/MANIFEST", dir);
    if (!rc) rc = path_fmt(lpath, sizeof lpath, e, "%s/latest", ck);
    if (rc) return rc;
    size_t cap = 256 + n * 200, used = 0;
    char *text = xmalloc(cap);
    char now[32];
    h5io_utc_now(now);
    used += (size_t)snprintf(text + used, cap - used, "%s\nstep %lld\nwritten %s\n",
                             CKPT_MANIFEST_HDR, (long long)step, now);
    for (size_t i = 0; i < n && !rc; i++) {
        for (size_t j = 0; j < i && !rc; j++)
            if (strcmp(components[i], components[j]) == 0)
                rc = err_set(e, ERR_INTERNAL, "component '%s' listed twice", components[i]);
        if (rc) break;
        ckpt_file *f = NULL;
        rc = ckpt_file_open(run_dir, step, components[i], &f, e);
        if (rc) {
            err_prefix(e, "cannot commit checkpoint step %lld", (long long)step);
            break;
        }
        struct stat st;
        uint32_t fc = 0;
        if (stat(f->path, &st) != 0)
            rc = err_set(e, ERR_IO, "cannot stat %s: %s", f->path, strerror(errno));
        else if (!(rc = file_crc(f->path, &fc, e)))
            used += (size_t)snprintf(text + used, cap - used, "component %s %lld %08x %08x\n",
                                     components[i], (long long)st.st_size, f->index_crc, fc);
        ckpt_file_close(f);
    }
    if (!rc) {
        snprintf(text + used, cap - used, "end\n");
        rc = write_text_atomic(mpath, text, e);
    }
    if (!rc) rc = h5io_fsync_dir(dir, e);
    if (!rc) {
        char ltext[64];
        snprintf(ltext, sizeof ltext, "step_%08lld\n", (long long)step);
        rc = write_text_atomic(lpath, ltext, e);
    }
    if (!rc) rc = h5io_fsync_dir(ck, e);
    free(text);
    return rc;
}

int ckpt_prune(const char *run_dir, int keep, rl_err *e) {
    if (keep < 1) return err_set(e, ERR_INPUT, "ckpt_prune: keep is %d, must be >= 1", keep);
    int64_t latest = -1;
    int rc = read_latest(run_dir, &latest, e);
    if (rc) return err_prefix(e, "not pruning checkpoints");
    if (latest < 0) return ERR_OK;
    int64_t *steps = NULL;
    size_t n = 0;
    rc = list_steps(run_dir, &steps, &n, e);
    if (rc) return rc;
    int kept = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (steps[i] > latest) continue; /* being written */
        char dir[CKPT_PATH_MAX], mpath[CKPT_PATH_MAX];
        rc = ckpt_step_dir(run_dir, steps[i], dir, sizeof dir, e);
        if (!rc) rc = path_fmt(mpath, sizeof mpath, e, "%s/MANIFEST", dir);
        if (rc) break;
        int committed = access(mpath, F_OK) == 0;
        if (steps[i] == latest || (committed && kept < keep)) {
            kept++;
            continue;
        }
        /* the manifest goes first, so a crash mid-removal leaves an uncommitted leftover */
        if (committed && unlink(mpath) != 0) {
            rc = err_set(e, ERR_IO, "cannot remove %s: %s", mpath, strerror(errno));
            break;
        }
        rc = remove_dir_files(dir, e);
        if (!rc && rmdir(dir) != 0)
            rc = err_set(e, ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
    }
    free(steps);
    if (!rc) {
        char ck[CKPT_PATH_MAX];
        if (path_fmt(ck, sizeof ck, NULL, "%s/ckpt", run_dir) == ERR_OK) rc = h5io_fsync_dir(ck, e);
    }
    return rc;
}
