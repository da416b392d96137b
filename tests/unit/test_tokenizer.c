/* tokenizer: every case of llama.cpp's published vocabulary tests (shared vocab/NAME.inp ->
 * NAME.out, no BOS), BOS/EOS and special-token handling derived from those same files, decode,
 * GGUF metadata round trip, the pre-tokenizer patterns and both merge algorithms on hand-built
 * vocabularies whose results follow from the rules by hand. */
#define _GNU_SOURCE /* memmem */
#include "test_util.h"

#include <dirent.h>

#include "gguf.h"
#include "tokenizer.h"
#include "tokenizer_pre.h"

/* ------------------------------------------------------------------ llama.cpp's test files */

typedef struct vcase {
    char *text;
    size_t len;
    int *ids;
    int n;
} vcase;

static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, fp) != (size_t)n) n = 0;
    p[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return p;
}

/* Cases split as llama.cpp's test-tokenizer-0 splits them: inputs separated by
 * "\n__ggml_vocab_test__\n", one line of ids per input. */
static int read_cases(const char *gguf_path, vcase **out) {
    char p[1200];
    size_t ilen, olen;
    snprintf(p, sizeof p, "%s.inp", gguf_path);
    char *inp = slurp(p, &ilen);
    snprintf(p, sizeof p, "%s.out", gguf_path);
    char *outp = slurp(p, &olen);
    if (!inp || !outp) fail_msg("cannot read the .inp/.out files of %s", gguf_path);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    vcase *cs = NULL;
    int n = 0;
    for (size_t pos = 0; pos < ilen;) {
        char *next = memmem(inp + pos, ilen - pos, sep, seplen);
        size_t end = next ? (size_t)(next - inp) : ilen;
        cs = realloc(cs, sizeof(vcase) * (size_t)(n + 1));
        cs[n].len = end - pos;
        cs[n].text = malloc(cs[n].len + 1);
        memcpy(cs[n].text, inp + pos, cs[n].len);
        cs[n].text[cs[n].len] = '\0';
        n++;
        if (!next) break;
        pos = end + seplen;
    }
    char *line = outp;
    for (int i = 0; i < n; i++) {
        if (!line || !*line) fail_msg("%s.out has fewer lines than cases", gguf_path);
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cs[i].ids = malloc(sizeof(int) * (strlen(line) / 2 + 1));
        cs[i].n = 0;
        for (char *q = line; *q;) {
            char *endp;
            long v = strtol(q, &endp, 10);
            if (endp == q) break;
            cs[i].ids[cs[i].n++] = (int)v;
            q = endp;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(inp);
    free(outp);
    *out = cs;
    return n;
}

static void free_cases(vcase *cs, int n) {
    for (int i = 0; i < n; i++) free(cs[i].text), free(cs[i].ids);
    free(cs);
}

static tokenizer *load(const char *path, gguf_file **fout) {
    gguf_file *f;
    rl_err e = {0};
    if (gguf_open(path, &f, &e)) fail_msg("%s", e.msg);
    tokenizer *t;
    if (tokenizer_from_gguf(f, &t, &e)) fail_msg("%s", e.msg);
    if (fout)
        *fout = f;
    else
        gguf_close(f);
    return t;
}

static int same_ids(const int *a, int na, const int *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof(int) * (size_t)na) == 0);
}

static void vocab_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/vocab/ggml-vocab-%s.gguf", test_shared_dir(), name);
}

#define NEED_SHARED()                                                                              \
    do {                                                                                           \
        if (!test_shared_dir()) {                                                                  \
            printf("ok - %s # SKIP ../shared is absent\n", __func__);                              \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Every .gguf with .inp/.out in ../shared/vocab: every case must give exactly the ids. */
static void test_llama_cpp_vocab_cases(void **state) {
    (void)state;
    NEED_SHARED();
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/vocab", test_shared_dir());
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0, total = 0, failed = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 5, ".gguf") != 0) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        vcase *cs;
        int n = read_cases(path, &cs);
        tokenizer *t = load(path, NULL);
        int ok = 0;
        for (int i = 0; i < n; i++) {
            int *ids, m;
            rl_err e = {0};
            if (tokenizer_encode(t, cs[i].text, cs[i].len, 0, &ids, &m, &e)) fail_msg("%s", e.msg);
            if (same_ids(ids, m, cs[i].ids, cs[i].n))
                ok++;
            else {
                printf("# %s case %d ('%.40s'): got %d ids, expected %d\n", de->d_name, i,
                       cs[i].text, m, cs[i].n);
                failed++;
            }
            free(ids);
        }
        printf("# %s: %d/%d cases match llama.cpp\n", de->d_name, ok, n);
        total += n;
        files++;
        tokenizer_free(t);
        free_cases(cs, n);
    }
    closedir(d);
    printf("# %d vocabularies, %d cases, %d failed\n", files, total, failed);
    assert_true(files >= 3);
    assert_int_equal(failed, 0);
}

