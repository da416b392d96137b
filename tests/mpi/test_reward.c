/* reward: pairwise losses (against finite differences and each other), data-parallel training
 * (one process with batch B and R ranks with B/R each reach the same parameters after several
 * steps, <= 1e-6 relative), validation figures independent of the rank count, the folded
 * normalisation (mean 0, sd 1), and the scoring service (every rank but 0 a client of rank 0,
 * or several servers; scores equal local scoring bit for bit; throughput printed).
 * mpi-np: 2 3 */
#define RLAIF_MPI_TEST
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "log.h"
#include "model.h"
#include "reward.h"
#include "rng.h"

static const int V = 37, MAXSEQ = 40;

static void make(model *m, uint64_t seed) {
    model_config c = {.dim = 32,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = 2,
                      .head_dim = 8,
                      .ffn_dim = 48,
                      .vocab_size = V,
                      .max_seq = MAXSEQ,
                      .rope_theta = 100.0f,
                      .norm_eps = 1e-5f,
                      .scalar_head = 1};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, seed);
}

/* n pairs of random sequences of 5..30 tokens whose label leans towards the sequence with more
 * small token ids, so that there is something to learn. */
static void make_data(reward_data *d, int n) {
    reward_data_alloc(d, n);
    rng r;
    rng_init(&r, 11, RNG_TEST, 1);
    for (int i = 0; i < n; i++) {
        int la = 5 + (int)rng_below(&r, 26), lb = 5 + (int)rng_below(&r, 26);
        d->a[i] = malloc(sizeof(int32_t) * (size_t)la);
        d->b[i] = malloc(sizeof(int32_t) * (size_t)lb);
        int ca = 0, cb = 0;
        for (int k = 0; k < la; k++) d->a[i][k] = (int32_t)rng_below(&r, V), ca += d->a[i][k] < 10;
        for (int k = 0; k < lb; k++) d->b[i][k] = (int32_t)rng_below(&r, V), cb += d->b[i][k] < 10;
        d->len_a[i] = la, d->len_b[i] = lb;
        double fa = (double)ca / la, fb = (double)cb / lb;
        d->p[i] = 1.0 / (1.0 + exp(-8.0 * (fa - fb)));
        if (i % 7 == 3) d->p[i] = 0.5; /* some ties */
        d->prompt_id[i] = i / 2;
    }
}

static void test_pair_losses(void **state) {
    (void)state;
    const double ds[] = {-3.0, -0.4, 0.0, 0.7, 5.0};
    const double ps[] = {0.0, 0.2, 0.5, 0.9, 1.0};
    for (int kind = 0; kind < 3; kind++)
        for (size_t i = 0; i < 5; i++)
            for (size_t j = 0; j < 5; j++) {
                double g, gp, gm, h = 1e-6;
                double l = reward_pair_loss(kind, ds[i], ps[j], 0.7, &g);
                double lp = reward_pair_loss(kind, ds[i] + h, ps[j], 0.7, &gp);
                double lm = reward_pair_loss(kind, ds[i] - h, ps[j], 0.7, &gm);
                assert_true(isfinite(l) && l >= 0);
                assert_close(g, (lp - lm) / (2 * h), 1e-5, 1e-8);
            }
    /* soft CE with a hard label is Bradley-Terry; bt_margin with margin 0 too */
    for (size_t i = 0; i < 5; i++) {
        double g1, g2, g3;
        double l1 = reward_pair_loss(REWARD_SOFT_CE, ds[i], 1.0, 0, &g1);
        double l2 = reward_pair_loss(REWARD_BT, ds[i], 0.8, 0, &g2);
        double l3 = reward_pair_loss(REWARD_BT_MARGIN, ds[i], 0.8, 0.0, &g3);
        assert_close(l1, l2, 1e-12, 1e-15);
        assert_close(l2, l3, 1e-12, 1e-15);
        assert_close(g1, g2, 1e-12, 1e-15);
    }
    /* by hand: soft CE at d = 0 is log 2 whatever p; gradient s(0) - p = 0.5 - p */
    double g;
    assert_close(reward_pair_loss(REWARD_SOFT_CE, 0.0, 0.3, 0, &g), log(2.0), 1e-12, 0);
    assert_close(g, 0.2, 1e-12, 0);
    /* bt_margin, p = 0.9 (y = 1, m = 0.5 * 0.8 = 0.4), d = 1: -log s(0.6) */
    double l = reward_pair_loss(REWARD_BT_MARGIN, 1.0, 0.9, 0.5, &g);
    assert_close(l, log1p(exp(-0.6)), 1e-12, 0);
    assert_close(g, -1.0 / (1.0 + exp(0.6)), 1e-12, 0);
    /* a tie carries nothing under bt */
    assert_close(reward_pair_loss(REWARD_BT, 2.0, 0.5, 0, &g), 0.0, 0, 0);
    assert_true(g == 0);
    /* large |d| stays finite */
    assert_true(isfinite(reward_pair_loss(REWARD_SOFT_CE, 800.0, 0.0, 0, &g)));
    assert_close(g, 1.0, 1e-12, 0);
}

