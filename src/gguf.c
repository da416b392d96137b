/* gguf: see include/gguf.h.
 *
 * The reader walks the file once with a bounds-checked cursor; every length read from the file
 * is compared with what is left before it is used, and every product of two file-supplied
 * numbers goes through size_mul/size_add. Only when the whole file has been validated is the
 * gguf_file handed out. Messages read "FILE: byte N: what (key 'k' | tensor 't'): why". */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    int mapped;
    char *name;
    uint32_t version;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor_info *tensors;
    int64_t *tensor_by_name; /* indices sorted by name, for lookups */
    uint64_t alignment;
    uint64_t data_offset;
};

/* ------------------------------------------------------------------ type facts */

static const struct {
    const char *name;
    uint32_t size;
} gguf_types[GGUF_TYPE_COUNT] = {
    {"u8", 1},   {"i8", 1},  {"u16", 2},   {"i16", 2}, {"u32", 4}, {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"str", 0}, {"array", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8},
};

const char *gguf_type_name(uint32_t type) {
    return type < GGUF_TYPE_COUNT ? gguf_types[type].name : "invalid";
}

/* Block size (elements) and bytes per block of every ggml type that GGUF files may hold. Gaps
 * are types ggml removed (Q4_2, Q4_3, the interleaved Q4_0_x_x / IQ4_NL_x_x). */
