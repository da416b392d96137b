/* tokenizer: see include/tokenizer.h.
 *
 * The rules follow llama.cpp's src/llama-vocab.cpp (read for the facts, written anew here):
 * default special ids per model, the BOS/EOS and space-prefix flags, the end-of-generation and
 * fill-in-the-middle tokens recognised by their text (which llama.cpp also turns into control
 * tokens), the special-token partition of the input, the SPM bigram merge with its tie rules,
 * the BPE rank merge, byte fallback, and the decode clean-up of spaces.
 *
 * Deliberate differences (none affects token ids of valid UTF-8 input):
 *  - a BPE token whose text holds a code point outside GPT-2's byte alphabet decodes to that
 *    code point's UTF-8, not to llama.cpp's "[UNK_BYTE_..]" marker;
 *  - decode drops SPM's leading space also after a leading BOS;
 *  - invalid UTF-8 before BPE pre-tokenisation becomes U+FFFD per offending byte with a strict
 *    decoder (llama.cpp's accepts overlong forms and surrogates). */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_pre.h"

/* llama.cpp's token attributes */
enum {
    ATTR_UNKNOWN = 1 << 0,
    ATTR_UNUSED = 1 << 1,
    ATTR_NORMAL = 1 << 2,
    ATTR_CONTROL = 1 << 3,
    ATTR_USER_DEFINED = 1 << 4,
    ATTR_BYTE = 1 << 5,
    ATTR_LSTRIP = 1 << 7,
    ATTR_RSTRIP = 1 << 8,
};

struct tokenizer {
    int kind;
    char model[16];
    char pre_name[64];
    tokenizer_pre *pre; /* BPE only */
    tokenizer_pre_flags pre_flags;

    int n;
    char *arena;    /* token texts, each NUL-terminated */
    size_t *off;    /* n */
    uint32_t *len;  /* n */
    float *score;   /* n */
    int32_t *type;  /* n, as in the file (for export) */
    uint16_t *attr; /* n */
    int has_scores;
    char *parena; /* decoded pieces */
    size_t *poff;
    uint32_t *plen;
    uint8_t *eog; /* n */

    uint32_t hmask; /* token text -> id */
    int32_t *hslot;

    int n_merges;
    char *marena; /* merge strings "left right", NUL-terminated */
    size_t *moff;
    uint32_t *mlen;
    uint32_t mmask; /* (left, right) -> rank */
    int32_t *mslot;

    int *special; /* control, user-defined and unknown tokens, longest text first */
    int n_special;

    int byte_tok[256]; /* SPM byte fallback ids (-1: none) */
    int bos, eos, unk, pad, eot, eom;
    int add_bos, add_eos, add_space_prefix, clean_spaces, ignore_merges;
    int space_prefix_default;
};

/* ------------------------------------------------------------------ hashing */

static uint64_t fnv(const void *p, size_t n, uint64_t h) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ULL

static uint32_t table_size(int n) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u + 16u) cap *= 2;
    return cap;
}

static const char *tok_text(const tokenizer *t, int id) {
    return t->arena + t->off[id];
}

static int lookup(const tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)fnv(s, n, FNV0) & t->hmask;
    for (;;) {
        int32_t id = t->hslot[i];
        if (id < 0) return -1;
        if (t->len[id] == n && memcmp(tok_text(t, id), s, n) == 0) return id;
        i = (i + 1) & t->hmask;
    }
}

/* Rank of the merge (l, r), or -1. */
static int merge_rank(const tokenizer *t, const char *l, size_t ln, const char *r, size_t rn) {
    if (!t->mslot) return -1;
    uint64_t h = fnv(l, ln, FNV0);
    h = fnv(" ", 1, h);
    h = fnv(r, rn, h);
    uint32_t i = (uint32_t)h & t->mmask;
    for (;;) {
        int32_t m = t->mslot[i];
        if (m < 0) return -1;
        const char *s = t->marena + t->moff[m];
        if (t->mlen[m] == ln + 1 + rn && memcmp(s, l, ln) == 0 && s[ln] == ' ' &&
            memcmp(s + ln + 1, r, rn) == 0)
            return m;
        i = (i + 1) & t->mmask;
    }
}

/* ------------------------------------------------------------------ construction */

/* Where the vocabulary comes from: a GGUF file or an in-memory tokenizer_vocab. */
typedef struct source {
    const gguf_file *f;
    const gguf_kv *tokens, *scores, *types, *merges;
    const tokenizer_vocab *v;
} source;

static gguf_str src_token(const source *s, int i) {
    if (s->f) return gguf_arr_str(s->f, s->tokens, (uint64_t)i);
    gguf_str r = {s->v->tokens[i], strlen(s->v->tokens[i])};
    return r;
}
static int src_has_scores(const source *s) {
    return s->f ? s->scores != NULL : s->v->scores != NULL;
}
static float src_score(const source *s, int i) {
    if (s->f) return s->scores ? (float)gguf_arr_f64(s->scores, (uint64_t)i) : 0.0f;
    return s->v->scores ? s->v->scores[i] : 0.0f;
}
static int src_has_types(const source *s) {
    return s->f ? s->types != NULL : s->v->types != NULL;
}
static int32_t src_type(const source *s, int i) {
    if (s->f) return s->types ? (int32_t)gguf_arr_i64(s->types, (uint64_t)i) : TOKEN_TYPE_NORMAL;
    return s->v->types ? s->v->types[i] : TOKEN_TYPE_NORMAL;
}
static int src_n_merges(const source *s) {
    if (s->f) return s->merges ? (int)s->merges->arr_n : 0;
    return s->v->n_merges;
}
static gguf_str src_merge(const source *s, int i) {
    if (s->f) return gguf_arr_str(s->f, s->merges, (uint64_t)i);
    gguf_str r = {s->v->merges[i], strlen(s->v->merges[i])};
    return r;
}

