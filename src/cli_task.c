/* cli_task: `rlaif task ...`, a look at the built-in task's world without any model.
 *
 *   rlaif task sample [--n 5] [--seed 1] [--split train] [--start 0]
 *       documents with their key facts, the reference and one summary of each kind, gold-scored
 *   rlaif task score [--seed 1] [--split test] [--index 0] TEXT
 *       the gold rule's breakdown for one summary of one document
 *   rlaif task stats [--n 2000] [--seed 1] [--split train]
 *       word counts, vocabulary, gold score distribution per kind, preference rates, pairs
 *   rlaif task corpus [--seed 1] [--n-train 4000] [--out FILE]
 *       the BPE training corpus (stdout by default)
 *   rlaif task pairs [--n 5] [--seed 1]
 *       gold-labelled judge_sft comparisons
 *
 * Uses the gold rater for display and statistics only. Does not train, tokenise or write run
 * files. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "task.h"

typedef struct opts {
    long n, start, index, n_train;
    uint64_t seed;
    int split;
    const char *out;
    const char *text;
} opts;

static int usage(FILE *f) {
    fprintf(f, "usage: rlaif task sample [--n N] [--seed S] [--split train|val|test] [--start I]\n"
               "       rlaif task score [--seed S] [--split SPLIT] [--index I] TEXT\n"
               "       rlaif task stats [--n N] [--seed S] [--split SPLIT]\n"
               "       rlaif task corpus [--seed S] [--n-train N] [--out FILE]\n"
               "       rlaif task pairs [--n N] [--seed S]\n");
    return f == stdout ? 0 : 2;
}

static int parse_long(const char *name, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "rlaif task: %s needs an integer in [%ld, %ld], got '%s'\n", name, lo, hi,
                v ? v : "");
        return 0;
    }
    *out = x;
    return 1;
}

static int parse_opts(int argc, char **argv, opts *o) {
    o->n = -1, o->start = 0, o->index = 0, o->n_train = 4000, o->seed = 1;
    o->split = -1, o->out = NULL, o->text = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (strcmp(a, "--n") == 0) {
            if (!parse_long(a, v, 1, 10000000, &o->n)) return 0;
            i++;
        } else if (strcmp(a, "--start") == 0) {
            if (!parse_long(a, v, 0, 4000000000L, &o->start)) return 0;
            i++;
        } else if (strcmp(a, "--index") == 0) {
            if (!parse_long(a, v, 0, 4000000000L, &o->index)) return 0;
            i++;
        } else if (strcmp(a, "--n-train") == 0) {
            if (!parse_long(a, v, 1, 100000000, &o->n_train)) return 0;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_long(a, v, 0, 0x7fffffffffffffffL, &x)) return 0;
            o->seed = (uint64_t)x;
            i++;
        } else if (strcmp(a, "--split") == 0) {
            if ((o->split = task_split_parse(v)) < 0) {
                fprintf(stderr, "rlaif task: --split must be train, val or test, not '%s'\n",
                        v ? v : "");
                return 0;
            }
            i++;
        } else if (strcmp(a, "--out") == 0 && v) {
            o->out = v;
            i++;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "rlaif task: unknown option '%s'\n", a);
            return 0;
        } else if (!o->text) {
            o->text = a;
        } else {
            fprintf(stderr, "rlaif task: unexpected argument '%s' (quote the summary)\n", a);
            return 0;
        }
    }
    return 1;
}

static void print_detail(const char *label, const char *text, const task_gold_detail *g) {
    printf("  %-10s %+.3f  %s\n", label, g->points / 1000.0, text);
    printf("  %10s        cover %d/%d  invented %d (+%d misattributed)  extra %d  words %d  "
           "form -%d%s%s%s%s%s%s\n",
           "", g->covered, g->n_key, g->invented, g->misattributed, g->extra, g->words, g->p_form,
           g->terminal_ok ? "" : " [no period]", g->capital_ok ? "" : " [no capital]",
           g->interior_stops ? " [several sentences]" : "", g->unknown ? " [unknown words]" : "",
           g->repeats ? " [repetition]" : "", g->grammar ? " [missing article]" : "");
}

static void print_doc(const task_doc *d) {
    printf("=== %s document %ld (%d words, %d sentences)\n", task_split_name(d->split), d->index,
           d->n_words, d->n_sent);
    printf("  %s\n", d->text);
    printf("  key facts:");
    for (int s = 0; s < TASK_N_SLOTS; s++)
        if (d->key[s] >= 0)
            printf(" %s=%s", task_slot_name(s), task_word(task_slot_class(s), d->key[s]));
    if (d->attr >= 0) printf("  (detail: %s)", task_word(TASK_C_ATTR, d->attr));
    printf("\n  distractors:");
    for (int i = 0; i < d->n_distract; i++)
        printf(" %s:%s", task_class_name(d->distract[i].cls),
               task_word(d->distract[i].cls, d->distract[i].id));
    printf("\n  sentences:");
    for (int i = 0; i < d->n_sent; i++) printf(" %s", task_role_name(d->sent[i].role));
    printf("\n");
}

static int cmd_sample(const opts *o) {
    rl_err e;
    err_clear(&e);
    int split = o->split < 0 ? TASK_TRAIN : o->split;
    long n = o->n < 0 ? 5 : o->n;
    for (long i = o->start; i < o->start + n; i++) {
        task_doc d;
        if (task_doc_make(o->seed, split, i, &d, &e)) break;
        print_doc(&d);
        char text[TASK_SUMMARY_MAX];
        task_gold_detail g;
        if (task_reference(&d, text, sizeof text, &e)) break;
        task_gold_points(&d, text, &g);
        print_detail("reference", text, &g);
        rng r;
        rng_init(&r, o->seed, rng_purpose(RNG_TEST, 1), (uint32_t)i);
        for (int k = TASK_GOOD; k < TASK_N_KINDS_ALL; k++) {
            if (task_summary(&d, k, &r, text, sizeof text, &e)) break;
            task_gold_points(&d, text, &g);
            print_detail(task_kind_name(k), text, &g);
        }
        printf("\n");
    }
    if (e.code) {
        fprintf(stderr, "rlaif task: %s\n", e.msg);
        return err_exit_status(e.code);
    }
    return 0;
}

static int cmd_score(const opts *o) {
    rl_err e;
    err_clear(&e);
    task_doc d;
    if (task_doc_make(o->seed, o->split < 0 ? TASK_TEST : o->split, o->index, &d, &e)) {
        fprintf(stderr, "rlaif task: %s\n", e.msg);
        return err_exit_status(e.code);
    }
    print_doc(&d);
    task_gold_detail g;
    char ref[TASK_SUMMARY_MAX];
    if (task_reference(&d, ref, sizeof ref, &e) == 0) {
        task_gold_points(&d, ref, &g);
        print_detail("reference", ref, &g);
    }
    if (o->text) {
        task_gold_points(&d, o->text, &g);
        print_detail("given", o->text, &g);
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_stats(const opts *o) {
    rl_err e;
    err_clear(&e);
    int split = o->split < 0 ? TASK_TRAIN : o->split;
    long n = o->n < 0 ? 2000 : o->n;
    double *scores[TASK_N_KINDS_ALL + 1];
    for (int k = 0; k <= TASK_N_KINDS_ALL; k++) scores[k] = malloc(sizeof(double) * (size_t)n);
    long ref_wins[TASK_N_KINDS_ALL] = {0}, ref_ties[TASK_N_KINDS_ALL] = {0};
    long words_sum = 0, words_min = 1 << 30, words_max = 0, sent_hist[TASK_MAX_SENT + 1] = {0};
    long sum_words[TASK_N_KINDS_ALL + 1] = {0}, n_key5 = 0;
    /* distinct words over documents and summaries (lower-cased) */
    enum { MAXW = 4096 };
    char(*seen)[24] = calloc(MAXW, 24);
    int n_seen = 0, n_unknown_doc = 0;
    for (long i = 0; i < n; i++) {
        task_doc d;
        if (task_doc_make(o->seed, split, i, &d, &e)) goto fail;
        words_sum += d.n_words;
        if (d.n_words < words_min) words_min = d.n_words;
        if (d.n_words > words_max) words_max = d.n_words;
        sent_hist[d.n_sent]++;
        n_key5 += d.n_key == 5;
        char ref[TASK_SUMMARY_MAX], text[TASK_SUMMARY_MAX];
        if (task_reference(&d, ref, sizeof ref, &e)) goto fail;
        task_gold_detail gr;
        int pref = task_gold_points(&d, ref, &gr);
        scores[TASK_N_KINDS_ALL][i] = pref / 1000.0;
        sum_words[TASK_N_KINDS_ALL] += gr.words;
        rng r;
        rng_init(&r, o->seed, rng_purpose(RNG_TEST, 2), (uint32_t)i);
        const char *texts[TASK_N_KINDS_ALL + 2];
        char kept[TASK_N_KINDS_ALL][TASK_SUMMARY_MAX];
        for (int k = 0; k < TASK_N_KINDS_ALL; k++) {
            if (task_summary(&d, k, &r, text, sizeof text, &e)) goto fail;
            memcpy(kept[k], text, sizeof text);
            task_gold_detail g;
            int p = task_gold_points(&d, text, &g);
            scores[k][i] = p / 1000.0;
            sum_words[k] += g.words;
            ref_wins[k] += task_gold_prefer(&d, ref, text) == 1 && p != pref;
            ref_ties[k] += p == pref;
        }
        texts[0] = d.text;
        texts[1] = ref;
        for (int k = 0; k < TASK_N_KINDS_ALL; k++) texts[2 + k] = kept[k];
        for (int j = 0; j < TASK_N_KINDS_ALL + 2; j++) {
            const char *p = texts[j];
            task_token t;
            while (task_next_token(&p, &t)) {
                if (t.type != TASK_TOK_WORD || t.n >= 24) continue;
                char w[24];
                for (size_t c = 0; c < t.n; c++)
                    w[c] = (char)(t.s[c] >= 'A' && t.s[c] <= 'Z' ? t.s[c] - 'A' + 'a' : t.s[c]);
                w[t.n] = '\0';
                int found = 0;
                for (int s = 0; s < n_seen && !found; s++) found = strcmp(seen[s], w) == 0;
                if (!found && n_seen < MAXW) memcpy(seen[n_seen++], w, 24);
                if (j == 0 && task_lookup(t.s, t.n, NULL) == TASK_C_UNKNOWN) n_unknown_doc++;
            }
        }
    }
    const char *const *fw;
    int n_fw = task_function_words(&fw);
    printf("task statistics, seed %llu, %ld %s documents\n\n", (unsigned long long)o->seed, n,
           task_split_name(split));
    printf("document words: mean %.1f, min %ld, max %ld; sentences:", (double)words_sum / n,
           words_min, words_max);
    for (int s = 1; s <= TASK_MAX_SENT; s++)
        if (sent_hist[s]) printf(" %d: %.0f%%", s, 100.0 * sent_hist[s] / n);
    printf("; with a time (5 key facts): %.0f%%\n", 100.0 * n_key5 / n);
    printf("distinct words in documents and summaries: %d (vocabulary: %d content lexemes, "
           "%d function words); unknown words in documents: %d\n\n",
           n_seen, TASK_N_LEXEMES, n_fw, n_unknown_doc);
    printf("%-10s %6s %7s %7s %7s %7s %7s %7s %7s  %s\n", "kind", "words", "mean", "sd", "min",
           "p10", "median", "p90", "max", "ref preferred (ties)");
    for (int k = 0; k <= TASK_N_KINDS_ALL; k++) {
        double *v = scores[k];
        double m = 0, s2 = 0;
        for (long i = 0; i < n; i++) m += v[i];
        m /= n;
        for (long i = 0; i < n; i++) s2 += (v[i] - m) * (v[i] - m);
        qsort(v, (size_t)n, sizeof *v, cmp_double);
        const char *name = k == TASK_N_KINDS_ALL ? "reference" : task_kind_name(k);
        printf("%-10s %6.1f %+7.3f %7.3f %+7.3f %+7.3f %+7.3f %+7.3f %+7.3f", name,
               (double)sum_words[k] / n, m, sqrt(s2 / n), v[0], v[n / 10], v[n / 2],
               v[(n * 9) / 10], v[n - 1]);
        if (k < TASK_N_KINDS_ALL)
            printf("  %5.1f%% (%.1f%%)", 100.0 * ref_wins[k] / n, 100.0 * ref_ties[k] / n);
        printf("\n");
    }
    /* the SFT data under the default mixture, and what always writing the reference gains */
    task_config c;
    task_config_default(&c);
    c.seed = o->seed;
    double sft_sum = 0, ref_win = 0;
    for (long i = 0; i < n; i++) {
        task_example ex;
        task_doc d;
        char ref[TASK_SUMMARY_MAX];
        if (task_sft_example(&c, split, i, 0, &ex, &e) ||
            task_doc_make(o->seed, split, i, &d, &e) || task_reference(&d, ref, sizeof ref, &e))
            goto fail;
        double m = task_gold_margin(&d, ref, ex.target);
        sft_sum += task_gold_score(&d, ex.target);
        ref_win += m > 0 ? 1.0 : m == 0 ? 0.5 : 0.0;
    }
    printf("\nSFT targets (default mixture): gold mean %+.3f; the reference beats them in %.1f%% "
           "(ties count half)\n",
           sft_sum / n, 100.0 * ref_win / n);
    /* the judge_sft comparisons */
    long np = n < 2000 ? n : 2000, first = 0, pk[TASK_N_KINDS_ALL] = {0};
    double msum = 0;
    for (long i = 0; i < np; i++) {
        task_pair p;
        if (task_gold_pair(&c, i, &p, &e)) goto fail;
        first += p.gold == 1;
        msum += fabs(p.margin);
        pk[p.kind_a]++, pk[p.kind_b]++;
    }
    printf("judge_sft comparisons (%ld): a preferred %.1f%%, mean |margin| %.3f, kinds:", np,
           100.0 * first / np, msum / np);
    for (int k = 0; k < TASK_N_KINDS_ALL; k++)
        printf(" %s %.0f%%", task_kind_name(k), 50.0 * pk[k] / np);
    printf("\n");
    for (int k = 0; k <= TASK_N_KINDS_ALL; k++) free(scores[k]);
    free(seen);
    return 0;