/* Decoding the expected ids gives the input back (vocabularies without space clean-up). */
static void test_decode_roundtrip(void **state) {
    (void)state;
    NEED_SHARED();
    const char *names[] = {"llama-spm", "deepseek-coder"};
    for (int k = 0; k < 2; k++) {
        char path[1200];
        vocab_path(path, sizeof path, names[k]);
        vcase *cs;
        int n = read_cases(path, &cs);
        tokenizer *t = load(path, NULL);
        for (int i = 0; i < n; i++) {
            char *s;
            size_t len;
            rl_err e = {0};
            assert_int_equal(tokenizer_decode(t, cs[i].ids, cs[i].n, 0, &s, &len, &e), ERR_OK);
            if (len != cs[i].len || memcmp(s, cs[i].text, len) != 0)
                fail_msg("%s case %d: decoded '%s', expected '%s'", names[k], i, s, cs[i].text);
            free(s);
        }
        tokenizer_free(t);
        free_cases(cs, n);
    }
}

/* Ids of single words, taken from the published cases, to build expectations from. */
static const int *case_ids(vcase *cs, int n, const char *text, int *m) {
    for (int i = 0; i < n; i++)
        if (strcmp(cs[i].text, text) == 0) {
            *m = cs[i].n;
            return cs[i].ids;
        }
    fail_msg("no case '%s'", text);
    return NULL;
}

static int *enc(const tokenizer *t, const char *s, int flags, int *n) {
    int *ids;
    rl_err e = {0};
    if (tokenizer_encode(t, s, strlen(s), flags, &ids, n, &e)) fail_msg("%s", e.msg);
    return ids;
}

static void test_spm_special_and_bos(void **state) {
    (void)state;
    NEED_SHARED();
    char path[1200];
    vocab_path(path, sizeof path, "llama-spm");
    vcase *cs;
    int nc = read_cases(path, &cs);
    tokenizer *t = load(path, NULL);
    int m;
    const int *hello = case_ids(cs, nc, "Hello", &m);
    assert_int_equal(m, 1);
    const int *hw = case_ids(cs, nc, "Hello world", &m);
    assert_int_equal(m, 2);
    int world = hw[1]; /* "▁world" */
    assert_int_equal(tokenizer_bos(t), 1);
    assert_int_equal(tokenizer_eos(t), 2);
    assert_true(tokenizer_add_bos(t));
    int n, *ids = enc(t, "Hello", TOK_ADD_SPECIAL, &n); /* the file says: BOS */
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], hello[0]);
    free(ids);
    /* a control token in the text is a token only when asked; each text fragment after it
       gets the space prefix again */
    ids = enc(t, "Hello<s>world", TOK_PARSE_SPECIAL, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], hello[0]);
    assert_int_equal(ids[1], 1);
    assert_int_equal(ids[2], world);
    free(ids);
    ids = enc(t, "Hello<s>world", 0, &n);
    for (int i = 0; i < n; i++) assert_int_not_equal(ids[i], 1);
    free(ids);
    /* lookups the judge needs */
    assert_int_equal(tokenizer_find(t, "<s>"), 1);
    const int *three = case_ids(cs, nc, "3", &m); /* "▁" "3": the digit alone is a token */
    assert_int_equal(m, 2);
    assert_int_equal(tokenizer_find(t, "3"), three[1]);
    assert_int_equal(tokenizer_single_token(t, "3"), -1);
    assert_int_equal(tokenizer_single_token(t, "Hello"), hello[0]);
    /* decode: control tokens hidden unless asked, leading space dropped after BOS too */
    int seq[3] = {1, hello[0], world};
    char *s;
    size_t len;
    rl_err e = {0};
    assert_int_equal(tokenizer_decode(t, seq, 3, 0, &s, &len, &e), ERR_OK);
    assert_string_equal(s, "Hello world");
    free(s);
    assert_int_equal(tokenizer_decode(t, seq, 3, TOK_DECODE_SPECIAL, &s, &len, &e), ERR_OK);
    assert_string_equal(s, "<s>Hello world");
    free(s);
    int bad = 32000;
    assert_int_equal(tokenizer_decode(t, &bad, 1, 0, &s, &len, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "32000"));
    /* byte tokens decode to their byte */
    size_t pl;
    const char *p = tokenizer_piece(t, tokenizer_find(t, "<0x0A>"), &pl);
    assert_int_equal(pl, 1);
    assert_int_equal(p[0], '\n');
    assert_true(tokenizer_is_eog(t, 2));
    assert_false(tokenizer_is_eog(t, hello[0]));
    tokenizer_free(t);
    free_cases(cs, nc);
}