static uint16_t type_to_attr(int32_t type) {
    switch (type) {
    case TOKEN_TYPE_NORMAL:
        return ATTR_NORMAL;
    case TOKEN_TYPE_UNKNOWN:
        return ATTR_UNKNOWN;
    case TOKEN_TYPE_CONTROL:
        return ATTR_CONTROL;
    case TOKEN_TYPE_USER_DEFINED:
        return ATTR_USER_DEFINED;
    case TOKEN_TYPE_UNUSED:
        return ATTR_UNUSED;
    case TOKEN_TYPE_BYTE:
        return ATTR_BYTE;
    default:
        return 0;
    }
}

static int text_is(const tokenizer *t, int id, const char *s) {
    size_t n = strlen(s);
    return t->len[id] == n && memcmp(tok_text(t, id), s, n) == 0;
}

static int text_in(const tokenizer *t, int id, const char *const *list) {
    /* every listed text starts with '<', '[', '_' or U+2581: skip the rest of the vocabulary */
    char c = tok_text(t, id)[0];
    if (c != '<' && c != '[' && c != '_' && c != '\xe2') return 0;
    for (; *list; list++)
        if (text_is(t, id, *list)) return 1;
    return 0;
}

#define FW_BAR "\xef\xbd\x9c" /* U+FF5C, DeepSeek's fullwidth bar */
#define SPM_SP "\xe2\x96\x81" /* U+2581, SentencePiece's space */

static const char *const eot_texts[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "<|end_of_text|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "<" FW_BAR "end" SPM_SP "of" SPM_SP "sentence" FW_BAR ">",
                                        "<end_of_utterance>",
                                        NULL};
static const char *const eom_texts[] = {"<|eom_id|>", NULL};
static const char *const fim_texts[6][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<" FW_BAR "fim" SPM_SP "begin" FW_BAR ">",
     "<PRE>", SPM_SP "<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<" FW_BAR "fim" SPM_SP "hole" FW_BAR ">",
     "<SUF>", SPM_SP "<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<" FW_BAR "fim" SPM_SP "end" FW_BAR ">",
     "<MID>", SPM_SP "<MID>", "<|code_middle|>", "<|middle|>", NULL},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
    {"<|file_sep|>", NULL},
};
static const char *const eog_texts[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<" FW_BAR "end" SPM_SP "of" SPM_SP "sentence" FW_BAR ">",
                                        "[e~[",
                                        NULL};
static const char *const always_rendered[] = {"<|channel|>", "<|message|>", "<|start|>",
                                              "<|constrain|>", NULL};

/* "<0xAB>" -> 0xAB, or -1. */
static int parse_byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* The bytes token `id` stands for, rendering control tokens (llama.cpp's token_to_piece with
 * special = true). */
static void make_piece(const tokenizer *t, int id, sbuf *out) {
    const char *s = tok_text(t, id);
    size_t n = t->len[id];
    uint16_t a = t->attr[id];
    if (a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) {
        sb_put(out, s, n);
    } else if (a & ATTR_NORMAL) {
        if (t->kind == TOKENIZER_SPM) {
            for (size_t i = 0; i < n;) {
                if (i + 3 <= n && memcmp(s + i, SPM_SP, 3) == 0) {
                    sb_put(out, " ", 1);
                    i += 3;
                } else {
                    sb_put(out, s + i, 1);
                    i++;
                }
            }
        } else {
            for (size_t i = 0; i < n;) {
                uint32_t cpt;
                int k = tokenizer_utf8_decode((const unsigned char *)s + i, n - i, &cpt);
                if (k == 0) {
                    sb_put(out, s + i, 1);
                    i++;
                    continue;
                }
                int b = tokenizer_cpt_to_byte(cpt);
                if (b >= 0) {
                    char c = (char)b;
                    sb_put(out, &c, 1);
                } else {
                    sb_put(out, s + i, (size_t)k);
                }
                i += (size_t)k;
            }
        }
    } else if (a & ATTR_BYTE) {
        int b = parse_byte_token(s, n);
        if (b >= 0) {
            char c = (char)b;
            sb_put(out, &c, 1);
        }
    }
}