static const struct {
    const char *name;
    uint32_t blck, size;
} ggml_types[] = {
    [0] = {"f32", 1, 4},         [1] = {"f16", 1, 2},         [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},      [6] = {"q5_0", 32, 22},      [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},      [9] = {"q8_1", 32, 36},      [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110},   [12] = {"q4_K", 256, 144},   [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210},   [15] = {"q8_K", 256, 292},   [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74},  [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18},   [21] = {"iq3_s", 256, 110},  [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},         [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},        [27] = {"i64", 1, 8},        [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56},   [30] = {"bf16", 1, 2},       [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66},   [39] = {"mxfp4", 32, 17},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

const char *ggml_type_name(uint32_t type) {
    return type < N_GGML_TYPES && ggml_types[type].name ? ggml_types[type].name : NULL;
}

int ggml_type_block(uint32_t type, uint64_t *blck, uint64_t *type_size) {
    if (type >= N_GGML_TYPES || !ggml_types[type].name) return 0;
    if (blck) *blck = ggml_types[type].blck;
    if (type_size) *type_size = ggml_types[type].size;
    return 1;
}

/* ------------------------------------------------------------------ little-endian loads */

static uint16_t ld_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static uint32_t ld_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld_u64(const uint8_t *p) {
    return (uint64_t)ld_u32(p) | (uint64_t)ld_u32(p + 4) << 32;
}
static float ld_f32(const uint8_t *p) {
    uint32_t u = ld_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double ld_f64(const uint8_t *p) {
    uint64_t u = ld_u64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* ------------------------------------------------------------------ parsing */

typedef struct cursor {
    const uint8_t *b;
    uint64_t size, pos;
    const char *name; /* file name, for messages */
    rl_err *e;
} cursor;

static int failf(cursor *c, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int failf(cursor *c, uint64_t at, const char *fmt, ...) {
    char msg[ERR_MSG_MAX - 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(c->e, ERR_INPUT, "%s: byte %llu: %s", c->name, (unsigned long long)at, msg);
}

static uint64_t left(const cursor *c) {
    return c->size - c->pos;
}

/* Printable excerpt of a (possibly hostile) byte string for messages. */
static void excerpt(const char *p, uint64_t len, char *out, size_t n) {
    size_t j = 0;
    for (uint64_t i = 0; i < len && j + 5 < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') {
            out[j++] = (char)ch;
        } else {
            j += (size_t)snprintf(out + j, n - j, "\\x%02x", ch);
        }
    }
    if (len > 0 && j + 5 >= n && j + 4 < n) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j < n ? j : n - 1] = '\0';
}

/* Reads a GGUF string (u64 length + bytes) at the cursor. Messages name it as prefix, label and
 * index (idx < 0: none); they are only formatted on failure (arrays hold 100k strings). */
static int rd_str(cursor *c, gguf_str *s, const char *prefix, const char *label, int64_t idx) {
    uint64_t at = c->pos;
    char what[400];
    if (left(c) < 8 || ld_u64(c->b + c->pos) > left(c) - 8) {
        if (idx >= 0)
            snprintf(what, sizeof what, "%s%s %lld", prefix, label, (long long)idx);
        else
            snprintf(what, sizeof what, "%s%s", prefix, label);
    }
    if (left(c) < 8)
        return failf(c, at, "%s: the file ends inside its length field (%llu bytes left, need 8)",
                     what, (unsigned long long)left(c));
    uint64_t len = ld_u64(c->b + c->pos);
    c->pos += 8;
    if (len > left(c))
        return failf(c, at, "%s: string length %llu exceeds the %llu bytes left in the file", what,
                     (unsigned long long)len, (unsigned long long)left(c));
    s->ptr = (const char *)c->b + c->pos;
    s->len = len;
    c->pos += len;
    return ERR_OK;
}

static int rd_u32(cursor *c, uint32_t *v, const char *what, const char *ctx) {
    if (left(c) < 4)
        return failf(c, c->pos, "%s%s: the file ends (%llu bytes left, need 4)", ctx, what,
                     (unsigned long long)left(c));
    *v = ld_u32(c->b + c->pos);
    c->pos += 4;
    return ERR_OK;
}

static int rd_u64(cursor *c, uint64_t *v, const char *what, const char *ctx) {
    if (left(c) < 8)
        return failf(c, c->pos, "%s%s: the file ends (%llu bytes left, need 8)", ctx, what,
                     (unsigned long long)left(c));
    *v = ld_u64(c->b + c->pos);
    c->pos += 8;
    return ERR_OK;
}

/* Parses the value of one key/value pair of type `type` at the cursor into kv. */
static int rd_value(cursor *c, gguf_kv *kv, const char *ctx) {
    uint32_t type = kv->type;
    uint64_t at = c->pos;
    if (type >= GGUF_TYPE_COUNT)
        return failf(c, at - 4, "%svalue type %u is not a GGUF type (0..%d)", ctx, type,
                     GGUF_TYPE_COUNT - 1);
    kv->value = c->b + c->pos;
    if (type == GGUF_TYPE_STRING) {
        gguf_str s;
        return rd_str(c, &s, ctx, "string value", -1);
    }
    if (type != GGUF_TYPE_ARRAY) {
        uint64_t sz = gguf_types[type].size;
        if (left(c) < sz)
            return failf(c, at, "%s%s value: the file ends (%llu bytes left, need %llu)", ctx,
                         gguf_types[type].name, (unsigned long long)left(c),
                         (unsigned long long)sz);
        if (type == GGUF_TYPE_BOOL && c->b[c->pos] > 1)
            return failf(c, at, "%sbool value is %u; only 0 and 1 are valid", ctx, c->b[c->pos]);
        c->pos += sz;
        return ERR_OK;
    }
    uint32_t et = 0;
    uint64_t n = 0;
    int rc = rd_u32(c, &et, "array element type", ctx);
    if (rc) return rc;
    if (et >= GGUF_TYPE_COUNT)
        return failf(c, at, "%sarray element type %u is not a GGUF type (0..%d)", ctx, et,
                     GGUF_TYPE_COUNT - 1);
    if (et == GGUF_TYPE_ARRAY) return failf(c, at, "%sarrays of arrays are not supported", ctx);
    if ((rc = rd_u64(c, &n, "array length", ctx))) return rc;
    kv->arr_type = et;
    kv->arr_n = n;
    kv->value = c->b + c->pos;
    if (et != GGUF_TYPE_STRING) {
        uint64_t bytes;
        if (size_mul(n, gguf_types[et].size, &bytes) || bytes > left(c))
            return failf(c, at,
                         "%sarray of %llu %s elements needs more than the %llu bytes left "
                         "in the file",
                         ctx, (unsigned long long)n, gguf_types[et].name,
                         (unsigned long long)left(c));
        if (et == GGUF_TYPE_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (c->b[c->pos + i] > 1)
                    return failf(c, c->pos + i, "%sbool element %llu is %u; only 0 and 1 are valid",
                                 ctx, (unsigned long long)i, c->b[c->pos + i]);
        c->pos += bytes;
        return ERR_OK;
    }
    /* every string takes at least its 8-byte length field: bound n before allocating */
    if (n > left(c) / 8)
        return failf(c, at, "%sarray of %llu strings cannot fit in the %llu bytes left in the file",
                     ctx, (unsigned long long)n, (unsigned long long)left(c));
    kv->str_offsets = xmalloc(sizeof(uint64_t) * (n ? n : 1));
    for (uint64_t i = 0; i < n; i++) {
        kv->str_offsets[i] = c->pos;
        gguf_str s;
        if ((rc = rd_str(c, &s, ctx, "string element", (int64_t)i))) return rc;
    }
    return ERR_OK;
}

static int cmp_str(gguf_str a, gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int r = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (r) return r;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* qsort has no context argument: sort an array of (string, index) pairs instead. */
typedef struct keyed {
    gguf_str s;
    int64_t i;
} keyed;
static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    int r = cmp_str(x->s, y->s);
    return r ? r : (x->i > y->i) - (x->i < y->i);
}

typedef struct span {
    uint64_t off, end;
    int64_t i;
} span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void free_contents(gguf_file *f) {
    if (f->kv)
        for (int64_t i = 0; i < f->n_kv; i++) free(f->kv[i].str_offsets);
    free(f->kv);
    free(f->tensors);
    free(f->tensor_by_name);
    free(f->name);
}

static int parse(gguf_file *f, rl_err *e) {
    cursor c = {f->base, f->size, 0, f->name, e};
    cursor *cp = &c;
    int rc;
    if (f->size < 4 || memcmp(f->base, "GGUF", 4) != 0) {
        char got[40];
        excerpt((const char *)f->base, f->size < 4 ? f->size : 4, got, sizeof got);
        return failf(cp, 0, "not a GGUF file: the magic is \"%s\", expected \"GGUF\"", got);
    }
    c.pos = 4;
    if ((rc = rd_u32(cp, &f->version, "version", ""))) return rc;
    if (f->version == 1)
        return failf(cp, 4,
                     "GGUF version 1 (llama.cpp before August 2023) is not supported; "
                     "convert the model again with a current llama.cpp");
    if ((f->version & 0xffff) == 0 && f->version != 0)
        return failf(cp, 4,
                     "version field 0x%08x: this is a big-endian GGUF file, which is not "
                     "supported",
                     f->version);
    if (f->version != 2 && f->version != 3)
        return failf(cp, 4, "GGUF version %u is not supported (this reader handles 2 and 3)",
                     f->version);
    uint64_t n_tensors = 0, n_kv = 0;
    if ((rc = rd_u64(cp, &n_tensors, "tensor count", ""))) return rc;
    if ((rc = rd_u64(cp, &n_kv, "metadata count", ""))) return rc;
    /* smallest possible encodings: key/value 8+1 (key) + 4 (type) + 1 (u8 value);
       tensor info 8+1 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) */
    uint64_t min_kv, min_t, min_all;
    if (size_mul(n_kv, 14, &min_kv) || size_mul(n_tensors, 33, &min_t) ||
        size_add(min_kv, min_t, &min_all) || min_all > left(cp))
        return failf(cp, 8,
                     "%llu tensors and %llu metadata pairs cannot fit in a file of %llu "
                     "bytes (the counts are corrupt)",
                     (unsigned long long)n_tensors, (unsigned long long)n_kv,
                     (unsigned long long)f->size);
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    f->kv = xcalloc(n_kv ? n_kv : 1, sizeof(gguf_kv));
    f->tensors = xcalloc(n_tensors ? n_tensors : 1, sizeof(gguf_tensor_info));

    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        kv->file_offset = c.pos;
        if ((rc = rd_str(cp, &kv->key, "", "key of metadata pair", (int64_t)i))) return rc;
        if (kv->key.len == 0)
            return failf(cp, kv->file_offset, "metadata pair %llu: empty key",
                         (unsigned long long)i);
        if (kv->key.len > GGUF_KEY_MAX)
            return failf(cp, kv->file_offset, "metadata pair %llu: key of %llu bytes (at most %d)",
                         (unsigned long long)i, (unsigned long long)kv->key.len, GGUF_KEY_MAX);
        if (memchr(kv->key.ptr, 0, kv->key.len))
            return failf(cp, kv->file_offset, "metadata pair %llu: key contains a NUL byte",
                         (unsigned long long)i);
        char key[128], ctx[200];
        excerpt(kv->key.ptr, kv->key.len, key, sizeof key);
        snprintf(ctx, sizeof ctx, "key '%s': ", key);
        if ((rc = rd_u32(cp, &kv->type, "value type", ctx))) return rc;
        if ((rc = rd_value(cp, kv, ctx))) return rc;
    }
    /* duplicate keys */
    if (n_kv > 1) {
        keyed *ks = xmalloc(sizeof(keyed) * n_kv);
        for (uint64_t i = 0; i < n_kv; i++) ks[i] = (keyed){f->kv[i].key, (int64_t)i};
        qsort(ks, n_kv, sizeof(keyed), cmp_keyed);
        for (uint64_t i = 1; i < n_kv; i++)
            if (cmp_str(ks[i - 1].s, ks[i].s) == 0) {
                char key[128];
                excerpt(ks[i].s.ptr, ks[i].s.len, key, sizeof key);
                uint64_t at = f->kv[ks[i].i].file_offset;
                int64_t first = ks[i - 1].i;
                free(ks);
                return failf(cp, at, "key '%s' appears twice (first at byte %llu)", key,
                             (unsigned long long)f->kv[first].file_offset);
            }
        free(ks);
    }
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    {
        const gguf_kv *a = gguf_find_kv(f, "general.alignment");
        if (a) {
            int64_t v = -1;
            if (a->type == GGUF_TYPE_UINT32)
                v = ld_u32(a->value);
            else if (a->type == GGUF_TYPE_UINT64 || a->type == GGUF_TYPE_INT64)
                v = (int64_t)ld_u64(a->value) < 0 ? -1 : (int64_t)ld_u64(a->value);
            else if (a->type == GGUF_TYPE_INT32)
                v = (int32_t)ld_u32(a->value);
            else if (a->type == GGUF_TYPE_UINT16)
                v = ld_u16(a->value);
            else
                return failf(cp, a->file_offset, "key 'general.alignment': type %s, expected u32",
                             gguf_type_name(a->type));
            if (v <= 0 || (v & (v - 1)) != 0 || v > (1 << 30))
                return failf(cp, a->file_offset,
                             "key 'general.alignment' is %lld; it must be a "
                             "power of two between 1 and 2^30",
                             (long long)v);
            f->alignment = (uint64_t)v;
        }
    }

    for (uint64_t i = 0; i < n_tensors; i++) {
        gguf_tensor_info *t = &f->tensors[i];
        t->info_offset = c.pos;
        gguf_str name;
        if ((rc = rd_str(cp, &name, "", "name of tensor info", (int64_t)i))) return rc;
        char nm[128], ctx[200];
        excerpt(name.ptr, name.len, nm, sizeof nm);
        if (name.len == 0)
            return failf(cp, t->info_offset, "tensor info %llu: empty name", (unsigned long long)i);
        if (name.len >= GGUF_NAME_MAX)
            return failf(cp, t->info_offset, "tensor '%s': name of %llu bytes (at most %d)", nm,
                         (unsigned long long)name.len, GGUF_NAME_MAX - 1);
        if (memchr(name.ptr, 0, name.len))
            return failf(cp, t->info_offset, "tensor '%s': name contains a NUL byte", nm);
        memcpy(t->name, name.ptr, name.len);
        t->name[name.len] = '\0';
        snprintf(ctx, sizeof ctx, "tensor '%s': ", nm);
        uint64_t at = c.pos;
        if ((rc = rd_u32(cp, &t->n_dims, "dimension count", ctx))) return rc;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return failf(cp, at, "tensor '%s': %u dimensions (1..%d supported)", nm, t->n_dims,
                         GGUF_MAX_DIMS);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            at = c.pos;
            if ((rc = rd_u64(cp, &t->ne[d], "dimension", ctx))) return rc;
            if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
                return failf(cp, at, "tensor '%s': dimension %u is %llu (must be 1..2^63-1)", nm, d,
                             (unsigned long long)t->ne[d]);
        }
        at = c.pos;
        if ((rc = rd_u32(cp, &t->type, "type", ctx))) return rc;
        uint64_t blck, tsize;
        if (!ggml_type_block(t->type, &blck, &tsize))
            return failf(cp, at, "tensor '%s': type %u is not a ggml type this reader knows", nm,
                         t->type);
        if ((rc = rd_u64(cp, &t->offset, "data offset", ctx))) return rc;
        uint64_t ne = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++)
            if (size_mul(ne, t->ne[d], &ne) || ne > (uint64_t)INT64_MAX)
                return failf(cp, t->info_offset, "tensor '%s': the element count overflows", nm);
        if (t->ne[0] % blck != 0)
            return failf(cp, t->info_offset,
                         "tensor '%s': row length %llu is not a multiple of "
                         "the %s block size %llu",
                         nm, (unsigned long long)t->ne[0], ggml_type_name(t->type),
                         (unsigned long long)blck);
        uint64_t nbytes = 0;
        if (size_mul(ne / blck, tsize, &nbytes))
            return failf(cp, t->info_offset, "tensor '%s': the byte size overflows", nm);
        t->nelements = ne;
        t->nbytes = nbytes;
    }
    /* duplicate tensor names; keep the sorted order for lookups */
    f->tensor_by_name = xmalloc(sizeof(int64_t) * (n_tensors ? n_tensors : 1));
    if (n_tensors > 0) {
        keyed *ks = xmalloc(sizeof(keyed) * n_tensors);
        for (uint64_t i = 0; i < n_tensors; i++)
            ks[i] = (keyed){{f->tensors[i].name, strlen(f->tensors[i].name)}, (int64_t)i};
        qsort(ks, n_tensors, sizeof(keyed), cmp_keyed);
        for (uint64_t i = 0; i < n_tensors; i++) {
            f->tensor_by_name[i] = ks[i].i;
            if (i > 0 && cmp_str(ks[i - 1].s, ks[i].s) == 0) {
                uint64_t at = f->tensors[ks[i].i].info_offset;
                char nm[128];
                excerpt(ks[i].s.ptr, ks[i].s.len, nm, sizeof nm);
                free(ks);
                return failf(cp, at, "tensor '%s' appears twice", nm);
            }
        }
        free(ks);
    }
    /* data section */
    uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
    if (size_add(c.pos, pad, &f->data_offset)) return failf(cp, c.pos, "data offset overflows");
    if (n_tensors == 0) return ERR_OK;
    if (f->data_offset > f->size)
        return failf(cp, c.pos,
                     "the file ends before its data section (which starts at byte %llu "
                     "after alignment to %llu)",
                     (unsigned long long)f->data_offset, (unsigned long long)f->alignment);
    uint64_t data_size = f->size - f->data_offset;
    span *sp = xmalloc(sizeof(span) * n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        const gguf_tensor_info *t = &f->tensors[i];
        if (t->offset % f->alignment != 0) {
            free(sp);
            return failf(cp, t->info_offset,
                         "tensor '%s': data offset %llu is not a multiple of "
                         "the alignment %llu",
                         t->name, (unsigned long long)t->offset, (unsigned long long)f->alignment);
        }
        if (t->offset > data_size || t->nbytes > data_size - t->offset) {
            free(sp);
            return failf(
                cp, t->info_offset,
                "tensor '%s': %llu bytes at data offset %llu (file "
                "byte %llu) run past the end of the file (data "
                "section of %llu bytes; truncated file?)",
                t->name, (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                (unsigned long long)(f->data_offset + (t->offset <= data_size ? t->offset : 0)),
                (unsigned long long)data_size);
        }
        sp[i] = (span){t->offset, t->offset + t->nbytes, (int64_t)i};
    }
    qsort(sp, n_tensors, sizeof(span), cmp_span);
    for (uint64_t i = 1; i < n_tensors; i++)
        if (sp[i].off < sp[i - 1].end) {
            const gguf_tensor_info *a = &f->tensors[sp[i - 1].i], *b = &f->tensors[sp[i].i];
            uint64_t at = b->info_offset;
            char an[GGUF_NAME_MAX], bn[GGUF_NAME_MAX];
            memcpy(an, a->name, sizeof an);
            memcpy(bn, b->name, sizeof bn);
            uint64_t aoff = a->offset, aend = a->offset + a->nbytes, boff = b->offset;
            free(sp);
            return failf(cp, at,
                         "tensor '%s' (data offset %llu) overlaps tensor '%s' (data "
                         "offsets %llu..%llu)",
                         bn, (unsigned long long)boff, an, (unsigned long long)aoff,
                         (unsigned long long)aend);
        }
    free(sp);
    return ERR_OK;
}

int gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out, rl_err *e) {
    *out = NULL;
    gguf_file *f = xcalloc(1, sizeof *f);
    f->base = data;
    f->size = size;
    f->name = xstrdup(name ? name : "<memory>");
    int rc = parse(f, e);
    if (rc) {
        free_contents(f);
        free(f);
        return rc;
    }
    *out = f;
    return ERR_OK;
}

int gguf_open(const char *path, gguf_file **out, rl_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int en = errno;
        close(fd);
        return err_set(e, ERR_IO, "%s: cannot stat: %s", path, strerror(en));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, ERR_INPUT, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return err_set(e, ERR_INPUT, "%s: byte 0: the file is empty (not a GGUF file)", path);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int en = errno;
    close(fd);
    if (m == MAP_FAILED) return err_set(e, ERR_IO, "%s: cannot mmap: %s", path, strerror(en));
    gguf_file *f = xcalloc(1, sizeof *f);
    f->base = m;
    f->size = (uint64_t)st.st_size;
    f->mapped = 1;
    f->name = xstrdup(path);
    int rc = parse(f, e);
    if (rc) {
        munmap(m, (size_t)st.st_size);
        free_contents(f);
        free(f);
        return rc;
    }
    *out = f;
    return ERR_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, (size_t)f->size);
    free_contents(f);
    free(f);
}

