/* bench_judge: `rlaif bench judge`, the judge's throughput in pairs/s (both orders of every
 * pair) with and without reuse of the shared prefix's KV cache, on the built-in task's prompt
 * (the base preamble, about 30 tokens) and on a paper-like prompt (a detailed preamble of about
 * 300 tokens, input/preamble_detailed.txt).
 *
 * The model is the run's judge (--model FILE.gguf) or, by default, a random one of the deck's
 * default judge dimensions with a tokenizer learned from the task corpus: throughput does not
 * depend on the weights. Pairs are two summaries of different kinds of test documents (no gold
 * rater involved). Each configuration runs --reps times after a warm-up; the best and the
 * median are printed.
 * Also: --write-pairs FILE writes --pairs such pairs as JSONL (label.source: file), for the
 * label stage's scaling runs (tools/bench_label.sh), and --write-model FILE the random judge. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cli.h"
#include "judge.h"
#include "log.h"
#include "task_lm.h"

typedef struct bj_opts {
    const char *model, *preamble_file, *write_pairs, *write_model;
    int pairs, batch, reps, threads, max_seq, eval;
} bj_opts;

static void bj_usage(FILE *f) {
    fprintf(
        f, "usage: rlaif bench judge [--model JUDGE.gguf] [--pairs 64] [--batch 8] [--reps 3]\n"
           "                         [--preamble-file input/preamble_detailed.txt] [--threads 1]\n"
           "       rlaif bench judge --write-pairs FILE.jsonl [--pairs N]\n"
           "       rlaif bench judge --write-model FILE.gguf   (the random judge, for label runs)\n"
           "       rlaif bench judge --model JUDGE.gguf --eval N   alignment with the gold rater\n"
           "                 on N held-out comparisons: both orders / one order, with and without "
           "CoT\n"
           "Pairs/s of the judge (both orders per pair) with and without prefix-cache reuse, on\n"
           "the built-in task's prompt and on a paper-like prompt with a ~300-token preamble.\n"
           "Without --model: a random judge of the default deck's dimensions (dim 128, 3 layers,\n"
           "4 heads, ffn 384) and a tokenizer learned from the task corpus.\n");
}

/* Texts of pair i: a test document and summaries of two different kinds. */
static int bench_pair(const task_config *tc, long i, task_doc *d, char *a, char *b, rl_err *e) {
    int rc = task_doc_make(tc->seed, TASK_TEST, i % tc->n_docs[TASK_TEST], d, e);
    if (rc) return rc;
    rng r;
    rng_init(&r, tc->seed, rng_purpose(RNG_TEST, 0xbe), (uint32_t)i);
    int ka = (int)rng_below(&r, TASK_N_KINDS),
        kb = (ka + 1 + (int)rng_below(&r, TASK_N_KINDS - 1)) % TASK_N_KINDS;
    if ((rc = task_summary(d, ka, &r, a, TASK_SUMMARY_MAX, e))) return rc;
    return task_summary(d, kb, &r, b, TASK_SUMMARY_MAX, e);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int write_pairs(const bj_opts *o) {
    task_config tc;
    task_config_default(&tc);
    FILE *f = fopen(o->write_pairs, "w");
    if (!f) {
        fprintf(stderr, "rlaif bench judge: cannot write %s\n", o->write_pairs);
        return 1;
    }
    rl_err e = {0};
    for (long i = 0; i < o->pairs; i++) {
        task_doc d;
        char a[TASK_SUMMARY_MAX], b[TASK_SUMMARY_MAX];
        if (bench_pair(&tc, i, &d, a, b, &e)) {
            fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
            fclose(f);
            return 1;
        }
        fprintf(f, "{\"id\": %ld, \"context\": ", i);
        json_str(f, task_context(&d));
        fputs(", \"a\": ", f);
        json_str(f, a);
        fputs(", \"b\": ", f);
        json_str(f, b);
        fputs("}\n", f);
    }
    fclose(f);
    printf("wrote %d pairs to %s\n", o->pairs, o->write_pairs);
    return 0;
}

/* Alignment of the judge with the gold rater on n held-out comparisons (test documents, drawn
 * like judge_sft's): evaluation, the only gold use of the benchmark. */
static int bench_judge_eval_alignment(const model *m, const tokenizer *tok, const judge_opts *jo,
                                      int n, int batch, double *agree, double *agree1, double *same,
                                      double *secs, rl_err *e) {
    task_config tc;
    task_config_default(&tc);
    judge *j;
    int rc = judge_create(&j, m, tok, jo, batch, e);
    if (rc) return rc;
    judge_pair *pairs = xcalloc((size_t)n, sizeof *pairs);
    judge_label *l = xcalloc((size_t)n, sizeof *l);
    task_pair *tp = xcalloc((size_t)n, sizeof *tp);
    char **ctx = xcalloc((size_t)n, sizeof *ctx);
    for (int i = 0; i < n && !rc; i++) {
        task_doc d;
        rc = task_lm_eval_pair(&tc, i, &d, &tp[i], e);
        if (rc) break;
        ctx[i] = xstrdup(task_context(&d));
        pairs[i] = (judge_pair){1000000000LL + i, ctx[i], tp[i].a, tp[i].b};
    }
    double t0 = log_now();
    if (!rc) rc = judge_label_pairs(j, pairs, n, l, e);
    *secs = log_now() - t0;
    double s[3] = {0, 0, 0};
    for (int i = 0; i < n && !rc; i++) {
        int ga = tp[i].gold == 1;
        s[0] += l[i].p == 0.5 ? 0.5 : (l[i].p > 0.5) == ga;
        s[1] += l[i].p_ab == 0.5 ? 0.5 : (l[i].p_ab > 0.5) == ga;
        s[2] += isnan(l[i].p_ba) ? 0 : judge_same_position(&l[i]);
        judge_label_free(&l[i]);
    }
    *agree = s[0] / n, *agree1 = s[1] / n, *same = s[2] / n;
    for (int i = 0; i < n; i++) free(ctx[i]);
    free(ctx), free(tp), free(l), free(pairs);
    judge_free(j);
    return rc;
}

static int eval_table(const bj_opts *o, const model *m, const tokenizer *tok, judge_opts *base) {
    rl_err e = {0};
    printf("judge alignment with the gold rater on %d held-out comparisons (test documents)\n\n",
           o->eval);
    printf("%-34s %10s %10s %10s %8s\n", "prompt", "debiased", "one order", "same pos", "seconds");
    struct {
        const char *name;
        int cot;
        double temp;
        int samples;
        int mode;
    } v[4] = {{"base preamble", 0, 0, 1, JUDGE_PREFERENCE},
              {"base + chain of thought (greedy)", 1, 0, 1, JUDGE_PREFERENCE},
              {"base + CoT, 4 sampled (T 0.7)", 1, 0.7, 4, JUDGE_PREFERENCE},
              {"likelihood (no prompt, no positions)", 0, 0, 1, JUDGE_LIKELIHOOD}};
    for (int k = 0; k < 4; k++) {
        base->mode = v[k].mode;
        base->cot = v[k].cot;
        base->cot_temperature = v[k].temp;
        base->cot_samples = v[k].samples;
        double a, a1, sp, secs;
        if (bench_judge_eval_alignment(m, tok, base, o->eval, o->batch, &a, &a1, &sp, &secs, &e)) {
            fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
            return 1;
        }
        printf("%-34s %10.3f %10.3f %10.3f %8.1f\n", v[k].name, a, a1, sp, secs);
        fflush(stdout);
    }
    return 0;
}

static int cmp_d(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Best and median pairs/s of one configuration. */
static int run_config(const model *m, const tokenizer *tok, const judge_opts *jo, const bj_opts *o,
                      judge_pair *pairs, double *best, double *med, double *reused, int *prompt_len,
                      rl_err *e) {
    judge *j;
    int rc = judge_create(&j, m, tok, jo, o->batch, e);
    if (rc) return rc;
    judge_label *l = xcalloc((size_t)o->pairs, sizeof *l);
    double *t = xcalloc((size_t)o->reps, sizeof *t);
    for (int k = -1; k < o->reps && !rc; k++) {
        judge_reset_stats(j);
        double t0 = log_now();
        rc = judge_label_pairs(j, pairs, o->pairs, l, e);
        double dt = log_now() - t0;
        for (int i = 0; i < o->pairs; i++) judge_label_free(&l[i]);
        if (k >= 0) t[k] = dt;
        const judge_stats *st = judge_get_stats(j);
        *reused = (double)st->tokens_reused / (double)(st->tokens_reused + st->tokens_computed);
        *prompt_len =
            (int)((st->tokens_reused + st->tokens_computed) / (st->prompts ? st->prompts : 1));
    }
    qsort(t, (size_t)o->reps, sizeof *t, cmp_d);
    *best = o->pairs / t[0];
    *med = o->pairs / t[o->reps / 2];
    free(t);
    free(l);
    judge_free(j);
    return rc;
}

int cli_bench_judge(int argc, char **argv) {
    bj_opts o = {.model = NULL,
                 .preamble_file = "input/preamble_detailed.txt",
                 .pairs = 64,
                 .batch = 8,
                 .reps = 3,
                 .threads = 1,
                 .max_seq = 640};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bj_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "rlaif bench judge: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int iv = atoi(v);
        if (!strcmp(a, "--model"))
            o.model = v;
        else if (!strcmp(a, "--preamble-file"))
            o.preamble_file = v;
        else if (!strcmp(a, "--write-pairs"))
            o.write_pairs = v;
        else if (!strcmp(a, "--write-model"))
            o.write_model = v;
        else if (!strcmp(a, "--pairs") && iv >= 1)
            o.pairs = iv;
        else if (!strcmp(a, "--batch") && iv >= 1 && iv <= 64)
            o.batch = iv;
        else if (!strcmp(a, "--reps") && iv >= 1)
            o.reps = iv;
        else if (!strcmp(a, "--eval") && iv >= 1)
            o.eval = iv;
        else if (!strcmp(a, "--threads") && iv >= 1)
            o.threads = iv;
        else {
            fprintf(stderr, "rlaif bench judge: bad option %s %s\n", a, v);
            bj_usage(stderr);
            return 2;
        }
    }
    if (o.write_pairs) return write_pairs(&o);
    blas_set_threads(o.threads);
    rl_err e = {0};
    task_config tc;
    task_config_default(&tc);

    /* the detailed preamble */
    judge_opts base, paper;
    judge_opts_default(&base);
    judge_opts_default(&paper);
    FILE *pf = fopen(o.preamble_file, "rb");
    if (!pf) {
        fprintf(stderr,
                "rlaif bench judge: cannot open %s (run from the source tree or pass "
                "--preamble-file)\n",
                o.preamble_file);
        return 2;
    }
    char *text = xcalloc(1 << 16, 1);
    size_t got = fread(text, 1, (1 << 16) - 1, pf);
    fclose(pf);
    while (got && (text[got - 1] == '\n' || text[got - 1] == ' ')) text[--got] = '\0';
    free(paper.preamble);
    paper.preamble = text;

    model m;
    tokenizer *tok = NULL;
    int rc;
    double t_setup = log_now();
    if (o.model) {
        rc = task_lm_load_model(o.model, 0, &m, &tok, &e);
        if (!rc && m.cfg.max_seq < 2048 && !o.eval) {
            /* the paper-like prompt needs a longer context than the model was trained for: the
             * same weights with longer rotary tables (throughput does not depend on quality) */
            model_config mc = m.cfg;
            mc.max_seq = 2048; /* its tokenizer may not know the detailed preamble's words */
            model big;
            rc = model_create(&big, &mc, &e);
            if (!rc) rc = model_copy_weights(&big, &m, &e);
            model_free(&m);
            m = big;
        }
    } else {
        char **t1, **t2;
        int n1, n2;
        judge_opts_texts(&base, &t1, &n1);
        judge_opts_texts(&paper, &t2, &n2);
        char **all = xcalloc((size_t)(n1 + n2), sizeof *all);
        memcpy(all, t1, sizeof(char *) * (size_t)n1);
        memcpy(all + n1, t2, sizeof(char *) * (size_t)n2);
        rc = task_lm_train_tokenizer(&tc, (const char *const *)all, n1 + n2, 500, 1024, &tok, &e);
        judge_texts_free(t1, n1);
        judge_texts_free(t2, n2);
        free(all);
        if (!rc) {
            char empty[1] = "";
            config_model cm = {.gguf = empty,
                               .dim = 128,
                               .layers = 3,
                               .heads = 4,
                               .kv_heads = 4,
                               .ffn = 384,
                               .max_seq = o.max_seq,
                               .rope_theta = 10000};
            model_config mc;
            task_lm_model_config(&cm, tokenizer_n_vocab(tok), &mc);
            rc = model_create(&m, &mc, &e);
            if (!rc) model_init_weights(&m, 1);
        }
    }
    if (rc) {
        fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
        return 1;
    }
    t_setup = log_now() - t_setup;
    if (o.write_model) {
        rc = task_lm_save_model(o.write_model, "rlaif random judge (bench)", &m, tok, &e);
        if (rc)
            fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
        else
            printf("wrote the random judge (%zu parameters) to %s\n", m.n_params, o.write_model);
        model_free(&m);
        tokenizer_free(tok);
        judge_opts_free(&base);
        judge_opts_free(&paper);
        return rc ? 1 : 0;
    }
    if (o.eval) {
        if (!o.model) {
            fprintf(stderr, "rlaif bench judge: --eval needs --model (a trained judge)\n");
            return 2;
        }
        rc = eval_table(&o, &m, tok, &base);
        judge_opts_free(&base);
        judge_opts_free(&paper);
        model_free(&m);
        tokenizer_free(tok);
        return rc;
    }
    judge_pair *pairs = xcalloc((size_t)o.pairs, sizeof *pairs);
    char **txt = xcalloc((size_t)o.pairs * 3, sizeof *txt);
    for (int i = 0; i < o.pairs; i++) {
        task_doc d;
        char a[TASK_SUMMARY_MAX], b[TASK_SUMMARY_MAX];
        if (bench_pair(&tc, i, &d, a, b, &e)) {
            fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
            return 1;
        }
        txt[3 * i] = xstrdup(task_context(&d));
        txt[3 * i + 1] = xstrdup(a);
        txt[3 * i + 2] = xstrdup(b);
        pairs[i] = (judge_pair){i, txt[3 * i], txt[3 * i + 1], txt[3 * i + 2]};
    }
    printf("blas: OpenBLAS %s, threads %d\n", blas_core_name(), o.threads);
    printf("judge: %s, C %d, L %d, NH %d, FF %d, V %d, %zu parameters (setup %.1f s)\n",
           o.model ? o.model : "random", m.cfg.dim, m.cfg.n_layers, m.cfg.n_heads, m.cfg.ffn_dim,
           m.cfg.vocab_size, m.n_params, t_setup);
    printf("pairs: %d (both orders each), batch %d, best of %d (median)\n\n", o.pairs, o.batch,
           o.reps);
    printf("%-28s %8s %10s %12s %12s %8s\n", "prompt", "reuse", "tokens/p", "pairs/s", "median",
           "reused");
    judge_opts *cfgs[2] = {&base, &paper};
    const char *names[2] = {"built-in (base preamble)", "paper-like (~300-tok preamble)"};
    for (int c = 0; c < 2 && !rc; c++) {
        double best[2], med[2];
        for (int reuse = 0; reuse < 2 && !rc; reuse++) {
            cfgs[c]->reuse_prefix = reuse;
            double share = 0;
            int plen = 0;
            rc = run_config(&m, tok, cfgs[c], &o, pairs, &best[reuse], &med[reuse], &share, &plen,
                            &e);
            if (rc) break;
            printf("%-28s %8s %10d %12.1f %12.1f %7.0f%%\n", names[c], reuse ? "on" : "off", plen,
                   best[reuse], med[reuse], 100 * share);
            fflush(stdout);
        }
        if (!rc)
            printf("%-28s %8s %10s %11.2fx %11.2fx\n", names[c], "speedup", "", best[1] / best[0],
                   med[1] / med[0]);
    }
    if (rc) fprintf(stderr, "rlaif bench judge: %s\n", e.msg);
    for (int i = 0; i < 3 * o.pairs; i++) free(txt[i]);
    free(txt), free(pairs);
    judge_opts_free(&base);
    judge_opts_free(&paper);
    model_free(&m);
    tokenizer_free(tok);
    return rc ? 1 : 0;
}
