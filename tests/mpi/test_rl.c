/* rl: the RL engine on a toy problem. A random-initialised policy over 16 tokens is rewarded for
 * the share of its response tokens that are token 7; PPO and REINFORCE must raise that share well
 * above the 1/16 of the start while the KL to the reference grows. An iteration run in one go
 * and the same iterations split by a checkpoint (save, fresh engine, load) end bit-identical.
 * Runs with 1 and 2 policy ranks.
 * mpi-np: 1 2 */
#define RLAIF_MPI_TEST
#include "test_util.h"

#include <math.h>

#include "blas.h"
#include "ckpt.h"
#include "model.h"
#include "rl.h"
#include "rng.h"

enum { V = 16, EOS = 1, TARGET = 7 };

static void make(model *m, int head, uint64_t seed) {
    model_config c = {.dim = 32,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = 4,
                      .head_dim = 8,
                      .ffn_dim = 64,
                      .vocab_size = V,
                      .max_seq = 24,
                      .rope_theta = 100.0f,
                      .norm_eps = 1e-5f,
                      .scalar_head = head};
    rl_err e = {0};
    if (model_create(m, &c, &e)) fail_msg("%s", e.msg);
    model_init_weights(m, seed);
}

static void make_prompts(rl_prompts *p) {
    p->n = 10;
    p->tok = calloc(10, sizeof *p->tok);
    p->len = calloc(10, sizeof *p->len);
    rng r;
    rng_init(&r, 3, RNG_TEST, 0);
    for (int i = 0; i < 10; i++) {
        p->len[i] = 3 + (int)rng_below(&r, 4);
        p->tok[i] = malloc(sizeof(int32_t) * (size_t)p->len[i]);
        for (int k = 0; k < p->len[i]; k++) p->tok[i][k] = 2 + (int32_t)rng_below(&r, V - 2);
    }
}

static void free_prompts(rl_prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->tok[i]);
    free(p->tok), free(p->len);
}

/* The toy scorer: it scores the share of response tokens equal to TARGET. */
typedef struct toy {
    const rl_prompts *p;
    int n;
    float s[256];
} toy;

static int toy_send(void *user, int n, const int32_t *const *seqs, const int *lens,
                    const int *plens, rl_err *e) {
    (void)e;
    toy *t = user;
    t->n = n;
    for (int i = 0; i < n; i++) {
        /* the sequence starts with one of the prompts, of the length given */
        int plen = plens[i], found = 0;
        for (int j = 0; j < t->p->n && !found; j++)
            found = t->p->len[j] == plen &&
                    !memcmp(t->p->tok[j], seqs[i], sizeof(int32_t) * (size_t)plen);
        assert_true(found && plen < lens[i]);
        int hits = 0, k = 0;
        for (int q = plen; q < lens[i]; q++, k++) hits += seqs[i][q] == TARGET;
        t->s[i] = (float)hits / (float)k;
    }
    return ERR_OK;
}

static int toy_recv(void *user, int n, float *scores, rl_err *e) {
    (void)e;
    toy *t = user;
    assert_int_equal(n, t->n);
    memcpy(scores, t->s, sizeof(float) * (size_t)n);
    return ERR_OK;
}

static void cfg_default(rl_cfg *c, int algorithm) {
    static const int eos[1] = {EOS};
    memset(c, 0, sizeof *c);
    c->algorithm = algorithm;
    c->rollouts = 32, c->minibatch = 16, c->epochs = 2;
    c->sp.temperature = 1.0f, c->sp.top_k = 0, c->sp.top_p = 1.0f;
    c->max_new = 6, c->eos = eos, c->n_eos = 1;
    c->kl_coef = 0.02, c->kl_target = 0, c->kl_horizon = 1000, c->kl_estimator = PPO_KL_K1;
    c->gamma = 1.0f, c->lambda = 0.95f, c->clip = 0.2f, c->value_clip = 0.2f;
    c->whiten_advantages = 1, c->no_eos_penalty = 0.0f;
    optim_config_default(&c->policy_opt);
    c->policy_opt.lr = 3e-3f, c->policy_opt.warmup_steps = 2;
    c->value_opt = c->policy_opt;
    c->seed = 42;
}

