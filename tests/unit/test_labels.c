/* labels: labels.h5 rows written in any order read back; a reopened file keeps its done rows;
 * a file made for another fingerprint is set aside; a damaged file is set aside and the journal
 * gives every journaled row back, a torn last record ignored; jsonl: the pairs-file reader. */
#include "test_util.h"

#include <math.h>
#include <unistd.h>

#include "jsonl.h"
#include "labels.h"

static void fill(labels_row *r, int64_t i) {
    char buf[64];
    memset(r, 0, sizeof *r);
    r->prompt_id = 1000 + i;
    snprintf(buf, sizeof buf, "context %lld \xc3\xa9", (long long)i);
    r->context = strdup(buf);
    snprintf(buf, sizeof buf, "a%lld", (long long)i);
    r->a = strdup(buf);
    snprintf(buf, sizeof buf, "b%lld", (long long)i);
    r->b = strdup(buf);
    r->p_ab = 0.25 + 0.001 * (double)i, r->p_ba = 0.5, r->p = (r->p_ab + r->p_ba) / 2;
    r->rationale_ab = strdup(i % 2 ? "because" : "");
    r->rationale_ba = strdup("");
    r->principle = (int32_t)(i % 3) - 1;
    r->truncated = (uint8_t)(i % 2);
    r->done = 1;
}

static void test_rows_roundtrip_and_reopen(void **state) {
    (void)state;
    const char *dir = test_tmpdir("labels");
    char path[1100];
    snprintf(path, sizeof path, "%s/labels.h5", dir);
    enum { N = 10 };
    labels_row rows[N], back[N];
    memset(back, 0, sizeof back);
    for (int i = 0; i < N; i++) fill(&rows[i], i);
    const char *tn[1] = {"preamble"}, *tv[1] = {"Rate."}, *in[1] = {"cot"};
    int64_t iv[1] = {0};
    labels_meta meta = {tn, tv, 1, in, iv, 1};
    rl_err e = {0};
    int64_t done = -1;
    char note[512];
    assert_int_equal(labels_open(path, N, "fp1", &meta, back, &done, note, sizeof note, &e), 0);
    assert_int_equal(done, 0);
    int64_t idx[3] = {7, 2, 4};
    assert_int_equal(labels_write(path, rows, idx, 3, &e), 0);
    labels_row *r;
    int64_t n;
    assert_int_equal(labels_read(path, &r, &n, &e), 0);
    assert_int_equal(n, N);
    for (int i = 0; i < N; i++) {
        int w = i == 7 || i == 2 || i == 4;
        assert_int_equal(r[i].done, w);
        if (w) {
            assert_string_equal(r[i].context, rows[i].context);
            assert_string_equal(r[i].rationale_ab, rows[i].rationale_ab);
            assert_true(r[i].p_ab == rows[i].p_ab && r[i].p == rows[i].p);
            assert_int_equal(r[i].prompt_id, rows[i].prompt_id);
            assert_int_equal(r[i].principle, rows[i].principle);
        } else {
            assert_true(isnan(r[i].p));
            assert_int_equal(r[i].principle, -1);
            assert_string_equal(r[i].a, "");
        }
    }
    labels_rows_free(r, n);
    /* reopening with the same fingerprint keeps the three rows */
    memset(back, 0, sizeof back);
    assert_int_equal(labels_open(path, N, "fp1", &meta, back, &done, note, sizeof note, &e), 0);
    assert_int_equal(done, 3);
    assert_string_equal(back[4].b, "b4");
    for (int i = 0; i < N; i++) labels_row_free(&back[i]);
    /* another fingerprint: set aside, a new file */
    memset(back, 0, sizeof back);
    assert_int_equal(labels_open(path, N, "fp2", &meta, back, &done, note, sizeof note, &e), 0);
    assert_int_equal(done, 0);
    assert_non_null(strstr(note, "stale"));
    char aside[1200];
    snprintf(aside, sizeof aside, "%s.stale", path);
    assert_int_equal(access(aside, F_OK), 0);
    for (int i = 0; i < N; i++) labels_row_free(&rows[i]);
}

