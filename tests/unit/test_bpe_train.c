/* bpe_train: determinism, the vocabulary size, round trip of every corpus document, the merges
 * re-applied by a textbook BPE (every merge in rank order over the whole word) giving the
 * tokenizer's ids, GGUF round trip, special tokens, and hand-checked merges on a tiny corpus. */
#include "test_util.h"

#include "bpe_train.h"
#include "gguf.h"
#include "rng.h"
#include "tokenizer.h"
#include "tokenizer_pre.h"

static const char *const specials[] = {"<|bos|>", "<|eos|>", "<|pad|>"};

/* A reproducible corpus: pseudo-words built from syllables (Zipf-like frequencies) mixed with
 * fixed words holding digits, punctuation, contractions, accents, CJK and an emoji; spaces,
 * newlines, commas and full stops between them. */
static char **corpus(int n, uint64_t seed) {
    static const char *const fixed[] = {"the",
                                        "Preferred",
                                        "summary",
                                        "caf\xc3\xa9",
                                        "\xe4\xb8\xad\xe6\x96\x87",
                                        "\xf0\x9f\xa6\x99",
                                        "don't",
                                        "it's",
                                        "42",
                                        "3.14",
                                        "x=y+1;"};
    static const char *const syl[] = {"ka", "ri",  "to", "men", "sa", "lo", "qu",  "ex",
                                      "pl", "an",  "de", "ion", "st", "ur", "ve",  "mo",
                                      "ni", "tha", "co", "re",  "pe", "ly", "ing", "ou"};
    const int nf = (int)(sizeof fixed / sizeof fixed[0]), nsyl = (int)(sizeof syl / sizeof syl[0]);
    rng r;
    rng_init(&r, seed, RNG_TEST, 7);
    char **docs = malloc(sizeof(char *) * (size_t)n);
    for (int d = 0; d < n; d++) {
        char buf[1024] = "";
        int len = 3 + (int)rng_below(&r, 12);
        for (int i = 0; i < len; i++) {
            strcat(buf, i ? (rng_below(&r, 10) == 0 ? "\n" : " ") : "");
            if (rng_below(&r, 4) == 0) {
                uint32_t k = rng_below(&r, (uint32_t)nf);
                strcat(buf, fixed[rng_below(&r, k + 1)]);
            } else {
                int ns = 1 + (int)rng_below(&r, 3);
                for (int j = 0; j < ns; j++) {
                    uint32_t k = rng_below(&r, (uint32_t)nsyl);
                    strcat(buf, syl[rng_below(&r, k + 1)]);
                }
            }
            if (rng_below(&r, 8) == 0) strcat(buf, rng_below(&r, 2) ? "," : ".");
        }
        docs[d] = strdup(buf);
    }
    return docs;
}

static tokenizer *train(char **docs, int n, int vocab, const char *pre) {
    bpe_train_opts o = {.vocab_size = vocab,
                        .min_frequency = 2,
                        .pre = pre,
                        .specials = specials,
                        .n_specials = 3,
                        .bos = 0,
                        .eos = 1,
                        .pad = 2,
                        .add_bos = 1};
    tokenizer *t;
    rl_err e = {0};
    if (bpe_train((const char *const *)docs, NULL, n, &o, &t, &e)) fail_msg("%s", e.msg);
    return t;
}

static void free_docs(char **d, int n) {
    for (int i = 0; i < n; i++) free(d[i]);
    free(d);
}

