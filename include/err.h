/* err: status codes, error messages that travel with the status, checked allocation.
 *
 * Every function that can fail returns an int status (ERR_OK = 0) and, on failure, fills the
 * caller's rl_err with one line that says what went wrong, where (file:line:col for decks, tensor
 * name and byte offset for model files) and, where useful, what to do. Nothing here prints; the
 * caller decides (rank 0 prints once). Allocation failure is not recoverable in this program:
 * the x* wrappers report size and call site and exit. */
#ifndef RLAIF_ERR_H
#define RLAIF_ERR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_IO = 1,      /* a file could not be read or written */
    ERR_INPUT = 2,   /* bad input: deck, model file, checkpoint, dataset (exit status 2) */
    ERR_STATE = 3,   /* the run directory or a checkpoint is in a state we refuse to touch */
    ERR_NUMERIC = 4, /* NaN/Inf in a loss or gradient */
    ERR_MPI = 5,     /* communication failed or a peer sent something unexpected */
    ERR_INTERNAL = 6 /* a bug: an invariant did not hold */
};

#define ERR_MSG_MAX 2048

typedef struct rl_err {
    int code;
    char msg[ERR_MSG_MAX];
} rl_err;

/* Sets code and message; returns code so that `return err_set(e, ERR_INPUT, ...)` reads well.
 * e may be NULL (the message is dropped). */
int err_set(rl_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prepends context to an existing message: "context: old message". Returns e->code. */
int err_prefix(rl_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(rl_err *e);
/* Process exit status for an error code: 2 for bad input and refused run states, 1 for the rest. */
int err_exit_status(int code);

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
/* 64-byte aligned, for BLAS buffers; free with free(). */
void *xmalloc_aligned_at(size_t n, const char *file, int line);

#define xmalloc(n)         xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(c, s)      xcalloc_at((c), (s), __FILE__, __LINE__)
#define xrealloc(p, n)     xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s)         xstrdup_at((s), __FILE__, __LINE__)
#define xmalloc_aligned(n) xmalloc_aligned_at((n), __FILE__, __LINE__)

/* Overflow-checked size arithmetic: return 0 on success, 1 on overflow. */
static inline int size_mul(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int size_add(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

#endif