static void test_bpe_special_bos_and_cleanup(void **state) {
    (void)state;
    NEED_SHARED();
    char path[1200];
    vocab_path(path, sizeof path, "gpt-2");
    tokenizer *t = load(path, NULL);
    int eot = tokenizer_find(t, "<|endoftext|>");
    assert_int_equal(eot, 50256);
    assert_false(tokenizer_add_bos(t)); /* gpt-2 files say nothing: no BOS by default */
    int n, *ids = enc(t, "<|endoftext|>", TOK_PARSE_SPECIAL, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], eot);
    free(ids);
    ids = enc(t, "<|endoftext|>", 0, &n);
    assert_true(n > 1);
    free(ids);
    ids = enc(t, "hi", TOK_ADD_BOS, &n);
    assert_int_equal(ids[0], 50256);
    free(ids);
    assert_true(tokenizer_is_eog(t, eot));
    /* gpt-2 cleans spaces on decode as llama.cpp does */
    const char *in[] = {"Hello , world !", "it 's", "a ' b", "don 't"};
    const char *want[] = {"Hello, world!", "it's", "a'b", "don 't"};
    for (int i = 0; i < 4; i++) {
        ids = enc(t, in[i], 0, &n);
        char *s;
        size_t len;
        rl_err e = {0};
        assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, &e), ERR_OK);
        assert_string_equal(s, want[i]);
        free(s);
        free(ids);
    }
    /* invalid UTF-8 is encoded as U+FFFD per bad byte and decodes to it */
    ids = enc(t,
              "a\xff"
              "b",
              0, &n);
    char *s;
    size_t len;
    rl_err e = {0};
    assert_int_equal(tokenizer_decode(t, ids, n, 0, &s, &len, &e), ERR_OK);
    assert_string_equal(s, "a\xef\xbf\xbd"
                           "b");
    free(s);
    free(ids);
    tokenizer_free(t);
    /* deepseek-coder's file asks for BOS */
    vocab_path(path, sizeof path, "deepseek-coder");
    t = load(path, NULL);
    assert_true(tokenizer_add_bos(t));
    ids = enc(t, "x", TOK_ADD_SPECIAL, &n);
    assert_int_equal(ids[0], 32013);
    assert_int_equal(n, 2);
    free(ids);
    tokenizer_free(t);
}