static void train(model *m, const reward_data *d, int batch, long steps, MPI_Comm comm,
                  double *last_loss) {
    reward_train_cfg c = {
        .loss = REWARD_SOFT_CE, .margin = 0, .batch = batch, .steps = steps, .seed = 99};
    optim_config_default(&c.optim);
    c.optim.lr = 2e-3f, c.optim.weight_decay = 0.01f, c.optim.grad_clip = 1.0f;
    c.optim.warmup_steps = 2;
    reward_trainer t;
    rl_err e = {0};
    if (reward_trainer_init(&t, m, d, &c, comm, &e)) fail_msg("%s", e.msg);
    reward_step_stats st;
    for (long s = 0; s < steps; s++)
        if (reward_trainer_step(&t, comm, &st, &e)) fail_msg("%s", e.msg);
    assert_int_equal(t.opt.step, steps);
    if (last_loss) *last_loss = st.loss;
    reward_trainer_free(&t);
}

static double rel_diff(const model *a, const model *b) {
    double dd = 0, nn = 0;
    for (size_t j = 0; j < a->n_params; j++) {
        double x = (double)a->params[j] - b->params[j];
        dd += x * x, nn += (double)b->params[j] * b->params[j];
    }
    return sqrt(dd / nn);
}

static void test_data_parallel(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    reward_data d;
    make_data(&d, 120);
    int nv = reward_data_split(&d, 0.15, 5);
    assert_true(nv > 5 && nv < 40);
    const int B = 12; /* a multiple of 2, 3 and 4 ranks */
    const long steps = 6;
    model single, dp, init;
    make(&single, 3), make(&dp, 3), make(&init, 3);
    double l1, l2;
    train(&single, &d, B, steps, MPI_COMM_SELF, &l1);
    train(&dp, &d, B, steps, MPI_COMM_WORLD, &l2);
    double rel = rel_diff(&dp, &single), moved = rel_diff(&single, &init);
    if (rank == 0)
        printf("# measured: reward training, 1 rank with batch %d vs %d ranks with %d each, %ld "
               "steps: relative parameter difference %.2e (the steps moved them %.2e); final "
               "losses %.6f vs %.6f\n",
               B, size, B / size, steps, rel, moved, l1, l2);
    assert_true(moved > 1e-3);
    assert_true(rel <= 1e-6);
    assert_close(l2, l1, 1e-5, 0);

    /* validation figures do not depend on the rank count */
    reward_scorer sc = {0};
    reward_val_stats v1, v2;
    rl_err e = {0};
    int8_t *ref = calloc((size_t)d.n, 1);
    for (int i = 0; i < d.n; i++) ref[i] = (int8_t)(d.len_a[i] > d.len_b[i] ? 1 : 2);
    const int8_t *refs[REWARD_N_REFS] = {ref, NULL};
    if (reward_validate(&single, &sc, &d, refs, 5, MPI_COMM_SELF, &v1, &e)) fail_msg("%s", e.msg);
    if (reward_validate(&single, &sc, &d, refs, 5, MPI_COMM_WORLD, &v2, &e)) fail_msg("%s", e.msg);
    assert_int_equal((int)v1.n, nv);
    assert_int_equal((int)v2.n, nv);
    assert_close(v2.acc_label, v1.acc_label, 1e-12, 0);
    assert_close(v2.acc_ref[0], v1.acc_ref[0], 1e-12, 0);
    assert_true(v1.n_ref[1] == 0);
    assert_close(v2.loss, v1.loss, 1e-6, 0);
    assert_close(v2.mean, v1.mean, 1e-6, 1e-9);
    assert_true(v1.acc_label >= 0 && v1.acc_label <= 1);

    /* normalisation folded into the head: mean 0, sd 1 over the same responses */
    double mean, sd;
    if (reward_norm_stats(&single, &sc, &d, 100, 7, MPI_COMM_WORLD, &mean, &sd, &e))
        fail_msg("%s", e.msg);
    reward_fold_norm(&single, mean, sd);
    double m2, sd2;
    if (reward_norm_stats(&single, &sc, &d, 100, 7, MPI_COMM_WORLD, &m2, &sd2, &e))
        fail_msg("%s", e.msg);
    if (rank == 0)
        printf("# normalisation: raw mean %.4f sd %.4f -> %.2e, %.6f\n", mean, sd, m2, sd2);
    assert_close(m2, 0.0, 0, 1e-5);
    assert_close(sd2, 1.0, 1e-5, 0);

    free(ref);
    reward_scorer_free(&sc);
    model_free(&single), model_free(&dp), model_free(&init);
    reward_data_free(&d);
}

