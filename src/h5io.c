/* h5io: HDF5 helpers; see include/h5io.h. */
#include "h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void h5io_quiet_begin(h5io_quiet *q) {
    q->func = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void h5io_quiet_end(const h5io_quiet *q) {
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

typedef struct {
    char msg[512];
    int found;
} walk_ctx;

static herr_t walk_first(unsigned n, const H5E_error2_t *d, void *client) {
    walk_ctx *w = client;
    if (!w->found && d->desc && d->desc[0]) {
        snprintf(w->msg, sizeof w->msg, "%s", d->desc);
        w->found = 1;
    }
    (void)n;
    return 0;
}

/* HDF5's description of a failed system call ("file write failed: time = ...\n, filename = ...,
 * errno = 28, error message = 'No space left on device', buf = 0x...") as one short phrase:
 * "No space left on device (HDF5: file write failed)"; other descriptions lose their newlines. */
static void h5_reason(const char *desc, char *out, size_t cap, int *err_no) {
    *err_no = 0;
    const char *en = strstr(desc, "errno = ");
    if (en && sscanf(en + 8, "%d", err_no) == 1 && *err_no > 0) {
        const char *colon = strchr(desc, ':');
        int what = colon ? (int)(colon - desc) : (int)strlen(desc);
        snprintf(out, cap, "%s (errno %d; HDF5: %.*s)", strerror(*err_no), *err_no, what, desc);
        return;
    }
    *err_no = 0;
    snprintf(out, cap, "HDF5: %s", desc);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int h5io_err(rl_err *e, int code, const char *fmt, ...) {
    walk_ctx w = {{0}, 0};
    /* H5E calls do not clear the stack, so it still holds the failure being reported. */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_first, &w);
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (w.found && n >= 0 && (size_t)n < sizeof e->msg) {
        char reason[512];
        int err_no;
        h5_reason(w.msg, reason, sizeof reason, &err_no);
        const char *hint = err_no == ENOSPC || err_no == EDQUOT
                               ? "; the file system is full (or over quota): free space there"
                               : "";
        if (err_no)
            snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s%s", reason, hint);
        else
            snprintf(e->msg + n, sizeof e->msg - (size_t)n, " (%s)", reason);
    }
    return code;
}

hid_t h5io_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

hid_t h5io_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0) return lcpl;
    if (H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        H5Pclose(lcpl);
        return -1;
    }
    return lcpl;
}

hid_t h5io_str_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int h5io_check_name(const char *name, const char *what, rl_err *e) {
    if (!name || !*name) return err_set(e, ERR_INPUT, "%s name is empty", what);
    size_t len = strlen(name);
    if (len > 255)
        return err_set(e, ERR_INPUT, "%s name '%.40s...' is %zu characters long (at most 255)",
                       what, name, len);
    const char *seg = name;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t sl = (size_t)(p - seg);
            if (sl == 0)
                return err_set(e, ERR_INPUT,
                               "%s name '%s' has an empty path segment (leading, trailing or "
                               "doubled '/')",
                               what, name);
            if ((sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
                return err_set(e, ERR_INPUT, "%s name '%s' has a '.' or '..' segment", what, name);
            if (*p == '\0') break;
            seg = p + 1;
            continue;
        }
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        if (!ok)
            return err_set(e, ERR_INPUT,
                           "%s name '%s' contains '%c'; use letters, digits, '_', '-', '.' and "
                           "'/' between groups",
                           what, name, c);
    }
    return ERR_OK;
}

int h5io_exists(hid_t loc, const char *path) {
    char buf[512];
    size_t len = strlen(path);
    if (len >= sizeof buf) return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (i == 0) continue;
        char saved = buf[i];
        buf[i] = '\0';
        htri_t ex = H5Lexists(loc, buf, H5P_DEFAULT);
        buf[i] = saved;
        if (ex <= 0) return ex < 0 ? -1 : 0;
    }
    return 1;
}

int h5io_write_str(hid_t loc, const char *name, const char *text, rl_err *e) {
    int ex = h5io_exists(loc, name);
    if (ex < 0) return h5io_err(e, ERR_IO, "cannot look up '%s'", name);
    if (ex && H5Ldelete(loc, name, H5P_DEFAULT) < 0)
        return h5io_err(e, ERR_IO, "cannot replace '%s'", name);
    hid_t t = h5io_str_type(), sp = H5Screate(H5S_SCALAR), lcpl = h5io_lcpl(), d = -1;
    int rc = ERR_OK;
    if (t < 0 || sp < 0 || lcpl < 0) {
        rc = h5io_err(e, ERR_IO, "cannot set up string dataset '%s'", name);
        goto out;
    }
    d = H5Dcreate2(loc, name, t, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) {
        rc = h5io_err(e, ERR_IO, "cannot create string dataset '%s'", name);
        goto out;
    }
    const char *p = text ? text : "";
    if (H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) < 0)
        rc = h5io_err(e, ERR_IO, "cannot write string dataset '%s'", name);
