/* task_gold: the gold rater - hand-written summaries with hand-derived scores, the reference
 * beating every flawed variant, robustness on garbage, and the preference being antisymmetric
 * and transitive; the judge_sft comparisons. */
#include "test_util.h"

#include <math.h>

#include "task.h"

/* On Monday, Anna found an old map at the harbour. Ben was fishing by the river. Anna is a
 * baker. The weather was cold.   key: Anna found map harbour Monday; detail: old */
static void hand_doc(task_doc *d) {
    memset(d, 0, sizeof *d);
    snprintf(d->text, sizeof d->text, "%s",
             "On Monday, Anna found an old map at the harbour. Ben was fishing by the river. "
             "Anna is a baker. The weather was cold.");
    int id;
    assert_int_equal(task_lookup("Anna", 4, &id), TASK_C_PERSON);
    d->key[TASK_WHO] = id;
    assert_int_equal(task_lookup("found", 5, &id), TASK_C_ACTION);
    d->key[TASK_WHAT] = id;
    assert_int_equal(task_lookup("map", 3, &id), TASK_C_OBJECT);
    d->key[TASK_OBJ] = id;
    assert_int_equal(task_lookup("harbour", 7, &id), TASK_C_PLACE);
    d->key[TASK_WHERE] = id;
    assert_int_equal(task_lookup("Monday", 6, &id), TASK_C_TIME);
    d->key[TASK_WHEN] = id;
    assert_int_equal(task_lookup("old", 3, &id), TASK_C_ATTR);
    d->attr = id;
    d->n_key = 5;
    d->female = 1;
    d->other_person = d->other_activity = d->other_place = d->other_time = -1;
    d->obj_owner = d->other_object = d->other_attr = d->occupation = -1;
    task_doc_reindex(d);
}

static void expect_points(const task_doc *d, const char *s, int points) {
    task_gold_detail g;
    int p = task_gold_points(d, s, &g);
    if (p != points)
        fail_msg("'%s': %d points, expected %d (cover %d/%d, invented %d+%d, extra %d, words %d, "
                 "length -%d, form -%d)",
                 s ? s : "(null)", p, points, g.covered, g.n_key, g.invented, g.misattributed,
                 g.extra, g.words, g.p_length, g.p_form);
    assert_close(task_gold_score(d, s), points / 1000.0, 0, 1e-12);
}

static void test_hand_doc_is_what_we_think(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    assert_int_equal(d.n_words, 24);
    /* distractors: Ben, fishing, river, baker, cold */
    assert_int_equal(d.n_distract, 5);
    int id;
    assert_int_equal(task_lookup("Ben", 3, &id), TASK_C_PERSON);
    assert_true(task_doc_mentions(&d, TASK_C_PERSON, id));
    assert_int_equal(task_lookup("Zoe", 3, &id), TASK_C_PERSON);
    assert_false(task_doc_mentions(&d, TASK_C_PERSON, id));
}

/* Every expected value below is derived by hand from the rule in include/task.h:
 * coverage 200 per key fact (5 keys); free length L = 7 + 2 ("on Monday") = 9 words. */
