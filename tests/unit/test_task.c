/* task: the built-in task's generator - determinism, split disjointness, document shape, closed
 * vocabulary, prompt and SFT formats, the SFT mixture, the corpus, the config checks.
 * The gold rater has its own test (test_task_gold.c). */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "task.h"

static void make_doc(uint64_t seed, int split, long index, task_doc *d) {
    rl_err e;
    err_clear(&e);
    if (task_doc_make(seed, split, index, d, &e)) fail_msg("task_doc_make: %s", e.msg);
}

static void test_same_key_same_document(void **state) {
    (void)state;
    for (int split = 0; split < TASK_N_SPLITS; split++)
        for (long i = 0; i < 50; i++) {
            task_doc a, b;
            make_doc(7, split, i, &a);
            make_doc(7, split, i, &b);
            assert_int_equal(memcmp(&a, &b, sizeof a), 0);
        }
}

/* Different index, split or seed: a different document (text). */
static void test_different_keys_different_documents(void **state) {
    (void)state;
    enum { N = 300 };
    static task_doc d[N];
    for (long i = 0; i < N; i++) make_doc(1, TASK_TRAIN, i, &d[i]);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (strcmp(d[i].text, d[j].text) == 0)
                fail_msg("train documents %d and %d equal", i, j);
    task_doc other;
    for (long i = 0; i < 50; i++) {
        make_doc(2, TASK_TRAIN, i, &other);
        assert_string_not_equal(other.text, d[i].text);
    }
}

/* Nothing depends on the split sizes: an SFT example is the same whatever n_docs says. */
static void test_independent_of_split_sizes(void **state) {
    (void)state;
    task_config a, b;
    task_config_default(&a);
    task_config_default(&b);
    b.n_docs[TASK_TRAIN] = 17, b.n_docs[TASK_VAL] = 3, b.n_docs[TASK_TEST] = 100000;
    rl_err e;
    for (long i = 0; i < 40; i++) {
        task_example x, y;
        assert_int_equal(task_sft_example(&a, TASK_VAL, i, 0, &x, &e), 0);
        assert_int_equal(task_sft_example(&b, TASK_VAL, i, 0, &y, &e), 0);
        assert_string_equal(x.prompt, y.prompt);
        assert_string_equal(x.target, y.target);
        assert_int_equal(x.kind, y.kind);
    }
}

/* Splits are disjoint by main event: every document's (who, action, object, place) belongs to
 * its own split, so no val/test main event occurs in train. Texts are disjoint too. */
static void test_splits_disjoint(void **state) {
    (void)state;
    enum { NT = 3000, NV = 400 };
    static unsigned char seen[TASK_N_PERSONS][TASK_N_ACTIONS][TASK_N_OBJECTS][TASK_N_PLACES];
    memset(seen, 0, sizeof seen);
    task_doc d;
    for (long i = 0; i < NT; i++) {
        make_doc(3, TASK_TRAIN, i, &d);
        assert_int_equal(task_main_event_split(&d), TASK_TRAIN);
        seen[d.key[TASK_WHO]][d.key[TASK_WHAT]][d.key[TASK_OBJ]][d.key[TASK_WHERE]] = 1;
    }
    for (int split = TASK_VAL; split <= TASK_TEST; split++)
        for (long i = 0; i < NV; i++) {
            make_doc(3, split, i, &d);
            assert_int_equal(task_main_event_split(&d), split);
            assert_false(
                seen[d.key[TASK_WHO]][d.key[TASK_WHAT]][d.key[TASK_OBJ]][d.key[TASK_WHERE]]);
        }
    /* the bucket shares are about 8:1:1 over all main events */
    long count[TASK_N_SPLITS] = {0};
    for (int w = 0; w < TASK_N_PERSONS; w++)
        for (int a = 0; a < TASK_N_ACTIONS; a++)
            for (int o = 0; o < TASK_N_OBJECTS; o++)
                for (int p = 0; p < TASK_N_PLACES; p++) {
                    task_doc x;
                    memset(&x, 0, sizeof x);
                    x.key[TASK_WHO] = w, x.key[TASK_WHAT] = a, x.key[TASK_OBJ] = o;
                    x.key[TASK_WHERE] = p;
                    count[task_main_event_split(&x)]++;
                }
    double total = (double)(count[0] + count[1] + count[2]);
    assert_close(count[TASK_TRAIN] / total, 0.8, 0, 0.01);
    assert_close(count[TASK_VAL] / total, 0.1, 0, 0.01);
    assert_close(count[TASK_TEST] / total, 0.1, 0, 0.01);
}