static void test_deterministic_and_sized(void **state) {
    (void)state;
    char **docs = corpus(400, 1);
    tokenizer *a = train(docs, 400, 600, NULL), *b = train(docs, 400, 600, NULL);
    assert_int_equal(tokenizer_n_vocab(a), 600);
    assert_int_equal(tokenizer_n_vocab(b), 600);
    for (int i = 0; i < 600; i++) {
        size_t la, lb;
        const char *sa = tokenizer_token_text(a, i, &la), *sb = tokenizer_token_text(b, i, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(sa, sb, la);
    }
    assert_int_equal(tokenizer_n_merges(a), tokenizer_n_merges(b));
    /* the layout: specials, then bytes */
    assert_string_equal(tokenizer_token_text(a, 0, NULL), "<|bos|>");
    assert_int_equal(tokenizer_bos(a), 0);
    assert_int_equal(tokenizer_eos(a), 1);
    assert_int_equal(tokenizer_pad(a), 2);
    assert_string_equal(tokenizer_token_text(a, 3 + 'a', NULL), "a");
    assert_string_equal(tokenizer_token_text(a, 3 + ' ', NULL), "\xc4\xa0");
    assert_string_equal(tokenizer_model_name(a), "gpt2");
    assert_string_equal(tokenizer_pretokenizer(a), "qwen2");
    tokenizer_free(a);
    tokenizer_free(b);
    /* a small corpus cannot fill a large vocabulary: training stops when no pair repeats */
    tokenizer *c = train(docs, 5, 100000, NULL);
    assert_true(tokenizer_n_vocab(c) < 100000);
    assert_true(tokenizer_n_vocab(c) > 259);
    tokenizer_free(c);
    /* too small a vocabulary is refused */
    bpe_train_opts o = {
        .vocab_size = 200, .specials = specials, .n_specials = 3, .bos = 0, .eos = 1, .pad = 2};
    rl_err e = {0};
    assert_int_equal(bpe_train((const char *const *)docs, NULL, 1, &o, &c, &e), ERR_INPUT);
    free_docs(docs, 400);
}

static void test_roundtrip_and_compression(void **state) {
    (void)state;
    char **docs = corpus(300, 2);
    tokenizer *small = train(docs, 300, 300, NULL), *big = train(docs, 300, 800, NULL);
    long n_small = 0, n_big = 0, bytes = 0;
    for (int d = 0; d < 300; d++) {
        int *ids, n;
        rl_err e = {0};
        char *s;
        size_t len;
        for (int k = 0; k < 2; k++) {
            tokenizer *t = k ? big : small;
            assert_int_equal(tokenizer_encode(t, docs[d], strlen(docs[d]), 0, &ids, &n, &e), 0);
            assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, &e), 0);
            assert_string_equal(s, docs[d]);
            *(k ? &n_big : &n_small) += n;
            free(s);
            free(ids);
        }
        bytes += (long)strlen(docs[d]);
    }
    printf("# %ld bytes: %ld tokens with 300 entries, %ld with 800\n", bytes, n_small, n_big);
    assert_true(n_big < n_small && n_small < bytes);
    tokenizer_free(small);
    tokenizer_free(big);
    free_docs(docs, 300);
}

/* Textbook BPE: for each merge in rank order, join every left-to-right occurrence. */
static void test_merges_reproduce_encoding(void **state) {
    (void)state;
    char **docs = corpus(300, 3);
    tokenizer *t = train(docs, 300, 700, NULL);
    gguf_writer *w = gguf_writer_new();
    tokenizer_write_gguf(t, w);
    uint8_t *buf;
    size_t size;
    rl_err e = {0};
    assert_int_equal(gguf_writer_to_buffer(w, &buf, &size, &e), ERR_OK);
    gguf_file *f;
    if (gguf_open_memory(buf, size, "bpe", &f, &e)) fail_msg("%s", e.msg);
    const gguf_kv *mk;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &mk, 1, &e), 0);
    int nm = (int)mk->arr_n;
    char **ml = malloc(sizeof(char *) * (size_t)nm), **mr = malloc(sizeof(char *) * (size_t)nm);
    for (int i = 0; i < nm; i++) {
        gguf_str s = gguf_arr_str(f, mk, (uint64_t)i);
        char *c = gguf_str_dup(s), *sp = strchr(c, ' ');
        assert_non_null(sp);
        *sp = '\0';
        ml[i] = c;
        mr[i] = sp + 1;
    }
    tokenizer_pre *pre;
    assert_int_equal(tokenizer_pre_create("qwen2", &pre, &e), 0);
    int words = 0;
    for (int d = 0; d < 300; d++) {
        size_t *sp, n;
        assert_int_equal(tokenizer_pre_split(pre, docs[d], strlen(docs[d]), &sp, &n, &e), 0);
        for (size_t k = 0; k < n; k++) {
            /* the word's symbols: GPT-2 code points of its bytes */
            char *sym[256];
            int ns = 0;
            for (size_t j = 0; j < sp[2 * k + 1] && ns < 256; j++) {
                char u[3] = {0};
                tokenizer_byte_to_utf8((uint8_t)docs[d][sp[2 * k] + j], u);
                sym[ns++] = strdup(u);
            }
            for (int m = 0; m < nm; m++)
                for (int j = 0; j + 1 < ns; j++)
                    if (strcmp(sym[j], ml[m]) == 0 && strcmp(sym[j + 1], mr[m]) == 0) {
                        char *cat = malloc(strlen(sym[j]) + strlen(sym[j + 1]) + 1);
                        strcpy(cat, sym[j]);
                        strcat(cat, sym[j + 1]);
                        free(sym[j]);
                        free(sym[j + 1]);
                        sym[j] = cat;
                        memmove(sym + j + 1, sym + j + 2, sizeof(char *) * (size_t)(ns - j - 2));
                        ns--;
                    }
            int *ids, nid;
            assert_int_equal(
                tokenizer_encode(t, docs[d] + sp[2 * k], sp[2 * k + 1], 0, &ids, &nid, &e), 0);
            assert_int_equal(nid, ns);
            for (int j = 0; j < ns; j++) {
                assert_int_equal(ids[j], tokenizer_find(t, sym[j]));
                free(sym[j]);
            }
            free(ids);
            words++;
        }
        free(sp);
    }
    printf("# %d merges re-applied to %d words\n", nm, words);
    tokenizer_pre_free(pre);
    for (int i = 0; i < nm; i++) free(ml[i]);
    free(ml), free(mr);
    /* and the GGUF copy of the tokenizer encodes like the original */
    tokenizer *u;
    if (tokenizer_from_gguf(f, &u, &e)) fail_msg("%s", e.msg);
    for (int d = 0; d < 300; d++) {
        int *a, na, *b, nb;
        assert_int_equal(
            tokenizer_encode(t, docs[d], strlen(docs[d]), TOK_ADD_SPECIAL, &a, &na, &e), 0);
        assert_int_equal(
            tokenizer_encode(u, docs[d], strlen(docs[d]), TOK_ADD_SPECIAL, &b, &nb, &e), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, sizeof(int) * (size_t)na);
        assert_int_equal(a[0], 0); /* add_bos */
        free(a), free(b);
    }
    tokenizer_free(u);
    gguf_close(f);
    free(buf);
    gguf_writer_free(w);
    tokenizer_free(t);
    free_docs(docs, 300);
}