static int cmp_special(const void *a, const void *b, void *ctx);
/* qsort_r is a GNU extension; the tree builds with gnu11. */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const tokenizer *t = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Builds the tokenizer; `where` prefixes messages (the file name). */
static int build(tokenizer *t, const source *src, int n, const char *general_name,
                 const char *where, rl_err *e) {
    t->n = n;
    t->off = xmalloc(sizeof(size_t) * (size_t)n);
    t->len = xmalloc(sizeof(uint32_t) * (size_t)n);
    t->score = xmalloc(sizeof(float) * (size_t)n);
    t->type = xmalloc(sizeof(int32_t) * (size_t)n);
    t->attr = xmalloc(sizeof(uint16_t) * (size_t)n);
    t->eog = xcalloc((size_t)n, 1);
    t->has_scores = src_has_scores(src);
    sbuf ar = {0};
    for (int i = 0; i < n; i++) {
        gguf_str s = src_token(src, i);
        t->off[i] = ar.n;
        if (s.len == 0) {
            char tmp[32];
            int k = snprintf(tmp, sizeof tmp, "[EMPTY_%d]", i);
            sb_put(&ar, tmp, (size_t)k);
            t->len[i] = (uint32_t)k;
        } else {
            if (s.len > UINT32_MAX / 2) {
                free(ar.p);
                return err_set(e, ERR_INPUT, "%s: token %d is %llu bytes long", where, i,
                               (unsigned long long)s.len);
            }
            sb_put(&ar, s.ptr, (size_t)s.len);
            t->len[i] = (uint32_t)s.len;
        }
        sb_put(&ar, "", 0);
        ar.n++; /* keep the NUL */
        t->score[i] = src_score(src, i);
        t->type[i] = src_has_types(src) ? src_type(src, i) : TOKEN_TYPE_NORMAL;
        t->attr[i] = type_to_attr(t->type[i]);
    }
    t->arena = ar.p;
    /* text -> id */
    uint32_t cap = table_size(n);
    t->hmask = cap - 1;
    t->hslot = xmalloc(sizeof(int32_t) * cap);
    for (uint32_t i = 0; i < cap; i++) t->hslot[i] = -1;
    for (int id = 0; id < n; id++) {
        uint32_t i = (uint32_t)fnv(tok_text(t, id), t->len[id], FNV0) & t->hmask;
        while (t->hslot[i] >= 0) {
            int other = t->hslot[i];
            if (t->len[other] == t->len[id] &&
                memcmp(tok_text(t, other), tok_text(t, id), t->len[id]) == 0) {
                char ex[80];
                snprintf(ex, sizeof ex, "%.60s", tok_text(t, id));
                return err_set(e, ERR_INPUT,
                               "%s: duplicate token in vocabulary: '%s' has ids %d "
                               "and %d",
                               where, ex, other, id);
            }
            i = (i + 1) & t->hmask;
        }
        t->hslot[i] = id;
    }
    /* merges: the first occurrence of a pair sets its rank */
    int nm = src_n_merges(src);
    if (nm > 0) {
        sbuf ma = {0};
        t->moff = xmalloc(sizeof(size_t) * (size_t)nm);
        t->mlen = xmalloc(sizeof(uint32_t) * (size_t)nm);
        for (int i = 0; i < nm; i++) {
            gguf_str s = src_merge(src, i);
            if (s.len > UINT32_MAX / 2) s.len = 0;
            t->moff[i] = ma.n;
            sb_put(&ma, s.ptr, (size_t)s.len);
            ma.n++;
            t->mlen[i] = (uint32_t)s.len;
        }
        t->marena = ma.p;
        t->n_merges = nm;
        uint32_t mcap = table_size(nm);
        t->mmask = mcap - 1;
        t->mslot = xmalloc(sizeof(int32_t) * mcap);
        for (uint32_t i = 0; i < mcap; i++) t->mslot[i] = -1;
        for (int m = 0; m < nm; m++) {
            const char *s = t->marena + t->moff[m];
            size_t len = t->mlen[m];
            /* llama.cpp splits at the first space after the first byte; a merge without one
               cannot match any pair */
            const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
            if (!sp) continue;
            size_t ln = (size_t)(sp - s);
            if (merge_rank(t, s, ln, sp + 1, len - ln - 1) >= 0) continue;
            uint32_t i = (uint32_t)fnv(s, len, FNV0) & t->mmask;
            while (t->mslot[i] >= 0) i = (i + 1) & t->mmask;
            t->mslot[i] = m;
        }
    }
    /* special ids: the model's defaults, dropped when out of range, then the file's */
    for (int i = 0; i < 6; i++) {
        int *id = i == 0   ? &t->bos
                  : i == 1 ? &t->eos
                  : i == 2 ? &t->unk
                  : i == 3 ? &t->pad
                  : i == 4 ? &t->eot
                           : &t->eom;
        if (*id >= n) *id = -1;
    }
    /* text-recognised end-of-turn and fill-in-the-middle tokens become control tokens */
    int fim[6] = {-1, -1, -1, -1, -1, -1};
    for (int id = 0; id < n; id++) {
        if (t->eot < 0 && text_in(t, id, eot_texts)) t->eot = id, t->attr[id] |= ATTR_CONTROL;
        if (t->eom < 0 && text_in(t, id, eom_texts)) t->eom = id, t->attr[id] |= ATTR_CONTROL;
        for (int k = 0; k < 6; k++)
            if (fim[k] < 0 && text_in(t, id, fim_texts[k]))
                fim[k] = id, t->attr[id] |= ATTR_CONTROL;
    }
    for (int k = 3; k < 6; k++)
        if (fim[k] >= 0) t->eog[fim[k]] = 1; /* pad, repo, file separator */
    for (int id = 0; id < n; id++) {
        if (text_in(t, id, eog_texts)) {
            t->eog[id] = 1;
            t->attr[id] |= ATTR_CONTROL;
        }
        if (text_in(t, id, always_rendered)) t->attr[id] = ATTR_USER_DEFINED;
    }
    if (t->eos >= 0) t->eog[t->eos] = 1;
    if (t->eot >= 0) t->eog[t->eot] = 1;
    if (t->eom >= 0) t->eog[t->eom] = 1;
    /* special-token partition order */
    t->special = xmalloc(sizeof(int) * (size_t)n);
    for (int id = 0; id < n; id++)
        if (t->attr[id] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
            t->special[t->n_special++] = id;
    qsort_r(t->special, (size_t)t->n_special, sizeof(int), cmp_special, t);
    /* Phi-3 strips the whitespace after its special tokens (llama.cpp keys this on the name) */
    if (general_name) {
        char low[128];
        size_t k = 0;
        for (; general_name[k] && k + 1 < sizeof low; k++)
            low[k] = (char)tolower((unsigned char)general_name[k]);
        low[k] = '\0';
        if (strstr(low, "phi-3") || strstr(low, "phi3")) {
            for (int i = 0; i < t->n_special; i++) t->attr[t->special[i]] |= ATTR_RSTRIP;
            int s = lookup(t, "</s>", 4);
            if (s >= 0) t->attr[s] |= ATTR_RSTRIP;
            const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
            for (int i = 0; i < 3; i++) {
                s = lookup(t, keep[i], strlen(keep[i]));
                if (s >= 0) t->attr[s] &= (uint16_t)~ATTR_RSTRIP;
            }
        }
    }
    /* byte fallback (SPM) */
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int id = lookup(t, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = lookup(t, &c, 1);
        }
        t->byte_tok[b] = id;
    }
    /* pieces */
    sbuf pa = {0};
    t->poff = xmalloc(sizeof(size_t) * (size_t)n);
    t->plen = xmalloc(sizeof(uint32_t) * (size_t)n);
    for (int id = 0; id < n; id++) {
        size_t before = pa.n;
        t->poff[id] = before;
        make_piece(t, id, &pa);
        t->plen[id] = (uint32_t)(pa.n - before);
        sb_put(&pa, "", 0);
        pa.n++;
    }
    t->parena = pa.p ? pa.p : xcalloc(1, 1);
    if (t->add_bos && t->bos < 0)
        return err_set(e, ERR_INPUT,
                       "%s: tokenizer.ggml.add_bos_token is true but there is no BOS "
                       "token (tokenizer.ggml.bos_token_id)",
                       where);
    if (t->add_eos && t->eos < 0)
        return err_set(e, ERR_INPUT,
                       "%s: tokenizer.ggml.add_eos_token is true but there is no EOS "
                       "token (tokenizer.ggml.eos_token_id)",
                       where);
    return ERR_OK;
}