out:
    if (d >= 0) H5Dclose(d);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

int h5io_write_str_attr(hid_t obj, const char *name, const char *text, rl_err *e) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return h5io_err(e, ERR_IO, "cannot look up attribute '%s'", name);
    if (ex > 0 && H5Adelete(obj, name) < 0)
        return h5io_err(e, ERR_IO, "cannot replace attribute '%s'", name);
    hid_t t = h5io_str_type(), sp = H5Screate(H5S_SCALAR), a = -1;
    int rc = ERR_OK;
    if (t < 0 || sp < 0 || (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        rc = h5io_err(e, ERR_IO, "cannot create attribute '%s'", name);
        goto out;
    }
    const char *p = text ? text : "";
    if (H5Awrite(a, t, &p) < 0) rc = h5io_err(e, ERR_IO, "cannot write attribute '%s'", name);
out:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Reads a scalar string from a dataset (is_attr 0) or attribute (1) already open as id. */
static int read_str_obj(hid_t id, int is_attr, const char *name, char **out, rl_err *e) {
    *out = NULL;
    hid_t ft = is_attr ? H5Aget_type(id) : H5Dget_type(id);
    hid_t sp = is_attr ? H5Aget_space(id) : H5Dget_space(id);
    hid_t mt = -1;
    int rc = ERR_OK;
    if (ft < 0 || sp < 0) {
        rc = h5io_err(e, ERR_INPUT, "cannot read the type of '%s'", name);
        goto out;
    }
    if (H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        rc = err_set(e, ERR_INPUT, "'%s' is not a single string", name);
        goto out;
    }
    htri_t var = H5Tis_variable_str(ft);
    if (var > 0) {
        mt = h5io_str_type();
        char *p = NULL;
        herr_t r =
            is_attr ? H5Aread(id, mt, &p) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p);
        if (r < 0) {
            rc = h5io_err(e, ERR_INPUT, "cannot read string '%s'", name);
            goto out;
        }
        *out = xstrdup(p ? p : "");
        if (p) H5free_memory(p);
    } else {
        size_t sz = H5Tget_size(ft);
        mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        char *buf = xcalloc(sz + 2, 1);
        herr_t r =
            is_attr ? H5Aread(id, mt, buf) : H5Dread(id, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (r < 0) {
            free(buf);
            rc = h5io_err(e, ERR_INPUT, "cannot read string '%s'", name);
            goto out;
        }
        *out = buf;
    }
out:
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    return rc;
}

int h5io_read_str(hid_t loc, const char *name, char **out, rl_err *e) {
    *out = NULL;
    int ex = h5io_exists(loc, name);
    if (ex <= 0) return err_set(e, ERR_INPUT, "dataset '%s' is missing", name);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return h5io_err(e, ERR_INPUT, "cannot open dataset '%s'", name);
    int rc = read_str_obj(d, 0, name, out, e);
    H5Dclose(d);
    return rc;
}

int h5io_read_str_attr(hid_t obj, const char *name, char **out, rl_err *e) {
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return err_set(e, ERR_INPUT, "attribute '%s' is missing", name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return h5io_err(e, ERR_INPUT, "cannot open attribute '%s'", name);
    int rc = read_str_obj(a, 1, name, out, e);
    H5Aclose(a);
    return rc;
}

static int write_num_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v,
                          size_t n, rl_err *e) {
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) return h5io_err(e, ERR_IO, "cannot look up attribute '%s'", name);
    if (ex > 0 && H5Adelete(obj, name) < 0)
        return h5io_err(e, ERR_IO, "cannot replace attribute '%s'", name);
    hsize_t dim = n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = ERR_OK;
    if (a < 0 || H5Awrite(a, mtype, v) < 0)
        rc = h5io_err(e, ERR_IO, "cannot write attribute '%s'", name);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int h5io_write_i64_attr(hid_t obj, const char *name, const int64_t *v, size_t n, rl_err *e) {
    if (n == 0)
        return err_set(e, ERR_INTERNAL, "attribute '%s': empty arrays are not stored", name);
    return write_num_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, v, n, e);
}