/* Shape: 3-5 sentences (up to 6 roles-wise when the main event takes two), <= 64 words, every
 * key fact mentioned, n_key matches the time slot, distractors are not key facts, the roles
 * recorded match the text. */
static void test_document_shape(void **state) {
    (void)state;
    long words = 0;
    int min_w = 1000, max_w = 0, with_time = 0;
    const int n = 2000;
    for (long i = 0; i < n; i++) {
        task_doc d;
        make_doc(11, (int)(i % 3), i, &d);
        assert_true(d.n_sent >= 3 && d.n_sent <= 5);
        assert_true(d.n_words >= 10 && d.n_words <= 64);
        words += d.n_words;
        if (d.n_words < min_w) min_w = d.n_words;
        if (d.n_words > max_w) max_w = d.n_words;
        size_t len = strlen(d.text);
        assert_true(len > 0 && d.text[len - 1] == '.');
        assert_true(d.text[0] >= 'A' && d.text[0] <= 'Z');
        int mains = 0;
        for (int s = 0; s < d.n_sent; s++) {
            assert_true(d.sent[s].off >= 0 && d.sent[s].off + d.sent[s].len <= (int)len);
            assert_true(d.text[d.sent[s].off] >= 'A' && d.text[d.sent[s].off] <= 'Z');
            assert_int_equal(d.text[d.sent[s].off + d.sent[s].len - 1], '.');
            mains += d.sent[s].role == TASK_R_MAIN;
        }
        assert_true(mains == 1 || mains == 2);
        for (int s = 0; s < TASK_N_SLOTS; s++) {
            if (d.key[s] < 0) {
                assert_int_equal(s, TASK_WHEN);
                continue;
            }
            assert_true(task_doc_mentions(&d, task_slot_class(s), d.key[s]));
        }
        assert_int_equal(d.n_key, d.key[TASK_WHEN] >= 0 ? 5 : 4);
        with_time += d.key[TASK_WHEN] >= 0;
        for (int k = 0; k < d.n_distract; k++) {
            const task_fact *f = &d.distract[k];
            assert_true(task_doc_mentions(&d, f->cls, f->id));
            for (int s = 0; s < TASK_N_SLOTS; s++)
                assert_false(task_slot_class(s) == f->cls && d.key[s] == f->id);
        }
        /* distractor entities of the key classes really differ from the key facts */
        if (d.other_person >= 0) assert_int_not_equal(d.other_person, d.key[TASK_WHO]);
        if (d.other_place >= 0) assert_int_not_equal(d.other_place, d.key[TASK_WHERE]);
        if (d.other_object >= 0) assert_int_not_equal(d.other_object, d.key[TASK_OBJ]);
        if (d.other_time >= 0) assert_int_not_equal(d.other_time, d.key[TASK_WHEN]);
    }
    double mean = (double)words / n;
    assert_true(mean > 25 && mean < 45);
    assert_true(with_time > n * 0.65 && with_time < n * 0.85);
}

/* Closed vocabulary: every word of every document and summary is a word of the world; and the
 * world's content words are really used. */
static void test_closed_vocabulary(void **state) {
    (void)state;
    static unsigned char used[TASK_N_LEXEMES];
    memset(used, 0, sizeof used);
    rng r;
    rng_init(&r, 5, RNG_TEST, 1);
    rl_err e;
    for (long i = 0; i < 1500; i++) {
        task_doc d;
        make_doc(5, TASK_TRAIN, i, &d);
        char texts[TASK_N_KINDS_ALL + 1][TASK_SUMMARY_MAX];
        assert_int_equal(task_reference(&d, texts[0], sizeof texts[0], &e), 0);
        for (int k = 0; k < TASK_N_KINDS_ALL; k++)
            assert_int_equal(task_summary(&d, k, &r, texts[k + 1], sizeof texts[0], &e), 0);
        for (int t = -1; t <= TASK_N_KINDS_ALL; t++) {
            const char *p = t < 0 ? d.text : texts[t];
            task_token tok;
            while (task_next_token(&p, &tok)) {
                assert_true(tok.type != TASK_TOK_OTHER);
                if (tok.type != TASK_TOK_WORD) continue;
                int id, cls = task_lookup(tok.s, tok.n, &id);
                if (cls == TASK_C_UNKNOWN)
                    fail_msg("unknown word '%.*s' in '%s'", (int)tok.n, tok.s,
                             t < 0 ? d.text : texts[t]);
                if (cls < TASK_N_CLASSES) used[task_lexeme(cls, id)] = 1;
            }
        }
    }
    for (int l = 0; l < TASK_N_LEXEMES; l++) assert_true(used[l]);
}