/* Sets the kind, the per-model defaults and the pre-tokenizer. */
static int set_model(tokenizer *t, const char *model, const char *pre, const char *where,
                     rl_err *e) {
    t->bos = t->eos = t->unk = t->pad = t->eot = t->eom = -1;
    if (strcmp(model, "llama") == 0) {
        t->kind = TOKENIZER_SPM;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1, t->add_eos = 0;
        t->add_space_prefix = t->space_prefix_default = 1;
        t->clean_spaces = 0;
        snprintf(t->pre_name, sizeof t->pre_name, "%s", pre && *pre ? pre : "default");
    } else if (strcmp(model, "gpt2") == 0) {
        t->kind = TOKENIZER_BPE;
        t->bos = 11, t->eos = 11;
        int rc = tokenizer_pre_create(pre, &t->pre, e);
        if (rc) return err_prefix(e, "%s", where);
        t->pre_flags = tokenizer_pre_get_flags(t->pre);
        t->add_bos = t->pre_flags.add_bos;
        t->add_eos = 0;
        t->clean_spaces = t->pre_flags.clean_spaces;
        t->ignore_merges = t->pre_flags.ignore_merges;
        if (t->pre_flags.no_bos) t->bos = -1;
        t->add_space_prefix = t->space_prefix_default = 0;
        snprintf(t->pre_name, sizeof t->pre_name, "%s", tokenizer_pre_name(t->pre));
    } else {
        return err_set(e, ERR_INPUT,
                       "%s: tokenizer model '%.40s' (tokenizer.ggml.model) is not "
                       "supported; supported: llama (SentencePiece), gpt2 (byte-level "
                       "BPE)",
                       where, model);
    }
    snprintf(t->model, sizeof t->model, "%s", model);
    return ERR_OK;
}