static void test_journal_survives_a_damaged_file(void **state) {
    (void)state;
    const char *dir = test_tmpdir("labels");
    char path[1100], journal[1200];
    snprintf(path, sizeof path, "%s/labels.h5", dir);
    snprintf(journal, sizeof journal, "%s.journal", path);
    enum { N = 8 };
    labels_row rows[N], back[N];
    memset(back, 0, sizeof back);
    for (int i = 0; i < N; i++) fill(&rows[i], i);
    rl_err e = {0};
    int64_t done;
    char note[512];
    assert_int_equal(labels_open(path, N, "fp", NULL, back, &done, note, sizeof note, &e), 0);
    int64_t a[2] = {1, 5}, b[2] = {6, 0};
    assert_int_equal(labels_journal_append(journal, "fp", rows, a, 2, &e), 0);
    assert_int_equal(labels_write(path, rows, a, 2, &e), 0);
    assert_int_equal(labels_journal_append(journal, "fp", rows, b, 2, &e), 0);
    /* a kill inside the HDF5 write of the second block: the file is cut short */
    assert_int_equal(truncate(path, 900), 0);
    /* and a half-written record at the end of the journal */
    FILE *f = fopen(journal, "ab");
    fwrite("ROWL\x40\x00\x00\x00garbage", 1, 15, f);
    fclose(f);
    memset(back, 0, sizeof back);
    assert_int_equal(labels_open(path, N, "fp", NULL, back, &done, note, sizeof note, &e), 0);
    assert_int_equal(done, 0);
    assert_non_null(strstr(note, "damaged"));
    int64_t rep = 0;
    assert_int_equal(labels_journal_replay(journal, "fp", back, N, &rep, &e), 0);
    assert_int_equal(rep, 4);
    for (int i = 0; i < N; i++) {
        int w = i == 1 || i == 5 || i == 6 || i == 0;
        assert_int_equal(back[i].done, w);
        if (w) {
            assert_string_equal(back[i].context, rows[i].context);
            assert_true(back[i].p == rows[i].p && back[i].p_ab == rows[i].p_ab);
            assert_int_equal(back[i].truncated, rows[i].truncated);
        }
    }
    /* a journal of another labelling is set aside, not replayed */
    for (int i = 0; i < N; i++) labels_row_free(&back[i]);
    memset(back, 0, sizeof back);
    assert_int_equal(labels_journal_replay(journal, "other", back, N, &rep, &e), 0);
    assert_int_equal(rep, 0);
    assert_int_not_equal(access(journal, F_OK), 0);
    for (int i = 0; i < N; i++) labels_row_free(&rows[i]);
}

static void test_jsonl(void **state) {
    (void)state;
    jsonl_obj o;
    rl_err e = {0};
    const char *line = "{\"context\": \"A \\\"q\\\"\\n\\u00e9\\ud83d\\ude00\", \"a\":\"x\", \"id\": 42, "
                       "\"b\": \"y\", \"ok\": true}\n";
    assert_int_equal(jsonl_parse(line, strlen(line), &o, &e), 0);
    int s;
    assert_string_equal(jsonl_get(&o, "context", &s), "A \"q\"\n\xc3\xa9\xf0\x9f\x98\x80");
    assert_true(s);
    assert_string_equal(jsonl_get(&o, "id", &s), "42");
    assert_false(s);
    assert_null(jsonl_get(&o, "nope", NULL));
    jsonl_free(&o);
    static const char *const bad[] = {"[1]", "{\"a\": [1]}", "{\"a\" 1}", "{\"a\": \"x}",
                                      "{\"a\": 1, \"a\": 2}", "{\"a\": \"\\q\"}", "{\"a\": 1} x"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(jsonl_parse(bad[k], strlen(bad[k]), &o, &e), ERR_INPUT);
        assert_non_null(strstr(e.msg, "column") ? e.msg : strstr(e.msg, "duplicate"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_roundtrip_and_reopen),
        cmocka_unit_test(test_journal_survives_a_damaged_file),
        cmocka_unit_test(test_jsonl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
