/* metrics: the run's metrics.h5; see include/metrics.h for the layout and the crash model.
 *
 * The file is open only inside metrics_open, metrics_flush, metrics_truncate_after and
 * metrics_close. Everything else touches memory only, so appends cost a few nanoseconds and a
 * kill between flushes finds the file closed and whole. */
#include "metrics.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5io.h"
#include "log.h"

#define METRICS_FORMAT       "rlaif-metrics 1"
#define METRICS_CHUNK_ROWS   1024
#define METRICS_PENDING_MAX  65536 /* rows buffered before maybe_flush flushes regardless */
#define METRICS_MAX_ATTEMPTS 4096

typedef struct mrow {
    int64_t step;
    double value;
} mrow;

typedef struct mseries {
    char *name;
    mrow *rows; /* pending, not yet in the file */
    size_t n, cap;
} mseries;

typedef struct msummary {
    char *name;
    int is_str;
    double value;
    char *text;
} msummary;

typedef struct mtable {
    char *name;
    size_t nrows, ncols;
    char **colnames; /* ncols */
    char **cells;    /* (nrows, ncols) */
} mtable;

struct metrics {
    char *path;
    double interval, last_flush;
    mseries *series;
    size_t nseries, cap_series;
    msummary *sums;
    size_t nsums, cap_sums;
    mtable *tables;
    size_t ntables, cap_tables;
    size_t pending_rows;
    int64_t attempt;  /* 1 for a new file, +1 for each resume */
    char notes[1024]; /* what metrics_open repaired, for the caller to print */
};

static int truncate_file(metrics *m, const char *name, int64_t step, int *damaged, rl_err *e);

/* `pattern` names one series, or a group when it ends with '/' ("rl/" matches "rl/reward"). */
static int name_matches(const char *pattern, const char *name) {
    if (!pattern) return 1;
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '/') return strncmp(name, pattern, n) == 0;
    return strcmp(name, pattern) == 0;
}
static int salvage(metrics *m, rl_err *e);

const char *metrics_state_name(metrics_state s) {
    switch (s) {
    case METRICS_ABSENT:
        return "absent";
    case METRICS_RUNNING:
        return "running";
    case METRICS_FINISHED:
        return "finished";
    case METRICS_FAILED:
        return "failed";
    }
    return "?";
}

static int parse_state(const char *s, metrics_state *out) {
    for (int i = METRICS_RUNNING; i <= METRICS_FAILED; i++)
        if (strcmp(s, metrics_state_name((metrics_state)i)) == 0) {
            *out = (metrics_state)i;
            return 0;
        }
    return -1;
}

/* ------------------------------------------------------------------ types */

