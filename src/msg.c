/* msg: see include/msg.h. Fields are stored little-endian byte by byte, so the format does not
 * depend on the host's alignment rules. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

void msg_init(msg_writer *w) {
    memset(w, 0, sizeof *w);
}
void msg_free(msg_writer *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static unsigned char *grow(msg_writer *w, size_t n) {
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        w->buf = xrealloc(w->buf, cap);
        w->cap = cap;
    }
    unsigned char *p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_u64(msg_writer *w, uint64_t v, int bytes) {
    unsigned char *p = grow(w, (size_t)bytes);
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

void msg_put_i32(msg_writer *w, int32_t v) {
    put_u64(w, (uint32_t)v, 4);
}
void msg_put_i64(msg_writer *w, int64_t v) {
    put_u64(w, (uint64_t)v, 8);
}
void msg_put_f32(msg_writer *w, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u64(w, u, 4);
}
void msg_put_f64(msg_writer *w, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(w, u, 8);
}
void msg_put_bytes(msg_writer *w, const void *p, size_t n) {
    if (n) memcpy(grow(w, n), p, n);
}
void msg_put_str(msg_writer *w, const char *s) {
    size_t n = s ? strlen(s) : 0;
    msg_put_i64(w, (int64_t)n);
    msg_put_bytes(w, s, n);
}
void msg_put_i32s(msg_writer *w, const int32_t *v, size_t n) {
    msg_put_i64(w, (int64_t)n);
    for (size_t i = 0; i < n; i++) msg_put_i32(w, v[i]);
}
void msg_put_f32s(msg_writer *w, const float *v, size_t n) {
    msg_put_i64(w, (int64_t)n);
    for (size_t i = 0; i < n; i++) msg_put_f32(w, v[i]);
}

void msg_reader_init(msg_reader *r, const void *buf, size_t len) {
    r->buf = buf;
    r->len = len;
    r->pos = 0;
    r->bad = 0;
}

static uint64_t get_u64(msg_reader *r, int bytes) {
    if (r->bad || r->len - r->pos < (size_t)bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->buf[r->pos + (size_t)i] << (8 * i);
    r->pos += (size_t)bytes;
    return v;
}

int32_t msg_get_i32(msg_reader *r) {
    return (int32_t)(uint32_t)get_u64(r, 4);
}
int64_t msg_get_i64(msg_reader *r) {
    return (int64_t)get_u64(r, 8);
}
float msg_get_f32(msg_reader *r) {
    uint32_t u = (uint32_t)get_u64(r, 4);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
double msg_get_f64(msg_reader *r) {
    uint64_t u = get_u64(r, 8);
    double v;
    memcpy(&v, &u, 8);
    return v;
}
void msg_get_bytes(msg_reader *r, void *p, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        memset(p, 0, n);
        return;
    }
    memcpy(p, r->buf + r->pos, n);
    r->pos += n;
}
char *msg_get_str(msg_reader *r) {
    int64_t n = msg_get_i64(r);
    if (r->bad || n < 0 || (uint64_t)n > r->len - r->pos) {
        r->bad = 1;
        return xstrdup("");
    }
    char *s = xmalloc((size_t)n + 1);
    msg_get_bytes(r, s, (size_t)n);
    s[n] = '\0';
    return s;
}
int32_t *msg_get_i32s(msg_reader *r, size_t *n, size_t max) {
    int64_t cnt = msg_get_i64(r);
    *n = 0;
    if (r->bad || cnt < 0 || (uint64_t)cnt > max || (uint64_t)cnt * 4 > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    int32_t *v = xmalloc(sizeof *v * ((size_t)cnt + 1));
    for (int64_t i = 0; i < cnt; i++) v[i] = msg_get_i32(r);
    *n = (size_t)cnt;
    return v;
}
float *msg_get_f32s(msg_reader *r, size_t *n, size_t max) {
    int64_t cnt = msg_get_i64(r);
    *n = 0;
    if (r->bad || cnt < 0 || (uint64_t)cnt > max || (uint64_t)cnt * 4 > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    float *v = xmalloc(sizeof *v * ((size_t)cnt + 1));
    for (int64_t i = 0; i < cnt; i++) v[i] = msg_get_f32(r);
    *n = (size_t)cnt;
    return v;
}
