/* labels: see include/labels.h. Strings are HDF5 variable-length UTF-8 strings; every dataset
 * is chunked with its fill value set at creation, so unwritten rows read as "not done". */
#include "labels.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc.h"
#include "h5io.h"
#include "msg.h"

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

/* ------------------------------------------------------------------ journal */

#define JOURNAL_MAGIC  "RLAIF-LABELS-JOURNAL 1\n"
#define RECORD_MAGIC   0x4c574f52u /* "ROWL" */
#define RECORD_MAX     (64u << 20)

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int labels_journal_append(const char *path, const char *fingerprint, const labels_row *rows,
                          const int64_t *idx, int n, rl_err *e) {
    if (n <= 0) return ERR_OK;
    FILE *f = fopen(path, "ab");
    if (!f) return err_set(e, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    int rc = ERR_OK;
    if (ftell(f) == 0) {
        unsigned char len[4];
        put_u32(len, (uint32_t)strlen(fingerprint));
        if (fputs(JOURNAL_MAGIC, f) == EOF || fwrite(len, 4, 1, f) != 1 ||
            fwrite(fingerprint, 1, strlen(fingerprint), f) != strlen(fingerprint))
            rc = err_set(e, ERR_IO, "cannot write %s: %s", path, strerror(errno));
    }
    for (int k = 0; k < n && !rc; k++) {
        const labels_row *r = &rows[idx[k]];
        msg_writer w;
        msg_init(&w);
        msg_put_i64(&w, idx[k]);
        msg_put_i64(&w, r->prompt_id);
        msg_put_str(&w, r->context);
        msg_put_str(&w, r->a);
        msg_put_str(&w, r->b);
        msg_put_f64(&w, r->p_ab);
        msg_put_f64(&w, r->p_ba);
        msg_put_f64(&w, r->p);
        msg_put_str(&w, r->rationale_ab);
        msg_put_str(&w, r->rationale_ba);
        msg_put_i32(&w, r->principle);
        msg_put_i32(&w, r->truncated);
        unsigned char head[8], tail[4];
        put_u32(head, RECORD_MAGIC);
        put_u32(head + 4, (uint32_t)w.len);
        put_u32(tail, crc32c(0, w.buf, w.len));
        if (fwrite(head, 8, 1, f) != 1 || fwrite(w.buf, 1, w.len, f) != w.len ||
            fwrite(tail, 4, 1, f) != 1)
            rc = err_set(e, ERR_IO, "cannot write %s: %s", path, strerror(errno));
        msg_free(&w);
    }
    if (fclose(f) != 0 && !rc) rc = err_set(e, ERR_IO, "cannot close %s: %s", path, strerror(errno));
    if (!rc) rc = h5io_fsync_path(path, e);
    return rc;
}

int labels_journal_replay(const char *path, const char *fingerprint, labels_row *rows,
                          int64_t n_rows, int64_t *n_replayed, rl_err *e) {
    *n_replayed = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return ERR_OK; /* no journal: nothing to replay */
    char magic[sizeof JOURNAL_MAGIC];
    unsigned char len4[4];
    int ok = fread(magic, 1, strlen(JOURNAL_MAGIC), f) == strlen(JOURNAL_MAGIC) &&
             !memcmp(magic, JOURNAL_MAGIC, strlen(JOURNAL_MAGIC)) && fread(len4, 4, 1, f) == 1;
    uint32_t flen = ok ? get_u32(len4) : 0;
    char *fp = ok && flen < 65536 ? xcalloc(flen + 1, 1) : NULL;
    ok = ok && fp && fread(fp, 1, flen, f) == flen && !strcmp(fp, fingerprint);
    free(fp);
    if (!ok) { /* another labelling's journal, or a torn header: nothing we can use */
        fclose(f);
        char aside[4200];
        snprintf(aside, sizeof aside, "%s.stale", path);
        if (rename(path, aside) != 0)
            return err_set(e, ERR_IO, "cannot move %s aside: %s", path, strerror(errno));
        return ERR_OK;
    }
    unsigned char head[8], tail[4];
    while (fread(head, 8, 1, f) == 1) {
        uint32_t len = get_u32(head + 4);
        if (get_u32(head) != RECORD_MAGIC || len > RECORD_MAX) break;
        unsigned char *buf = xmalloc(len ? len : 1);
        if (fread(buf, 1, len, f) != len || fread(tail, 4, 1, f) != 1 ||
            get_u32(tail) != crc32c(0, buf, len)) {
            free(buf); /* the torn tail of a killed write */
            break;
        }
        msg_reader r;
        msg_reader_init(&r, buf, len);
        labels_row x;
        memset(&x, 0, sizeof x);
        int64_t row = msg_get_i64(&r);
        x.prompt_id = msg_get_i64(&r);
        x.context = msg_get_str(&r);
        x.a = msg_get_str(&r);
        x.b = msg_get_str(&r);
        x.p_ab = msg_get_f64(&r);
        x.p_ba = msg_get_f64(&r);
        x.p = msg_get_f64(&r);
        x.rationale_ab = msg_get_str(&r);
        x.rationale_ba = msg_get_str(&r);
        x.principle = msg_get_i32(&r);
        x.truncated = (uint8_t)msg_get_i32(&r);
        x.done = 1;
        free(buf);
        if (r.bad || row < 0 || row >= n_rows) {
            labels_row_free(&x);
            fclose(f);
            return err_set(e, ERR_INPUT, "%s: a record names row %lld of %lld; the journal does not "
                                         "belong to this labelling (remove it to start over)",
                           path, (long long)row, (long long)n_rows);
        }
        if (!rows[row].done) (*n_replayed)++;
        labels_row_free(&rows[row]);
        rows[row] = x;
    }
    fclose(f);
    return ERR_OK;
}

int labels_journal_remove(const char *path, rl_err *e) {
    if (remove(path) != 0 && errno != ENOENT)
        return err_set(e, ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return ERR_OK;
}
