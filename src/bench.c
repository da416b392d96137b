/* bench: `rlaif bench sgemm|train|decode`, throughput figures of this machine and this engine.
 * Each prints one "key: value" line per figure, its headline last (GFLOPS for sgemm, tokens/s
 * for train and decode). Timings are the best of several repetitions (the machines are shared
 * and noisy); the medians are printed too.
 * Not here: the PyTorch comparison and the table (tools/bench.sh, tools/bench_torch.py). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "blas.h"
#include "cli.h"
#include "kernels.h"
#include "log.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "sample.h"

typedef struct bench_opts {
    int dim, layers, heads, kv_heads, head_dim, ffn, vocab, seq, batch, prompt, new_tokens;
    int threads, n, reps;
    double seconds;
} bench_opts;

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rlaif bench: %s wants an integer in [%d, %d], not '%s'\n", flag, lo, hi,
                s);
        return 1;
    }
    *out = (int)v;
    return 0;
}

static int parse(int argc, char **argv, bench_opts *o) {
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, "rlaif bench: %s needs a value\n", f);
            return 1;
        }
        const char *v = argv[++i];
        struct {
            const char *name;
            int *dst, lo, hi;
        } ints[] = {{"--dim", &o->dim, 1, 1 << 16},
                    {"--layers", &o->layers, 1, 1024},
                    {"--heads", &o->heads, 1, 1024},
                    {"--kv-heads", &o->kv_heads, 1, 1024},
                    {"--head-dim", &o->head_dim, 2, 4096},
                    {"--ffn", &o->ffn, 1, 1 << 20},
                    {"--vocab", &o->vocab, 2, 1 << 24},
                    {"--seq", &o->seq, 1, 1 << 20},
                    {"--batch", &o->batch, 1, 1 << 16},
                    {"--prompt", &o->prompt, 1, 1 << 20},
                    {"--new", &o->new_tokens, 1, 1 << 20},
                    {"--threads", &o->threads, 1, 1024},
                    {"--n", &o->n, 16, 32768},
                    {"--reps", &o->reps, 1, 1000}};
        int found = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
            if (strcmp(f, ints[k].name) == 0) {
                if (parse_int(f, v, ints[k].lo, ints[k].hi, ints[k].dst)) return 1;
                found = 1;
            }
        if (!found && strcmp(f, "--seconds") == 0) {
            char *end;
            o->seconds = strtod(v, &end);
            if (*end || !(o->seconds > 0 && o->seconds < 1e6)) {
                fprintf(stderr, "rlaif bench: --seconds wants a positive number, not '%s'\n", v);
                return 1;
            }
            found = 1;
        }
        if (!found) {
            fprintf(stderr, "rlaif bench: unknown option '%s' (see rlaif bench --help)\n", f);
            return 1;
        }
    }
    return 0;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* kB on Linux */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_core(int threads) {
    printf("blas: OpenBLAS\n");
    printf("blas_core: %s (%s; OpenBLAS detected %s)\n", blas_core_name(), blas_core_origin(),
           blas_core_detected());
    printf("threads: %d\n", threads);
}

/* ------------------------------------------------------------------------ sgemm */

