/* bpe_train: learns a byte-level BPE vocabulary (GPT-2 style) from a corpus, deterministically,
 * and returns it as a tokenizer with `tokenizer.ggml.model = gpt2` metadata, so that the built-in
 * task's models go through exactly the code that imported models use (and export to GGUF with
 * their tokenizer).
 *
 * Vocabulary layout: the special tokens first (control tokens, in the order given), then the 256
 * byte tokens in byte order (as GPT-2's printable code points), then one token per merge in the
 * order learned. Training: split every document with the chosen pre-tokenizer, count the words,
 * then repeatedly merge the most frequent adjacent pair (ties: the smaller left id, then the
 * smaller right id) until the vocabulary has `vocab_size` tokens or no pair occurs
 * `min_frequency` times. Applying the merges in rank order, as the tokenizer does, reproduces
 * the training segmentation of every word. A merge whose result is already a token (two ways of
 * spelling the same bytes) is recorded as a merge but adds no token. */
#ifndef RLAIF_BPE_TRAIN_H
#define RLAIF_BPE_TRAIN_H

#include <stddef.h>

#include "err.h"
#include "tokenizer.h"

typedef struct bpe_train_opts {
    int vocab_size;              /* total, with the specials and the 256 byte tokens */
    int min_frequency;           /* pairs seen fewer times are never merged (>= 1; 0 means 2) */
    const char *pre;             /* pre-tokenizer (NULL: "qwen2": digits alone, no decode
                                    clean-up, so that decode(encode(x)) == x) */
    const char *const *specials; /* special token texts, e.g. "<|bos|>" */
    int n_specials;
    int bos, eos, pad; /* indices into specials, or -1 */
    int add_bos;       /* the tokenizer's BOS rule (tokenizer.ggml.add_bos_token) */
} bpe_train_opts;

/* Trains on n_docs documents (docs[i] of lens[i] bytes; lens may be NULL for NUL-terminated). */
int bpe_train(const char *const *docs, const size_t *lens, int n_docs, const bpe_train_opts *o,
              tokenizer **out, rl_err *e);

#endif
