/* tokenizer: the SentencePiece-style (`llama`) and byte-level BPE (`gpt2`) tokenizers described by
 * a GGUF file's tokenizer.ggml.* metadata, behaving as llama.cpp does on the same file.
 *
 *   llama (SPM)  text -> " " prefix (add_space_prefix) -> spaces as U+2581 -> greedy merge of the
 *                adjacent pair whose concatenation is the highest-scoring vocabulary entry
 *                (leftmost on ties) -> unknown pieces as <0xXX> byte tokens.
 *   gpt2 (BPE)   text -> pre-tokenizer split (PCRE2 patterns chosen by tokenizer.ggml.pre) ->
 *                each word's bytes mapped to GPT-2's printable code points -> merges applied in
 *                rank order (lowest rank, then leftmost, first).
 *
 * Before either, user-defined tokens (and, with TOK_PARSE_SPECIAL, control tokens) are cut out of
 * the text as whole tokens, longest first. BOS/EOS follow the file's add_bos_token /
 * add_eos_token (with llama.cpp's defaults per model and pre-tokenizer) when TOK_ADD_SPECIAL is
 * given; TOK_ADD_BOS prepends BOS regardless.
 *
 * A tokenizer is immutable after creation and may be shared by threads.
 * Not here: WordPiece, Unigram (T5), RWKV tokenizers; Unicode normalisation. */
#ifndef RLAIF_TOKENIZER_H
#define RLAIF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "gguf.h"

typedef struct tokenizer tokenizer;

enum tokenizer_kind { TOKENIZER_SPM = 1, TOKENIZER_BPE = 2 };

/* GGUF token types (tokenizer.ggml.token_type). */
enum token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6
};

/* Encode flags. */
enum {
    TOK_ADD_SPECIAL = 1,   /* BOS/EOS as the file says */
    TOK_ADD_BOS = 2,       /* BOS always (when the vocabulary has one) */
    TOK_PARSE_SPECIAL = 4, /* control tokens written in the text become those tokens */
};

/* Decode flags. */
enum {
    TOK_DECODE_SPECIAL = 1,    /* render control tokens (<s>, <|endoftext|>) as their text */
    TOK_DECODE_KEEP_SPACE = 2, /* keep the leading space SPM adds */
};

/* An in-memory vocabulary, the way GGUF stores one (used by the BPE trainer and tests). Strings
 * are copied. */
typedef struct tokenizer_vocab {
    const char *model; /* "llama" or "gpt2" */
    const char *pre;   /* pre-tokenizer name for gpt2 ("default", "llama3", ...) */
    int n_tokens;
    const char *const *tokens; /* n_tokens strings (NUL-terminated) */
    const float *scores;       /* n_tokens, or NULL */
    const int32_t *types;      /* n_tokens enum token_type, or NULL (all normal) */
    int n_merges;
    const char *const *merges; /* "left right" */
    int bos, eos, unk, pad;    /* ids or -1 */
    int add_bos, add_eos;      /* -1: the model's default */
} tokenizer_vocab;

int tokenizer_from_gguf(const gguf_file *f, tokenizer **out, rl_err *e);
int tokenizer_from_vocab(const tokenizer_vocab *v, tokenizer **out, rl_err *e);
void tokenizer_free(tokenizer *t);

/* Encodes len bytes of UTF-8 text (invalid bytes are tolerated as llama.cpp does). *ids is
 * malloc'ed (the caller frees), *n its length. */
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int flags, int **ids, int *n,
                     rl_err *e);
/* Decodes ids into a malloc'ed NUL-terminated string of *len bytes (the bytes the tokens stand
 * for; may be invalid UTF-8 when a multi-byte character is cut). Ids out of range are an error. */
int tokenizer_decode(const tokenizer *t, const int *ids, int n, int flags, char **text, size_t *len,
                     rl_err *e);

/* The bytes one token stands for (control tokens: their text), and its raw vocabulary text. */
const char *tokenizer_piece(const tokenizer *t, int id, size_t *len);
const char *tokenizer_token_text(const tokenizer *t, int id, size_t *len);
/* Id of the vocabulary entry whose raw text is `text`, or -1. */
int tokenizer_find(const tokenizer *t, const char *text);
/* Id of the single token that `text` encodes to without BOS (e.g. "1" -> its digit token), or
 * -1 when it takes more or fewer than one token. */
int tokenizer_single_token(const tokenizer *t, const char *text);

int tokenizer_n_vocab(const tokenizer *t);
int tokenizer_kind(const tokenizer *t);
const char *tokenizer_model_name(const tokenizer *t);   /* "llama" or "gpt2" */
const char *tokenizer_pretokenizer(const tokenizer *t); /* tokenizer.ggml.pre */
int tokenizer_bos(const tokenizer *t);                  /* -1 when none */
int tokenizer_eos(const tokenizer *t);
int tokenizer_pad(const tokenizer *t);
int tokenizer_unk(const tokenizer *t);
int tokenizer_n_merges(const tokenizer *t);
int tokenizer_token_type(const tokenizer *t, int id);
/* End of generation: EOS, EOT and the end-of-turn tokens llama.cpp recognises by text. */
int tokenizer_is_eog(const tokenizer *t, int id);
int tokenizer_is_control(const tokenizer *t, int id);
int tokenizer_add_bos(const tokenizer *t); /* the file's BOS rule */
int tokenizer_add_eos(const tokenizer *t);

/* Writes the tokenizer.ggml.* metadata (model, pre, tokens, scores, token_type, merges, special
 * ids, add_bos/add_eos) so that tokenizer_from_gguf gives back the same tokenizer. */
void tokenizer_write_gguf(const tokenizer *t, gguf_writer *w);

#endif