/* tokenizer -> GGUF metadata -> tokenizer encodes every case the same way. */
static void test_metadata_roundtrip(void **state) {
    (void)state;
    NEED_SHARED();
    const char *names[] = {"llama-spm", "gpt-2", "deepseek-coder"};
    for (int k = 0; k < 3; k++) {
        char path[1200];
        vocab_path(path, sizeof path, names[k]);
        vcase *cs;
        int n = read_cases(path, &cs);
        tokenizer *t = load(path, NULL);
        gguf_writer *w = gguf_writer_new();
        tokenizer_write_gguf(t, w);
        uint8_t *buf;
        size_t size;
        rl_err e = {0};
        assert_int_equal(gguf_writer_to_buffer(w, &buf, &size, &e), ERR_OK);
        gguf_file *f;
        if (gguf_open_memory(buf, size, "rt", &f, &e)) fail_msg("%s", e.msg);
        tokenizer *u;
        if (tokenizer_from_gguf(f, &u, &e)) fail_msg("%s", e.msg);
        assert_int_equal(tokenizer_n_vocab(u), tokenizer_n_vocab(t));
        assert_int_equal(tokenizer_n_merges(u), tokenizer_n_merges(t));
        assert_int_equal(tokenizer_bos(u), tokenizer_bos(t));
        assert_int_equal(tokenizer_eos(u), tokenizer_eos(t));
        assert_int_equal(tokenizer_add_bos(u), tokenizer_add_bos(t));
        assert_string_equal(tokenizer_pretokenizer(u), tokenizer_pretokenizer(t));
        for (int i = 0; i < n; i++) {
            int *ids, m;
            assert_int_equal(tokenizer_encode(u, cs[i].text, cs[i].len, 0, &ids, &m, &e), ERR_OK);
            assert_true(same_ids(ids, m, cs[i].ids, cs[i].n));
            free(ids);
        }
        tokenizer_free(u);
        gguf_close(f);
        free(buf);
        gguf_writer_free(w);
        tokenizer_free(t);
        free_cases(cs, n);
    }
}

/* ------------------------------------------------------------------ pre-tokenizers */

static void expect_split(const char *pre, const char *text, const char *const *want) {
    tokenizer_pre *p;
    rl_err e = {0};
    if (tokenizer_pre_create(pre, &p, &e)) fail_msg("%s", e.msg);
    size_t *sp, n;
    assert_int_equal(tokenizer_pre_split(p, text, strlen(text), &sp, &n, &e), ERR_OK);
    size_t k = 0;
    while (want[k]) k++;
    if (n != k) fail_msg("%s on '%s': %zu words, expected %zu", pre, text, n, k);
    for (size_t i = 0; i < n; i++) {
        if (sp[2 * i + 1] != strlen(want[i]) || memcmp(text + sp[2 * i], want[i], sp[2 * i + 1]))
            fail_msg("%s on '%s': word %zu is '%.*s', expected '%s'", pre, text, i,
                     (int)sp[2 * i + 1], text + sp[2 * i], want[i]);
    }
    free(sp);
    tokenizer_pre_free(p);
}

static void test_pre_tokenizers(void **state) {
    (void)state;
    /* GPT-2: contractions, optional leading space, whitespace before a word stays apart */
    expect_split("gpt-2", "I'm  here!!",
                 (const char *const[]){"I", "'m", " ", " here", "!!", NULL});
    expect_split("gpt-2", "123456 x", (const char *const[]){"123456", " x", NULL});
    expect_split("gpt-2", "a\t\tb", (const char *const[]){"a", "\t", "\t", "b", NULL});
    /* Llama 3: digits in threes, newlines as their own word, punctuation keeps its newlines */
    expect_split("llama-bpe", "1234567", (const char *const[]){"123", "456", "7", NULL});
    expect_split("llama3", "Hi\n\nyou.\n", (const char *const[]){"Hi", "\n\n", "you", ".\n", NULL});
    expect_split("llama3", "I'M ok", (const char *const[]){"I", "'M", " ok", NULL});
    /* Qwen2: single digits */
    expect_split("qwen2", "x=42", (const char *const[]){"x", "=", "4", "2", NULL});
    /* starcoder/smollm: digits split first, then GPT-2 */
    expect_split("smollm", "ab 12", (const char *const[]){"ab", " ", "1", "2", NULL});
    /* deepseek-coder: letters with one leading space, punctuation runs, single digits */
    expect_split("deepseek-coder", "a1 b.,c",
                 (const char *const[]){"a", "1", " b", ".,", "c", NULL});
    /* default: punctuation runs first, then GPT-2 (" 12345"), digit runs (" " "12345"), digit
       triples ("123" and the unmatched rest "45") */
    expect_split("default", "ab, 12345", (const char *const[]){"ab", ",", " ", "123", "45", NULL});
    /* falcon: digit triples */
    expect_split("falcon", "12345", (const char *const[]){"123", "45", NULL});
    /* Unicode letters and numbers by property */
    expect_split("gpt-2", "\xd0\xbd\xd0\xb0 \xe2\x85\xa2",
                 (const char *const[]){"\xd0\xbd\xd0\xb0", " \xe2\x85\xa2", NULL});
    expect_split("gpt-2", "", (const char *const[]){NULL});
    tokenizer_pre *p;
    rl_err e = {0};
    assert_int_equal(tokenizer_pre_create("no-such-pre", &p, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "no-such-pre"));
    /* every name the table lists compiles */
    const char *names[] = {"default",        "llama3", "dbrx",   "chatglm-bpe", "deepseek-llm",
                           "deepseek-coder", "falcon", "gpt-2",  "mpt",         "trillion",
                           "starcoder",      "refact", "smollm", "qwen2",       "stablelm2",
                           "poro-chat",      "bloom",  "viking", "tekken",      "gpt-4o"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (tokenizer_pre_create(names[i], &p, &e)) fail_msg("%s", e.msg);
        size_t *sp, n;
        const char *txt = "Hello, World! 1234 \xe4\xbd\xa0\xe5\xa5\xbd\n\n  x";
        assert_int_equal(tokenizer_pre_split(p, txt, strlen(txt), &sp, &n, &e), ERR_OK);
        size_t covered = 0;
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(sp[2 * k], covered); /* words tile the text */
            covered += sp[2 * k + 1];
        }
        assert_int_equal(covered, strlen(txt));
        free(sp);
        tokenizer_pre_free(p);
    }
}

