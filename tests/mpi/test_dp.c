/* data parallel: ranks that each train on their share of a batch, averaging gradients with
 * model_allreduce_grads, reach after 3 AdamW steps the parameters one process reaches on the
 * whole batch (<= 1e-6 relative, see run()), also with uneven loss masks (global denominator);
 * and the chunked allreduce averages correctly across chunk boundaries. No q/k/v biases here:
 * a key bias is nearly softmax-invariant, its gradient is float noise (the PyTorch test covers
 * biases).
 * mpi-np: 2 */
#define RLAIF_MPI_TEST
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "model.h"
#include "optim.h"
#include "rng.h"

static const int B = 4, T = 12;

static void make(model *m) {
    model_config c = {.dim = 32,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = 2,
                      .head_dim = 8,
                      .ffn_dim = 64,
                      .vocab_size = 41,
                      .max_seq = 16,
                      .rope_theta = 100.0f,
                      .norm_eps = 1e-5f,
                      .qkv_bias = 0,
                      .scalar_head = 1};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, 2024); /* the same on every rank: keyed by seed and tensor */
    model_alloc_grads(m);
}

/* Trains 3 steps on rows [b0, b1) of the batch; denominators from the whole batch. */
static void train(model *m, const int *tok, const int *tgt, const float *mask, int b0, int b1,
                  MPI_Comm comm) {
    int size;
    MPI_Comm_size(comm, &size);
    rl_err e = {0};
    model_acts a;
    if (model_acts_create(&a, &m->cfg, b1 - b0, T, &e)) fail_msg("%s", e.msg);
    optim_config oc;
    optim_config_default(&oc);
    oc.lr = 1e-3f, oc.weight_decay = 0.1f, oc.grad_clip = 1.0f, oc.warmup_steps = 1;
    optim o;
    if (optim_create(&o, m, &oc, &e)) fail_msg("%s", e.msg);
    double total = 0;
    for (int i = 0; i < B * T; i++) total += mask[i];
    for (int s = 0; s < 3; s++) {
        model_zero_grads(m);
        if (model_forward(m, &a, tok + b0 * T, b1 - b0, T, &e)) fail_msg("%s", e.msg);
        model_ce(m, &a, tgt + b0 * T, mask + b0 * T, (float)(total / size), 1);
        /* a scalar-head term at each local sequence's last token */
        int pos[4];
        float ds[4];
        for (int b = 0; b < b1 - b0; b++)
            pos[b] = b * T + T - 1, ds[b] = 0.1f * (float)(b0 + b + 1) * size;
        if (model_score_backward(m, &a, pos, b1 - b0, ds, &e)) fail_msg("%s", e.msg);
        model_backward(m, &a, tok + b0 * T);
        if (model_allreduce_grads(m, comm, &e)) fail_msg("%s", e.msg);
        if (optim_step(&o, m, NULL, &e)) fail_msg("%s", e.msg);
    }
    optim_free(&o);
    model_acts_free(&a);
}

static void run(int uneven) {
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (B % size) skip();
    int tok[48], tgt[48];
    float mask[48];
    rng r;
    rng_init(&r, 5, RNG_TEST, 0);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int)rng_below(&r, 41), tgt[i] = (int)rng_below(&r, 41);
        int b = i / T, t = i % T;
        mask[i] = uneven ? (t >= 2 + 3 * b ? 1.0f : 0.0f) : 1.0f;
    }
    model single, dp;
    make(&single);
    make(&dp);
    train(&single, tok, tgt, mask, 0, B, MPI_COMM_SELF);
    int share = B / size;
    train(&dp, tok, tgt, mask, rank * share, (rank + 1) * share, MPI_COMM_WORLD);
    /* Relative difference of the parameter vector, ||dp - single|| / ||single||, overall (the
     * criterion, <= 1e-6) and per tensor (<= 1e-5). Not per element: the two runs sum the same
     * gradient terms in a different order (24 + 24 rows vs 48), which leaves ~1e-7 relative
     * noise on gradients that cancel to ~1e-7, and Adam, which divides by |g|, turns that into
     * step-sized differences on exactly those elements. */
    double worst = 0, moved = 0, worst_elem = 0, gdd = 0, gnn = 0;
    const char *where = "";
    for (int i = 0; i < dp.n_tensors; i++) {
        const model_tensor *t = &dp.tensors[i];
        double dd = 0, nn = 0;
        for (size_t j = t->offset; j < t->offset + t->numel; j++) {
            double d = (double)dp.params[j] - single.params[j];
            dd += d * d, nn += (double)single.params[j] * single.params[j];
            worst_elem = fmax(worst_elem, fabs(d));
        }
        double rel = sqrt(dd / (nn > 0 ? nn : 1));
        gdd += dd, gnn += nn;
        if (rel > worst) worst = rel, where = t->name;
    }
    model init;
    make(&init);
    for (size_t j = 0; j < dp.n_params; j++)
        moved = fmax(moved, fabs(dp.params[j] - init.params[j]));
    if (rank == 0)
        printf("# %s masks: relative difference %.2e overall, %.2e in the worst tensor (%s); "
               "largest element difference %.2e, largest step %.2e\n",
               uneven ? "uneven" : "full", sqrt(gdd / gnn), worst, where, worst_elem, moved);
    assert_true(moved > 1e-3 && moved < 1e-2); /* the steps did something */
    assert_true(sqrt(gdd / gnn) <= 1e-6);
    assert_true(worst <= 1e-5);
    model_free(&single), model_free(&dp), model_free(&init);
}

static void test_dp_full(void **state) {
    (void)state;
    run(0);
}
static void test_dp_uneven(void **state) {
    (void)state;
    run(1);
}

static void test_chunked(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    float buf[100];
    for (int i = 0; i < 100; i++) buf[i] = (float)(i * (rank + 1));
    rl_err e = {0};
    assert_int_equal(model_allreduce_chunked(buf, 100, MPI_COMM_WORLD, 7, &e), ERR_OK);
    double mean_factor = (size + 1) / 2.0; /* mean of 1..size */
    for (int i = 0; i < 100; i++) assert_close(buf[i], i * mean_factor, 1e-6, 0);
}

int main(int argc, char **argv) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_full),
        cmocka_unit_test(test_dp_uneven),
        cmocka_unit_test(test_chunked),
    };
    return mpi_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], "data_parallel");
}