int tokenizer_from_gguf(const gguf_file *f, tokenizer **out, rl_err *e) {
    *out = NULL;
    const char *where = gguf_path(f);
    gguf_str ms, ps = {"", 0}, name = {"", 0};
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &ms, 1, e);
    if (rc) return rc;
    if ((rc = gguf_get_str(f, "tokenizer.ggml.pre", &ps, 0, e))) return rc;
    if ((rc = gguf_get_str(f, "general.name", &name, 0, e))) return rc;
    char *model = gguf_str_dup(ms), *pre = gguf_str_dup(ps), *gname = gguf_str_dup(name);
    tokenizer *t = xcalloc(1, sizeof *t);
    source src = {.f = f};
    rc = set_model(t, model, pre, where, e);
    if (rc) goto fail;
    if ((rc = gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &src.tokens, 1, e)))
        goto fail;
    uint64_t n = src.tokens->arr_n;
    if (n == 0 || n > (1u << 24)) {
        rc = err_set(e, ERR_INPUT,
                     "%s: byte %llu: key 'tokenizer.ggml.tokens' holds %llu tokens "
                     "(1..16777216 supported)",
                     where, (unsigned long long)src.tokens->file_offset, (unsigned long long)n);
        goto fail;
    }
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY ||
            (kv->arr_type != GGUF_TYPE_FLOAT32 && kv->arr_type != GGUF_TYPE_INT32)) {
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %llu: key 'tokenizer.ggml.scores' must be an array "
                         "of f32",
                         where, (unsigned long long)kv->file_offset);
            goto fail;
        }
        if (kv->arr_n < n) {
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %llu: key 'tokenizer.ggml.scores' has %llu "
                         "entries for %llu tokens",
                         where, (unsigned long long)kv->file_offset, (unsigned long long)kv->arr_n,
                         (unsigned long long)n);
            goto fail;
        }
        src.scores = kv;
    }
    kv = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_INT32) {
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %llu: key 'tokenizer.ggml.token_type' must be an "
                         "array of i32",
                         where, (unsigned long long)kv->file_offset);
            goto fail;
        }
        if (kv->arr_n < n) {
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %llu: key 'tokenizer.ggml.token_type' has %llu "
                         "entries for %llu tokens",
                         where, (unsigned long long)kv->file_offset, (unsigned long long)kv->arr_n,
                         (unsigned long long)n);
            goto fail;
        }
        src.types = kv;
    }
    if (t->kind == TOKENIZER_BPE) {
        if ((rc = gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &src.merges, 1, e)))
            goto fail;
        if (src.merges->arr_n > (1u << 26)) {
            rc = err_set(e, ERR_INPUT, "%s: key 'tokenizer.ggml.merges' holds %llu merges", where,
                         (unsigned long long)src.merges->arr_n);
            goto fail;
        }
    }
    static const char *const id_keys[6] = {
        "tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.eot_token_id",     "tokenizer.ggml.eom_token_id"};
    int *ids[6] = {&t->bos, &t->eos, &t->unk, &t->pad, &t->eot, &t->eom};
    for (int i = 0; i < 6; i++) {
        if (*ids[i] >= (int)n) *ids[i] = -1;
        uint64_t v;
        if (!gguf_find_kv(f, id_keys[i])) continue;
        if ((rc = gguf_get_uint(f, id_keys[i], UINT32_MAX, &v, 1, e))) goto fail;
        if (v < n) *ids[i] = (int)v; /* out of range: llama.cpp keeps the default too */
    }
    if ((rc = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, 0, e))) goto fail;
    if ((rc = gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos, 0, e))) goto fail;
    if ((rc = gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, 0, e)))
        goto fail;
    if ((rc = build(t, &src, (int)n, gname, where, e))) goto fail;
    free(model), free(pre), free(gname);
    *out = t;
    return ERR_OK;
fail:
    free(model), free(pre), free(gname);
    tokenizer_free(t);
    return rc;
}

int tokenizer_from_vocab(const tokenizer_vocab *v, tokenizer **out, rl_err *e) {
    *out = NULL;
    tokenizer *t = xcalloc(1, sizeof *t);
    source src = {.v = v};
    int rc = set_model(t, v->model ? v->model : "", v->pre, "vocabulary", e);
    if (rc) goto fail;
    if (v->n_tokens <= 0 || v->n_tokens > (1 << 24)) {
        rc = err_set(e, ERR_INPUT, "vocabulary: %d tokens", v->n_tokens);
        goto fail;
    }
    if (t->kind == TOKENIZER_BPE && v->n_merges < 0) {
        rc = err_set(e, ERR_INPUT, "vocabulary: %d merges", v->n_merges);
        goto fail;
    }
    int *ids[4] = {&t->bos, &t->eos, &t->unk, &t->pad};
    int vals[4] = {v->bos, v->eos, v->unk, v->pad};
    for (int i = 0; i < 4; i++) {
        if (vals[i] >= v->n_tokens) {
            rc = err_set(e, ERR_INPUT, "vocabulary: special id %d out of range", vals[i]);
            goto fail;
        }
        *ids[i] = vals[i] < 0 ? -1 : vals[i];
    }
    if (v->add_bos >= 0) t->add_bos = v->add_bos != 0;
    if (v->add_eos >= 0) t->add_eos = v->add_eos != 0;
    if ((rc = build(t, &src, v->n_tokens, NULL, "vocabulary", e))) goto fail;
    *out = t;
    return ERR_OK;
fail:
    tokenizer_free(t);
    return rc;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    tokenizer_pre_free(t->pre);
    free(t->arena), free(t->off), free(t->len), free(t->score), free(t->type), free(t->attr);
    free(t->parena), free(t->poff), free(t->plen), free(t->eog), free(t->hslot);
    free(t->marena), free(t->moff), free(t->mlen), free(t->mslot), free(t->special);
    free(t);
}

/* ------------------------------------------------------------------ encoding */

typedef struct ivec {
    int *v;
    int n, cap;
} ivec;

static void iv_push(ivec *a, int x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = xrealloc(a->v, sizeof(int) * (size_t)a->cap);
    }
    a->v[a->n++] = x;
}

typedef struct symbol {
    size_t off; /* into the word */
    uint32_t n;
    int prev, next;
} symbol;

typedef struct bigram {
    int left, right;
    float score;     /* SPM */
    int rank;        /* BPE */
    uint32_t ln, rn; /* the symbol lengths when queued (BPE staleness check) */
    size_t size;     /* SPM staleness check */
} bigram;

typedef struct heap {
    bigram *v;
    int n, cap;
    int spm; /* ordering: SPM (score desc) or BPE (rank asc); then leftmost */
} heap;