static void test_lookup_and_scanner(void **state) {
    (void)state;
    int id;
    assert_int_equal(task_lookup("Anna", 4, &id), TASK_C_PERSON);
    assert_int_equal(id, 0);
    assert_int_equal(task_lookup("ANNA", 4, &id), TASK_C_PERSON);
    assert_int_equal(task_lookup("discovered", 10, &id), TASK_C_ACTION);
    assert_int_equal(id, 0); /* same lexeme as "found" */
    assert_int_equal(task_lookup("stolen", 6, &id), TASK_C_ACTION);
    assert_int_equal(id, 8);
    assert_int_equal(task_lookup("harbour", 7, &id), TASK_C_PLACE);
    assert_int_equal(task_lookup("monday", 6, &id), TASK_C_TIME);
    assert_int_equal(task_lookup("the", 3, &id), TASK_C_FUNCTION);
    assert_int_equal(id, -1);
    assert_int_equal(task_lookup("harbours", 8, &id), TASK_C_UNKNOWN);
    assert_int_equal(task_lookup("harbourharbourharbour", 21, &id), TASK_C_UNKNOWN);
    assert_int_equal(task_lookup("Ann", 3, &id), TASK_C_UNKNOWN);
    assert_int_equal(task_lookup("", 0, &id), TASK_C_UNKNOWN);
    /* lexeme numbering is a bijection */
    int l = 0;
    for (int c = 0; c < TASK_N_CLASSES; c++)
        for (int i = 0; i < task_class_size(c); i++) assert_int_equal(task_lexeme(c, i), l++);
    assert_int_equal(l, TASK_N_LEXEMES);
    assert_int_equal(task_lexeme(TASK_C_FUNCTION, 0), -1);
    assert_int_equal(task_lexeme(TASK_C_PERSON, TASK_N_PERSONS), -1);
    /* no word is both a content and a function word, and every canonical spelling looks up */
    const char *const *fw;
    int nf = task_function_words(&fw);
    for (int i = 0; i < nf; i++)
        assert_int_equal(task_lookup(fw[i], strlen(fw[i]), &id), TASK_C_FUNCTION);
    for (int c = 0; c < TASK_N_CLASSES; c++)
        for (int i = 0; i < task_class_size(c); i++) {
            const char *w = task_word(c, i);
            assert_int_equal(task_lookup(w, strlen(w), &id), c);
            assert_int_equal(id, i);
        }

    const char *s = "  Hi, there!! 42\xc3\xa9x.";
    task_token t;
    int types[8], n = 0;
    while (task_next_token(&s, &t) && n < 8) types[n++] = t.type;
    int expect[] = {TASK_TOK_WORD,  TASK_TOK_COMMA, TASK_TOK_WORD, TASK_TOK_STOP,
                    TASK_TOK_OTHER, TASK_TOK_WORD,  TASK_TOK_STOP};
    assert_int_equal(n, 7);
    for (int i = 0; i < n; i++) assert_int_equal(types[i], expect[i]);
}

