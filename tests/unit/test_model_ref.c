/* model vs PyTorch: tests/ref/gen_model_ref.py builds the same transformer in PyTorch for three
 * configurations (multi-head; grouped-query; tied output + q/k/v biases + neox rotary), and
 * this test runs it into $TEST_TMP, loads its weights by GGUF name and checks logits, the
 * cross-entropy and its gradients, log-probs, entropies, scalar-head scores, every gradient of
 * a loss that mixes all heads, and the parameters after 3 AdamW steps: within 1e-4 relative,
 * 1e-5 absolute near zero. Skips when Debian's python3-torch is not installed. */
#include "test_util.h"

#include <hdf5.h>
#include <math.h>

#include "blas.h"
#include "model.h"
#include "optim.h"

static char ref_path[1100];
static int have_ref;

static const double RTOL = 1e-4, ATOL = 1e-5;

static int setup(void **state) {
    (void)state;
    const char *py = getenv("PYTHON");
    const char *root = getenv("ROOT");
    const char *tmp = getenv("TEST_TMP");
    if (!py || !*py) py = "/usr/bin/python3";
    snprintf(ref_path, sizeof ref_path, "%s/model_ref.h5", tmp && *tmp ? tmp : "/tmp");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch, h5py' 2>/dev/null", py);
    if (system(cmd) != 0) return 0; /* have_ref stays 0: every case skips */
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/gen_model_ref.py %s", py, root && *root ? root : ".",
             ref_path);
    if (system(cmd) != 0) {
        fprintf(stderr, "reference generator failed: %s\n", cmd);
        return -1;
    }
    have_ref = 1;
    return 0;
}

static double *read_ds(hid_t f, const char *path, size_t *n_out) {
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0) fail_msg("missing dataset %s in the reference file", path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    double *buf = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        fail_msg("cannot read %s", path);
    H5Sclose(sp);
    H5Dclose(d);
    if (n_out) *n_out = (size_t)n;
    return buf;
}

static int *read_ints(hid_t f, const char *path, size_t *n) {
    double *d = read_ds(f, path, n);
    int *out = malloc(sizeof(int) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; i++) out[i] = (int)d[i];
    free(d);
    return out;
}

static float *read_floats(hid_t f, const char *path, size_t *n) {
    double *d = read_ds(f, path, n);
    float *out = malloc(sizeof(float) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; i++) out[i] = (float)d[i];
    free(d);
    return out;
}

static double attr_d(hid_t f, const char *obj, const char *name) {
    double v = 0;
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) fail_msg("missing attribute %s of %s", name, obj);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

/* Compares n values; prints the worst deviation as a TAP comment; fails past tolerance. */
static void compare(const char *what, const float *got, const double *want, size_t n) {
    double worst = 0, max_abs = 0, max_rel = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double ratio = d / (ATOL + RTOL * fabs(want[i]));
        if (!(ratio <= worst)) worst = ratio, wi = i;
        if (d > max_abs) max_abs = d;
        if (fabs(want[i]) > 1e-3 && d / fabs(want[i]) > max_rel) max_rel = d / fabs(want[i]);
    }
    printf("# %-40s max|diff| %.2e  max rel %.2e  (%.2f of tolerance)\n", what, max_abs, max_rel,
           worst);
    if (!(worst <= 1.0))
        fail_msg("%s: element %zu is %.9g, PyTorch %.9g (|diff| %.3g > %.3g)", what, wi,
                 (double)got[wi], want[wi], fabs((double)got[wi] - want[wi]),
                 ATOL + RTOL * fabs(want[wi]));
}

typedef struct ref_case {
    const char *name;
    hid_t f;
    char grp[64];
    model m;
    int B, T;
    int *tokens, *targets, *score_pos;
    float *mask, *sel, *dlogprob, *dentropy, *dscore;
    size_t n_score;
} ref_case;