fail:
    fprintf(stderr, "rlaif task: %s\n", e.msg);
    for (int k = 0; k <= TASK_N_KINDS_ALL; k++) free(scores[k]);
    free(seen);
    return err_exit_status(e.code);
}

static int cmd_corpus(const opts *o) {
    rl_err e;
    err_clear(&e);
    task_config c;
    task_config_default(&c);
    c.seed = o->seed;
    c.n_docs[TASK_TRAIN] = o->n_train;
    FILE *f = o->out ? fopen(o->out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "rlaif task: cannot write '%s'\n", o->out);
        return 1;
    }
    int rc = task_corpus_write(&c, f, &e);
    if (o->out && fclose(f) != 0 && !rc) rc = err_set(&e, ERR_IO, "closing '%s' failed", o->out);
    if (rc) {
        fprintf(stderr, "rlaif task: %s\n", e.msg);
        return err_exit_status(rc);
    }
    return 0;
}

static int cmd_pairs(const opts *o) {
    rl_err e;
    err_clear(&e);
    task_config c;
    task_config_default(&c);
    c.seed = o->seed;
    long n = o->n < 0 ? 5 : o->n;
    for (long i = o->start; i < o->start + n; i++) {
        task_pair p;
        if (task_gold_pair(&c, i, &p, &e)) {
            fprintf(stderr, "rlaif task: %s\n", e.msg);
            return err_exit_status(e.code);
        }
        printf("pair %ld (train doc %ld): gold %d, margin %+.3f\n  1 [%s] %s\n  2 [%s] %s\n", i,
               p.doc_index, p.gold, p.margin, task_kind_name(p.kind_a), p.a,
               task_kind_name(p.kind_b), p.b);
    }
    return 0;
}

int cli_task(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return usage(argc < 2 ? stderr : stdout);
    opts o;
    if (!parse_opts(argc, argv, &o)) return 2;
    if (strcmp(argv[1], "sample") == 0) return cmd_sample(&o);
    if (strcmp(argv[1], "score") == 0) return cmd_score(&o);
    if (strcmp(argv[1], "stats") == 0) return cmd_stats(&o);
    if (strcmp(argv[1], "corpus") == 0) return cmd_corpus(&o);
    if (strcmp(argv[1], "pairs") == 0) return cmd_pairs(&o);
    fprintf(stderr, "rlaif task: unknown subcommand '%s'\n", argv[1]);
    return usage(stderr);
}