static void test_hand_scores(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    /* all five key facts, 9 words */
    expect_points(&d, "Anna found a map at the harbour on Monday.", 1000);
    /* other equally short word orders */
    expect_points(&d, "On Monday, Anna found a map at the harbour.", 1000);
    expect_points(&d, "At the harbour, Anna found a map on Monday.", 1000);
    /* a synonym covers the action; the detail "old" is neutral; 10 words: -40 */
    expect_points(&d, "Anna discovered an old map at the harbour on Monday.", 960);
    /* passive: 11 words, -80 */
    expect_points(&d, "A map was found by Anna at the harbour on Monday.", 920);
    /* surrounding whitespace is ignored */
    expect_points(&d, " \n Anna found a map at the harbour on Monday.\n\n", 1000);
    /* missing the time: 4/5 */
    expect_points(&d, "Anna found a map at the harbour.", 800);
    /* missing the person: 4/5, "someone" is a function word */
    expect_points(&d, "Someone found a map at the harbour on Monday.", 800);
    /* misattribution: Ben is in the document, but stands where the missing key person should */
    expect_points(&d, "Ben found a map at the harbour on Monday.", 800 - 400);
    /* invented person: 4/5 - 400 */
    expect_points(&d, "Zoe found a map at the harbour on Monday.", 800 - 400);
    /* invented attribute: 10 words -40, red -400 */
    expect_points(&d, "Anna found a red map at the harbour on Monday.", 1000 - 400 - 40);
    /* a document word of another class: cold is extra (-100), 10 words (-40) */
    expect_points(&d, "Anna found a cold map at the harbour on Monday.", 1000 - 100 - 40);
    /* invented time next to the right one: Tuesday -400, 12 words -120 */
    expect_points(&d, "Anna found a map at the harbour on Monday and on Tuesday.",
                  1000 - 400 - 120);
    /* ... and without its preposition, a grammar fault too (-100); 11 words -80 */
    expect_points(&d, "Anna found a map at the harbour on Monday and Tuesday.",
                  1000 - 400 - 100 - 80);
    /* verbose: Ben, fishing, river extra (-300); 16 words, 7 over (-280) */
    expect_points(&d,
                  "Anna found a map at the harbour on Monday, while Ben was fishing by the river.",
                  1000 - 300 - 280);
    /* apposition: baker extra (-100); 11 words (-80) */
    expect_points(&d, "Anna, a baker, found a map at the harbour on Monday.", 1000 - 100 - 80);
    /* filler: 13 words (-160) */
    expect_points(&d, "It was reported that Anna found a map at the harbour on Monday.",
                  1000 - 160);
    /* form: no period -300, lower-case start -100, both */
    expect_points(&d, "Anna found a map at the harbour on Monday", 700);
    expect_points(&d, "Anna found a map at the harbour on Monday!", 700);
    expect_points(&d, "anna found a map at the harbour on Monday.", 900);
    expect_points(&d, "anna found a map at the harbour on Monday", 600);
    /* truncated: 3/5, no period; 7 words */
    expect_points(&d, "Anna found a map at the harbour on", 800 - 300);
    /* telegraphic: full coverage, 5 words, but map, harbour without article and Monday without
     * "on": 3 grammar faults -300 */
    expect_points(&d, "Anna found map harbour Monday.", 700);
    /* "the the": one repetition -100; 10 words -40 */
    expect_points(&d, "Anna found the the map at the harbour on Monday.", 1000 - 100 - 40);
    /* the whole sentence twice: 18 words: 9 over (-360) and 1 beyond L+8 (-20); one interior
     * sentence end (-150); five content lexemes repeated (-500) */
    expect_points(&d,
                  "Anna found a map at the harbour on Monday. Anna found a map at the harbour on "
                  "Monday.",
                  1000 - 380 - 150 - 500);
    /* two sentences, the second copied from the document: Ben, fishing, river extra (-300), one
     * interior stop (-150), 15 words (-240) */
    expect_points(&d, "Anna found a map at the harbour on Monday. Ben was fishing by the river.",
                  1000 - 300 - 150 - 240);
}

static void test_garbage(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    /* empty, NULL, whitespace: no coverage, no period (-300), no capital (-100) */
    expect_points(&d, "", -400);
    expect_points(&d, NULL, -400);
    expect_points(&d, " \t\n\r ", -400);
    expect_points(&d, ".", -100); /* ends with a period; no capital */
    /* bytes that are not words: 4 tokens, all unknown (-400), no period, no capital */
    expect_points(&d, "\xff\xfe qq 123 ###", -800);
    /* non-ASCII inside a word: "h", "\xc3\xa4", "rbour" are 3 unknown tokens (-300), 11 words
     * (-80), harbour not covered (800) */
    expect_points(&d, "Anna found a map at the h\xc3\xa4rbour on Monday.", 800 - 300 - 80);
    /* an unknown word (-100) and a time the document never gives (-400); 11 words (-80) */
    expect_points(&d, "Anna found a shiny map at the harbour on Monday yesterday.",
                  1000 - 100 - 400 - 80);
}

static void test_garbage_words(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    /* shiny: unknown (-100); 10 words (-40) */
    expect_points(&d, "Anna found a shiny map at the harbour on Monday.", 1000 - 100 - 40);
    /* yesterday: a time the document never gives (-400); 10 words (-40) */
    expect_points(&d, "Anna found a map at the harbour on Monday yesterday.", 1000 - 400 - 40);
}

static void test_long_and_repeated_inputs(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    /* 10000 x "Anna ": who covered (200); length capped (-1000); repeats capped (-500); no period
     */
    size_t n = 10000;
    char *s = malloc(5 * n + 1);
    for (size_t i = 0; i < n; i++) memcpy(s + 5 * i, "Anna ", 5);
    s[5 * n] = '\0';
    expect_points(&d, s, 200 - 1000 - 500 - 300);
    /* one 100000-letter word: unknown, no period, capital ok */
    char *w = malloc(100001);
    memset(w, 'A', 100000);
    w[100000] = '\0';
    expect_points(&d, w, -100 - 300);
    /* a long run of stops and commas between the words */
    expect_points(&d, "Anna,,,,,,,, found ... a map at the harbour on Monday.",
                  1000 - 150); /* "..." before more words is one interior sentence end */
    /* the same function word many times */
    expect_points(&d, "the the the the the the", 0 - 40 * 0 - 300 - 100 - 500);
    free(s);
    free(w);
}

