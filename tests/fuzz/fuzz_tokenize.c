/* fuzz_tokenize: libFuzzer target for encoding arbitrary bytes (invalid UTF-8 included) with an
 * SPM and a byte-level BPE vocabulary: ../shared's llama-spm, gpt-2 and deepseek-coder files
 * when RLAIF_SHARED names them (the first byte picks one and the flags), else a BPE vocabulary
 * trained at start-up. Checks that decode(encode(x)) gives x back where it must. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"
#include "gguf.h"
#include "tokenizer.h"
#include "tokenizer_pre.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static tokenizer *toks[4];
static int n_toks;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *dir = getenv("RLAIF_SHARED");
    const char *names[] = {"llama-spm", "gpt-2", "deepseek-coder"};
    for (int i = 0; dir && i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/vocab/ggml-vocab-%s.gguf", dir, names[i]);
        gguf_file *f;
        rl_err e;
        if (gguf_open(path, &f, &e) != ERR_OK) continue;
        if (tokenizer_from_gguf(f, &toks[n_toks], &e) == ERR_OK) n_toks++;
        gguf_close(f); /* the tokenizer keeps copies */
    }
    static const char *const docs[] = {"the cat sat on the mat, the end.", "x = 42; y = x + 1\n",
                                       "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 don't it's"};
    static const char *const sp[] = {"<|bos|>", "<|eos|>"};
    bpe_train_opts o = {.vocab_size = 300,
                        .min_frequency = 1,
                        .specials = sp,
                        .n_specials = 2,
                        .bos = 0,
                        .eos = 1,
                        .pad = -1,
                        .add_bos = 1};
    rl_err e;
    if (bpe_train(docs, NULL, 3, &o, &toks[n_toks], &e) == ERR_OK) n_toks++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || n_toks == 0) return 0;
    const tokenizer *t = toks[data[0] % n_toks];
    int flags = (data[0] >> 4) & (TOK_ADD_SPECIAL | TOK_ADD_BOS | TOK_PARSE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int *ids, n;
    rl_err e;
    if (tokenizer_encode(t, text, len, flags, &ids, &n, &e) != ERR_OK) abort();
    char *s;
    size_t slen;
    if (tokenizer_decode(t, ids, n, TOK_DECODE_SPECIAL, &s, &slen, &e) != ERR_OK) abort();
    /* byte-level BPE without clean-up and without special tokens in play gives back the text
       (invalid UTF-8 sanitised) */
    if (tokenizer_kind(t) == TOKENIZER_BPE && strcmp(tokenizer_pretokenizer(t), "qwen2") == 0 &&
        !(flags & TOK_PARSE_SPECIAL)) {
        size_t clen;
        char *clean = tokenizer_utf8_sanitize(text, len, &clen);
        size_t skip = 0;
        if (n > 0 && ids[0] == tokenizer_bos(t) && (flags & (TOK_ADD_BOS | TOK_ADD_SPECIAL))) {
            size_t bl;
            tokenizer_piece(t, ids[0], &bl);
            skip = bl;
        }
        if (slen - skip != clen || memcmp(s + skip, clean, clen) != 0) abort();
        free(clean);
    }
    free(s);
    free(ids);
    return 0;
}