typedef struct world {
    model pol, ref, val;
    rl_engine E;
} world;

static void world_make(world *w, const rl_cfg *c, const rl_prompts *p) {
    make(&w->pol, 0, 5), make(&w->ref, 0, 5), make(&w->val, 1, 6);
    rl_err e = {0};
    if (rl_engine_init(&w->E, &w->pol, &w->ref, &w->val, c, p, MPI_COMM_WORLD, &e))
        fail_msg("%s", e.msg);
}

static void world_free(world *w) {
    rl_engine_free(&w->E);
    model_free(&w->pol), model_free(&w->ref), model_free(&w->val);
}

static void learn(int algorithm) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    rl_prompts p;
    make_prompts(&p);
    rl_cfg c;
    cfg_default(&c, algorithm);
    if (algorithm == RL_REINFORCE) c.epochs = 1, c.lambda = 1.0f;
    world w;
    world_make(&w, &c, &p);
    toy t = {.p = &p};
    rl_scorer sc = {toy_send, toy_recv, &t};
    rl_err e = {0};
    rl_stats st;
    double first = 0, last = 0, kl = 0;
    const int iters = 25;
    for (int i = 0; i < iters; i++) {
        if (rl_iteration(&w.E, &p, &sc, MPI_COMM_WORLD, &st, &e)) fail_msg("%s", e.msg);
        if (i < 3) first += st.score / 3;
        if (i >= iters - 3) last += st.score / 3;
        kl = st.kl;
        assert_true(isfinite(st.entropy) && isfinite(st.value_loss) && isfinite(st.grad_norm));
        assert_true(st.clipfrac >= 0 && st.clipfrac <= 1);
        rl_stats_free(&st);
    }
    if (rank == 0)
        printf("# %s: share of the rewarded token %.3f -> %.3f after %d iterations, KL to the "
               "reference %.3f, explained variance %.3f\n",
               algorithm == RL_PPO ? "ppo" : "reinforce", first, last, iters, kl,
               st.explained_variance);
    assert_true(last > first + 0.2);
    assert_true(kl > 0.05);
    world_free(&w);
    free_prompts(&p);
}

static void test_ppo_learns(void **state) {
    (void)state;
    learn(RL_PPO);
}
static void test_reinforce_learns(void **state) {
    (void)state;
    learn(RL_REINFORCE);
}