int h5io_write_f64_attr(hid_t obj, const char *name, const double *v, size_t n, rl_err *e) {
    if (n == 0)
        return err_set(e, ERR_INTERNAL, "attribute '%s': empty arrays are not stored", name);
    return write_num_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v, n, e);
}

int h5io_read_i64_attr(hid_t obj, const char *name, int64_t *v, size_t cap, size_t *n, rl_err *e) {
    *n = 0;
    if (H5Aexists(obj, name) <= 0) return err_set(e, ERR_INPUT, "attribute '%s' is missing", name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return h5io_err(e, ERR_INPUT, "cannot open attribute '%s'", name);
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    int rc = ERR_OK;
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (np < 0 || t < 0 || H5Tget_class(t) != H5T_INTEGER) {
        rc = err_set(e, ERR_INPUT, "attribute '%s' is not an integer array", name);
    } else if ((size_t)np > cap) {
        rc = err_set(e, ERR_INPUT, "attribute '%s' has %lld values, more than the %zu expected",
                     name, (long long)np, cap);
    } else if (H5Aread(a, H5T_NATIVE_INT64, v) < 0) {
        rc = h5io_err(e, ERR_INPUT, "cannot read attribute '%s'", name);
    } else {
        *n = (size_t)np;
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

typedef struct {
    char **v;
    size_t n, cap;
} name_list;

static void list_push(name_list *l, const char *prefix, const char *name) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    size_t len = strlen(prefix) + strlen(name) + 2;
    char *s = xmalloc(len);
    snprintf(s, len, "%s%s%s", prefix, *prefix ? "/" : "", name);
    l->v[l->n++] = s;
}

/* Walks group g (already open); prefix is g's path relative to the listing root. */
static int list_group(hid_t g, const char *prefix, name_list *l, int depth, rl_err *e) {
    if (depth > 32) return err_set(e, ERR_INPUT, "groups nested deeper than 32 below '%s'", prefix);
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) return h5io_err(e, ERR_INPUT, "cannot list group '%s'", prefix);
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[512];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                         H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name)
            return h5io_err(e, ERR_INPUT, "cannot read link %llu of group '%s'",
                            (unsigned long long)i, prefix);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0) {
            /* a damaged object header: listed, so that the caller's open of it reports it */
            list_push(l, prefix, name);
            continue;
        }
        H5I_type_t t = H5Iget_type(o);
        int rc = ERR_OK;
        if (t == H5I_DATASET) {
            list_push(l, prefix, name);
        } else if (t == H5I_GROUP) {
            char sub[1024];
            int w = snprintf(sub, sizeof sub, "%s%s%s", prefix, *prefix ? "/" : "", name);
            if (w < 0 || (size_t)w >= sizeof sub)
                rc = err_set(e, ERR_INPUT, "group path '%s/%s' is too long", prefix, name);
            else
                rc = list_group(o, sub, l, depth + 1, e);
        }
        H5Oclose(o);
        if (rc) return rc;
    }
    return ERR_OK;
}

int h5io_list_datasets(hid_t loc, const char *group, char ***names, size_t *n, rl_err *e) {
    *names = NULL;
    *n = 0;
    int root = strcmp(group, "/") == 0 || strcmp(group, ".") == 0;
    int ex = root ? 1 : h5io_exists(loc, group);
    if (ex < 0) return h5io_err(e, ERR_INPUT, "cannot look up group '%s'", group);
    if (ex == 0) return ERR_OK;
    hid_t g = H5Gopen2(loc, group, H5P_DEFAULT);
    if (g < 0) return h5io_err(e, ERR_INPUT, "'%s' is not a group", group);
    name_list l = {NULL, 0, 0};
    int rc = list_group(g, "", &l, 0, e);
    H5Gclose(g);
    if (rc) {
        h5io_free_names(l.v, l.n);
        return rc;
    }
    *names = l.v;
    *n = l.n;
    return ERR_OK;
}

void h5io_free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

int h5io_fsync_path(const char *path, rl_err *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot open to fsync: %s", path, strerror(errno));
    int rc = ERR_OK;
    if (fsync(fd) != 0) rc = err_set(e, ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int h5io_fsync_dir(const char *dir, rl_err *e) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return err_set(e, ERR_IO, "%s: cannot open directory to fsync: %s", dir, strerror(errno));
    int rc = ERR_OK;
    /* Some file systems refuse fsync on directories (EINVAL); the rename is then as durable as
     * they make it, and there is nothing better to do. */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = err_set(e, ERR_IO, "%s: fsync of the directory failed: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

void h5io_utc_now(char out[32]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
