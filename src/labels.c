/* labels: see include/labels.h. Strings are HDF5 variable-length UTF-8 strings; every dataset
 * is chunked with its fill value set at creation, so unwritten rows read as "not done". */
#include "labels.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5io.h"

#define LABELS_FORMAT "rlaif-labels 1"
#define CHUNK_ROWS    1024

enum col_kind { K_I64, K_F64, K_I32, K_U8, K_STR };

typedef struct col {
    const char *name;
    int kind;
    size_t off; /* in labels_row */
} col;

#define C(n, k, f) {"pairs/" n, k, offsetof(labels_row, f)}
/* done last: a row counts as labelled only once everything else of it is written */
static const col cols[] = {
    C("prompt_id", K_I64, prompt_id), C("context", K_STR, context),
    C("a", K_STR, a),                 C("b", K_STR, b),
    C("p_ab", K_F64, p_ab),           C("p_ba", K_F64, p_ba),
    C("p", K_F64, p),                 C("rationale_ab", K_STR, rationale_ab),
    C("rationale_ba", K_STR, rationale_ba), C("principle", K_I32, principle),
    C("truncated", K_U8, truncated),  C("done", K_U8, done),
};
#undef C
#define N_COLS ((int)(sizeof cols / sizeof cols[0]))

static hid_t mem_type(int kind, hid_t str) {
    switch (kind) {
    case K_I64: return H5T_NATIVE_INT64;
    case K_F64: return H5T_NATIVE_DOUBLE;
    case K_I32: return H5T_NATIVE_INT32;
    case K_U8: return H5T_NATIVE_UINT8;
    default: return str;
    }
}
static hid_t file_type(int kind, hid_t str) {
    switch (kind) {
    case K_I64: return H5T_STD_I64LE;
    case K_F64: return H5T_IEEE_F64LE;
    case K_I32: return H5T_STD_I32LE;
    case K_U8: return H5T_STD_U8LE;
    default: return str;
    }
}
static size_t elem_size(int kind) {
    switch (kind) {
    case K_I64: return 8;
    case K_F64: return 8;
    case K_I32: return 4;
    case K_U8: return 1;
    default: return sizeof(char *);
    }
}

void labels_row_free(labels_row *r) {
    free(r->context), free(r->a), free(r->b), free(r->rationale_ab), free(r->rationale_ba);
    r->context = r->a = r->b = r->rationale_ab = r->rationale_ba = NULL;
}

void labels_rows_free(labels_row *rows, int64_t n) {
    if (!rows) return;
    for (int64_t i = 0; i < n; i++) labels_row_free(&rows[i]);
    free(rows);
}

/* ------------------------------------------------------------------ create */