static void test_prompt_and_sft_format(void **state) {
    (void)state;
    task_config c;
    task_config_default(&c);
    rl_err e;
    for (long i = 0; i < 100; i++) {
        task_example ex;
        assert_int_equal(task_sft_example(&c, TASK_TRAIN, i, 0, &ex, &e), 0);
        task_doc d;
        make_doc(c.seed, TASK_TRAIN, i, &d);
        size_t n = strlen(d.text);
        assert_memory_equal(ex.prompt, d.text, n);
        assert_string_equal(ex.prompt + n, "\nTL;DR:");
        assert_string_equal(task_context(&d), d.text);
        assert_int_equal(ex.target[0], ' ');
        assert_true(ex.target[1] != ' ' && ex.target[1] != '\0');
        assert_true(ex.kind >= 0 && ex.kind < TASK_N_KINDS);
        char p[TASK_PROMPT_MAX];
        assert_int_equal(task_prompt(&d, p, sizeof p, &e), 0);
        assert_string_equal(p, ex.prompt);
        /* too small a buffer is an error, not a truncation */
        assert_int_not_equal(task_prompt(&d, p, 10, &e), 0);
    }
    /* different draws give (mostly) different targets for the same document */
    int differ = 0;
    for (long i = 0; i < 100; i++) {
        task_example x, y;
        assert_int_equal(task_sft_example(&c, TASK_TRAIN, i, 0, &x, &e), 0);
        assert_int_equal(task_sft_example(&c, TASK_TRAIN, i, 1, &y, &e), 0);
        assert_string_equal(x.prompt, y.prompt);
        differ += strcmp(x.target, y.target) != 0;
    }
    assert_true(differ > 40);
    task_example ex;
    assert_int_equal(task_sft_example(&c, TASK_TRAIN, 0, -1, &ex, &e), ERR_INPUT);
}

/* The kinds of the SFT targets follow the deck's mixture; a zero share never appears. */
static void test_sft_mixture(void **state) {
    (void)state;
    task_config c;
    task_config_default(&c);
    c.mix[TASK_GOOD] = 0.5, c.mix[TASK_VERBOSE] = 0.0, c.mix[TASK_MISSING] = 0.2;
    c.mix[TASK_INVENTED] = 0.2, c.mix[TASK_MALFORMED] = 0.1;
    rl_err e;
    assert_int_equal(task_config_check(&c, &e), 0);
    const int n = 6000;
    long count[TASK_N_KINDS] = {0};
    for (long i = 0; i < n; i++) {
        task_example ex;
        assert_int_equal(task_sft_example(&c, TASK_TRAIN, i % 1000, (int)(i / 1000), &ex, &e), 0);
        count[ex.kind]++;
    }
    for (int k = 0; k < TASK_N_KINDS; k++)
        assert_close((double)count[k] / n, c.mix[k], 0, 4 * sqrt(0.25 / n));
    assert_int_equal(count[TASK_VERBOSE], 0);
}

static void test_summaries_deterministic(void **state) {
    (void)state;
    task_doc d;
    make_doc(1, TASK_TEST, 3, &d);
    rl_err e;
    for (int k = 0; k < TASK_N_KINDS_ALL; k++) {
        rng a, b;
        rng_init(&a, 9, RNG_TEST, (uint32_t)k);
        rng_init(&b, 9, RNG_TEST, (uint32_t)k);
        char x[TASK_SUMMARY_MAX], y[TASK_SUMMARY_MAX];
        assert_int_equal(task_summary(&d, k, &a, x, sizeof x, &e), 0);
        assert_int_equal(task_summary(&d, k, &b, y, sizeof y, &e), 0);
        assert_string_equal(x, y);
    }
    rng r;
    rng_init(&r, 9, RNG_TEST, 0);
    char x[TASK_SUMMARY_MAX];
    assert_int_equal(task_summary(&d, 99, &r, x, sizeof x, &e), ERR_INPUT);
    assert_int_equal(task_summary(&d, TASK_GOOD, &r, x, 4, &e), ERR_INTERNAL);
}