static void test_byte_mapping_and_utf8(void **state) {
    (void)state;
    /* GPT-2's bytes_to_unicode: printable bytes stay, the rest count up from U+0100 */
    assert_int_equal(tokenizer_byte_to_cpt('!'), '!');
    assert_int_equal(tokenizer_byte_to_cpt(0x00), 0x100);
    assert_int_equal(tokenizer_byte_to_cpt(' '), 0x120);  /* 'Ġ' */
    assert_int_equal(tokenizer_byte_to_cpt('\n'), 0x10a); /* 'Ċ' */
    assert_int_equal(tokenizer_byte_to_cpt(0x7f), 0x121);
    assert_int_equal(tokenizer_byte_to_cpt(0xa0), 0x142);
    assert_int_equal(tokenizer_byte_to_cpt(0xad), 0x143);
    assert_int_equal(tokenizer_byte_to_cpt(0xff), 0xff);
    int seen[400] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t c = tokenizer_byte_to_cpt((uint8_t)b);
        assert_true(c < 400 && !seen[c]);
        seen[c] = 1;
        assert_int_equal(tokenizer_cpt_to_byte(c), b);
        char u[2];
        int k = tokenizer_byte_to_utf8((uint8_t)b, u);
        uint32_t d;
        assert_int_equal(tokenizer_utf8_decode((const unsigned char *)u, (size_t)k, &d), k);
        assert_int_equal(d, c);
    }
    assert_int_equal(tokenizer_cpt_to_byte(0x144), -1);
    size_t n;
    char *s = tokenizer_utf8_sanitize("a\xff"
                                      "b\xe2\x82",
                                      5, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(s,
                        "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\xef\xbf\xbd",
                        11);
    free(s);
    s = tokenizer_utf8_sanitize("\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80", 9, &n); /* overlong,
                                                                     surrogate, > U+10FFFF */
    assert_int_equal(n, 27);
    free(s);
    s = tokenizer_utf8_sanitize("\xf0\x9f\xa6\x99", 4, &n);
    assert_int_equal(n, 4);
    free(s);
}

/* ------------------------------------------------------------------ hand-built vocabularies */

#define SP "\xe2\x96\x81"

static tokenizer *spm(const char *const *toks, const float *scores, int n) {
    int32_t types[32];
    for (int i = 0; i < n; i++)
        types[i] = strncmp(toks[i], "<0x", 3) == 0 ? TOKEN_TYPE_BYTE
                   : toks[i][0] == '<'             ? TOKEN_TYPE_CONTROL
                                                   : TOKEN_TYPE_NORMAL;
    tokenizer_vocab v = {.model = "llama",
                         .n_tokens = n,
                         .tokens = toks,
                         .scores = scores,
                         .types = types,
                         .bos = 1,
                         .eos = 2,
                         .unk = 0,
                         .pad = -1,
                         .add_bos = -1,
                         .add_eos = -1};
    tokenizer *t;
    rl_err e = {0};
    if (tokenizer_from_vocab(&v, &t, &e)) fail_msg("%s", e.msg);
    return t;
}