const char *gguf_path(const gguf_file *f) {
    return f->name;
}
uint32_t gguf_version(const gguf_file *f) {
    return f->version;
}
uint64_t gguf_file_size(const gguf_file *f) {
    return f->size;
}
uint64_t gguf_alignment(const gguf_file *f) {
    return f->alignment;
}
uint64_t gguf_data_offset(const gguf_file *f) {
    return f->data_offset;
}

/* ------------------------------------------------------------------ metadata access */

int64_t gguf_n_kv(const gguf_file *f) {
    return f->n_kv;
}
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? &f->kv[i] : NULL;
}

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key)) return i;
    return -1;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->kv[i];
}

static int kv_fail(const gguf_file *f, const gguf_kv *kv, rl_err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int kv_fail(const gguf_file *f, const gguf_kv *kv, rl_err *e, const char *fmt, ...) {
    char msg[1024], key[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    excerpt(kv->key.ptr, kv->key.len, key, sizeof key);
    return err_set(e, ERR_INPUT, "%s: byte %llu: key '%s': %s", f->name,
                   (unsigned long long)kv->file_offset, key, msg);
}

static int missing(const gguf_file *f, const char *key, int required, rl_err *e) {
    if (!required) return ERR_OK;
    return err_set(e, ERR_INPUT, "%s: required key '%s' is missing", f->name, key);
}

/* Integer value of an integer-typed scalar; *neg set when negative. */
static int kv_int(const gguf_kv *kv, uint64_t *mag, int *neg) {
    const uint8_t *p = kv->value;
    int64_t s = 0;
    *neg = 0;
    switch (kv->type) {
    case GGUF_TYPE_UINT8:
        *mag = p[0];
        return 1;
    case GGUF_TYPE_UINT16:
        *mag = ld_u16(p);
        return 1;
    case GGUF_TYPE_UINT32:
        *mag = ld_u32(p);
        return 1;
    case GGUF_TYPE_UINT64:
        *mag = ld_u64(p);
        return 1;
    case GGUF_TYPE_INT8:
        s = (int8_t)p[0];
        break;
    case GGUF_TYPE_INT16:
        s = (int16_t)ld_u16(p);
        break;
    case GGUF_TYPE_INT32:
        s = (int32_t)ld_u32(p);
        break;
    case GGUF_TYPE_INT64:
        s = (int64_t)ld_u64(p);
        break;
    default:
        return 0;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return 1;
}

int gguf_get_uint(const gguf_file *f, const char *key, uint64_t max, uint64_t *out, int required,
                  rl_err *e) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key, required, e);
    uint64_t mag;
    int neg;
    if (!kv_int(kv, &mag, &neg))
        return kv_fail(f, kv, e, "type %s, expected an integer", gguf_type_name(kv->type));
    if (neg || mag > max)
        return kv_fail(f, kv, e, "value %s%llu is out of range (0..%llu)", neg ? "-" : "",
                       (unsigned long long)mag, (unsigned long long)max);
    *out = mag;
    return ERR_OK;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, int required, rl_err *e) {
    uint64_t v = 0;
    int rc = gguf_get_uint(f, key, UINT32_MAX, &v, required, e);
    if (rc == ERR_OK && gguf_find_kv(f, key)) *out = (uint32_t)v;
    return rc;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, int required, rl_err *e) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key, required, e);
    if (kv->type == GGUF_TYPE_FLOAT32)
        *out = ld_f32(kv->value);
    else if (kv->type == GGUF_TYPE_FLOAT64)
        *out = ld_f64(kv->value);
    else
        return kv_fail(f, kv, e, "type %s, expected f32", gguf_type_name(kv->type));
    if (!isfinite(*out)) return kv_fail(f, kv, e, "value is not finite");
    return ERR_OK;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out, int required, rl_err *e) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key, required, e);
    if (kv->type != GGUF_TYPE_BOOL)
        return kv_fail(f, kv, e, "type %s, expected bool", gguf_type_name(kv->type));
    *out = kv->value[0] != 0;
    return ERR_OK;
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, int required, rl_err *e) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key, required, e);
    if (kv->type != GGUF_TYPE_STRING)
        return kv_fail(f, kv, e, "type %s, expected str", gguf_type_name(kv->type));
    out->len = ld_u64(kv->value);
    out->ptr = (const char *)kv->value + 8;
    return ERR_OK;
}

