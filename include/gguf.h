/* gguf: reader and writer of GGUF model files (the format of llama.cpp, versions 2 and 3).
 *
 * Reader: the file is mmap'ed and validated completely before anything is handed out: magic,
 * version, counts against the file size, every string and array length, every size product
 * (overflow-checked), metadata value types, tensor names (unique, at most 63 bytes), dimension
 * counts and extents, tensor types (with their block sizes), offsets and alignment inside the
 * data section, and overlaps between tensors. A bad file gives ERR_INPUT with a message that
 * names the file, the byte offset, and the key or tensor concerned; it never crashes the reader.
 * After gguf_open succeeds every accessor below is safe without further checks.
 *
 * Values are little-endian and may be unaligned inside the mapping: accessors copy them out.
 * Strings inside the file are (pointer, length) views, not NUL-terminated.
 *
 * Writer: collects metadata and tensors (F32 source data, stored as F32 or F16), then writes a
 * v3 file with llama.cpp's layout (metadata, tensor infos, padding, data section aligned to
 * general.alignment) through a temporary file, fsync and rename.
 *
 * Not here: quantisation other than the F16/BF16/Q8_0 -> F32 conversion, big-endian files,
 * GGUF v1, nested arrays (llama.cpp never writes them). */
#ifndef RLAIF_GGUF_H
#define RLAIF_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Metadata value types (GGUF spec numbering). */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT = 13
};

/* Tensor element types (ggml numbering). Only the ones this program converts are named; the
 * reader knows the block sizes of every ggml type so that it can validate and list any file. */
enum ggml_type { GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q8_0 = 8, GGML_TYPE_BF16 = 30 };

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_NAME_MAX          64 /* tensor names: at most 63 bytes (ggml's GGML_MAX_NAME) */
#define GGUF_MAX_DIMS          4
#define GGUF_KEY_MAX           65535

typedef struct gguf_str {
    const char *ptr; /* into the mapping; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    uint32_t type;         /* enum gguf_type */
    uint32_t arr_type;     /* element type when type == GGUF_TYPE_ARRAY */
    uint64_t arr_n;        /* element count when type == GGUF_TYPE_ARRAY */
    const uint8_t *value;  /* the value (scalars, strings: at the length field; arrays: first
                              element) */
    uint64_t file_offset;  /* where the key/value pair starts in the file */
    uint64_t *str_offsets; /* string arrays: offset of each element's length field in the file */
} gguf_kv;

typedef struct gguf_tensor_info {
    char name[GGUF_NAME_MAX];
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the innermost (contiguous) extent;
                                   unused dimensions are 1 */
    uint32_t type;              /* ggml type number */
    uint64_t offset;            /* from the start of the data section */
    uint64_t nbytes;
    uint64_t nelements;
    uint64_t info_offset; /* where the tensor info starts in the file */
} gguf_tensor_info;

typedef struct gguf_file gguf_file;

/* Opens, maps and validates a file. */
int gguf_open(const char *path, gguf_file **out, rl_err *e);
/* Validates a buffer in memory (tests, the fuzzer); the buffer must outlive the result.
 * `name` is used in messages. */
int gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out, rl_err *e);
void gguf_close(gguf_file *f);

const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f);

/* ---- metadata */
int64_t gguf_n_kv(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i);
/* Index of a key, or -1. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);

/* Typed getters. When the key is absent: ERR_OK with *out untouched if !required, ERR_INPUT
 * otherwise. A present key of the wrong type, or a value out of range, is ERR_INPUT naming the
 * key. gguf_get_uint accepts every integer type whose value lies in [0, max]; gguf_get_float
 * accepts FLOAT32 and FLOAT64. */
int gguf_get_uint(const gguf_file *f, const char *key, uint64_t max, uint64_t *out, int required,
                  rl_err *e);
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, int required, rl_err *e);
int gguf_get_float(const gguf_file *f, const char *key, double *out, int required, rl_err *e);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, int required, rl_err *e);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, int required, rl_err *e);
/* An array of `want_type` elements (GGUF_TYPE_COUNT: any element type). */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t want_type, const gguf_kv **out,
                 int required, rl_err *e);

/* Array elements (i < kv->arr_n; the caller checks the element type). */
gguf_str gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i);
double gguf_arr_f64(const gguf_kv *kv, uint64_t i);  /* any numeric element type */
int64_t gguf_arr_i64(const gguf_kv *kv, uint64_t i); /* any integer or bool element type */

/* The scalar value as a number (integer, float, bool types); 0 for strings and arrays. */
double gguf_kv_f64(const gguf_kv *kv);
/* Formats a value for display: scalars in full, strings quoted (cut at `max_items` * 8 bytes),
 * arrays as "[type x n] first items...". Returns buf. */
char *gguf_kv_format(const gguf_file *f, const gguf_kv *kv, char *buf, size_t n, int max_items);

/* A newly allocated NUL-terminated copy (embedded NULs are kept; the caller frees). */
char *gguf_str_dup(gguf_str s);
/* 1 when s equals the NUL-terminated string c. */
int gguf_str_eq(gguf_str s, const char *c);

const char *gguf_type_name(uint32_t type);

/* ---- tensors */
int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor_info *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor_info *gguf_find_tensor(const gguf_file *f, const char *name);
const void *gguf_tensor_data(const gguf_file *f, const gguf_tensor_info *t);

/* ggml type facts: name ("q8_0"), block size in elements and block size in bytes. Returns 0
 * for unknown or removed types. */
const char *ggml_type_name(uint32_t type);
int ggml_type_block(uint32_t type, uint64_t *blck, uint64_t *type_size);

/* Converts a whole tensor to float32: F32, F16, BF16 and Q8_0; any other type is refused by
 * name. n must equal t->nelements. */
int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor_info *t, float *out, uint64_t n,
                       rl_err *e);

/* ---- element conversions (exact, round-to-nearest-even where they narrow) */
float gguf_f16_to_f32(uint16_t h);
uint16_t gguf_f32_to_f16(float x);
float gguf_bf16_to_f32(uint16_t b);
/* Q8_0: blocks of 32 values, each stored as an F16 scale d then 32 int8 q: x = d * q.
 * src holds n/32 blocks of 34 bytes; n is a multiple of 32. */
void gguf_q8_0_to_f32(const void *src, float *out, uint64_t n);

/* ---- writer */
typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
/* Setting a key twice replaces its value. Keys must be non-empty. */
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Numeric arrays: elem_type one of the fixed-size scalar types; data holds n elements. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data,
                         uint64_t n);
/* String arrays: lens may be NULL (then strs are NUL-terminated). */
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t n);
/* Copies all metadata of a file except general.alignment (for re-export). */
void gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f, const gguf_kv *kv);
/* Adds a tensor from float32 data of ne[0]*...*ne[n_dims-1] elements (ggml order: ne[0] is the
 * row length). type is GGML_TYPE_F32 or GGML_TYPE_F16. The data is read at write time: keep it
 * alive until gguf_writer_write returns. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                           const uint64_t *ne, const float *data, rl_err *e);
/* Writes path.tmp, fsyncs, renames to path. */
int gguf_writer_write(gguf_writer *w, const char *path, rl_err *e);
/* Serialises into a malloc'ed buffer (tests and the fuzzer corpus). */
int gguf_writer_to_buffer(gguf_writer *w, uint8_t **buf, size_t *size, rl_err *e);

#endif