static void expect_ids(const tokenizer *t, const char *text, const int *want, int nw) {
    int n, *ids = enc(t, text, 0, &n);
    if (!same_ids(ids, n, want, nw)) {
        char got[256] = "";
        for (int i = 0; i < n && strlen(got) < 200; i++)
            snprintf(got + strlen(got), 56, " %d", ids[i]);
        fail_msg("'%s' ->%s", text, got);
    }
    free(ids);
}

static void test_spm_rules(void **state) {
    (void)state;
    /* ids:             0       1     2      3    4    5    6        7     8       9 */
    const char *toks[] = {"<unk>", "<s>", "</s>", SP, "a", "b", SP "a", "ab", "aa", "<0x5A>"};
    /* "▁ab": bigrams ▁a (-1) and ab (-0.1); the higher score merges first -> ▁ ab */
    float sc[] = {0, 0, 0, -5, -5, -5, -1, -0.1f, -2, 0};
    tokenizer *t = spm(toks, sc, 10);
    expect_ids(t, "ab", (const int[]){3, 7}, 2);
    /* equal scores: the leftmost pair first. "▁aaa": ▁a (-1) beats aa (-2), then a+a */
    expect_ids(t, "aaa", (const int[]){6, 8}, 2);
    /* unknown characters fall back to <0xXX> byte tokens, else <unk> */
    expect_ids(t, "Z", (const int[]){3, 9}, 2);
    expect_ids(t, "Y", (const int[]){3, 0}, 2);
    tokenizer_free(t);
    /* flip the scores: ▁a before ab */
    float sc2[] = {0, 0, 0, -5, -5, -5, -0.1f, -1, -2, 0};
    t = spm(toks, sc2, 10);
    expect_ids(t, "ab", (const int[]){6, 5}, 2);
    /* tie between ▁a and aa at equal score: leftmost (▁a) */
    float sc3[] = {0, 0, 0, -5, -5, -5, -1, -3, -1, 0};
    tokenizer_free(t);
    t = spm(toks, sc3, 10);
    expect_ids(t, "aa", (const int[]){6, 4}, 2);
    tokenizer_free(t);
}

static void test_bpe_rules(void **state) {
    (void)state;
    const char *toks[] = {"a",
                          "b",
                          "c",
                          "ab",
                          "bc",
                          "abc",
                          "<|eos|>",
                          "\xc4\xa0",
                          "\xc4\xa0"
                          "a"};
    int32_t types[] = {1, 1, 1, 1, 1, 1, TOKEN_TYPE_CONTROL, 1, 1};
    /* rank order decides: "b c" (rank 0) before "a b" (rank 1) -> a bc */
    const char *m1[] = {"b c", "a b", "ab c", "\xc4\xa0 a"};
    tokenizer_vocab v = {.model = "gpt2",
                         .pre = "gpt-2",
                         .n_tokens = 9,
                         .tokens = toks,
                         .types = types,
                         .n_merges = 4,
                         .merges = m1,
                         .bos = 6,
                         .eos = 6,
                         .unk = -1,
                         .pad = -1,
                         .add_bos = 0,
                         .add_eos = 0};
    tokenizer *t;
    rl_err e = {0};
    if (tokenizer_from_vocab(&v, &t, &e)) fail_msg("%s", e.msg);
    expect_ids(t, "abc", (const int[]){0, 4}, 2);
    /* a space becomes 'Ġ' and merges with the word after it */
    expect_ids(t, "c a", (const int[]){2, 8}, 2);
    tokenizer_free(t);
    const char *m2[] = {"a b", "b c", "ab c"};
    v.merges = m2;
    v.n_merges = 3;
    if (tokenizer_from_vocab(&v, &t, &e)) fail_msg("%s", e.msg);
    expect_ids(t, "abc", (const int[]){5}, 1);
    expect_ids(t, "abcab", (const int[]){5, 3}, 2);
    /* EOS by the file, control token by text */
    int n, *ids = enc(t, "ab<|eos|>", TOK_PARSE_SPECIAL | TOK_ADD_SPECIAL, &n);
    assert_true(same_ids(ids, n, (const int[]){3, 6}, 2));
    free(ids);
    tokenizer_free(t);
    /* a bad vocabulary is refused */
    const char *dup[] = {"a", "a"};
    tokenizer_vocab d = {.model = "gpt2",
                         .pre = "gpt-2",
                         .n_tokens = 2,
                         .tokens = dup,
                         .bos = -1,
                         .eos = -1,
                         .unk = -1,
                         .pad = -1,
                         .add_bos = 0,
                         .add_eos = 0};
    assert_int_equal(tokenizer_from_vocab(&d, &t, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "duplicate"));
    d.model = "bert";
    assert_int_equal(tokenizer_from_vocab(&d, &t, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "bert"));
}