static int before(const heap *h, const bigram *a, const bigram *b) {
    if (h->spm) {
        if (a->score != b->score) return a->score > b->score;
    } else if (a->rank != b->rank) {
        return a->rank < b->rank;
    }
    return a->left < b->left;
}

static void heap_push(heap *h, bigram x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, sizeof(bigram) * (size_t)h->cap);
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!before(h, &x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0], x = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(h, &h->v[c + 1], &h->v[c])) c++;
        if (!before(h, &h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = x;
    return top;
}

typedef struct work {
    symbol *sym;
    int n, cap;
    heap q;
} work;

static void split_chars(work *w, const char *s, size_t len) {
    w->n = 0;
    w->q.n = 0;
    for (size_t off = 0; off < len;) {
        size_t k = (size_t)tokenizer_utf8_len((unsigned char)s[off]);
        if (k > len - off) k = len - off;
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 64;
            w->sym = xrealloc(w->sym, sizeof(symbol) * (size_t)w->cap);
        }
        w->sym[w->n] = (symbol){off, (uint32_t)k, w->n - 1, off + k == len ? -1 : w->n + 1};
        w->n++;
        off += k;
    }
}

static void spm_add(const tokenizer *t, work *w, const char *s, int l, int r) {
    if (l < 0 || r < 0) return;
    size_t size = (size_t)w->sym[l].n + w->sym[r].n;
    int id = lookup(t, s + w->sym[l].off, size);
    if (id < 0) return;
    bigram b = {.left = l, .right = r, .score = t->score[id], .size = size};
    heap_push(&w->q, b);
}

/* SentencePiece-style merge of one fragment (spaces already escaped). */
static void spm_encode(const tokenizer *t, work *w, const char *s, size_t len, ivec *out) {
    split_chars(w, s, len);
    w->q.spm = 1;
    for (int i = 1; i < w->n; i++) spm_add(t, w, s, i - 1, i);
    while (w->q.n > 0) {
        bigram b = heap_pop(&w->q);
        symbol *L = &w->sym[b.left], *R = &w->sym[b.right];
        if (L->n == 0 || R->n == 0 || (size_t)L->n + R->n != b.size) continue; /* stale */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = b.left;
        spm_add(t, w, s, L->prev, b.left);
        spm_add(t, w, s, b.left, L->next);
    }
    for (int i = w->n > 0 ? 0 : -1; i != -1; i = w->sym[i].next) {
        const symbol *y = &w->sym[i];
        int id = lookup(t, s + y->off, y->n);
        if (id >= 0) {
            iv_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) { /* byte fallback */
            int bt = t->byte_tok[(unsigned char)s[y->off + j]];
            if (bt < 0) bt = t->unk;
            if (bt >= 0) iv_push(out, bt);
        }
    }
}

static void bpe_add(const tokenizer *t, work *w, const char *s, int l, int r) {
    if (l < 0 || r < 0) return;
    const symbol *L = &w->sym[l], *R = &w->sym[r];
    int rank = merge_rank(t, s + L->off, L->n, s + R->off, R->n);
    if (rank < 0) return;
    bigram b = {.left = l, .right = r, .rank = rank, .ln = L->n, .rn = R->n};
    heap_push(&w->q, b);
}

/* Byte-level BPE of one pre-tokenised word (already mapped to GPT-2's alphabet). */
static void bpe_word(const tokenizer *t, work *w, const char *s, size_t len, ivec *out) {
    if (t->ignore_merges) {
        int id = lookup(t, s, len);
        if (id >= 0) {
            iv_push(out, id);
            return;
        }
    }
    split_chars(w, s, len);
    w->q.spm = 0;
    for (int i = 1; i < w->n; i++) bpe_add(t, w, s, i - 1, i);
    while (w->q.n > 0) {
        bigram b = heap_pop(&w->q);
        symbol *L = &w->sym[b.left], *R = &w->sym[b.right];
        /* a queued pair is stale when either side has changed since */
        if (L->n == 0 || R->n == 0 || L->n != b.ln || R->n != b.rn) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = b.left;
        bpe_add(t, w, s, L->prev, b.left);
        bpe_add(t, w, s, b.left, L->next);
    }
    for (int i = 0; i < w->n; i++) {
        const symbol *y = &w->sym[i];
        if (y->n == 0) continue;
        int id = lookup(t, s + y->off, y->n);
        if (id >= 0) {
            iv_push(out, id);
            continue;
        }
        for (uint32_t j = 0; j < y->n; j++) { /* as llama.cpp: single bytes, when they are tokens */
            int bt = lookup(t, s + y->off + j, 1);
            if (bt >= 0) iv_push(out, bt);
        }
    }
}

static int bpe_encode(const tokenizer *t, work *w, const char *text, size_t len, ivec *out,
                      rl_err *e) {
    size_t clen;
    char *clean = tokenizer_utf8_sanitize(text, len, &clen);
    size_t *spans = NULL, n = 0;
    int rc = tokenizer_pre_split(t->pre, clean, clen, &spans, &n, e);
    if (rc) {
        free(clean);
        return rc;
    }
    sbuf word = {0};
    for (size_t k = 0; k < n; k++) {
        word.n = 0;
        const unsigned char *p = (const unsigned char *)clean + spans[2 * k];
        for (size_t i = 0; i < spans[2 * k + 1]; i++) {
            char u[2];
            int m = tokenizer_byte_to_utf8(p[i], u);
            sb_put(&word, u, (size_t)m);
        }
        bpe_word(t, w, word.p, word.n, out);
    }
    free(word.p);
    free(spans);
    free(clean);
    return ERR_OK;
}