typedef struct server_ctx {
    const model *m;
    reward_scorer sc;
} server_ctx;

static int serve_fn(void *user, int n, const int32_t *const *seqs, const int *lens,
                    const int *plens, float *scores, rl_err *e) {
    server_ctx *s = user;
    for (int i = 0; i < n; i++) assert_int_equal(plens[i], lens[i] / 2);
    return reward_score(s->m, &s->sc, n, seqs, lens, 64, scores, e);
}

static int serve_fn_plain(void *user, int n, const int32_t *const *seqs, const int *lens,
                          const int *plens, float *scores, rl_err *e) {
    (void)plens;
    server_ctx *s = user;
    return reward_score(s->m, &s->sc, n, seqs, lens, 64, scores, e);
}

/* Servers are world ranks [0, n_servers); the others are clients of server (rank % n_servers). */
static void run_service(int n_servers) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size <= n_servers) return; /* needs a client besides the servers */
    model m;
    make(&m, 8);
    reward_data d;
    make_data(&d, 64);
    rl_err e = {0};
    if (rank < n_servers) {
        int clients[8], nc = 0;
        for (int r = n_servers; r < size; r++)
            if (r % n_servers == rank) clients[nc++] = r;
        server_ctx s = {.m = &m};
        reward_serve_stats st;
        if (reward_serve(clients, nc, serve_fn, &s, &st, &e)) fail_msg("%s", e.msg);
        printf("# measured: scoring service (%d server%s, %d clients): %.0f sequences/s, %.0f "
               "tokens/s over %.2f s wall (%.0f%% busy)\n",
               n_servers, n_servers > 1 ? "s" : "", size - n_servers,
               st.sequences / st.wall_seconds, st.tokens / st.wall_seconds, st.wall_seconds,
               100 * st.busy_seconds / st.wall_seconds);
        assert_int_equal(st.sequences, 8L * 64 * nc);
        reward_scorer_free(&s.sc);
    } else {
        int server = rank % n_servers;
        const int32_t **seqs = malloc(sizeof *seqs * 64);
        int lens[64];
        for (int i = 0; i < 64; i++) seqs[i] = d.a[i], lens[i] = d.len_a[i];
        float got[64], want[64];
        int plens[64];
        for (int i = 0; i < 64; i++) plens[i] = lens[i] / 2;
        reward_scorer sc = {0};
        if (reward_score(&m, &sc, 64, seqs, lens, 64, want, &e)) fail_msg("%s", e.msg);
        for (int rep = 0; rep < 8; rep++) {
            reward_request rq;
            if (reward_client_send(&rq, server, 64, seqs, lens, plens, &e)) fail_msg("%s", e.msg);
            if (reward_client_recv(&rq, 64, got, &e)) fail_msg("%s", e.msg);
            for (int i = 0; i < 64; i++) assert_true(got[i] == want[i]);
        }
        if (reward_client_done(server, &e)) fail_msg("%s", e.msg);
        free(seqs);
        reward_scorer_free(&sc);
    }
    model_free(&m);
    reward_data_free(&d);
    /* a client that is done may not talk to its server again until that server's session
     * ended: the next test starts one */
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_service_one_server(void **state) {
    (void)state;
    run_service(1);
}
static void test_service_two_servers(void **state) {
    (void)state;
    run_service(2);
}