static void test_resume_exact(void **state) {
    (void)state;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    rl_prompts p;
    make_prompts(&p);
    rl_cfg c;
    cfg_default(&c, RL_PPO);
    c.kl_target = 0.5; /* the controller's state must survive the checkpoint too */
    toy t = {.p = &p};
    rl_scorer sc = {toy_send, toy_recv, &t};
    rl_err e = {0};
    rl_stats st;
    world a, b;
    world_make(&a, &c, &p);
    for (int i = 0; i < 6; i++) {
        if (rl_iteration(&a.E, &p, &sc, MPI_COMM_WORLD, &st, &e)) fail_msg("%s", e.msg);
        rl_stats_free(&st);
    }
    /* 3 iterations, a checkpoint, a fresh engine, 3 more */
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", test_tmpdir("rl_resume"));
    MPI_Bcast(dir, (int)sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    world_make(&b, &c, &p);
    for (int i = 0; i < 3; i++) {
        if (rl_iteration(&b.E, &p, &sc, MPI_COMM_WORLD, &st, &e)) fail_msg("%s", e.msg);
        rl_stats_free(&st);
    }
    if (rank == 0) {
        ckpt_file *f;
        if (ckpt_file_begin(dir, 3, "policy", &f, &e) || rl_engine_save_policy(&b.E, f, &e) ||
            ckpt_file_commit(f, &e))
            fail_msg("%s", e.msg);
        if (ckpt_file_begin(dir, 3, "value", &f, &e) || rl_engine_save_value(&b.E, f, &e) ||
            ckpt_file_commit(f, &e))
            fail_msg("%s", e.msg);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    world_free(&b);
    world_make(&b, &c, &p);
    ckpt_file *f;
    if (ckpt_file_open(dir, 3, "policy", &f, &e) || rl_engine_load_policy(&b.E, f, &e))
        fail_msg("%s", e.msg);
    ckpt_file_close(f);
    if (ckpt_file_open(dir, 3, "value", &f, &e) || rl_engine_load_value(&b.E, f, &e))
        fail_msg("%s", e.msg);
    ckpt_file_close(f);
    assert_int_equal(b.E.iter, 3);
    for (int i = 0; i < 3; i++) {
        if (rl_iteration(&b.E, &p, &sc, MPI_COMM_WORLD, &st, &e)) fail_msg("%s", e.msg);
        rl_stats_free(&st);
    }
    assert_true(a.E.kl.coef != c.kl_coef); /* the controller moved */
    assert_true(a.E.kl.coef == b.E.kl.coef);
    assert_int_equal(memcmp(a.pol.params, b.pol.params, sizeof(float) * a.pol.n_params), 0);
    assert_int_equal(memcmp(a.val.params, b.val.params, sizeof(float) * a.val.n_params), 0);
    assert_int_equal(memcmp(a.E.opt_pol.m, b.E.opt_pol.m, sizeof(float) * a.pol.n_params), 0);
    world_free(&a), world_free(&b);
    free_prompts(&p);
}

/* The training path's log-probs of sampled responses (temperature folded into the head's input)
 * equal what the sampler computed on the KV-cache path at the same temperature. */
static void test_response_logprobs(void **state) {
    (void)state;
    rl_prompts p;
    make_prompts(&p);
    model m;
    make(&m, 0, 5);
    const int n = 6, max_new = 8;
    const float temps[2] = {1.0f, 0.7f};
    rl_err e = {0};
    for (int ti = 0; ti < 2; ti++) {
        kvcache kv;
        if (kvcache_create(&kv, &m.cfg, n, m.cfg.max_seq, &e)) fail_msg("%s", e.msg);
        gen_seq gs[6];
        rng rs[6];
        int out[6 * 8];
        float lp[6 * 8];
        for (int i = 0; i < n; i++) {
            rng_init(&rs[i], 9, RNG_TEST, (uint32_t)i);
            gs[i] = (gen_seq){.prompt = p.tok[i],
                              .prompt_len = p.len[i],
                              .slot = i,
                              .r = &rs[i],
                              .out = out + i * max_new,
                              .logprob = lp + i * max_new};
        }
        gen_config g = {.sp = {.temperature = temps[ti], .top_p = 1.0f},
                        .max_new = max_new,
                        .eos = NULL,
                        .n_eos = 0};
        if (sample_generate(&m, &kv, gs, n, &g, &e)) fail_msg("%s", e.msg);
        int32_t *seqs[6];
        int plens[6], lens[6];
        double want[6], got[6];
        for (int i = 0; i < n; i++) {
            plens[i] = p.len[i], lens[i] = p.len[i] + gs[i].n_out;
            seqs[i] = malloc(sizeof(int32_t) * (size_t)lens[i]);
            memcpy(seqs[i], p.tok[i], sizeof(int32_t) * (size_t)p.len[i]);
            want[i] = 0;
            for (int k = 0; k < gs[i].n_out; k++)
                seqs[i][p.len[i] + k] = out[i * max_new + k], want[i] += lp[i * max_new + k];
        }
        model_acts a;
        if (model_acts_create(&a, &m.cfg, 4, m.cfg.max_seq, &e)) fail_msg("%s", e.msg);
        /* batches of 4: the second batch is ragged */
        if (rl_response_logprobs(&m, &a, n, (const int32_t *const *)seqs, plens, lens, temps[ti], 4,
                                 got, &e))
            fail_msg("%s", e.msg);
        for (int i = 0; i < n; i++) assert_close(got[i], want[i], 1e-4, 1e-4);
        for (int i = 0; i < n; i++) free(seqs[i]);
        model_acts_free(&a);
        kvcache_free(&kv);
    }
    model_free(&m);
    free_prompts(&p);
}

int main(int argc, char **argv) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppo_learns),
        cmocka_unit_test(test_reinforce_learns),
        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_response_logprobs),
    };
    return mpi_test_main(argc, argv, tests, sizeof tests / sizeof tests[0], "rl");
}