/* Random byte strings: the score is always inside its documented range, and deterministic. */
static void test_random_bytes(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    rng r;
    rng_init(&r, 1, RNG_TEST, 77);
    char buf[4097];
    for (int t = 0; t < 3000; t++) {
        size_t n = rng_below(&r, t < 2000 ? 64 : 4096);
        int alphabet = (int)rng_below(&r, 3);
        for (size_t i = 0; i < n; i++) {
            uint32_t u = rng_u32(&r);
            if (alphabet == 0)
                buf[i] = (char)(1 + u % 255);
            else if (alphabet == 1)
                buf[i] = " .,aAnmp!?\n\xc3"[u % 13];
            else
                buf[i] = "Anna found a map at the harbour on Monday. "[u % 43];
        }
        buf[n] = '\0';
        double s1 = task_gold_score(&d, buf), s2 = task_gold_score(&d, buf);
        assert_true(s1 == s2);
        assert_true(s1 >= -5.05 - 1e-9 && s1 <= 1.0 + 1e-9);
    }
}

/* Over many generated documents: the reference scores 1.0, every good summary ties it, and every
 * flawed summary scores strictly below it. */
static void test_reference_beats_every_flaw(void **state) {
    (void)state;
    rl_err e;
    rng r;
    rng_init(&r, 2, RNG_TEST, 3);
    for (long i = 0; i < 1500; i++) {
        task_doc d;
        assert_int_equal(task_doc_make(2, (int)(i % 3), i, &d, &e), 0);
        char ref[TASK_SUMMARY_MAX], s[TASK_SUMMARY_MAX];
        assert_int_equal(task_reference(&d, ref, sizeof ref, &e), 0);
        int pr = task_gold_points(&d, ref, NULL);
        assert_int_equal(pr, 1000);
        for (int k = 0; k < TASK_N_KINDS_ALL; k++)
            for (int rep = 0; rep < 3; rep++) {
                assert_int_equal(task_summary(&d, k, &r, s, sizeof s, &e), 0);
                int p = task_gold_points(&d, s, NULL);
                if (k == TASK_GOOD) {
                    assert_int_equal(p, 1000);
                } else if (p >= pr) {
                    fail_msg("doc %ld: %s summary '%s' scores %d >= reference '%s'", i,
                             task_kind_name(k), s, p, ref);
                } else {
                    assert_int_equal(task_gold_prefer(&d, ref, s), 1);
                    assert_int_equal(task_gold_prefer(&d, s, ref), 2);
                }
            }
        /* the document itself is grammatical by the rater's own rule */
        task_gold_detail g;
        task_gold_points(&d, d.text, &g);
        assert_int_equal(g.grammar, 0);
        assert_int_equal(g.unknown, 0);
        assert_int_equal(g.invented, 0);
    }
}

static void test_prefer_order(void **state) {
    (void)state;
    task_doc d;
    hand_doc(&d);
    const char *s[] = {
        "Anna found a map at the harbour on Monday.",
        "On Monday, Anna found a map at the harbour.", /* same points as [0], one byte longer */
        "At the harbour, Anna found a map on Monday.",
        "Anna found a map at the harbour.",
        "Ben found a map at the harbour on Monday.",
        "Zoe found a map at the harbour on Monday.", /* same points as [4], same length */
        "Anna found a map at the harbour on Monday",
        " Anna found a map at the harbour on Monday.", /* same as [0] after trimming */
        "",
        "garbage \xff",
        "Anna found a map at the harbour on Monday. Anna found a map at the harbour on Monday.",
    };
    const int n = (int)(sizeof s / sizeof s[0]);
    for (int i = 0; i < n; i++) {
        assert_int_equal(task_gold_prefer(&d, s[i], s[i]), 1); /* identical: documented */
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            int p = task_gold_prefer(&d, s[i], s[j]), q = task_gold_prefer(&d, s[j], s[i]);
            assert_true(p == 1 || p == 2);
            assert_int_equal(p + q, 3); /* antisymmetric */
            double m = task_gold_margin(&d, s[i], s[j]);
            if (m > 0) assert_int_equal(p, 1);
            if (m < 0) assert_int_equal(p, 2);
            for (int k = 0; k < n; k++) {
                if (k == i || k == j) continue;
                if (p == 1 && task_gold_prefer(&d, s[j], s[k]) == 1)
                    assert_int_equal(task_gold_prefer(&d, s[i], s[k]), 1); /* transitive */
            }
        }
    }
    /* documented tie-breaks */
    assert_close(task_gold_margin(&d, s[0], s[1]), 0.0, 0, 0);
    assert_int_equal(task_gold_prefer(&d, s[0], s[1]), 1); /* equal points: the shorter */
    assert_int_equal(task_gold_prefer(&d, s[5], s[4]), 2); /* equal length: "Ben.." < "Zoe.." */
    /* equal trimmed text: the smaller raw text, and ' ' < 'A' */
    assert_int_equal(task_gold_prefer(&d, s[0], s[7]), 2);
    assert_int_equal(task_gold_prefer(&d, s[7], s[0]), 1);
}