static void load_case(ref_case *rc, const char *name) {
    memset(rc, 0, sizeof *rc);
    rc->name = name;
    rc->f = H5Fopen(ref_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(rc->f >= 0);
    snprintf(rc->grp, sizeof rc->grp, "/%s", name);
    model_config c = {0};
#define A(field) attr_d(rc->f, rc->grp, #field)
    c.dim = (int)A(dim), c.n_layers = (int)A(n_layers), c.n_heads = (int)A(n_heads);
    c.n_kv_heads = (int)A(n_kv_heads), c.head_dim = (int)A(head_dim), c.ffn_dim = (int)A(ffn_dim);
    c.vocab_size = (int)A(vocab_size), c.max_seq = (int)A(max_seq);
    c.rope_theta = (float)A(rope_theta), c.rope_neox = (int)A(rope_neox);
    c.norm_eps = (float)A(norm_eps), c.qkv_bias = (int)A(qkv_bias);
    c.tied_output = (int)A(tied_output), c.scalar_head = (int)A(scalar_head);
#undef A
    rl_err e = {0};
    if (model_create(&rc->m, &c, &e)) fail_msg("%s", e.msg);
    char path[256];
    for (int i = 0; i < rc->m.n_tensors; i++) {
        const model_tensor *t = &rc->m.tensors[i];
        size_t n;
        snprintf(path, sizeof path, "%s/weights/%s", rc->grp, t->name);
        float *w = read_floats(rc->f, path, &n);
        assert_int_equal(n, t->numel);
        memcpy(rc->m.params + t->offset, w, sizeof(float) * n);
        free(w);
    }
    model_alloc_grads(&rc->m);
    size_t n;
#define IN(field, fn)                                                                              \
    (snprintf(path, sizeof path, "%s/inputs/" #field, rc->grp), rc->field = fn(rc->f, path, &n))
    IN(tokens, read_ints);
    rc->B = 3;
    rc->T = (int)n / 3;
    IN(targets, read_ints);
    IN(mask, read_floats);
    IN(sel, read_floats);
    IN(dlogprob, read_floats);
    IN(dentropy, read_floats);
    IN(dscore, read_floats);
    IN(score_pos, read_ints);
    rc->n_score = n;
#undef IN
}

static void free_case(ref_case *rc) {
    model_free(&rc->m);
    free(rc->tokens), free(rc->targets), free(rc->score_pos), free(rc->mask), free(rc->sel);
    free(rc->dlogprob), free(rc->dentropy), free(rc->dscore);
    H5Fclose(rc->f);
}

static void compare_grads(ref_case *rc, const char *group, const float *grads) {
    char path[256], what[128];
    for (int i = 0; i < rc->m.n_tensors; i++) {
        const model_tensor *t = &rc->m.tensors[i];
        size_t n;
        snprintf(path, sizeof path, "%s/%s/%s", rc->grp, group, t->name);
        double *want = read_ds(rc->f, path, &n);
        snprintf(what, sizeof what, "%s %s %s", rc->name, group, t->name);
        compare(what, grads + t->offset, want, n);
        free(want);
    }
}

/* The combined loss of the generator: CE + dlogprob.logprob + dentropy.entropy + dscore.score */
static void run_total_backward(ref_case *rc, model_acts *a, float *lp, float *ent, float *score,
                               float *ce) {
    model *m = &rc->m;
    model_zero_grads(m);
    rl_err e = {0};
    if (model_forward(m, a, rc->tokens, rc->B, rc->T, &e)) fail_msg("%s", e.msg);
    *ce = model_ce(m, a, rc->targets, rc->mask, 0.0f, 1);
    model_lm_forward(m, a, rc->targets, rc->sel, lp, ent);
    model_lm_backward(m, a, rc->targets, rc->dlogprob, rc->dentropy);
    if (model_score_forward(m, a, rc->score_pos, (int)rc->n_score, score, &e) ||
        model_score_backward(m, a, rc->score_pos, (int)rc->n_score, rc->dscore, &e))
        fail_msg("%s", e.msg);
    model_backward(m, a, rc->tokens);
}

/* keep_limit: bytes of log-probs model_lm_forward may keep for the backward (0: recompute). */
static void check_config(const char *name, size_t keep_limit) {
    if (!have_ref) skip();
    ref_case rc;
    load_case(&rc, name);
    model *m = &rc.m;
    int B = rc.B, T = rc.T, N = B * T, V = m->cfg.vocab_size;
    model_acts a;
    rl_err e = {0};
    if (model_acts_create(&a, &m->cfg, B, T, &e)) fail_msg("%s", e.msg);
    a.keep_limit = keep_limit;
    if (keep_limit == 0) a.head_rows = 5; /* and several logits chunks */
    char path[256], what[128];

    /* logits at every position */
    if (model_forward(m, &a, rc.tokens, B, T, &e)) fail_msg("%s", e.msg);
    float *logits = malloc(sizeof(float) * (size_t)N * V);
    int *all = malloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) all[i] = i;
    if (model_lm_logits(m, &a, all, N, logits, &e)) fail_msg("%s", e.msg);
    size_t n;
    snprintf(path, sizeof path, "%s/outputs/logits", rc.grp);
    double *want = read_ds(rc.f, path, &n);
    snprintf(what, sizeof what, "%s logits", name);
    compare(what, logits, want, n);
    free(want);

    /* cross-entropy alone */
    model_zero_grads(m);
    float ce = model_ce(m, &a, rc.targets, rc.mask, 0.0f, 1);
    model_backward(m, &a, rc.tokens);
    snprintf(path, sizeof path, "%s/outputs/ce", rc.grp);
    want = read_ds(rc.f, path, &n);
    snprintf(what, sizeof what, "%s cross-entropy", name);
    compare(what, &ce, want, 1);
    free(want);
    compare_grads(&rc, "grad_ce", m->grads);

    /* every head together */
    float *lp = malloc(sizeof(float) * N), *ent = malloc(sizeof(float) * N);
    float *score = malloc(sizeof(float) * rc.n_score);
    run_total_backward(&rc, &a, lp, ent, score, &ce);
    const char *outs[] = {"logprob", "entropy", "score"};
    float *got[] = {lp, ent, score};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/outputs/%s", rc.grp, outs[k]);
        want = read_ds(rc.f, path, &n);
        snprintf(what, sizeof what, "%s %s", name, outs[k]);
        compare(what, got[k], want, n);
        free(want);
    }
    compare_grads(&rc, "grad", m->grads);

    /* three AdamW steps on the combined loss */
    optim_config oc;
    optim_config_default(&oc);
    char og[128];
    snprintf(og, sizeof og, "%s/optim", rc.grp);
    oc.lr = (float)attr_d(rc.f, og, "lr");
    oc.beta1 = (float)attr_d(rc.f, og, "beta1");
    oc.beta2 = (float)attr_d(rc.f, og, "beta2");
    oc.eps = (float)attr_d(rc.f, og, "eps");
    oc.weight_decay = (float)attr_d(rc.f, og, "weight_decay");
    oc.grad_clip = (float)attr_d(rc.f, og, "grad_clip");
    oc.warmup_steps = (long)attr_d(rc.f, og, "warmup_steps");
    oc.total_steps = (long)attr_d(rc.f, og, "total_steps");
    oc.min_lr_frac = (float)attr_d(rc.f, og, "min_lr_frac");
    optim o;
    if (optim_create(&o, m, &oc, &e)) fail_msg("%s", e.msg);
    for (int s = 0; s < 3; s++) {
        run_total_backward(&rc, &a, lp, ent, score, &ce);
        optim_stats st;
        if (optim_step(&o, m, &st, &e)) fail_msg("%s", e.msg);
        assert_true(st.clip_scale < 1.0); /* the generator set the clip below the norm */
    }
    compare_grads(&rc, "after3", m->params);

    optim_free(&o);
    free(lp), free(ent), free(score), free(logits), free(all);
    model_acts_free(&a);
    free_case(&rc);
}

static void test_mha(void **state) {
    (void)state;
    check_config("mha", (size_t)1 << 30);
}
static void test_gqa(void **state) {
    (void)state;
    check_config("gqa", (size_t)1 << 30);
}
static void test_tied_bias_neox(void **state) {
    (void)state;
    check_config("tied_bias_neox", (size_t)1 << 30);
}
/* the same with the LM head recomputing its logits in the backward, in chunks of 5 rows */
static void test_recomputed_head(void **state) {
    (void)state;
    check_config("gqa", 0);
}

int main(void) {
    blas_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_gqa),
        cmocka_unit_test(test_tied_bias_neox),
        cmocka_unit_test(test_recomputed_head),
    };
    return cmocka_run_group_tests_name("model_ref", tests, setup, NULL);
}