static int bench_sgemm(const bench_opts *o) {
    int n = o->n;
    size_t nn = (size_t)n * n;
    float *a = xmalloc_aligned(sizeof(float) * nn), *b = xmalloc_aligned(sizeof(float) * nn);
    float *c = xmalloc_aligned(sizeof(float) * nn);
    rng r;
    rng_init(&r, 1, RNG_TEST, 0);
    for (size_t i = 0; i < nn; i++) a[i] = rng_uniform(&r) - 0.5f, b[i] = rng_uniform(&r) - 0.5f;
    blas_gemm_nn(n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up: threads, pages */
    int reps = o->reps;
    double *t = xmalloc(sizeof(double) * reps), best = 1e30;
    for (int k = 0; k < reps; k++) {
        double t0 = log_now();
        blas_gemm_nn(n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[k] = log_now() - t0;
        best = fmin(best, t[k]);
    }
    double flops = 2.0 * n * (double)n * n;
    print_core(o->threads);
    printf("n: %d\n", n);
    printf("reps: %d\n", reps);
    printf("GFLOPS_median: %.1f\n", flops / median(t, reps) / 1e9);
    printf("GFLOPS: %.1f\n", flops / best / 1e9);
    free(a), free(b), free(c), free(t);
    return 0;
}

/* ------------------------------------------------------------------------ model set-up */

static int make_model(const bench_opts *o, int max_seq, model *m) {
    model_config c = {.dim = o->dim,
                      .n_layers = o->layers,
                      .n_heads = o->heads,
                      .n_kv_heads = o->kv_heads,
                      .head_dim = o->head_dim ? o->head_dim : o->dim / o->heads,
                      .ffn_dim = o->ffn,
                      .vocab_size = o->vocab,
                      .max_seq = max_seq,
                      .rope_theta = 10000.0f,
                      .norm_eps = 1e-5f};
    rl_err e = {0};
    if (model_create(m, &c, &e)) {
        fprintf(stderr, "rlaif bench: %s\n", e.msg);
        return 1;
    }
    model_init_weights(m, 1);
    return 0;
}

static void print_config(const bench_opts *o, const model *m) {
    const model_config *c = &m->cfg;
    printf("model: dim %d, layers %d, heads %d, kv-heads %d, head-dim %d, ffn %d, vocab %d\n",
           c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab_size);
    printf("params: %zu\n", m->n_params);
}

/* ------------------------------------------------------------------------ train */

static int bench_train(const bench_opts *o) {
    model m;
    if (make_model(o, o->seq, &m)) return 2;
    int B = o->batch, T = o->seq, N = B * T;
    model_alloc_grads(&m);
    model_acts a;
    rl_err e = {0};
    if (model_acts_create(&a, &m.cfg, B, T, &e)) {
        fprintf(stderr, "rlaif bench: %s\n", e.msg);
        return 2;
    }
    optim_config oc;
    optim_config_default(&oc);
    oc.lr = 1e-3f, oc.weight_decay = 0.1f;
    optim opt;
    if (optim_create(&opt, &m, &oc, &e)) {
        fprintf(stderr, "rlaif bench: %s\n", e.msg);
        return 2;
    }
    /* random tokens; targets are the next tokens (the last position predicts a random one) */
    int *tok = xmalloc(sizeof(int) * (N + 1));
    rng r;
    rng_init(&r, 1, RNG_DATA, 0);
    for (int i = 0; i <= N; i++) tok[i] = (int)rng_below(&r, (uint32_t)o->vocab);
    int *tgt = tok + 1;
    int max_steps = 100000;
    double *st = xmalloc(sizeof(double) * max_steps);
    int steps = 0;
    float loss0 = 0, loss = 0;
    double phase[4] = {0}; /* zero grads + forward, LM head, backward, AdamW */
    double t_start = log_now();
    for (int k = -1; k < max_steps; k++) { /* k = -1: warm-up step, not timed */
        double t0 = log_now();
        model_zero_grads(&m);
        if (model_forward(&m, &a, tok, B, T, &e)) {
            fprintf(stderr, "rlaif bench: %s\n", e.msg);
            return 1;
        }
        double t1 = log_now();
        loss = model_ce(&m, &a, tgt, NULL, 0.0f, 1);
        double t2 = log_now();
        model_backward(&m, &a, tok);
        double t3 = log_now();
        if (optim_step(&opt, &m, NULL, &e)) {
            fprintf(stderr, "rlaif bench: %s\n", e.msg);
            return 1;
        }
        double dt = log_now() - t0;
        if (k >= 0) {
            phase[0] += t1 - t0, phase[1] += t2 - t1, phase[2] += t3 - t2;
            phase[3] += t0 + dt - t3;
        }
        if (k < 0) {
            loss0 = loss;
            t_start = log_now();
            continue;
        }
        st[steps++] = dt;
        if (log_now() - t_start >= o->seconds && steps >= 2) break;
    }
    double best = st[0], total = 0;
    for (int k = 0; k < steps; k++) best = fmin(best, st[k]), total += st[k];
    double med = median(st, steps);
    const model_config *c = &m.cfg;
    double mm = (double)model_matmul_params(c);
    double attn = 3.0 * 2.0 * kern_attn_fwd_macs(T, c->head_dim) * B * c->n_heads * c->n_layers;
    double flops = 6.0 * mm * N + attn;
    double state_b = 4.0 * sizeof(float) * (double)m.n_params;
    double acts_b = (double)model_acts_bytes(c, B, T);
    print_core(o->threads);
    print_config(o, &m);
    printf("batch: %d x %d tokens\n", B, T);
    printf("steps: %d in %.1f s\n", steps, total);
    printf("loss: %.4f -> %.4f\n", loss0, loss);
    printf("step_seconds_median: %.4f\n", med);
    printf("step_seconds_best: %.4f\n", best);
    printf("step_split: forward %.0f%%, LM head fwd+bwd %.0f%%, backward %.0f%%, AdamW %.0f%%\n",
           100 * phase[0] / total, 100 * phase[1] / total, 100 * phase[2] / total,
           100 * phase[3] / total);
    printf("GFLOP_per_step: %.2f (matmul %.2f, attention %.2f)\n", flops / 1e9, 6.0 * mm * N / 1e9,
           attn / 1e9);
    printf("GFLOPS_median: %.1f\n", flops / med / 1e9);
    printf("GFLOPS: %.1f\n", flops / best / 1e9);
    printf("memory_theoretical_MiB: %.1f (params+grads+2 moments %.1f, activations %.1f)\n",
           (state_b + acts_b) / 1048576.0, state_b / 1048576.0, acts_b / 1048576.0);
    printf("peak_rss_MiB: %.1f\n", peak_rss_mib());
    printf("tokens/s_median: %.0f\n", N / med);
    printf("tokens/s: %.0f\n", N / best);
    free(tok), free(st);
    optim_free(&opt);
    model_acts_free(&a);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------------ decode */

static int bench_decode(const bench_opts *o) {
    model m;
    int B = o->batch, P = o->prompt, NEW = o->new_tokens;
    if (make_model(o, P + NEW, &m)) return 2;
    kvcache c;
    rl_err e = {0};
    if (kvcache_create(&c, &m.cfg, B, P + NEW, &e)) {
        fprintf(stderr, "rlaif bench: %s\n", e.msg);
        return 2;
    }
    int *prompts = xmalloc(sizeof(int) * (size_t)B * P);
    int *out = xmalloc(sizeof(int) * (size_t)B * NEW);
    rng r;
    rng_init(&r, 1, RNG_DATA, 0);
    for (size_t i = 0; i < (size_t)B * P; i++) prompts[i] = (int)rng_below(&r, (uint32_t)o->vocab);
    rng *streams = xmalloc(sizeof(rng) * B);
    gen_seq *seqs = xmalloc(sizeof(gen_seq) * B);
    /* temperature sampling as a policy would; no EOS, so every sequence makes NEW tokens */
    gen_config g = {.sp = {1.0f, 0, 0}, .max_new = NEW};
    int reps = o->reps;
    double *tt = xmalloc(sizeof(double) * reps), *tp = xmalloc(sizeof(double) * reps);
    double best_total = 1e30, best_gen = 1e30, best_pre = 1e30;
    long generated = 0;
    for (int k = -1; k < reps; k++) {
        for (int i = 0; i < B; i++) {
            kvcache_reset(&c, i);
            rng_init(&streams[i], 1, RNG_SAMPLE, (uint32_t)i);
            seqs[i] = (gen_seq){.prompt = prompts + (size_t)i * P,
                                .prompt_len = P,
                                .slot = i,
                                .r = &streams[i],
                                .out = out + (size_t)i * NEW};
        }
        /* prefill alone, timed apart, then the same prefill + generation */
        int slots_n = B;
        int *slots = xmalloc(sizeof(int) * B), *nn = xmalloc(sizeof(int) * B);
        for (int i = 0; i < B; i++) slots[i] = i, nn[i] = P;
        double t0 = log_now();
        if (model_step(&m, &c, slots_n, slots, nn, prompts, NULL, &e)) {
            fprintf(stderr, "rlaif bench: %s\n", e.msg);
            return 1;
        }
        double pre = log_now() - t0;
        for (int i = 0; i < B; i++) kvcache_reset(&c, i);
        free(slots), free(nn);
        t0 = log_now();
        if (sample_generate(&m, &c, seqs, B, &g, &e)) {
            fprintf(stderr, "rlaif bench: %s\n", e.msg);
            return 1;
        }
        double total = log_now() - t0;
        generated = 0;
        for (int i = 0; i < B; i++) generated += seqs[i].n_out;
        if (k < 0) continue; /* warm-up */
        tt[k] = total, tp[k] = pre;
        best_total = fmin(best_total, total);
        best_pre = fmin(best_pre, pre);
        best_gen = fmin(best_gen, total - pre);
    }
    double med_total = median(tt, reps), med_pre = median(tp, reps);
    print_core(o->threads);
    print_config(o, &m);
    printf("batch: %d sequences, prompt %d, new %d\n", B, P, NEW);
    printf("generated: %ld tokens\n", generated);
    printf("prefill_seconds: %.4f (%.0f prompt tokens/s)\n", best_pre, (double)B * P / best_pre);
    printf("total_seconds: %.4f (prefill + generation)\n", best_total);
    printf("tokens/s_with_prefill: %.1f\n", generated / best_total);
    printf("tokens/s_median: %.1f\n", generated / (med_total - med_pre));
    printf("tokens/s: %.1f\n", generated / best_gen);
    free(prompts), free(out), free(streams), free(seqs), free(tt), free(tp);
    kvcache_free(&c);
    model_free(&m);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlaif bench sgemm [--n 2048] [--reps 5] [--threads 1]\n"
            "       rlaif bench train --dim C --layers L --heads NH --kv-heads NKV --ffn FF\n"
            "                         --vocab V --seq T --batch B --seconds S [--threads 1]\n"
            "       rlaif bench decode --dim C --layers L --heads NH --kv-heads NKV --ffn FF\n"
            "                          --vocab V --batch B --prompt P --new N [--reps 3]\n"
            "                          [--threads 1]\n"
            "       rlaif bench judge [--model F] [--pairs N] ...   (rlaif bench judge --help)\n"
            "Model options default to dim 288, layers 6, heads 6, kv-heads 6, ffn 768, vocab\n"
            "32000 (head-dim = dim / heads). Each command prints key: value lines, the headline\n"
            "last: GFLOPS for sgemm, tokens/s for train and decode (best of the repetitions).\n");
}

int cli_bench(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "judge") == 0) return cli_bench_judge(argc, argv); /* src/bench_judge.c */
    bench_opts o = {.dim = 288,
                    .layers = 6,
                    .heads = 6,
                    .kv_heads = 6,
                    .ffn = 768,
                    .vocab = 32000,
                    .seq = 256,
                    .batch = 8,
                    .prompt = 64,
                    .new_tokens = 128,
                    .threads = 1,
                    .n = 2048,
                    .reps = 0,
                    .seconds = 20};
    if (parse(argc, argv, &o)) return 2;
    blas_set_threads(o.threads);
    if (strcmp(argv[1], "sgemm") == 0) {
        if (!o.reps) o.reps = 5;
        return bench_sgemm(&o);
    }
    if (!o.reps) o.reps = 3;
    if (o.heads % o.kv_heads || (!o.head_dim && o.dim % o.heads)) {
        fprintf(stderr, "rlaif bench: heads must divide dim and kv-heads must divide heads\n");
        return 2;
    }
    if (strcmp(argv[1], "train") == 0) return bench_train(&o);
    if (strcmp(argv[1], "decode") == 0) return bench_decode(&o);
    fprintf(stderr, "rlaif bench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
