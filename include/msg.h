/* msg: packing and unpacking of the byte messages ranks exchange.
 *
 * A message is a flat little-endian byte buffer of typed fields written in order and read back
 * in the same order. Reads are bounds-checked: a short or malformed message sets the reader's
 * error flag instead of reading past the end (a peer running another build is a bad input too).
 * Not here: sending; see comm.h. */
#ifndef RLAIF_MSG_H
#define RLAIF_MSG_H

#include <stddef.h>
#include <stdint.h>

typedef struct msg_writer {
    unsigned char *buf;
    size_t len, cap;
} msg_writer;

typedef struct msg_reader {
    const unsigned char *buf;
    size_t len, pos;
    int bad; /* set when a read went past the end or a length was implausible */
} msg_reader;

void msg_init(msg_writer *w);
void msg_free(msg_writer *w);
void msg_put_i32(msg_writer *w, int32_t v);
void msg_put_i64(msg_writer *w, int64_t v);
void msg_put_f32(msg_writer *w, float v);
void msg_put_f64(msg_writer *w, double v);
/* Length-prefixed string (NULL is written as empty). */
void msg_put_str(msg_writer *w, const char *s);
void msg_put_bytes(msg_writer *w, const void *p, size_t n);
void msg_put_i32s(msg_writer *w, const int32_t *v, size_t n); /* count-prefixed */
void msg_put_f32s(msg_writer *w, const float *v, size_t n);   /* count-prefixed */

void msg_reader_init(msg_reader *r, const void *buf, size_t len);
int32_t msg_get_i32(msg_reader *r);
int64_t msg_get_i64(msg_reader *r);
float msg_get_f32(msg_reader *r);
double msg_get_f64(msg_reader *r);
/* Returns a malloc'd NUL-terminated copy ("" and r->bad set on error). */
char *msg_get_str(msg_reader *r);
void msg_get_bytes(msg_reader *r, void *p, size_t n);
/* Count-prefixed arrays: *n gets the count, the result is malloc'd (NULL when bad). At most
 * `max` elements are accepted. */
int32_t *msg_get_i32s(msg_reader *r, size_t *n, size_t max);
float *msg_get_f32s(msg_reader *r, size_t *n, size_t max);

#endif
