/* jsonl: see include/jsonl.h. A small recursive-descent reader for one flat object. */
#include "jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rd {
    const char *s;
    size_t n, i;
} rd;

static void ws(rd *r) {
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\r' ||
                           r->s[r->i] == '\n'))
        r->i++;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int hex4(rd *r, unsigned *v) {
    if (r->i + 4 > r->n) return 0;
    *v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(r->s[r->i + k]);
        if (h < 0) return 0;
        *v = *v * 16 + (unsigned)h;
    }
    r->i += 4;
    return 1;
}

static void put_utf8(char **o, size_t *len, size_t *cap, unsigned cp) {
    char b[4];
    int k;
    if (cp < 0x80) b[0] = (char)cp, k = 1;
    else if (cp < 0x800) b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
    else
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
    if (*len + (size_t)k + 1 > *cap) {
        *cap = (*len + (size_t)k + 1) * 2;
        *o = xrealloc(*o, *cap);
    }
    memcpy(*o + *len, b, (size_t)k);
    *len += (size_t)k;
    (*o)[*len] = '\0';
}

static int str(rd *r, char **out, rl_err *e) {
    size_t start = r->i;
    r->i++; /* the opening quote */
    size_t cap = 64, len = 0;
    char *o = xmalloc(cap);
    o[0] = '\0';
    while (r->i < r->n && r->s[r->i] != '"') {
        unsigned char c = (unsigned char)r->s[r->i];
        if (c < 0x20) {
            free(o);
            return err_set(e, ERR_INPUT, "column %zu: control character in a string", r->i + 1);
        }
        if (c != '\\') {
            if (len + 2 > cap) o = xrealloc(o, cap *= 2);
            o[len++] = (char)c;
            o[len] = '\0';
            r->i++;
            continue;
        }
        r->i++;
        if (r->i >= r->n) break;
        char esc = r->s[r->i++];
        unsigned cp = 0;
        switch (esc) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!hex4(r, &cp)) {
                free(o);
                return err_set(e, ERR_INPUT, "column %zu: bad \\u escape", r->i + 1);
            }
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (r->i + 2 <= r->n && r->s[r->i] == '\\' && r->s[r->i + 1] == 'u') {
                    r->i += 2;
                    if (!hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff) {
                        free(o);
                        return err_set(e, ERR_INPUT, "column %zu: bad surrogate pair", r->i + 1);
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else {
                    cp = 0xfffd;
                }
            }
            break;
        default:
            free(o);
            return err_set(e, ERR_INPUT, "column %zu: unknown escape \\%c", r->i, esc);
        }
        put_utf8(&o, &len, &cap, cp);
    }
    if (r->i >= r->n) {
        free(o);
        return err_set(e, ERR_INPUT, "column %zu: unterminated string", start + 1);
    }
    r->i++;
    *out = o;
    return ERR_OK;
}

void jsonl_free(jsonl_obj *o) {
    for (int i = 0; i < o->n; i++) free(o->keys[i]), free(o->values[i]);
    free(o->keys), free(o->values), free(o->is_string);
    memset(o, 0, sizeof *o);
}

int jsonl_parse(const char *line, size_t len, jsonl_obj *o, rl_err *e) {
    memset(o, 0, sizeof *o);
    rd r = {line, len, 0};
    int cap = 0, rc = ERR_OK;
    ws(&r);
    if (r.i >= r.n || r.s[r.i] != '{')
        return err_set(e, ERR_INPUT, "column %zu: expected a JSON object ('{')", r.i + 1);
    r.i++;
    ws(&r);
    if (r.i < r.n && r.s[r.i] == '}') {
        r.i++;
        goto end;
    }
    for (;;) {
        ws(&r);
        if (r.i >= r.n || r.s[r.i] != '"') {
            rc = err_set(e, ERR_INPUT, "column %zu: expected a key (a string)", r.i + 1);
            break;
        }
        char *key = NULL, *val = NULL;
        if ((rc = str(&r, &key, e))) break;
        ws(&r);
        if (r.i >= r.n || r.s[r.i] != ':') {
            free(key);
            rc = err_set(e, ERR_INPUT, "column %zu: expected ':' after the key", r.i + 1);
            break;
        }
        r.i++;
        ws(&r);
        int is_str = 0;
        if (r.i < r.n && r.s[r.i] == '"') {
            rc = str(&r, &val, e);
            is_str = 1;
        } else if (r.i < r.n && (r.s[r.i] == '{' || r.s[r.i] == '[')) {
            rc = err_set(e, ERR_INPUT, "column %zu: nested objects and arrays are not supported",
                         r.i + 1);
        } else {
            size_t s0 = r.i;
            while (r.i < r.n && r.s[r.i] != ',' && r.s[r.i] != '}' && r.s[r.i] != ' ' &&
                   r.s[r.i] != '\t')
                r.i++;
            if (r.i == s0) rc = err_set(e, ERR_INPUT, "column %zu: expected a value", r.i + 1);
            else {
                val = xmalloc(r.i - s0 + 1);
                memcpy(val, r.s + s0, r.i - s0);
                val[r.i - s0] = '\0';
            }
        }
        if (rc) {
            free(key);
            free(val);
            break;
        }
        for (int k = 0; k < o->n; k++)
            if (!strcmp(o->keys[k], key)) {
                rc = err_set(e, ERR_INPUT, "duplicate key \"%s\"", key);
                break;
            }
        if (rc) {
            free(key);
            free(val);
            break;
        }
        if (o->n == cap) {
            cap = cap ? 2 * cap : 8;
            o->keys = xrealloc(o->keys, sizeof(char *) * (size_t)cap);
            o->values = xrealloc(o->values, sizeof(char *) * (size_t)cap);
            o->is_string = xrealloc(o->is_string, sizeof(int) * (size_t)cap);
        }
        o->keys[o->n] = key;
        o->values[o->n] = val;
        o->is_string[o->n] = is_str;
        o->n++;
        ws(&r);
        if (r.i < r.n && r.s[r.i] == ',') {
            r.i++;
            continue;
        }
        if (r.i < r.n && r.s[r.i] == '}') {
            r.i++;
            break;
        }
        rc = err_set(e, ERR_INPUT, "column %zu: expected ',' or '}'", r.i + 1);
        break;
    }
end:
    if (!rc) {
        ws(&r);
        if (r.i < r.n) rc = err_set(e, ERR_INPUT, "column %zu: text after the object", r.i + 1);
    }
    if (rc) jsonl_free(o);
    return rc;
}

const char *jsonl_get(const jsonl_obj *o, const char *key, int *is_string) {
    for (int k = 0; k < o->n; k++)
        if (!strcmp(o->keys[k], key)) {
            if (is_string) *is_string = o->is_string[k];
            return o->values[k];
        }
    return NULL;
}

int jsonl_read_file(const char *path, int (*fn)(void *user, const jsonl_obj *o, long line, rl_err *e),
                    void *user, rl_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long no = 0;
    int rc = ERR_OK;
    while (!rc && (got = getline(&line, &cap, f)) >= 0) {
        no++;
        size_t n = (size_t)got;
        int blank = 1;
        for (size_t k = 0; k < n && blank; k++)
            blank = line[k] == ' ' || line[k] == '\t' || line[k] == '\r' || line[k] == '\n';
        if (blank) continue;
        jsonl_obj o;
        if ((rc = jsonl_parse(line, n, &o, e))) {
            err_prefix(e, "%s:%ld", path, no);
            break;
        }
        rc = fn(user, &o, no, e);
        jsonl_free(&o);
    }
    if (!rc && ferror(f)) rc = err_set(e, ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}