int gguf_get_arr(const gguf_file *f, const char *key, uint32_t want_type, const gguf_kv **out,
                 int required, rl_err *e) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return missing(f, key, required, e);
    if (kv->type != GGUF_TYPE_ARRAY)
        return kv_fail(f, kv, e, "type %s, expected an array", gguf_type_name(kv->type));
    if (want_type < GGUF_TYPE_COUNT && kv->arr_type != want_type)
        return kv_fail(f, kv, e, "array of %s, expected an array of %s",
                       gguf_type_name(kv->arr_type), gguf_type_name(want_type));
    *out = kv;
    return ERR_OK;
}

gguf_str gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i) {
    const uint8_t *p = f->base + kv->str_offsets[i];
    gguf_str s = {(const char *)p + 8, ld_u64(p)};
    return s;
}

static double elem_f64(uint32_t type, const uint8_t *p) {
    switch (type) {
    case GGUF_TYPE_UINT8:
        return p[0];
    case GGUF_TYPE_INT8:
        return (int8_t)p[0];
    case GGUF_TYPE_UINT16:
        return ld_u16(p);
    case GGUF_TYPE_INT16:
        return (int16_t)ld_u16(p);
    case GGUF_TYPE_UINT32:
        return ld_u32(p);
    case GGUF_TYPE_INT32:
        return (int32_t)ld_u32(p);
    case GGUF_TYPE_FLOAT32:
        return ld_f32(p);
    case GGUF_TYPE_BOOL:
        return p[0];
    case GGUF_TYPE_UINT64:
        return (double)ld_u64(p);
    case GGUF_TYPE_INT64:
        return (double)(int64_t)ld_u64(p);
    case GGUF_TYPE_FLOAT64:
        return ld_f64(p);
    default:
        return 0;
    }
}