typedef struct frag {
    int id; /* >= 0: a special token; -1: raw text */
    size_t off, len;
} frag;

typedef struct fvec {
    frag *v;
    int n, cap;
} fvec;

static void fv_push(fvec *a, frag f) {
    if (f.id < 0 && f.len == 0) return;
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = xrealloc(a->v, sizeof(frag) * (size_t)a->cap);
    }
    a->v[a->n++] = f;
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    return memmem(h, hn, nd, nn);
}

/* Cuts special tokens out of the raw fragments, longest token first (llama.cpp's
 * tokenizer_st_partition). */
static void partition(const tokenizer *t, const char *text, size_t len, int parse_special,
                      fvec *fv) {
    fvec next = {0};
    fv->n = 0;
    fv_push(fv, (frag){-1, 0, len});
    for (int k = 0; k < t->n_special; k++) {
        int id = t->special[k];
        uint16_t a = t->attr[id];
        if (!parse_special && (a & (ATTR_CONTROL | ATTR_UNKNOWN))) continue;
        const char *tt = tok_text(t, id);
        size_t tl = t->len[id];
        next.n = 0;
        for (int i = 0; i < fv->n; i++) {
            frag f = fv->v[i];
            if (f.id >= 0) {
                fv_push(&next, f);
                continue;
            }
            size_t off = f.off, rem = f.len;
            for (;;) {
                const char *m = find_bytes(text + off, rem, tt, tl);
                if (!m) {
                    fv_push(&next, (frag){-1, off, rem});
                    break;
                }
                size_t at = (size_t)(m - text);
                size_t left = at - off;
                if (a & ATTR_LSTRIP)
                    while (left > 0 && isspace((unsigned char)text[off + left - 1])) left--;
                fv_push(&next, (frag){-1, off, left});
                fv_push(&next, (frag){id, 0, 0});
                size_t roff = at + tl, rlen = off + rem - roff;
                if (a & ATTR_RSTRIP)
                    while (rlen > 0 && isspace((unsigned char)text[roff])) roff++, rlen--;
                if (rlen == 0) break;
                off = roff;
                rem = rlen;
            }
        }
        fvec tmp = *fv;
        *fv = next;
        next = tmp;
    }
    free(next.v);
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n,
                     rl_err *e) {
    *ids = NULL;
    *n = 0;
    ivec out = {0};
    fvec fv = {0};
    work w = {0};
    int rc = ERR_OK;
    int add_special = (flags & TOK_ADD_SPECIAL) != 0;
    if (len > 0) partition(t, text, len, (flags & TOK_PARSE_SPECIAL) != 0, &fv);
    if (((add_special && t->add_bos) || (flags & TOK_ADD_BOS)) && t->bos >= 0)
        iv_push(&out, t->bos);
    if (t->kind == TOKENIZER_SPM) {
        int prev_special = 1; /* the text start counts as after a special token */
        sbuf s = {0};
        for (int i = 0; i < fv.n; i++) {
            const frag *f = &fv.v[i];
            if (f->id >= 0) {
                iv_push(&out, f->id);
                prev_special = 1;
                continue;
            }
            s.n = 0;
            if (t->add_space_prefix && prev_special) sb_put(&s, SPM_SP, 3);
            for (size_t j = 0; j < f->len; j++) {
                char c = text[f->off + j];
                if (c == ' ')
                    sb_put(&s, SPM_SP, 3);
                else
                    sb_put(&s, &c, 1);
            }
            spm_encode(t, &w, s.p, s.n, &out);
            prev_special = 0;
        }
        free(s.p);
    } else {
        for (int i = 0; i < fv.n && !rc; i++) {
            const frag *f = &fv.v[i];
            if (f->id >= 0)
                iv_push(&out, f->id);
            else
                rc = bpe_encode(t, &w, text + f->off, f->len, &out, e);
        }
    }
    if (!rc && add_special && t->add_eos && t->eos >= 0) iv_push(&out, t->eos);
    free(fv.v);
    free(w.sym);
    free(w.q.v);
    if (rc) {
        free(out.v);
        return rc;
    }
    *ids = out.v ? out.v : xmalloc(sizeof(int));
    *n = out.n;
    return ERR_OK;
}

/* ------------------------------------------------------------------ decoding */

/* llama.cpp's clean_up_tokenization_spaces: " ?" " !" " ." " ," lose the space, " ' " loses
 * both, " 's" " 'm" " 're" " 've" lose the space. */
static size_t clean_spaces(char *s, size_t n) {
    if (n == 0) return 0;
    size_t w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
        s[w++] = x;
    }
    /* the pass reads the previous input byte; a second buffer keeps them apart */
    n = w;
    char *in = xmalloc(n + 1);
    memcpy(in, s, n);
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = in[i];
        if (x == '\'' && i + 1 < n && in[i - 1] == ' ' && in[i + 1] == ' ') {
            w--;
            in[++i] = '\0';
        }
        s[w++] = x;
    }
    n = w;
    memcpy(in, s, n);
    w = 1;
    for (size_t i = 1; i < n; i++) {
        char x = in[i];
        if (in[i - 1] == ' ' && x == '\'' && i + 1 < n) {
            char x1 = in[i + 1];
            if (x1 == 's' || x1 == 'm')
                w--;
            else if (x1 != 't' && x1 != 'd' && i + 2 < n) {
                char x2 = in[i + 2];
                if ((x1 == 'r' || x1 == 'v') && x2 == 'e') w--;
            }
        }
        s[w++] = x;
    }
    free(in);
    return w;
}

