/* err: see include/err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int err_set(rl_err *e, int code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int err_prefix(rl_err *e, const char *fmt, ...) {
    if (!e) return ERR_INTERNAL;
    char old[ERR_MSG_MAX];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = (size_t)n < sizeof e->msg ? (size_t)n : sizeof e->msg - 1;
    size_t room = sizeof e->msg - used;
    size_t oldlen = strnlen(old, sizeof old - 1);
    if (room > 2) {
        e->msg[used] = ':';
        e->msg[used + 1] = ' ';
        size_t copy = oldlen < room - 3 ? oldlen : room - 3;
        memcpy(e->msg + used + 2, old, copy);
        e->msg[used + 2 + copy] = '\0';
    }
    return e->code;
}

void err_clear(rl_err *e) {
    if (!e) return;
    e->code = ERR_OK;
    e->msg[0] = '\0';
}

int err_exit_status(int code) {
    return code == ERR_OK ? 0 : (code == ERR_INPUT || code == ERR_STATE) ? 2 : 1;
}

static void oom(size_t n, const char *file, int line) {
    fprintf(stderr,
            "rlaif: out of memory allocating %zu bytes at %s:%d; lower the model or batch "
            "size, or run fewer ranks per node\n",
            n, file, line);
    exit(3);
}

void *xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) oom(count * size, file, line);
    return p;
}

void *xrealloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n, file, line);
    return q;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

void *xmalloc_aligned_at(size_t n, const char *file, int line) {
    void *p = NULL;
    size_t rounded = (n + 63) & ~(size_t)63;
    if (rounded < n || posix_memalign(&p, 64, rounded ? rounded : 64) != 0) oom(n, file, line);
    return p;
}