static int64_t elem_i64(uint32_t type, const uint8_t *p) {
    switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_BOOL:
        return p[0];
    case GGUF_TYPE_INT8:
        return (int8_t)p[0];
    case GGUF_TYPE_UINT16:
        return ld_u16(p);
    case GGUF_TYPE_INT16:
        return (int16_t)ld_u16(p);
    case GGUF_TYPE_UINT32:
        return ld_u32(p);
    case GGUF_TYPE_INT32:
        return (int32_t)ld_u32(p);
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
        return (int64_t)ld_u64(p);
    default:
        return 0;
    }
}

double gguf_arr_f64(const gguf_kv *kv, uint64_t i) {
    if (kv->arr_type >= GGUF_TYPE_COUNT || gguf_types[kv->arr_type].size == 0) return 0;
    return elem_f64(kv->arr_type, kv->value + i * gguf_types[kv->arr_type].size);
}

int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i) {
    if (kv->arr_type >= GGUF_TYPE_COUNT || gguf_types[kv->arr_type].size == 0) return 0;
    return elem_i64(kv->arr_type, kv->value + i * gguf_types[kv->arr_type].size);
}

double gguf_kv_f64(const gguf_kv *kv) {
    if (kv->type == GGUF_TYPE_STRING || kv->type == GGUF_TYPE_ARRAY) return 0;
    return elem_f64(kv->type, kv->value);
}