/* Each flawed kind has the flaw it says it has, seen from the document's facts (no gold). */
static void test_flaw_kinds_do_what_they_say(void **state) {
    (void)state;
    rl_err e;
    rng r;
    rng_init(&r, 4, RNG_TEST, 2);
    for (long i = 0; i < 500; i++) {
        task_doc d;
        make_doc(4, TASK_TRAIN, i, &d);
        char ref[TASK_SUMMARY_MAX], s[TASK_SUMMARY_MAX];
        assert_int_equal(task_reference(&d, ref, sizeof ref, &e), 0);
        size_t rl = strlen(ref);
        assert_int_equal(ref[rl - 1], '.');
        int ref_words = 0;
        const char *q = ref;
        task_token tq;
        while (task_next_token(&q, &tq)) ref_words += tq.type == TASK_TOK_WORD;
        for (int k = 0; k < TASK_N_KINDS; k++) {
            assert_int_equal(task_summary(&d, k, &r, s, sizeof s, &e), 0);
            int words = 0, stated = 0, unsupported = 0;
            const char *p = s;
            task_token t;
            while (task_next_token(&p, &t)) {
                if (t.type != TASK_TOK_WORD) continue;
                words++;
                int id, cls = task_lookup(t.s, t.n, &id);
                if (cls >= TASK_N_CLASSES) continue;
                if (!task_doc_mentions(&d, cls, id)) unsupported++;
                for (int sl = 0; sl < TASK_N_SLOTS; sl++)
                    if (task_slot_class(sl) == cls && d.key[sl] == id) stated++;
            }
            size_t n = strlen(s);
            switch (k) {
            case TASK_GOOD:
                assert_int_equal(words, ref_words);
                assert_int_equal(stated, d.n_key);
                assert_int_equal(unsupported, 0);
                assert_int_equal(s[n - 1], '.');
                break;
            case TASK_VERBOSE:
                assert_true(n > rl);
                break;
            case TASK_MISSING:
                assert_true(stated < d.n_key);
                break;
            case TASK_INVENTED: /* an unsupported entity, or a distractor in a key fact's place */
                assert_true(unsupported > 0 || stated < d.n_key);
                break;
            case TASK_MALFORMED:
                assert_true(s[n - 1] != '.' || !(s[0] >= 'A' && s[0] <= 'Z') || n > rl);
                break;
            }
        }
    }
}

static void test_corpus(void **state) {
    (void)state;
    task_config c;
    task_config_default(&c);
    c.n_docs[TASK_TRAIN] = 25;
    task_corpus it;
    task_corpus_begin(&it, &c);
    rl_err e;
    int n = 0, prompts = 0;
    for (;;) {
        const char *t;
        assert_int_equal(task_corpus_next(&it, &t, &e), 0);
        if (!t) break;
        assert_true(strlen(t) > 0);
        prompts += strstr(t, TASK_PROMPT_SUFFIX) != NULL;
        n++;
    }
    assert_int_equal(n, 25 * 6);
    assert_int_equal(prompts, 25);
    const char *dir = test_tmpdir("task_corpus");
    char path[1200];
    snprintf(path, sizeof path, "%s/corpus.txt", dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    assert_int_equal(task_corpus_write(&c, f, &e), 0);
    assert_true(ftell(f) > 25 * 100);
    fclose(f);
    remove(path);
    rmdir(dir);
}

static void test_config_check(void **state) {
    (void)state;
    task_config c;
    rl_err e;
    task_config_default(&c);
    assert_int_equal(task_config_check(&c, &e), 0);
    c.mix[TASK_VERBOSE] = 0.3;
    assert_int_equal(task_config_check(&c, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "task.mix"));
    task_config_default(&c);
    c.mix[TASK_MISSING] = -0.1, c.mix[TASK_GOOD] = 0.65;
    assert_int_equal(task_config_check(&c, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "task.mix.missing"));
    task_config_default(&c);
    c.n_docs[TASK_TEST] = 0;
    assert_int_equal(task_config_check(&c, &e), ERR_INPUT);
    assert_non_null(strstr(e.msg, "task.n_test"));
    task_config_default(&c);
    c.n_judge_pairs = -1;
    assert_int_equal(task_config_check(&c, &e), ERR_INPUT);
    task_doc d;
    assert_int_equal(task_doc_make(1, 3, 0, &d, &e), ERR_INPUT);
    assert_int_equal(task_doc_make(1, TASK_TRAIN, -1, &d, &e), ERR_INPUT);
    assert_int_equal(task_split_parse("val"), TASK_VAL);
    assert_int_equal(task_split_parse("dev"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_key_same_document),
        cmocka_unit_test(test_different_keys_different_documents),
        cmocka_unit_test(test_independent_of_split_sizes),
        cmocka_unit_test(test_splits_disjoint),
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_closed_vocabulary),
        cmocka_unit_test(test_lookup_and_scanner),
        cmocka_unit_test(test_prompt_and_sft_format),
        cmocka_unit_test(test_sft_mixture),
        cmocka_unit_test(test_summaries_deterministic),
        cmocka_unit_test(test_flaw_kinds_do_what_they_say),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_config_check),
    };
    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