int tokenizer_decode(const tokenizer *t, const int *ids, int n, int flags, char **text, size_t *len,
                     rl_err *e) {
    *text = NULL;
    *len = 0;
    sbuf s = {0};
    int strip = t->add_space_prefix && !(flags & TOK_DECODE_KEEP_SPACE);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n) {
            free(s.p);
            return err_set(e, ERR_INPUT,
                           "token id %d at position %d is outside the vocabulary "
                           "(0..%d)",
                           id, i, t->n - 1);
        }
        const char *p = t->parena + t->poff[id];
        size_t k = t->plen[id];
        if (!(flags & TOK_DECODE_SPECIAL) && (t->attr[id] & (ATTR_CONTROL | ATTR_UNKNOWN))) k = 0;
        if (!(strip && i == 0 && id == t->bos)) { /* after a leading BOS the strip still applies */
            if (strip && k > 0 && p[0] == ' ') p++, k--;
            strip = 0;
        }
        sb_put(&s, p, k);
    }
    if (!s.p) sb_put(&s, "", 0);
    if (t->clean_spaces) s.n = clean_spaces(s.p, s.n);
    s.p[s.n] = '\0';
    *text = s.p;
    *len = s.n;
    return ERR_OK;
}

/* ------------------------------------------------------------------ queries */

const char *tokenizer_piece(const tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = t->plen[id];
    return t->parena + t->poff[id];
}

const char *tokenizer_token_text(const tokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n) {
        if (len) *len = 0;
        return "";
    }
    if (len) *len = t->len[id];
    return tok_text(t, id);
}

int tokenizer_find(const tokenizer *t, const char *text) {
    return lookup(t, text, strlen(text));
}

int tokenizer_single_token(const tokenizer *t, const char *text) {
    int *ids, n;
    rl_err e;
    if (tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &e) != ERR_OK) return -1;
    int r = n == 1 ? ids[0] : -1;
    free(ids);
    return r;
}

int tokenizer_n_vocab(const tokenizer *t) {
    return t->n;
}
int tokenizer_kind(const tokenizer *t) {
    return t->kind;
}
const char *tokenizer_model_name(const tokenizer *t) {
    return t->model;
}
const char *tokenizer_pretokenizer(const tokenizer *t) {
    return t->pre_name;
}
int tokenizer_bos(const tokenizer *t) {
    return t->bos;
}
int tokenizer_eos(const tokenizer *t) {
    return t->eos;
}
int tokenizer_pad(const tokenizer *t) {
    return t->pad;
}
int tokenizer_unk(const tokenizer *t) {
    return t->unk;
}
int tokenizer_n_merges(const tokenizer *t) {
    return t->n_merges;
}
int tokenizer_token_type(const tokenizer *t, int id) {
    return id >= 0 && id < t->n ? t->type[id] : TOKEN_TYPE_UNDEFINED;
}
int tokenizer_is_eog(const tokenizer *t, int id) {
    return id >= 0 && id < t->n && t->eog[id];
}
int tokenizer_is_control(const tokenizer *t, int id) {
    return id >= 0 && id < t->n && (t->attr[id] & ATTR_CONTROL);
}
int tokenizer_add_bos(const tokenizer *t) {
    return t->add_bos;
}
int tokenizer_add_eos(const tokenizer *t) {
    return t->add_eos;
}

void tokenizer_write_gguf(const tokenizer *t, gguf_writer *w) {
    gguf_writer_set_str(w, "tokenizer.ggml.model", t->model);
    gguf_writer_set_str(w, "tokenizer.ggml.pre", t->pre_name);
    const char **strs = xmalloc(sizeof(char *) * (size_t)t->n);
    size_t *lens = xmalloc(sizeof(size_t) * (size_t)t->n);
    for (int i = 0; i < t->n; i++) strs[i] = tok_text(t, i), lens[i] = t->len[i];
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)t->n);
    if (t->has_scores)
        gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, t->score,
                            (uint64_t)t->n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, t->type, (uint64_t)t->n);
    if (t->kind == TOKENIZER_BPE) {
        const char **ms = xmalloc(sizeof(char *) * (size_t)(t->n_merges ? t->n_merges : 1));
        size_t *ml = xmalloc(sizeof(size_t) * (size_t)(t->n_merges ? t->n_merges : 1));
        for (int i = 0; i < t->n_merges; i++) ms[i] = t->marena + t->moff[i], ml[i] = t->mlen[i];
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", ms, ml, (uint64_t)t->n_merges);
        free(ms);
        free(ml);
    }
    free(strs);
    free(lens);
    const char *keys[6] = {"tokenizer.ggml.bos_token_id",     "tokenizer.ggml.eos_token_id",
                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                           "tokenizer.ggml.eot_token_id",     "tokenizer.ggml.eom_token_id"};
    int vals[6] = {t->bos, t->eos, t->unk, t->pad, t->eot, t->eom};
    for (int i = 0; i < 6; i++)
        if (vals[i] >= 0) gguf_writer_set_u32(w, keys[i], (uint32_t)vals[i]);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos);
    if (t->add_space_prefix != t->space_prefix_default)
        gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
}