char *gguf_str_dup(gguf_str s) {
    char *p = xmalloc((size_t)s.len + 1);
    if (s.len) memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = '\0';
    return p;
}

static void fmt_scalar(uint32_t type, const uint8_t *p, char *buf, size_t n) {
    switch (type) {
    case GGUF_TYPE_FLOAT32:
        snprintf(buf, n, "%.9g", (double)ld_f32(p));
        break;
    case GGUF_TYPE_FLOAT64:
        snprintf(buf, n, "%.17g", ld_f64(p));
        break;
    case GGUF_TYPE_BOOL:
        snprintf(buf, n, "%s", p[0] ? "true" : "false");
        break;
    case GGUF_TYPE_UINT64:
        snprintf(buf, n, "%llu", (unsigned long long)ld_u64(p));
        break;
    default:
        snprintf(buf, n, "%lld", (long long)elem_i64(type, p));
        break;
    }
}

static size_t fmt_str(gguf_str s, size_t cut, char *buf, size_t n) {
    char tmp[512];
    uint64_t len = s.len < cut ? s.len : cut;
    excerpt(s.ptr, len, tmp, sizeof tmp);
    int w = snprintf(buf, n, "\"%s%s\"", tmp, s.len > len ? "..." : "");
    return w < 0 ? 0 : (size_t)w;
}

char *gguf_kv_format(const gguf_file *f, const gguf_kv *kv, char *buf, size_t n, int max_items) {
    if (n == 0) return buf;
    buf[0] = '\0';
    if (kv->type == GGUF_TYPE_STRING) {
        gguf_str s = {(const char *)kv->value + 8, ld_u64(kv->value)};
        fmt_str(s, (size_t)(max_items > 0 ? max_items : 1) * 8, buf, n);
        return buf;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        fmt_scalar(kv->type, kv->value, buf, n);
        return buf;
    }
    size_t used = (size_t)snprintf(buf, n, "[%s x %llu]", gguf_type_name(kv->arr_type),
                                   (unsigned long long)kv->arr_n);
    for (uint64_t i = 0; i < kv->arr_n && i < (uint64_t)max_items && used + 1 < n; i++) {
        char item[600];
        if (kv->arr_type == GGUF_TYPE_STRING)
            fmt_str(gguf_arr_str(f, kv, i), 40, item, sizeof item);
        else
            fmt_scalar(kv->arr_type, kv->value + i * gguf_types[kv->arr_type].size, item,
                       sizeof item);
        int w = snprintf(buf + used, n - used, " %s", item);
        if (w < 0) break;
        used += (size_t)w;
    }
    if (kv->arr_n > (uint64_t)max_items && used + 5 < n) snprintf(buf + used, n - used, " ...");
    return buf;
}

/* ------------------------------------------------------------------ tensors */

