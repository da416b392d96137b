/* jsonl: the flat JSON objects of the datasets a deck names, one per line
 * ({"context": "...", "a": "...", "b": "..."}, {"prompt": "..."}).
 *
 * A line is one object whose values are strings, numbers, true/false or null; nested objects
 * and arrays are refused with the column. Strings are unescaped (\" \\ \/ \b \f \n \r \t and
 * \uXXXX, surrogate pairs included) into UTF-8.
 * Not here: general JSON. */
#ifndef RLAIF_JSONL_H
#define RLAIF_JSONL_H

#include <stddef.h>

#include "err.h"

typedef struct jsonl_obj {
    char **keys, **values; /* values as text (strings unescaped; numbers as written) */
    int *is_string;
    int n;
} jsonl_obj;

/* Parses one line (len bytes). On failure the message gives the column (1-based); the caller
 * prefixes the file and line. */
int jsonl_parse(const char *line, size_t len, jsonl_obj *o, rl_err *e);
void jsonl_free(jsonl_obj *o);
/* The value of key, or NULL. */
const char *jsonl_get(const jsonl_obj *o, const char *key, int *is_string);

/* Reads a whole JSONL file: calls fn for every non-blank line (line numbers from 1); stops at
 * the first error, which names path:line. */
int jsonl_read_file(const char *path, int (*fn)(void *user, const jsonl_obj *o, long line, rl_err *e),
                    void *user, rl_err *e);

#endif