static int create_file(const char *path, int64_t n, const char *fingerprint,
                       const labels_meta *meta, rl_err *e) {
    h5io_quiet q;
    h5io_quiet_begin(&q);
    int rc = ERR_OK;
    hid_t fapl = h5io_fapl(), lcpl = h5io_lcpl(), str = h5io_str_type();
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (f < 0) rc = h5io_err(e, ERR_IO, "%s: cannot create the labels file", tmp);
    hsize_t dims = (hsize_t)(n > 0 ? n : 0), maxd = dims, chunk = dims < CHUNK_ROWS ? dims : CHUNK_ROWS;
    if (chunk == 0) chunk = 1;
    for (int c = 0; c < N_COLS && !rc; c++) {
        hid_t sp = H5Screate_simple(1, &dims, &maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 1, &chunk);
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
        int64_t fi64 = cols[c].kind == K_I32 || cols[c].kind == K_I64 ? -1 : 0;
        int32_t fi32 = -1;
        uint8_t fu8 = 0;
        double fnan = NAN;
        const void *fill = NULL;
        switch (cols[c].kind) {
        case K_I64: fill = &fi64; break;
        case K_I32: fill = &fi32; break;
        case K_U8: fill = &fu8; break;
        case K_F64: fill = &fnan; break;
        default: break;
        }
        if (fill) H5Pset_fill_value(dcpl, mem_type(cols[c].kind, str), fill);
        hid_t d = H5Dcreate2(f, cols[c].name, file_type(cols[c].kind, str), sp, lcpl, dcpl,
                             H5P_DEFAULT);
        if (d < 0) rc = h5io_err(e, ERR_IO, "%s: cannot create %s", tmp, cols[c].name);
        if (d >= 0) H5Dclose(d);
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
    if (!rc) rc = h5io_write_str_attr(f, "format", LABELS_FORMAT, e);
    if (!rc) rc = h5io_write_str_attr(f, "fingerprint", fingerprint, e);
    if (!rc) rc = h5io_write_i64_attr(f, "n_rows", &n, 1, e);
    for (int i = 0; meta && i < meta->n_texts && !rc; i++)
        rc = h5io_write_str_attr(f, meta->text_names[i], meta->texts[i], e);
    for (int i = 0; meta && i < meta->n_ints && !rc; i++)
        rc = h5io_write_i64_attr(f, meta->int_names[i], &meta->ints[i], 1, e);
    if (f >= 0 && H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: close failed", tmp);
    H5Tclose(str);
    H5Pclose(lcpl);
    H5Pclose(fapl);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(tmp, e);
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(e, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) remove(tmp);
    return rc;
}

/* ------------------------------------------------------------------ read */

static int read_rows(hid_t f, const char *path, labels_row *rows, int64_t n, rl_err *e) {
    hid_t str = h5io_str_type();
    int rc = ERR_OK;
    void *buf = xmalloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int c = 0; c < N_COLS && !rc; c++) {
        hid_t d = H5Dopen2(f, cols[c].name, H5P_DEFAULT);
        if (d < 0) {
            rc = h5io_err(e, ERR_INPUT, "%s: no dataset %s", path, cols[c].name);
            break;
        }
        hid_t sp = H5Dget_space(d);
        hsize_t dims = 0;
        if (sp < 0 || H5Sget_simple_extent_ndims(sp) != 1 ||
            H5Sget_simple_extent_dims(sp, &dims, NULL) < 0 || (int64_t)dims != n)
            rc = err_set(e, ERR_INPUT, "%s: %s has %llu rows, expected %lld", path, cols[c].name,
                         (unsigned long long)dims, (long long)n);
        if (!rc && n > 0 &&
            H5Dread(d, mem_type(cols[c].kind, str), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = h5io_err(e, ERR_INPUT, "%s: cannot read %s", path, cols[c].name);
        for (int64_t i = 0; i < n && !rc; i++) {
            char *dst = (char *)&rows[i] + cols[c].off;
            const char *src = (const char *)buf + (size_t)i * elem_size(cols[c].kind);
            if (cols[c].kind == K_STR) {
                char *s = *(char *const *)src;
                *(char **)dst = xstrdup(s ? s : "");
            } else {
                memcpy(dst, src, elem_size(cols[c].kind));
            }
        }
        if (cols[c].kind == K_STR && !rc && n > 0) {
            hsize_t nn = (hsize_t)n;
            hid_t ms = H5Screate_simple(1, &nn, NULL);
            H5Dvlen_reclaim(str, ms, H5P_DEFAULT, buf);
            H5Sclose(ms);
        }
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
    }
    free(buf);
    H5Tclose(str);
    return rc;
}

int labels_read(const char *path, labels_row **out, int64_t *n_out, rl_err *e) {
    *out = NULL;
    *n_out = 0;
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    int rc = ERR_OK;
    char *fmt = NULL;
    int64_t n = 0;
    size_t nn = 0;
    if (f < 0) rc = h5io_err(e, ERR_INPUT, "%s: cannot open the labels file", path);
    if (!rc) rc = h5io_read_str_attr(f, "format", &fmt, e);
    if (!rc && strcmp(fmt, LABELS_FORMAT) != 0)
        rc = err_set(e, ERR_INPUT, "%s: format '%s', expected '%s'", path, fmt, LABELS_FORMAT);
    if (!rc) rc = h5io_read_i64_attr(f, "n_rows", &n, 1, &nn, e);
    labels_row *rows = NULL;
    if (!rc) {
        rows = xcalloc((size_t)(n > 0 ? n : 1), sizeof *rows);
        rc = read_rows(f, path, rows, n, e);
    }
    if (f >= 0) H5Fclose(f);
    H5Pclose(fapl);
    h5io_quiet_end(&q);
    free(fmt);
    if (rc) {
        labels_rows_free(rows, n);
        return rc;
    }
    *out = rows;
    *n_out = n;
    return ERR_OK;
}

/* ------------------------------------------------------------------ open / write */

int labels_open(const char *path, int64_t n_rows, const char *fingerprint, const labels_meta *meta,
                labels_row *rows, int64_t *n_done, char *note, size_t note_cap, rl_err *e) {
    *n_done = 0;
    if (note && note_cap) note[0] = '\0';
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        /* an earlier attempt's file: keep it when it is whole and made for the same labels */
        rl_err e2 = {0};
        h5io_quiet q;
        h5io_quiet_begin(&q);
        hid_t fapl = h5io_fapl();
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        char *fmt = NULL, *fp = NULL;
        int64_t n = -1;
        size_t nn = 0;
        int ok = f >= 0 && !h5io_read_str_attr(f, "format", &fmt, &e2) &&
                 !strcmp(fmt, LABELS_FORMAT) && !h5io_read_str_attr(f, "fingerprint", &fp, &e2) &&
                 !h5io_read_i64_attr(f, "n_rows", &n, 1, &nn, &e2);
        const char *why = NULL;
        if (!ok) why = "damaged";
        else if (n != n_rows || strcmp(fp, fingerprint) != 0) why = "stale";
        if (!why && read_rows(f, path, rows, n_rows, &e2) != ERR_OK) why = "damaged";
        if (f >= 0) H5Fclose(f);
        H5Pclose(fapl);
        h5io_quiet_end(&q);
        free(fmt);
        free(fp);
        if (!why) {
            for (int64_t i = 0; i < n_rows; i++) {
                if (rows[i].done) (*n_done)++;
                else labels_row_free(&rows[i]);
            }
            if (note)
                snprintf(note, note_cap, "%s: %lld of %lld pairs were labelled by an earlier attempt",
                         path, (long long)*n_done, (long long)n_rows);
            return ERR_OK;
        }
        for (int64_t i = 0; i < n_rows; i++) labels_row_free(&rows[i]), memset(&rows[i], 0, sizeof rows[i]);
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.%s", path, why);
        if (rename(path, aside) != 0)
            return err_set(e, ERR_IO, "cannot move %s aside: %s", path, strerror(errno));
        if (note)
            snprintf(note, note_cap,
                     "%s was %s (%s); moved to %s, labelling from the start", path,
                     why, !strcmp(why, "stale") ? "made with another judge, policy or prompt"
                                                : e2.msg[0] ? e2.msg : "unreadable",
                     aside);
    }
    return create_file(path, n_rows, fingerprint, meta, e);
}

int labels_write(const char *path, const labels_row *rows, const int64_t *idx, int n, rl_err *e) {
    if (n <= 0) return ERR_OK;
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl(), str = h5io_str_type();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    int rc = ERR_OK;
    if (f < 0) rc = h5io_err(e, ERR_IO, "%s: cannot open the labels file for writing", path);
    hsize_t *coord = xmalloc(sizeof(hsize_t) * (size_t)n);
    for (int k = 0; k < n; k++) coord[k] = (hsize_t)idx[k];
    void *buf = xmalloc(sizeof(double) * (size_t)n);
    hsize_t nn = (hsize_t)n;
    hid_t ms = H5Screate_simple(1, &nn, NULL);
    for (int c = 0; c < N_COLS && !rc; c++) {
        for (int k = 0; k < n; k++) {
            const char *src = (const char *)&rows[idx[k]] + cols[c].off;
            char *dst = (char *)buf + (size_t)k * elem_size(cols[c].kind);
            if (cols[c].kind == K_STR) {
                const char *s = *(char *const *)src;
                *(const char **)dst = s ? s : "";
            } else {
                memcpy(dst, src, elem_size(cols[c].kind));
            }
        }
        hid_t d = H5Dopen2(f, cols[c].name, H5P_DEFAULT);
        hid_t fs = d >= 0 ? H5Dget_space(d) : -1;
        if (d < 0 || fs < 0 || H5Sselect_elements(fs, H5S_SELECT_SET, (size_t)n, coord) < 0 ||
            H5Dwrite(d, mem_type(cols[c].kind, str), ms, fs, H5P_DEFAULT, buf) < 0)
            rc = h5io_err(e, ERR_IO, "%s: cannot write %s", path, cols[c].name);
        if (fs >= 0) H5Sclose(fs);
        if (d >= 0) H5Dclose(d);
    }
    H5Sclose(ms);
    free(buf);
    free(coord);
    if (f >= 0 && H5Fclose(f) < 0 && !rc) rc = h5io_err(e, ERR_IO, "%s: close failed", path);
    H5Tclose(str);
    H5Pclose(fapl);
    h5io_quiet_end(&q);
    if (!rc) rc = h5io_fsync_path(path, e);
    return rc;
}