int64_t gguf_n_tensors(const gguf_file *f) {
    return f->n_tensors;
}
const gguf_tensor_info *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor_info *gguf_find_tensor(const gguf_file *f, const char *name) {
    int64_t lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        const gguf_tensor_info *t = &f->tensors[f->tensor_by_name[mid]];
        int r = strcmp(t->name, name);
        if (r == 0) return t;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const void *gguf_tensor_data(const gguf_file *f, const gguf_tensor_info *t) {
    return f->base + f->data_offset + t->offset;
}

/* ------------------------------------------------------------------ conversions */

float gguf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf or nan (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13); /* 127 - 15 = 112 */
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: value = man * 2^-24 exactly */
        float v = (float)man * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t gguf_f32_to_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) return sign | 0x7c00 | (man ? 0x200 | (uint16_t)(man >> 13) : 0);
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00; /* overflow to inf */
    if (e <= 0) {
        /* subnormal or zero: shift the full significand (with the implicit 1) into place */
        if (e < -10) return sign;
        uint32_t m = man | 0x800000;
        int shift = 14 - e; /* 13 + (1 - e) */
        uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into inf: correct */
    return sign | (uint16_t)h;
}

float gguf_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void gguf_q8_0_to_f32(const void *src, float *out, uint64_t n) {
    const uint8_t *p = src;
    for (uint64_t b = 0; b < n / 32; b++, p += 34) {
        float d = gguf_f16_to_f32(ld_u16(p));
        for (int j = 0; j < 32; j++) out[b * 32 + (uint64_t)j] = d * (float)(int8_t)p[2 + j];
    }
}

int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor_info *t, float *out, uint64_t n,
                       rl_err *e) {
    if (n != t->nelements)
        return err_set(e, ERR_INTERNAL, "%s: tensor '%s' has %llu elements, caller expected %llu",
                       f->name, t->name, (unsigned long long)t->nelements, (unsigned long long)n);
    const uint8_t *p = gguf_tensor_data(f, t);
    switch (t->type) {
    case GGML_TYPE_F32:
        memcpy(out, p, n * 4);
        break;
    case GGML_TYPE_F16:
        for (uint64_t i = 0; i < n; i++) out[i] = gguf_f16_to_f32(ld_u16(p + 2 * i));
        break;
    case GGML_TYPE_BF16:
        for (uint64_t i = 0; i < n; i++) out[i] = gguf_bf16_to_f32(ld_u16(p + 2 * i));
        break;
    case GGML_TYPE_Q8_0:
        gguf_q8_0_to_f32(p, out, n);
        break;
    default:
        return err_set(e, ERR_INPUT,
                       "%s: tensor '%s' has type %s, which this program cannot "
                       "convert (supported: f32, f16, bf16, q8_0); requantise the "
                       "model to one of those",
                       f->name, t->name, ggml_type_name(t->type) ? ggml_type_name(t->type) : "?");
    }
    return ERR_OK;
}

/* ------------------------------------------------------------------ writer */

typedef struct wkv {
    char *key;
    uint8_t *blob; /* type + value, serialised */
    size_t n;
} wkv;

typedef struct wtensor {
    char name[GGUF_NAME_MAX];
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    uint64_t nel, nbytes, offset;
    const float *data;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void buf_put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void buf_u32(buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_put(b, x, 4);
}
static void buf_u64(buf *b, uint64_t v) {
    buf_u32(b, (uint32_t)v);
    buf_u32(b, (uint32_t)(v >> 32));
}
static void buf_str(buf *b, const char *s, size_t n) {
    buf_u64(b, n);
    buf_put(b, s, n);
}

gguf_writer *gguf_writer_new(void) {
    return xcalloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].blob);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

static void set_blob(gguf_writer *w, const char *key, buf *b) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].blob);
            w->kv[i].blob = b->p;
            w->kv[i].n = b->n;
            return;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
        w->kv = xrealloc(w->kv, w->cap_kv * sizeof(wkv));
    }
    w->kv[w->n_kv++] = (wkv){xstrdup(key), b->p, b->n};
}

static void set_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v, size_t n) {
    buf b = {0};
    buf_u32(&b, type);
    /* values are stored little-endian; this program only builds on little-endian hosts */
    buf_put(&b, v, n);
    set_blob(w, key, &b);
}

void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    set_scalar(w, key, GGUF_TYPE_UINT32, &v, 4);
}
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    set_scalar(w, key, GGUF_TYPE_INT32, &v, 4);
}
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    set_scalar(w, key, GGUF_TYPE_UINT64, &v, 8);
}
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    set_scalar(w, key, GGUF_TYPE_FLOAT32, &v, 4);
}
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t x = v ? 1 : 0;
    set_scalar(w, key, GGUF_TYPE_BOOL, &x, 1);
}
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_str(&b, v, strlen(v));
    set_blob(w, key, &b);
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                         uint64_t n) {
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, elem_type);
    buf_u64(&b, n);
    buf_put(&b, data, (size_t)n * gguf_types[elem_type].size);
    set_blob(w, key, &b);
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t n) {
    buf b = {0};
    buf_u32(&b, GGUF_TYPE_ARRAY);
    buf_u32(&b, GGUF_TYPE_STRING);
    buf_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) buf_str(&b, strs[i], lens ? lens[i] : strlen(strs[i]));
    set_blob(w, key, &b);
}

void gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f, const gguf_kv *kv) {
    if (gguf_str_eq(kv->key, "general.alignment")) return;
    /* the value runs from kv->value (or the array header) to the next pair: re-measure it */
    const uint8_t *start = kv->type == GGUF_TYPE_ARRAY ? kv->value - 12 : kv->value;
    cursor c = {f->base, f->size, (uint64_t)(kv->value - f->base), f->name, NULL};
    uint64_t end;
    if (kv->type == GGUF_TYPE_STRING) {
        end = c.pos + 8 + ld_u64(kv->value);
    } else if (kv->type != GGUF_TYPE_ARRAY) {
        end = c.pos + gguf_types[kv->type].size;
    } else if (kv->arr_type != GGUF_TYPE_STRING) {
        end = c.pos + kv->arr_n * gguf_types[kv->arr_type].size;
    } else if (kv->arr_n == 0) {
        end = c.pos;
    } else {
        uint64_t last = kv->str_offsets[kv->arr_n - 1];
        end = last + 8 + ld_u64(f->base + last);
    }
    buf b = {0};
    buf_u32(&b, kv->type);
    buf_put(&b, start, (size_t)(f->base + end - start));
    char *key = gguf_str_dup(kv->key);
    set_blob(w, key, &b);
    free(key);
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const float *data, rl_err *e) {
    size_t len = strlen(name);
    if (len == 0 || len >= GGUF_NAME_MAX)
        return err_set(e, ERR_INTERNAL, "gguf writer: tensor name '%s' must have 1..%d bytes", name,
                       GGUF_NAME_MAX - 1);
    if (type != GGML_TYPE_F32 && type != GGML_TYPE_F16)
        return err_set(e, ERR_INTERNAL,
                       "gguf writer: tensor '%s': type %u (only f32 and f16 "
                       "are written)",
                       name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(e, ERR_INTERNAL, "gguf writer: tensor '%s': %u dimensions", name, n_dims);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return err_set(e, ERR_INTERNAL, "gguf writer: tensor '%s' added twice", name);
    wtensor t = {.type = type, .n_dims = n_dims, .data = data};
    memcpy(t.name, name, len + 1);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] == 0 || size_mul(nel, t.ne[d], &nel))
            return err_set(e, ERR_INTERNAL, "gguf writer: tensor '%s': bad dimension %u", name, d);
    }
    t.nel = nel;
    if (size_mul(nel, type == GGML_TYPE_F32 ? 4 : 2, &t.nbytes))
        return err_set(e, ERR_INTERNAL, "gguf writer: tensor '%s' too large", name);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = xrealloc(w->t, w->cap_t * sizeof(wtensor));
    }
    w->t[w->n_t++] = t;
    return ERR_OK;
}

/* Output goes to a FILE or to a growing buffer. */
typedef struct sink {
    FILE *fp;
    buf *mem;
    const char *path;
    rl_err *e;
} sink;

static int sink_put(sink *s, const void *p, size_t n) {
    if (s->mem) {
        buf_put(s->mem, p, n);
        return ERR_OK;
    }
    if (n && fwrite(p, 1, n, s->fp) != n)
        return err_set(s->e, ERR_IO, "%s: write failed: %s", s->path, strerror(errno));
    return ERR_OK;
}

static int sink_pad(sink *s, uint64_t pos, uint64_t align) {
    static const uint8_t zeros[64] = {0};
    uint64_t pad = (align - pos % align) % align;
    while (pad > 0) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        int rc = sink_put(s, zeros, k);
        if (rc) return rc;
        pad -= k;
    }
    return ERR_OK;
}

static int write_all(gguf_writer *w, sink *s) {
    const uint64_t align = GGUF_DEFAULT_ALIGNMENT;
    buf h = {0};
    buf_put(&h, "GGUF", 4);
    buf_u32(&h, 3);
    buf_u64(&h, w->n_t);
    buf_u64(&h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        buf_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        buf_put(&h, w->kv[i].blob, w->kv[i].n);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        buf_str(&h, t->name, strlen(t->name));
        buf_u32(&h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) buf_u64(&h, t->ne[d]);
        buf_u32(&h, t->type);
        t->offset = off;
        buf_u64(&h, off);
        off += t->nbytes;
        off += (align - off % align) % align;
    }
    int rc = sink_put(s, h.p, h.n);
    uint64_t pos = h.n;
    free(h.p);
    if (rc) return rc;
    if (w->n_t == 0) return ERR_OK;
    if ((rc = sink_pad(s, pos, align))) return rc;
    enum { CHUNK = 8192 };
    uint16_t half[CHUNK];
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (t->type == GGML_TYPE_F32) {
            rc = sink_put(s, t->data, (size_t)t->nbytes);
        } else {
            for (uint64_t j = 0; j < t->nel && !rc; j += CHUNK) {
                size_t k = t->nel - j < CHUNK ? (size_t)(t->nel - j) : CHUNK;
                for (size_t q = 0; q < k; q++) half[q] = gguf_f32_to_f16(t->data[j + q]);
                rc = sink_put(s, half, k * 2);
            }
        }
        if (rc) return rc;
        if ((rc = sink_pad(s, t->nbytes, align))) return rc;
    }
    return ERR_OK;
}

int gguf_writer_to_buffer(gguf_writer *w, uint8_t **out, size_t *size, rl_err *e) {
    buf b = {0};
    sink s = {NULL, &b, "<memory>", e};
    int rc = write_all(w, &s);
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *size = b.n;
    return ERR_OK;
}

int gguf_writer_write(gguf_writer *w, const char *path, rl_err *e) {
    size_t n = strlen(path);
    char *tmp = xmalloc(n + 5);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        int rc = err_set(e, ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    sink s = {fp, NULL, tmp, e};
    int rc = write_all(w, &s);
    if (!rc && fflush(fp) != 0)
        rc = err_set(e, ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (!rc && fsync(fileno(fp)) != 0)
        rc = err_set(e, ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (fclose(fp) != 0 && !rc)
        rc = err_set(e, ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = err_set(e, ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