/* Transitivity and antisymmetry over many generated summaries of one document. */
static void test_prefer_total_order_generated(void **state) {
    (void)state;
    rl_err e;
    task_doc d;
    assert_int_equal(task_doc_make(5, TASK_TEST, 1, &d, &e), 0);
    enum { N = 60 };
    static char s[N][TASK_SUMMARY_MAX];
    rng r;
    rng_init(&r, 5, RNG_TEST, 9);
    for (int i = 0; i < N; i++)
        assert_int_equal(task_summary(&d, i % TASK_N_KINDS_ALL, &r, s[i], sizeof s[i], &e), 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            if (i == j || strcmp(s[i], s[j]) == 0) continue;
            int p = task_gold_prefer(&d, s[i], s[j]);
            assert_int_equal(p + task_gold_prefer(&d, s[j], s[i]), 3);
            if (p != 1) continue;
            for (int k = 0; k < N; k++)
                if (strcmp(s[j], s[k]) != 0 && strcmp(s[i], s[k]) != 0 &&
                    task_gold_prefer(&d, s[j], s[k]) == 1)
                    assert_int_equal(task_gold_prefer(&d, s[i], s[k]), 1);
        }
}

static void test_judge_pairs(void **state) {
    (void)state;
    task_config c;
    task_config_default(&c);
    c.n_docs[TASK_TRAIN] = 300;
    rl_err e;
    const int n = 1200;
    int first = 0, kinds[TASK_N_KINDS_ALL] = {0};
    for (long i = 0; i < n; i++) {
        task_pair p, q;
        assert_int_equal(task_gold_pair(&c, i, &p, &e), 0);
        assert_int_equal(task_gold_pair(&c, i, &q, &e), 0);
        assert_int_equal(memcmp(&p, &q, sizeof p), 0); /* deterministic */
        assert_int_equal(p.doc_index, i % 300);
        assert_true(p.margin != 0.0);
        assert_string_not_equal(p.a, p.b);
        task_doc d;
        assert_int_equal(task_doc_make(c.seed, TASK_TRAIN, p.doc_index, &d, &e), 0);
        assert_int_equal(p.gold, task_gold_prefer(&d, p.a, p.b));
        assert_int_equal(p.gold, p.margin > 0 ? 1 : 2);
        assert_close(p.margin, task_gold_margin(&d, p.a, p.b), 0, 1e-12);
        first += p.gold == 1;
        kinds[p.kind_a]++, kinds[p.kind_b]++;
    }
    /* the better summary is in either position about half the time */
    assert_close((double)first / n, 0.5, 0, 4 * sqrt(0.25 / n));
    for (int k = 0; k < TASK_N_KINDS_ALL; k++) assert_true(kinds[k] > 0);
    /* a mixture of good summaries only still yields real preferences (through MIXED ones) */
    task_config g = c;
    for (int k = 0; k < TASK_N_KINDS; k++) g.mix[k] = k == TASK_GOOD ? 1.0 : 0.0;
    for (long i = 0; i < 50; i++) {
        task_pair p;
        assert_int_equal(task_gold_pair(&g, i, &p, &e), 0);
        assert_true(p.margin != 0.0);
    }
    task_pair p;
    assert_int_equal(task_gold_pair(&c, -1, &p, &e), ERR_INPUT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_doc_is_what_we_think),
        cmocka_unit_test(test_hand_scores),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_garbage_words),
        cmocka_unit_test(test_long_and_repeated_inputs),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_reference_beats_every_flaw),
        cmocka_unit_test(test_prefer_order),
        cmocka_unit_test(test_prefer_total_order_generated),
        cmocka_unit_test(test_judge_pairs),
    };
    return cmocka_run_group_tests_name("task_gold", tests, NULL, NULL);
}
