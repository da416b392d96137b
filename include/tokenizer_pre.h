/* tokenizer_pre: the pre-tokenizers of byte-level BPE vocabularies (tokenizer.ggml.pre), as PCRE2
 * patterns compiled with UTF and UCP (Unicode properties for \p{..}, \s, \d).
 *
 * A pre-tokenizer is a list of patterns applied in turn: each pattern splits every piece left by
 * the previous one into its matches and the unmatched text between them (both are kept), the
 * way llama.cpp's unicode_regex_split does. The patterns are the ones llama.cpp uses for each
 * name (its rewrites of the tokenizer.json expressions), so that the same file splits the same
 * way. Also here: the per-name flags llama.cpp attaches (ignore merges, BOS by default, space
 * clean-up on decode) and GPT-2's byte <-> printable code point mapping. */
#ifndef RLAIF_TOKENIZER_PRE_H
#define RLAIF_TOKENIZER_PRE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct tokenizer_pre tokenizer_pre;

typedef struct tokenizer_pre_flags {
    int ignore_merges; /* a word that is itself a token is taken whole (llama3) */
    int add_bos;       /* BOS by default (before tokenizer.ggml.add_bos_token) */
    int clean_spaces;  /* llama.cpp's clean_up_tokenization_spaces on decode */
    int no_bos;        /* no default BOS id (chatglm) */
} tokenizer_pre_flags;

/* Compiles the pre-tokenizer of that name; unknown names are refused with the list of known
 * ones. An empty name means "default", as in llama.cpp. */
int tokenizer_pre_create(const char *name, tokenizer_pre **out, rl_err *e);
void tokenizer_pre_free(tokenizer_pre *p);
const char *tokenizer_pre_name(const tokenizer_pre *p);
tokenizer_pre_flags tokenizer_pre_get_flags(const tokenizer_pre *p);
/* Comma-separated names this build knows (for messages and `inspect`). */
const char *tokenizer_pre_known(void);

/* Splits len bytes of valid UTF-8 into words: *spans gets 2*n size_t (offset, length) pairs,
 * malloc'ed. Thread-safe. */
int tokenizer_pre_split(const tokenizer_pre *p, const char *text, size_t len, size_t **spans,
                        size_t *n, rl_err *e);

/* Copies len bytes into a malloc'ed buffer of valid UTF-8, each byte that does not start a
 * well-formed character replaced by U+FFFD (as llama.cpp's decoder does). */
char *tokenizer_utf8_sanitize(const char *s, size_t len, size_t *out_len);
/* Length in bytes of the UTF-8 sequence a lead byte announces (1 for stray bytes), as
 * llama.cpp's unicode_len_utf8 computes it. */
int tokenizer_utf8_len(unsigned char lead);

/* GPT-2 byte-level mapping: printable bytes stand for themselves, the other 68 (controls, space,
 * 0x7f-0xa0, soft hyphen) for the code points 256.. in byte order. byte -> code point, its UTF-8
 * into out (returns 1 or 2 bytes), and code point -> byte (-1 when not one of the 256). */
uint32_t tokenizer_byte_to_cpt(uint8_t b);
int tokenizer_byte_to_utf8(uint8_t b, char out[2]);
int tokenizer_cpt_to_byte(uint32_t cpt);
/* Decodes one UTF-8 character at s (n bytes available): returns its length, or 0 when the bytes
 * there are not a well-formed character; *cpt gets the code point. */
int tokenizer_utf8_decode(const unsigned char *s, size_t n, uint32_t *cpt);

#endif
