/* tokenizer_pre: see include/tokenizer_pre.h.
 *
 * The patterns are llama.cpp's (src/llama-vocab.cpp, llm_tokenizer_bpe), which are in turn the
 * pre_tokenizer expressions of each model's tokenizer.json, sometimes rewritten for std::regex.
 * Where llama.cpp runs a hand-written splitter instead of its GPT-2 and Llama-3 expressions, the
 * expression here spells out what that splitter does (GPT-2's gets the trailing \s+ alternative
 * the splitter implements). Non-ASCII literals are written as \x{..} so that no editor or
 * Unicode normalisation can change them. */
#include "tokenizer_pre.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATTERNS 6

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_LLAMA3                                                                                  \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"     \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_TEKKEN                                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|"                        \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}|"                 \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+"                         \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"                                  \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*"                         \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|"                                  \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* CJK unified ideographs U+4E00-9FA5, U+0800-4E00 (as deepseek writes it), Hangul U+AC00-D7FF */
#define RE_DEEPSEEK_CJK "[\\x{4e00}-\\x{9fa5}\\x{0800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+"
/* deepseek-llm's cased-letter class */
#define RE_DEEPSEEK_LETTERS                                                                        \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}"            \
    "\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}"         \
    "\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}" \
    "\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}"  \
    "\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}"                 \
    "\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}"                 \
    "\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}"         \
    "\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}\\x{1fc6}-\\x{1fcc}"        \
    "\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}"                 \
    "\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}"         \
    "\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}"                   \
    "\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}"         \
    "\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}\\x{a640}-\\x{a66d}"                  \
    "\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}"                 \
    "\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}"                 \
    "\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}\\x{104d8}-\\x{104fb}"           \
    "\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}]+"
#define RE_DEEPSEEK_PUNCT                                                                          \
    "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"
#define RE_PORO " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{ff0c}\\x{3001}\\x{964}\\x{6d4}\\x{60c})]+"

typedef struct pre_def {
    const char *names; /* space-separated aliases */
    const char *patterns[MAX_PATTERNS];
    tokenizer_pre_flags flags; /* ignore_merges, add_bos, clean_spaces, no_bos */
} pre_def;

/* clean_spaces is llama.cpp's default (on) for BPE unless a name turns it off. */
static const pre_def defs[] = {
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}, {0, 0, 1, 0}},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2",
     {RE_LLAMA3},
     {1, 1, 1, 0}},
    {"dbrx smaug-bpe", {RE_LLAMA3}, {0, 0, 1, 0}},
    {"chatglm-bpe glm4", {RE_LLAMA3}, {0, 0, 1, 1}},
    {"deepseek-llm",
     {"[\\r\\n]", RE_DEEPSEEK_LETTERS, RE_DEEPSEEK_PUNCT, "\\s+$", RE_DEEPSEEK_CJK, "\\p{N}+"},
     {0, 0, 0, 0}},
    {"deepseek-coder",
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_DEEPSEEK_CJK, "\\p{N}"},
     {0, 0, 0, 0}},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}, {0, 0, 1, 0}},
    {"gpt-2 phi-2 mpt olmo jais exaone4 jina-es jina-de jina-v2-es jina-v2-de jina-v1-en "
     "jina-v2-code roberta-bpe gigachat a.x-4.0 mellum modern-bert",
     {RE_GPT2},
     {0, 0, 1, 0}},
    {"trillion", {RE_GPT2}, {0, 0, 0, 0}},
    {"starcoder refact codeshell exaone minerva-7b", {"\\p{N}", RE_GPT2}, {0, 0, 1, 0}},
    {"smollm command-r", {"\\p{N}", RE_GPT2}, {0, 0, 0, 0}},
    {"qwen2 deepseek-r1-qwen hunyuan", {RE_QWEN2}, {0, 0, 0, 0}},
    {"stablelm2 megrez", {RE_QWEN2}, {0, 0, 1, 0}},
    {"poro-chat", {RE_PORO}, {0, 0, 0, 0}},
    {"bloom gpt3-finnish", {RE_PORO}, {0, 0, 1, 0}},
    {"viking", {RE_PORO, "\\p{N}"}, {0, 0, 0, 0}},
    {"tekken", {RE_TEKKEN}, {1, 1, 0, 0}},
    {"gpt-4o llama4", {RE_GPT4O}, {0, 0, 0, 0}},
};
#define N_DEFS ((int)(sizeof defs / sizeof defs[0]))