static hid_t row_type(int file) {
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(mrow));
    if (t < 0) return t;
    if (H5Tinsert(t, "step", offsetof(mrow, step), file ? H5T_STD_I64LE : H5T_NATIVE_INT64) < 0 ||
        H5Tinsert(t, "value", offsetof(mrow, value), file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE) <
            0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* ------------------------------------------------------------------ state of a file */

static void state_hint(char *buf, size_t n, const metrics_run_info *in) {
    char host[64];
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    int dead = in->pid > 0 && strcmp(host, in->host) == 0 && kill((pid_t)in->pid, 0) != 0 &&
               errno == ESRCH;
    snprintf(buf, n, "started %s, last written by pid %lld on %s%s",
             in->start_time[0] ? in->start_time : "?", (long long)in->pid,
             in->host[0] ? in->host : "?", dead ? ", which is no longer running" : "");
}

int metrics_run_state(const char *path, metrics_run_info *info, rl_err *e) {
    memset(info, 0, sizeof *info);
    info->state = METRICS_ABSENT;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return ERR_OK;
        return err_set(e, ERR_STATE, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return err_set(e, ERR_STATE, "%s exists and is not a regular file; move it away", path);
    h5io_quiet q;
    h5io_quiet_begin(&q);
    int rc = ERR_OK;
    hid_t fapl = h5io_fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        rc = h5io_err(e, ERR_STATE,
                      "%s exists but cannot be opened as HDF5 (truncated or not a "
                      "metrics file)",
                      path);
        goto out;
    }
    char *s = NULL;
    rl_err sub;
    if (h5io_read_str_attr(f, "format", &s, &sub) != ERR_OK || strcmp(s, METRICS_FORMAT) != 0) {
        rc = err_set(e, ERR_STATE,
                     "%s is an HDF5 file but not an rlaif metrics file (attribute "
                     "format is %s)",
                     path, s ? s : "missing");
        free(s);
        goto out;
    }
    free(s);
    if (h5io_read_str_attr(f, "status", &s, &sub) != ERR_OK || parse_state(s, &info->state) != 0) {
        rc = err_set(e, ERR_STATE, "%s: attribute status is %s, not running/finished/failed", path,
                     s ? s : "missing");
        free(s);
        goto out;
    }
    free(s);
    if (h5io_read_str_attr(f, "start_time", &s, &sub) == ERR_OK)
        snprintf(info->start_time, sizeof info->start_time, "%s", s);
    free(s);
    if (h5io_read_str_attr(f, "end_time", &s, &sub) == ERR_OK)
        snprintf(info->end_time, sizeof info->end_time, "%s", s);
    free(s);
    if (h5io_read_str_attr(f, "host", &s, &sub) == ERR_OK)
        snprintf(info->host, sizeof info->host, "%s", s);
    free(s);
    int64_t v;
    size_t nv;
    if (h5io_read_i64_attr(f, "pid", &v, 1, &nv, &sub) == ERR_OK && nv == 1) info->pid = v;
    if (h5io_read_i64_attr(f, "attempts", &v, 1, &nv, &sub) == ERR_OK && nv == 1)
        info->attempts = v;
out:
    if (f >= 0) H5Fclose(f);
    if (fapl >= 0) H5Pclose(fapl);
    h5io_quiet_end(&q);
    return rc;
}

/* ------------------------------------------------------------------ open */

static int write_identity(hid_t f, const metrics_open_opts *o, rl_err *e) {
    char host[64];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    int64_t pid = (int64_t)getpid();
    int rc = h5io_write_str_attr(f, "status", "running", e);
    if (!rc) rc = h5io_write_str_attr(f, "host", host, e);
    if (!rc) rc = h5io_write_i64_attr(f, "pid", &pid, 1, e);
    if (!rc && o->rank_layout && o->n_rank_layout > 0) {
        int64_t lay[256];
        size_t n = o->n_rank_layout < 256 ? o->n_rank_layout : 256;
        for (size_t i = 0; i < n; i++) lay[i] = o->rank_layout[i];
        rc = h5io_write_i64_attr(f, "rank_layout", lay, n, e);
    }
    return rc;
}

static int create_file(const char *path, const metrics_open_opts *o, rl_err *e) {
    size_t len = strlen(path) + 8;
    char *tmp = xmalloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    hid_t fapl = h5io_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int rc = ERR_OK;
    if (f < 0) {
        rc = h5io_err(e, ERR_IO, "%s: cannot create (check that run.out_dir is writable)", tmp);
        goto out;
    }
    char now[32];
    h5io_utc_now(now);
    int64_t one = 1;
    rc = h5io_write_str_attr(f, "format", METRICS_FORMAT, e);
    if (!rc) rc = write_identity(f, o, e);
    if (!rc) rc = h5io_write_str_attr(f, "start_time", now, e);
    if (!rc) rc = h5io_write_i64_attr(f, "attempts", &one, 1, e);
    if (!rc) rc = h5io_write_str(f, "config/deck_yaml", o->deck_yaml ? o->deck_yaml : "", e);
    if (!rc) rc = h5io_write_str(f, "build/version", o->version ? o->version : "", e);
    const char *groups[] = {"metrics", "summary", "samples"};
    for (int i = 0; i < 3 && !rc; i++) {
        hid_t g = H5Gcreate2(f, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0)
            rc = h5io_err(e, ERR_IO, "cannot create group /%s", groups[i]);
        else
            H5Gclose(g);
    }
    if (rc) err_prefix(e, "%s", tmp);
    if (H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close", tmp);
    f = -1;
    if (!rc) rc = h5io_fsync_path(tmp, e);
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (!rc) {
        char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        rc = h5io_fsync_dir(slash ? (*dir ? dir : "/") : ".", e);
        free(dir);
    }
out:
    if (rc) unlink(tmp);
    if (fapl >= 0) H5Pclose(fapl);
    free(tmp);
    return rc;
}

/* Stores `text` at `base` unless the dataset there already holds it; a different text goes
 * to base_attempt<k> so every attempt's deck and build stay on record. */
static int record_attempt_text(hid_t f, const char *base, const char *text, int64_t attempt,
                               rl_err *e) {
    char *old = NULL;
    rl_err sub;
    if (h5io_read_str(f, base, &old, &sub) != ERR_OK) return h5io_write_str(f, base, text, e);
    int same = strcmp(old, text) == 0;
    free(old);
    if (same) return ERR_OK;
    char name[128];
    snprintf(name, sizeof name, "%s_attempt%lld", base, (long long)attempt);
    return h5io_write_str(f, name, text, e);
}

static int reopen_file(metrics *m, const metrics_open_opts *o, rl_err *e) {
    hid_t fapl = h5io_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fopen(m->path, H5F_ACC_RDWR, fapl);
    /* the error message first: any HDF5 call (H5Pclose too) clears the error stack */
    int orc = f < 0 ? h5io_err(e, ERR_STATE, "%s: cannot reopen to resume", m->path) : ERR_OK;
    if (fapl >= 0) H5Pclose(fapl);
    if (orc) return orc;
    int64_t attempts = 1, steps[METRICS_MAX_ATTEMPTS];
    size_t n = 0, nsteps = 0;
    rl_err sub;
    if (h5io_read_i64_attr(f, "attempts", &attempts, 1, &n, &sub) != ERR_OK || n != 1) attempts = 1;
    if (attempts >= METRICS_MAX_ATTEMPTS) attempts = METRICS_MAX_ATTEMPTS - 1;
    if (h5io_read_i64_attr(f, "resume_steps", steps, METRICS_MAX_ATTEMPTS - 1, &nsteps, &sub) !=
        ERR_OK)
        nsteps = 0;
    attempts++;
    m->attempt = attempts;
    steps[nsteps++] = o->resume_step;
    char now[32];
    h5io_utc_now(now);
    int rc = write_identity(f, o, e);
    if (!rc) rc = h5io_write_i64_attr(f, "attempts", &attempts, 1, e);
    if (!rc) rc = h5io_write_i64_attr(f, "resume_steps", steps, nsteps, e);
    if (!rc) rc = h5io_write_str_attr(f, "resume_time", now, e);
    if (!rc && H5Aexists(f, "end_time") > 0 && H5Adelete(f, "end_time") < 0)
        rc = h5io_err(e, ERR_IO, "cannot clear attribute end_time");
    if (!rc)
        rc = record_attempt_text(f, "config/deck_yaml", o->deck_yaml ? o->deck_yaml : "", attempts,
                                 e);
    if (!rc)
        rc = record_attempt_text(f, "build/version", o->version ? o->version : "", attempts, e);
    if (rc) err_prefix(e, "%s", m->path);
    if (H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close", m->path);
    if (!rc) rc = h5io_fsync_path(m->path, e);
    return rc;
}

int metrics_open(const char *path, const metrics_open_opts *o, metrics **out, rl_err *e) {
    *out = NULL;
    metrics_run_info info;
    rl_err why;
    err_clear(&why);
    int unreadable = metrics_run_state(path, &info, &why) != ERR_OK;
    char hint[256];
    state_hint(hint, sizeof hint, &info);
    int create = 0;
    if (o->mode == METRICS_NEW) {
        if (!o->force) {
            if (unreadable)
                return err_set(e, ERR_STATE,
                               "%s; refusing to overwrite it: move it away or pass "
                               "--force",
                               why.msg);
            if (info.state == METRICS_FINISHED)
                return err_set(e, ERR_STATE,
                               "%s holds a finished run (%s, finished %s); refusing "
                               "to overwrite it: pass --force to start over, or set "
                               "another run.out_dir",
                               path, info.start_time[0] ? info.start_time : "started ?",
                               info.end_time[0] ? info.end_time : "?");
            if (info.state != METRICS_ABSENT)
                return err_set(e, ERR_STATE,
                               "%s holds an unfinished run (status %s, %s); pass "
                               "--resume to continue it or --force to start over",
                               path, metrics_state_name(info.state), hint);
        }
        create = 1;
    } else {
        if (unreadable) {
            if (!o->force)
                return err_set(e, ERR_STATE,
                               "%s; cannot resume into it: move it away, or pass "
                               "--force to start a new metrics file",
                               why.msg);
            create = 1;
        } else if (info.state == METRICS_FINISHED && !o->force) {
            return err_set(e, ERR_STATE,
                           "%s holds a run that already finished (%s); nothing to "
                           "resume: pass --force to start over",
                           path, info.end_time[0] ? info.end_time : "?");
        } else if (info.state == METRICS_ABSENT) {
            create = 1;
        }
    }
    metrics *m = xcalloc(1, sizeof *m);
    m->path = xstrdup(path);
    m->interval = o->flush_interval;
    m->last_flush = log_now();
    m->attempt = 1;
    h5io_quiet q;
    h5io_quiet_begin(&q);
    int rc = create ? create_file(path, o, e) : reopen_file(m, o, e);
    h5io_quiet_end(&q);
    if (!rc && !create && o->mode == METRICS_RESUME) {
        int64_t keep = o->resume_step < -1 ? -1 : o->resume_step;
        int damaged = 0;
        rc = truncate_file(m, NULL, keep, &damaged, e);
        if (!rc && damaged) rc = salvage(m, e);
        if (!rc && damaged) rc = truncate_file(m, NULL, keep, NULL, e);
    }
    if (rc) {
        free(m->path);
        free(m);
        return rc;
    }
    *out = m;
    return ERR_OK;
}

/* ------------------------------------------------------------------ buffering */

static mseries *find_series(metrics *m, const char *name) {
    for (size_t i = 0; i < m->nseries; i++)
        if (strcmp(m->series[i].name, name) == 0) return &m->series[i];
    return NULL;
}

int metrics_append(metrics *m, const char *name, int64_t step, double value, rl_err *e) {
    mseries *s = find_series(m, name);
    if (!s) {
        int rc = h5io_check_name(name, "metric", e);
        if (rc) return rc;
        if (m->nseries == m->cap_series) {
            m->cap_series = m->cap_series ? 2 * m->cap_series : 16;
            m->series = xrealloc(m->series, m->cap_series * sizeof *m->series);
        }
        s = &m->series[m->nseries++];
        memset(s, 0, sizeof *s);
        s->name = xstrdup(name);
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->rows = xrealloc(s->rows, s->cap * sizeof *s->rows);
    }
    s->rows[s->n].step = step;
    s->rows[s->n].value = value;
    s->n++;
    m->pending_rows++;
    return ERR_OK;
}

static msummary *summary_slot(metrics *m, const char *name) {
    for (size_t i = 0; i < m->nsums; i++)
        if (strcmp(m->sums[i].name, name) == 0) {
            free(m->sums[i].text);
            m->sums[i].text = NULL;
            return &m->sums[i];
        }
    if (m->nsums == m->cap_sums) {
        m->cap_sums = m->cap_sums ? 2 * m->cap_sums : 16;
        m->sums = xrealloc(m->sums, m->cap_sums * sizeof *m->sums);
    }
    msummary *s = &m->sums[m->nsums++];
    memset(s, 0, sizeof *s);
    s->name = xstrdup(name);
    return s;
}

int metrics_set_summary(metrics *m, const char *name, double value, rl_err *e) {
    int rc = h5io_check_name(name, "summary", e);
    if (rc) return rc;
    msummary *s = summary_slot(m, name);
    s->is_str = 0;
    s->value = value;
    return ERR_OK;
}

int metrics_set_summary_str(metrics *m, const char *name, const char *text, rl_err *e) {
    int rc = h5io_check_name(name, "summary", e);
    if (rc) return rc;
    msummary *s = summary_slot(m, name);
    s->is_str = 1;
    s->text = xstrdup(text ? text : "");
    return ERR_OK;
}

static void table_free(mtable *t) {
    for (size_t i = 0; i < t->ncols; i++) free(t->colnames[i]);
    for (size_t i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->colnames);
    free(t->cells);
    free(t->name);
}

int metrics_write_table(metrics *m, const char *name, size_t nrows, size_t ncols,
                        const char *const *colnames, const char *const *cells, rl_err *e) {
    int rc = h5io_check_name(name, "sample table", e);
    if (rc) return rc;
    size_t ncells;
    if (ncols == 0 || nrows == 0 || size_mul(nrows, ncols, &ncells))
        return err_set(e, ERR_INPUT, "sample table '%s': %zu rows x %zu columns; both must be > 0",
                       name, nrows, ncols);
    if (ncols > 1 && !colnames)
        return err_set(e, ERR_INPUT, "sample table '%s' has %zu columns but no column names", name,
                       ncols);
    mtable *t = NULL;
    for (size_t i = 0; i < m->ntables; i++)
        if (strcmp(m->tables[i].name, name) == 0) {
            t = &m->tables[i];
            table_free(t);
            break;
        }
    if (!t) {
        if (m->ntables == m->cap_tables) {
            m->cap_tables = m->cap_tables ? 2 * m->cap_tables : 8;
            m->tables = xrealloc(m->tables, m->cap_tables * sizeof *m->tables);
        }
        t = &m->tables[m->ntables++];
    }
    t->name = xstrdup(name);
    t->nrows = nrows;
    t->ncols = ncols;
    t->colnames = xcalloc(ncols, sizeof(char *));
    for (size_t i = 0; i < ncols; i++)
        t->colnames[i] = xstrdup(colnames && colnames[i] ? colnames[i] : "text");
    t->cells = xcalloc(ncells, sizeof(char *));
    for (size_t i = 0; i < ncells; i++) t->cells[i] = xstrdup(cells[i] ? cells[i] : "");
    return ERR_OK;
}

/* ------------------------------------------------------------------ flush */

static int write_series(hid_t f, const mseries *s, rl_err *e) {
    char path[512];
    snprintf(path, sizeof path, "metrics/%s", s->name);
    int ex = h5io_exists(f, path);
    if (ex < 0)
        return h5io_err(e, ERR_INPUT,
                        "metric '%s': cannot look up %s (is a prefix of the name "
                        "already a series?)",
                        s->name, path);
    hid_t d = -1, ft = -1, mt = -1, fs = -1, ms = -1, dcpl = -1, lcpl = -1;
    int rc = ERR_OK;
    mt = row_type(0);
    if (!ex) {
        hsize_t zero = 0, unlim = H5S_UNLIMITED, chunk = METRICS_CHUNK_ROWS;
        ft = row_type(1);
        fs = H5Screate_simple(1, &zero, &unlim);
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
        lcpl = h5io_lcpl();
        if (ft < 0 || fs < 0 || dcpl < 0 || lcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0 ||
            (d = H5Dcreate2(f, path, ft, fs, lcpl, dcpl, H5P_DEFAULT)) < 0) {
            rc = h5io_err(e, ERR_INPUT,
                          "metric '%s': cannot create %s (is a prefix of the name "
                          "already a series?)",
                          s->name, path);
            goto out;
        }
        H5Sclose(fs);
        fs = -1;
    } else {
        hid_t o = H5Oopen(f, path, H5P_DEFAULT);
        int is_ds = o >= 0 && H5Iget_type(o) == H5I_DATASET;
        if (o >= 0) H5Oclose(o);
        if (!is_ds) {
            rc = err_set(e, ERR_INPUT,
                         "metric '%s': %s is a group of other series; rename one "
                         "of them",
                         s->name, path);
            goto out;
        }
        d = H5Dopen2(f, path, H5P_DEFAULT);
        if (d < 0) {
            rc = h5io_err(e, ERR_INPUT, "metric '%s': cannot open %s", s->name, path);
            goto out;
        }
    }
    fs = H5Dget_space(d);
    hsize_t cur = 0;
    if (fs < 0 || H5Sget_simple_extent_ndims(fs) != 1 ||
        H5Sget_simple_extent_dims(fs, &cur, NULL) < 0) {
        rc = err_set(e, ERR_INPUT, "metric '%s': %s is not a 1-D table", s->name, path);
        goto out;
    }
    H5Sclose(fs);
    hsize_t total = cur + s->n, start = cur, count = s->n;
    if (H5Dset_extent(d, &total) < 0 || (fs = H5Dget_space(d)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0 ||
        (ms = H5Screate_simple(1, &count, NULL)) < 0 ||
        H5Dwrite(d, mt, ms, fs, H5P_DEFAULT, s->rows) < 0)
        rc = h5io_err(e, ERR_IO, "metric '%s': cannot append %zu rows to %s", s->name, s->n, path);
out:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ft >= 0) H5Tclose(ft);
    if (mt >= 0) H5Tclose(mt);
    return rc;
}

static int write_summary(hid_t f, const msummary *s, rl_err *e) {
    char path[512];
    snprintf(path, sizeof path, "summary/%s", s->name);
    if (s->is_str) return h5io_write_str(f, path, s->text, e);
    int ex = h5io_exists(f, path);
    if (ex < 0) return h5io_err(e, ERR_INPUT, "summary '%s': cannot look up %s", s->name, path);
    hid_t d = -1;
    if (ex) {
        /* a float summary written before is overwritten in place; anything else is replaced */
        d = H5Dopen2(f, path, H5P_DEFAULT);
        hid_t t = d >= 0 ? H5Dget_type(d) : -1;
        int same = t >= 0 && H5Tget_class(t) == H5T_FLOAT;
        if (t >= 0) H5Tclose(t);
        if (!same) {
            if (d >= 0) H5Dclose(d);
            d = -1;
            if (H5Ldelete(f, path, H5P_DEFAULT) < 0)
                return h5io_err(e, ERR_IO, "summary '%s': cannot replace %s", s->name, path);
        }
    }
    if (d < 0) {
        hid_t sp = H5Screate(H5S_SCALAR), lcpl = h5io_lcpl();
        d = H5Dcreate2(f, path, H5T_IEEE_F64LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
        H5Sclose(sp);
        if (d < 0) return h5io_err(e, ERR_INPUT, "summary '%s': cannot create %s", s->name, path);
    }
    int rc = ERR_OK;
    if (H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &s->value) < 0)
        rc = h5io_err(e, ERR_IO, "summary '%s': cannot write %s", s->name, path);
    H5Dclose(d);
    return rc;
}

static int write_table(hid_t f, const mtable *t, rl_err *e) {
    char path[512];
    snprintf(path, sizeof path, "samples/%s", t->name);
    int ex = h5io_exists(f, path);
    if (ex < 0)
        return h5io_err(e, ERR_INPUT, "sample table '%s': cannot look up %s", t->name, path);
    if (ex && H5Ldelete(f, path, H5P_DEFAULT) < 0)
        return h5io_err(e, ERR_IO, "sample table '%s': cannot replace %s", t->name, path);
    hsize_t dims[2] = {t->nrows, t->ncols};
    hid_t st = h5io_str_type(), sp = H5Screate_simple(t->ncols > 1 ? 2 : 1, dims, NULL);
    hid_t lcpl = h5io_lcpl(), d = -1, asp = -1, a = -1;
    int rc = ERR_OK;
    if (st < 0 || sp < 0 || lcpl < 0 ||
        (d = H5Dcreate2(f, path, st, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->cells) < 0) {
        rc = h5io_err(e, ERR_IO, "sample table '%s': cannot write %s", t->name, path);
        goto out;
    }
    hsize_t nc = t->ncols;
    if ((asp = H5Screate_simple(1, &nc, NULL)) < 0 ||
        (a = H5Acreate2(d, "columns", st, asp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, st, t->colnames) < 0)
        rc = h5io_err(e, ERR_IO, "sample table '%s': cannot write its column names", t->name);
out:
    if (a >= 0) H5Aclose(a);
    if (asp >= 0) H5Sclose(asp);
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    if (st >= 0) H5Tclose(st);
    return rc;
}

/* Writes everything pending and, when status is not NULL, the status and end_time. What was
 * written leaves the buffers even when a later item fails, so a retry does not duplicate it. */
static int flush_file(metrics *m, const char *status, rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fopen(m->path, H5F_ACC_RDWR, fapl);
    int rc = f < 0 ? h5io_err(e, ERR_IO, "%s: cannot open to write metrics", m->path) : ERR_OK;
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        h5io_quiet_end(&q);
        return rc;
    }
    for (size_t i = 0; i < m->nseries && !rc; i++) {
        mseries *s = &m->series[i];
        if (s->n == 0) continue;
        rc = write_series(f, s, e);
        if (!rc) {
            m->pending_rows -= s->n;
            s->n = 0;
        }
    }
    size_t done = 0;
    for (; done < m->nsums && !rc; done++) rc = write_summary(f, &m->sums[done], e);
    if (rc && done > 0) done--; /* the failed one stays */
    for (size_t i = 0; i < done; i++) {
        free(m->sums[i].name);
        free(m->sums[i].text);
    }
    if (done > 0) memmove(m->sums, m->sums + done, (m->nsums - done) * sizeof *m->sums);
    m->nsums -= done;
    done = 0;
    for (; done < m->ntables && !rc; done++) rc = write_table(f, &m->tables[done], e);
    if (rc && done > 0) done--;
    for (size_t i = 0; i < done; i++) table_free(&m->tables[i]);
    if (done > 0) memmove(m->tables, m->tables + done, (m->ntables - done) * sizeof *m->tables);
    m->ntables -= done;
    /* The root's attributes change only at open and close: rewriting them on every flush is
     * what a kill during a flush tore in testing (object header half rewritten). */
    char now[32];
    h5io_utc_now(now);
    if (!rc && status) {
        rc = h5io_write_str_attr(f, "status", status, e);
        if (!rc && strcmp(status, "running") != 0) rc = h5io_write_str_attr(f, "end_time", now, e);
    }
    if (rc) err_prefix(e, "%s", m->path);
    if (H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close", m->path);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(m->path, e);
    return rc;
}

int metrics_flush(metrics *m, rl_err *e) {
    int rc = flush_file(m, NULL, e);
    m->last_flush = log_now();
    return rc;
}

int metrics_maybe_flush(metrics *m, double now, rl_err *e) {
    if (m->interval > 0 && now - m->last_flush < m->interval &&
        m->pending_rows < METRICS_PENDING_MAX)
        return ERR_OK;
    int rc = flush_file(m, NULL, e);
    m->last_flush = now;
    return rc;
}

/* ------------------------------------------------------------------ truncation */

static int truncate_dataset(hid_t f, const char *name, int64_t step, rl_err *e) {
    char path[512];
    snprintf(path, sizeof path, "metrics/%s", name);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) return h5io_err(e, ERR_INPUT, "metric '%s': cannot open %s", name, path);
    hid_t fs = H5Dget_space(d), mt = row_type(0);
    hsize_t n = 0;
    int rc = ERR_OK;
    mrow *rows = NULL;
    if (fs < 0 || mt < 0 || H5Sget_simple_extent_ndims(fs) != 1 ||
        H5Sget_simple_extent_dims(fs, &n, NULL) < 0) {
        rc = err_set(e, ERR_INPUT, "metric '%s': %s is not a 1-D table", name, path);
        goto out;
    }
    rows = xmalloc((size_t)n * sizeof *rows + 1);
    if (n > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) {
        rc = h5io_err(e, ERR_INPUT, "metric '%s': cannot read %s", name, path);
        goto out;
    }
    hsize_t keep = 0;
    for (hsize_t i = 0; i < n; i++)
        if (rows[i].step <= step) rows[keep++] = rows[i];
    if (keep == n) goto out;
    if (keep > 0) {
        hid_t ms = H5Screate_simple(1, &keep, NULL);
        hsize_t start = 0;
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &keep, NULL);
        herr_t w = H5Dwrite(d, mt, ms, fs, H5P_DEFAULT, rows);
        H5Sclose(ms);
        if (w < 0) {
            rc = h5io_err(e, ERR_IO, "metric '%s': cannot rewrite %s", name, path);
            goto out;
        }
    }
    if (H5Dset_extent(d, &keep) < 0)
        rc = h5io_err(e, ERR_IO, "metric '%s': cannot shrink %s", name, path);
out:
    free(rows);
    if (mt >= 0) H5Tclose(mt);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(d);
    return rc;
}

/* Truncates series in the file. With damaged != NULL (resume), a series that cannot be read
 * (a kill during a flush tore its header) is counted and named in m->notes instead of failing;
 * HDF5 cannot unlink an object whose header is damaged, so salvage() rebuilds the file. */
static int truncate_file(metrics *m, const char *name, int64_t step, int *damaged, rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fopen(m->path, H5F_ACC_RDWR, fapl);
    int rc = f < 0 ? h5io_err(e, ERR_IO, "%s: cannot open to truncate metrics", m->path) : ERR_OK;
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        h5io_quiet_end(&q);
        return rc;
    }
    char **names = NULL;
    size_t n = 0;
    rc = h5io_list_datasets(f, "metrics", &names, &n, e);
    for (size_t i = 0; i < n && !rc; i++) {
        if (!name_matches(name, names[i])) continue;
        rl_err sub;
        if (truncate_dataset(f, names[i], step, &sub) == ERR_OK) continue;
        if (!damaged) {
            *e = sub;
            rc = e->code;
            break;
        }
        (*damaged)++;
        size_t used = strlen(m->notes);
        snprintf(m->notes + used, sizeof m->notes - used, "%smetric series '%s' was damaged (%s)",
                 used ? "; " : "", names[i], sub.msg);
    }
    h5io_free_names(names, n);
    if (rc) err_prefix(e, "%s", m->path);
    if (H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close", m->path);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(m->path, e);
    return rc;
}

/* Copies one attribute of src's root to dst's root, whatever its type. */
static herr_t copy_root_attr(hid_t src, const char *name, const H5A_info_t *info, void *dst_p) {
    hid_t dst = *(hid_t *)dst_p;
    (void)info;
    hid_t a = H5Aopen(src, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    herr_t rc = -1;
    if (np >= 0 && sz > 0) {
        void *buf = xcalloc((size_t)np + 1, sz);
        hid_t b = -1;
        if (H5Aread(a, t, buf) >= 0 &&
            (b = H5Acreate2(dst, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
            H5Awrite(b, t, buf) >= 0)
            rc = 0;
        if (b >= 0) H5Aclose(b);
        if (H5Tis_variable_str(t) > 0) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
        free(buf);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    (void)rc; /* a damaged attribute is left behind, not fatal */
    return 0;
}

/* Rebuilds the file from everything in it that still reads: the damaged file is kept beside
 * it as <path>.damaged.attempt<k> and the fresh copy takes its name. */
static int salvage(metrics *m, rl_err *e) {
    size_t len = strlen(m->path) + 40;
    char *tmp = xmalloc(len), *aside = xmalloc(len);
    snprintf(tmp, len, "%s.tmp", m->path);
    snprintf(aside, len, "%s.damaged.attempt%lld", m->path, (long long)m->attempt);
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl(), lcpl = h5io_lcpl();
    hid_t src = H5Fopen(m->path, H5F_ACC_RDONLY, fapl);
    hid_t dst = src < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int rc = ERR_OK;
    char **names = NULL;
    size_t n = 0;
    if (src < 0 || dst < 0) {
        rc = h5io_err(e, ERR_IO, "%s: cannot rebuild a damaged metrics file into %s", m->path, tmp);
        goto out;
    }
    hsize_t idx = 0;
    H5Aiterate2(src, H5_INDEX_NAME, H5_ITER_INC, &idx, copy_root_attr, &dst);
    const char *top[] = {"config", "build", "summary", "samples", "damaged"};
    for (int i = 0; i < 5; i++)
        if (h5io_exists(src, top[i]) > 0) H5Ocopy(src, top[i], dst, top[i], H5P_DEFAULT, lcpl);
    hid_t g = H5Gcreate2(dst, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) H5Gclose(g);
    rc = h5io_list_datasets(src, "metrics", &names, &n, e);
    for (size_t i = 0; i < n && !rc; i++) {
        char path[512];
        snprintf(path, sizeof path, "metrics/%s", names[i]);
        if (H5Ocopy(src, path, dst, path, H5P_DEFAULT, lcpl) < 0) {
            /* keep the name visible: an empty series in its place would hide the loss */
            size_t used = strlen(m->notes);
            snprintf(m->notes + used, sizeof m->notes - used, "%s'%s' could not be copied",
                     used ? "; " : "", names[i]);
        }
    }
out:
    h5io_free_names(names, n);
    if (dst >= 0 && H5Fclose(dst) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: cannot close", tmp);
    if (src >= 0) H5Fclose(src);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (fapl >= 0) H5Pclose(fapl);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(tmp, e);
    if (!rc && rename(m->path, aside) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", m->path, aside, strerror(errno));
    if (!rc && rename(tmp, m->path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, m->path, strerror(errno));
    if (!rc) {
        size_t used = strlen(m->notes);
        snprintf(m->notes + used, sizeof m->notes - used,
                 "; the readable rest was copied into a fresh %s, the damaged file is kept as %s",
                 m->path, aside);
    } else {
        unlink(tmp);
    }
    free(tmp);
    free(aside);
    return rc;
}

static void truncate_pending(metrics *m, const char *name, int64_t step) {
    for (size_t i = 0; i < m->nseries; i++) {
        mseries *s = &m->series[i];
        if (!name_matches(name, s->name)) continue;
        size_t keep = 0;
        for (size_t j = 0; j < s->n; j++)
            if (s->rows[j].step <= step) s->rows[keep++] = s->rows[j];
        m->pending_rows -= s->n - keep;
        s->n = keep;
    }
}

int metrics_truncate_after(metrics *m, const char *name, int64_t step, rl_err *e) {
    if (name) {
        char check[512];
        snprintf(check, sizeof check, "%s", name);
        size_t n = strlen(check);
        if (n > 1 && check[n - 1] == '/') check[n - 1] = '\0';
        int rc = h5io_check_name(check, "metric", e);
        if (rc) return rc;
    }
    truncate_pending(m, name, step);
    return truncate_file(m, name, step, NULL, e);
}

const char *metrics_notes(const metrics *m) {
    return m->notes;
}

int metrics_count(metrics *m, const char *name, int64_t *rows, rl_err *e) {
    *rows = 0;
    mseries *s = find_series(m, name);
    if (s) *rows += (int64_t)s->n;
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fopen(m->path, H5F_ACC_RDONLY, fapl);
    int rc = f < 0 ? h5io_err(e, ERR_IO, "%s: cannot open", m->path) : ERR_OK;
    if (fapl >= 0) H5Pclose(fapl);
    if (f >= 0) {
        char path[512];
        snprintf(path, sizeof path, "metrics/%s", name);
        if (h5io_exists(f, path) > 0) {
            hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
            hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
            hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
            if (np < 0)
                rc = h5io_err(e, ERR_INPUT, "%s: cannot read the size of %s", m->path, path);
            else
                *rows += np;
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
        }
        H5Fclose(f);
    }
    h5io_quiet_end(&q);
    return rc;
}

/* ------------------------------------------------------------------ close */

int metrics_close(metrics *m, metrics_state final_state, rl_err *e) {
    if (!m) return ERR_OK;
    const char *status = final_state == METRICS_FINISHED ? "finished"
                         : final_state == METRICS_FAILED ? "failed"
                                                         : "running";
    int rc = flush_file(m, status, e);
    for (size_t i = 0; i < m->nseries; i++) {
        free(m->series[i].name);
        free(m->series[i].rows);
    }
    for (size_t i = 0; i < m->nsums; i++) {
        free(m->sums[i].name);
        free(m->sums[i].text);
    }
    for (size_t i = 0; i < m->ntables; i++) table_free(&m->tables[i]);
    free(m->series);
    free(m->sums);
    free(m->tables);
    free(m->path);
    free(m);
    return rc;
}