/* make bench (tools/bench_rl.sh sets RLAIF_BENCH_SCORE): the scoring service at the
 * quickstart's size (d128 L4 V1006, 56-token sequences, requests of 64) against scoring the
 * same sequences in-process on the server rank. */
static void test_service_bench(void **state) {
    (void)state;
    if (!getenv("RLAIF_BENCH_SCORE")) return;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    model_config c = {.dim = 128,
                      .n_layers = 4,
                      .n_heads = 4,
                      .n_kv_heads = 4,
                      .head_dim = 32,
                      .ffn_dim = 384,
                      .vocab_size = 1006,
                      .max_seq = 192,
                      .rope_theta = 10000.0f,
                      .norm_eps = 1e-5f,
                      .scalar_head = 1};
    model m;
    rl_err e = {0};
    if (model_create(&m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(&m, 1);
    enum { N = 64, L = 56, REQ = 16 };
    int32_t *buf = malloc(sizeof(int32_t) * N * L);
    const int32_t *seqs[N];
    int lens[N], plens[N];
    rng r;
    rng_init(&r, 2, RNG_TEST, 0);
    for (int i = 0; i < N * L; i++) buf[i] = (int32_t)rng_below(&r, 1006);
    for (int i = 0; i < N; i++) seqs[i] = buf + i * L, lens[i] = L - (i % 8), plens[i] = 44;
    float scores[N];
    if (rank == 0) {
        /* in-process reference, then serve */
        reward_scorer sc = {0};
        reward_score(&m, &sc, N, seqs, lens, N, scores, &e); /* warm-up */
        double t0 = log_now();
        for (int k = 0; k < REQ; k++) reward_score(&m, &sc, N, seqs, lens, N, scores, &e);
        double local = REQ * N / (log_now() - t0);
        int clients[64], nc = 0;
        for (int q = 1; q < size; q++) clients[nc++] = q;
        server_ctx s = {.m = &m};
        reward_serve_stats st;
        if (reward_serve(clients, nc, serve_fn_plain, &s, &st, &e)) fail_msg("%s", e.msg);
        printf("# bench score_local_seqs_per_s: %.0f\n", local);
        printf("# bench score_service_seqs_per_s: %.0f\n", st.sequences / st.wall_seconds);
        printf("# bench score_service_tokens_per_s: %.0f\n", st.tokens / st.wall_seconds);
        printf("# bench score_service_busy: %.3f\n", st.busy_seconds / st.wall_seconds);
        printf("# bench score_clients: %d\n", nc);
        reward_scorer_free(&sc);
        reward_scorer_free(&s.sc);
    } else {
        for (int k = 0; k < REQ; k++) {
            reward_request rq;
            if (reward_client_send(&rq, 0, N, seqs, lens, plens, &e) ||
                reward_client_recv(&rq, N, scores, &e))
                fail_msg("%s", e.msg);
        }
        if (reward_client_done(0, &e)) fail_msg("%s", e.msg);
    }
    free(buf);
    model_free(&m);
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_losses),        cmocka_unit_test(test_data_parallel),
        cmocka_unit_test(test_service_one_server), cmocka_unit_test(test_service_two_servers),
        cmocka_unit_test(test_service_bench),
    };
    return mpi_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], "reward");
}