/* "aaab aab ab" x3, min frequency 2: counts by hand.
 * words (qwen2 split): "aaab" x3, " aab" x3, " ab" x3 (as GPT-2 code points, ' ' is 'Ġ').
 * pairs: a a: 2*3 + 1*3 = 9; a b: 3+3+3 = 9; Ġ a: 6. Tie 9/9: the smaller left id wins, both
 * left ids are 'a', so the smaller right id: 'a' < 'b' -> merge 1 is "a a". */
static void test_tiny_corpus_by_hand(void **state) {
    (void)state;
    const char *docs[] = {"aaab aab ab", "aaab aab ab", "aaab aab ab"};
    bpe_train_opts o = {.vocab_size = 262,
                        .min_frequency = 2,
                        .specials = specials,
                        .n_specials = 3,
                        .bos = 0,
                        .eos = 1,
                        .pad = 2};
    tokenizer *t;
    rl_err e = {0};
    assert_int_equal(bpe_train(docs, NULL, 3, &o, &t, &e), 0);
    /* after "a a" (id 259): aaab -> [aa a b] (left to right), aab -> [Ġ aa b], ab -> [Ġ a b].
       pairs: aa a 3, a b 6, aa b 3, Ġ aa 3, Ġ a 3 -> merge 2 is "a b" (id 260).
       then aaab -> [aa ab], ab -> [Ġ ab]: aa ab 3, aa b 3, Ġ aa 3, Ġ ab 3, all equal: the
       smallest left id is 'Ġ' (byte 0x20, id 3 + 32 = 35), then the smallest right id "aa". */
    assert_int_equal(tokenizer_n_vocab(t), 262);
    assert_int_equal(tokenizer_n_merges(t), 3);
    assert_string_equal(tokenizer_token_text(t, 259, NULL), "aa");
    assert_string_equal(tokenizer_token_text(t, 260, NULL), "ab");
    assert_string_equal(tokenizer_token_text(t, 261, NULL), "\xc4\xa0"
                                                            "aa");
    int *ids, n;
    assert_int_equal(tokenizer_encode(t, "aaab", 4, 0, &ids, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 259);
    assert_int_equal(ids[1], 260);
    free(ids);
    tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_and_sized),
        cmocka_unit_test(test_roundtrip_and_compression),
        cmocka_unit_test(test_merges_reproduce_encoding),
        cmocka_unit_test(test_tiny_corpus_by_hand),
    };
    return cmocka_run_group_tests_name("bpe_train", tests, NULL, NULL);
}