struct tokenizer_pre {
    char name[64];
    const pre_def *def;
    int n;
    pcre2_code *code[MAX_PATTERNS];
};

static int name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return 1;
        if (!sp) break;
        p = sp + 1;
    }
    return 0;
}

const char *tokenizer_pre_known(void) {
    return "default, llama3, llama-v3, llama-bpe, falcon3, falcon-h1, pixtral, midm-2.0, lfm2, "
           "dbrx, smaug-bpe, chatglm-bpe, glm4, deepseek-llm, deepseek-coder, falcon, gpt-2, "
           "phi-2, mpt, olmo, jais, exaone4, jina-*, roberta-bpe, gigachat, a.x-4.0, mellum, "
           "modern-bert, trillion, starcoder, refact, codeshell, exaone, minerva-7b, smollm, "
           "command-r, qwen2, deepseek-r1-qwen, megrez, hunyuan, stablelm2, poro-chat, bloom, "
           "gpt3-finnish, viking, tekken, gpt-4o, llama4";
}

int tokenizer_pre_create(const char *name, tokenizer_pre **out, rl_err *e) {
    *out = NULL;
    if (!name || !*name) name = "default";
    const pre_def *def = NULL;
    for (int i = 0; i < N_DEFS && !def; i++)
        if (name_in(defs[i].names, name)) def = &defs[i];
    if (!def || strlen(name) >= 64)
        return err_set(e, ERR_INPUT,
                       "pre-tokenizer '%.64s' (tokenizer.ggml.pre) is not supported; "
                       "known: %s",
                       name, tokenizer_pre_known());
    tokenizer_pre *p = xcalloc(1, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->def = def;
    for (int i = 0; i < MAX_PATTERNS && def->patterns[i]; i++) {
        int ec;
        PCRE2_SIZE eo;
        p->code[i] = pcre2_compile((PCRE2_SPTR)def->patterns[i], PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!p->code[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(ec, msg, sizeof msg);
            tokenizer_pre_free(p);
            return err_set(e, ERR_INTERNAL,
                           "pre-tokenizer '%s': pattern %d does not compile at "
                           "offset %zu: %s",
                           name, i, (size_t)eo, (const char *)msg);
        }
        pcre2_jit_compile(p->code[i], PCRE2_JIT_COMPLETE); /* failure: the interpreter is used */
        p->n++;
    }
    *out = p;
    return ERR_OK;
}

void tokenizer_pre_free(tokenizer_pre *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->code[i]);
    free(p);
}

const char *tokenizer_pre_name(const tokenizer_pre *p) {
    return p->name;
}
tokenizer_pre_flags tokenizer_pre_get_flags(const tokenizer_pre *p) {
    return p->def->flags;
}

typedef struct spans {
    size_t *v; /* (offset, length) pairs */
    size_t n, cap;
} spans;

static void spans_add(spans *s, size_t off, size_t len) {
    if (len == 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc(s->v, s->cap * 2 * sizeof(size_t));
    }
    s->v[2 * s->n] = off;
    s->v[2 * s->n + 1] = len;
    s->n++;
}

int tokenizer_pre_split(const tokenizer_pre *p, const char *text, size_t len, size_t **out,
                        size_t *n_out, rl_err *e) {
    spans cur = {0}, next = {0};
    spans_add(&cur, 0, len);
    int rc = ERR_OK;
    for (int k = 0; k < p->n && rc == ERR_OK; k++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->code[k], NULL);
        if (!md) {
            rc = err_set(e, ERR_INTERNAL, "pre-tokenizer '%s': out of memory", p->name);
            break;
        }
        next.n = 0;
        for (size_t s = 0; s < cur.n && rc == ERR_OK; s++) {
            size_t off = cur.v[2 * s], slen = cur.v[2 * s + 1];
            PCRE2_SPTR subj = (PCRE2_SPTR)text + off;
            size_t pos = 0, prev = 0;
            while (pos <= slen) {
                uint32_t opts = PCRE2_NO_UTF_CHECK;
                int m = pcre2_match(p->code[k], subj, slen, pos, opts, md, NULL);
                if (m == PCRE2_ERROR_JIT_STACKLIMIT)
                    m = pcre2_match(p->code[k], subj, slen, pos, opts | PCRE2_NO_JIT, md, NULL);
                if (m == PCRE2_ERROR_NOMATCH) break;
                if (m < 0) {
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(m, msg, sizeof msg);
                    rc = err_set(e, ERR_INPUT,
                                 "pre-tokenizer '%s': matching pattern %d at text "
                                 "byte %zu failed: %s",
                                 p->name, k, off + pos, (const char *)msg);
                    break;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t a = ov[0], b = ov[1];
                if (b == a) { /* empty match: step over one character */
                    if (a >= slen) break;
                    pos = a + (size_t)tokenizer_utf8_len((unsigned char)subj[a]);
                    continue;
                }
                if (a > prev) spans_add(&next, off + prev, a - prev);
                spans_add(&next, off + a, b - a);
                prev = pos = b;
            }
            if (prev < slen) spans_add(&next, off + prev, slen - prev);
        }
        pcre2_match_data_free(md);
        spans t = cur;
        cur = next;
        next = t;
    }
    free(next.v);
    if (rc) {
        free(cur.v);
        return rc;
    }
    *out = cur.v;
    *n_out = cur.n;
    return ERR_OK;
}

/* ------------------------------------------------------------------ UTF-8 */

int tokenizer_utf8_len(unsigned char lead) {
    static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

int tokenizer_utf8_decode(const unsigned char *s, size_t n, uint32_t *cpt) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cpt = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cpt = v;
    return len;
}

char *tokenizer_utf8_sanitize(const char *s, size_t len, size_t *out_len) {
    size_t cap = len * 3 + 1; /* every byte may become the 3-byte U+FFFD */
    char *o = xmalloc(cap);
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cpt;
        int k = tokenizer_utf8_decode((const unsigned char *)s + i, len - i, &cpt);
        if (k > 0) {
            memcpy(o + j, s + i, (size_t)k);
            j += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(o + j, "\xef\xbf\xbd", 3);
            j += 3;
            i++;
        }
    }
    o[j] = '\0';
    *out_len = j;
    return o;
}

/* ------------------------------------------------------------------ GPT-2 byte mapping */

uint32_t tokenizer_byte_to_cpt(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) return b;
    if (b <= 0x20) return 256u + b;                        /* 0x00-0x20: 256..288 */
    if (b >= 0x7f && b <= 0xa0) return 289u + (b - 0x7fu); /* 0x7f-0xa0: 289..322 */
    return 323;                                            /* 0xad */
}

int tokenizer_byte_to_utf8(uint8_t b, char out[2]) {
    uint32_t c = tokenizer_byte_to_cpt(b);
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = (char)(0xc0 | (c >> 6));
    out[1] = (char)(0x80 | (c & 0x3f));
    return 2;
}

int tokenizer_cpt_to_byte(uint32_t c) {
    if ((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff))
        return (int)c;
    if (c >= 256 && c <= 288) return (int)(c - 256);
    if (c >= 289 && c <= 322) return (int)(0x7f + (c - 289));
    if (c == 323) return 0xad;
    return -1;
}