/* Phi-3 (recognised by general.name, as llama.cpp does) strips the whitespace after its special
 * tokens; other SPM files keep it. llama-3 pre-tokenizers add BOS by default. */
static void test_phi3_rstrip_and_defaults(void **state) {
    (void)state;
    const char *toks[] = {"<unk>", "<s>", "</s>",  SP,         "h",     "i",
                          SP "h",  "hi",  SP "hi", "<|user|>", "<0x0A>"};
    int32_t types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, TOKEN_TYPE_USER_DEFINED, 6};
    float sc[] = {0, 0, 0, -5, -5, -5, -3, -2, -1, 0, 0};
    rl_err e = {0};
    int *a[2], na[2];
    for (int phi = 0; phi < 2; phi++) {
        gguf_writer *w = gguf_writer_new();
        gguf_writer_set_str(w, "general.name", phi ? "Phi-3-mini-4k-instruct" : "other");
        gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 11);
        gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, sc, 11);
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 11);
        uint8_t *buf;
        size_t size;
        assert_int_equal(gguf_writer_to_buffer(w, &buf, &size, &e), 0);
        gguf_file *f;
        if (gguf_open_memory(buf, size, "phi", &f, &e)) fail_msg("%s", e.msg);
        tokenizer *t;
        if (tokenizer_from_gguf(f, &t, &e)) fail_msg("%s", e.msg);
        /* user-defined tokens are cut out even without TOK_PARSE_SPECIAL */
        a[phi] = enc(t, "<|user|>\n hi", 0, &na[phi]);
        tokenizer_free(t);
        gguf_close(f);
        free(buf);
        gguf_writer_free(w);
    }
    /* phi-3: "<|user|>" then "hi" with the prefix space: 9 8; others: "▁\n▁hi" -> 9 3 10 8 */
    assert_true(same_ids(a[1], na[1], (const int[]){9, 8}, 2));
    assert_true(same_ids(a[0], na[0], (const int[]){9, 3, 10, 8}, 4));
    free(a[0]), free(a[1]);
    const char *bt[] = {"a", "b"};
    tokenizer_vocab v = {.model = "gpt2",
                         .pre = "llama-bpe",
                         .n_tokens = 2,
                         .tokens = bt,
                         .bos = 0,
                         .eos = 1,
                         .unk = -1,
                         .pad = -1,
                         .add_bos = -1,
                         .add_eos = -1};
    tokenizer *t;
    if (tokenizer_from_vocab(&v, &t, &e)) fail_msg("%s", e.msg);
    assert_true(tokenizer_add_bos(t));
    tokenizer_free(t);
    v.pre = "qwen2";
    if (tokenizer_from_vocab(&v, &t, &e)) fail_msg("%s", e.msg);
    assert_false(tokenizer_add_bos(t));
    tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cpp_vocab_cases),
        cmocka_unit_test(test_decode_roundtrip),
        cmocka_unit_test(test_spm_special_and_bos),
        cmocka_unit_test(test_bpe_special_bos_and_cleanup),
        cmocka_unit_test(test_metadata_roundtrip),
        cmocka_unit_test(test_pre_tokenizers),
        cmocka_unit_test(test_byte_mapping_and_utf8),
        cmocka_unit_test(test_spm_rules),
        cmocka_unit_test(test_bpe_rules),
        cmocka_unit_test(test_phi3_rstrip_and_defaults),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, NULL, NULL);
}
