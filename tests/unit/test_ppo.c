/* ppo: the arithmetic of include/ppo.h against PyTorch (tests/ref/gen_ppo_ref.py, run into
 * $TEST_TMP; skipped when Debian's python3-torch is absent) and against values worked out by
 * hand in the comments below: KL estimators and their gradients, per-token rewards, GAE,
 * whitening, the clipped policy and value losses with gradients, the KL loss term, the entropy
 * bonus, the adaptive KL controller and the explained variance. */
#include "test_util.h"

#include <hdf5.h>
#include <math.h>

#include "ppo.h"

static char ref_path[1100];
static int have_ref;
static const double RTOL = 1e-5, ATOL = 1e-6;

static int setup(void **state) {
    (void)state;
    const char *py = getenv("PYTHON");
    const char *root = getenv("ROOT");
    const char *tmp = getenv("TEST_TMP");
    if (!py || !*py) py = "/usr/bin/python3";
    snprintf(ref_path, sizeof ref_path, "%s/ppo_ref.h5", tmp && *tmp ? tmp : "/tmp");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c 'import torch, h5py' 2>/dev/null", py);
    if (system(cmd) != 0) return 0;
    snprintf(cmd, sizeof cmd, "%s %s/tests/ref/gen_ppo_ref.py %s", py, root && *root ? root : ".",
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

static double read_scalar(hid_t f, const char *path) {
    double *d = read_ds(f, path, NULL);
    double v = d[0];
    free(d);
    return v;
}

static float *read_floats(hid_t f, const char *path, size_t *n) {
    double *d = read_ds(f, path, n);
    float *out = malloc(sizeof(float) * (*n ? *n : 1));
    for (size_t i = 0; i < *n; i++) out[i] = (float)d[i];
    free(d);
    return out;
}

static void compare(const char *what, const float *got, const double *want, size_t n) {
    double worst = 0, max_abs = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double ratio = d / (ATOL + RTOL * fabs(want[i]));
        if (!(ratio <= worst)) worst = ratio, wi = i;
        if (d > max_abs) max_abs = d;
    }
    printf("# %-28s max|diff| %.2e (%.2f of tolerance)\n", what, max_abs, worst);
    if (!(worst <= 1.0))
        fail_msg("%s: element %zu is %.9g, PyTorch %.9g", what, wi, (double)got[wi], want[wi]);
}

typedef struct inputs {
    hid_t f;
    int B, R;
    size_t n;
    float beta, scale;
    float *mask, *logp, *logp_ref, *logp_old, *score, *values, *v_old, *adv_in, *ret_in, *entropy;
} inputs;

static void load(inputs *in) {
    memset(in, 0, sizeof *in);
    in->f = H5Fopen(ref_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(in->f >= 0);
    size_t n;
#define L(x) in->x = read_floats(in->f, "in/" #x, &n)
    L(mask), L(logp), L(logp_ref), L(logp_old), L(score), L(values), L(v_old), L(adv_in);
    L(ret_in), L(entropy);
#undef L
    in->n = 0;
    hid_t a;
    double v;
    const char *names[] = {"B", "R", "beta", "scale"};
    double vals[4];
    for (int i = 0; i < 4; i++) {
        a = H5Aopen(in->f, names[i], H5P_DEFAULT);
        assert_true(a >= 0);
        H5Aread(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
        vals[i] = v;
    }
    in->B = (int)vals[0], in->R = (int)vals[1], in->beta = (float)vals[2],
    in->scale = (float)vals[3];
    in->n = (size_t)in->B * in->R;
}

static void unload(inputs *in) {
    free(in->mask), free(in->logp), free(in->logp_ref), free(in->logp_old), free(in->score);
    free(in->values), free(in->v_old), free(in->adv_in), free(in->ret_in), free(in->entropy);
    H5Fclose(in->f);
}

/* ------------------------------------------------------------------ by hand */

static void test_kl_by_hand(void **state) {
    (void)state;
    /* d = logp - ref = -1 - (-1.5) = 0.5: k1 = 0.5, k2 = 0.125, k3 = e^-0.5 - 1 + 0.5 */
    assert_close(ppo_kl_est(-1.0, -1.5, PPO_KL_K1), 0.5, 1e-15, 0);
    assert_close(ppo_kl_est(-1.0, -1.5, PPO_KL_K2), 0.125, 1e-15, 0);
    assert_close(ppo_kl_est(-1.0, -1.5, PPO_KL_K3), 0.10653065971263342, 1e-14, 0);
    /* gradients: 1, d, 1 - e^-d */
    assert_close(ppo_kl_est_grad(-1.0, -1.5, PPO_KL_K1), 1.0, 0, 0);
    assert_close(ppo_kl_est_grad(-1.0, -1.5, PPO_KL_K2), 0.5, 1e-15, 0);
    assert_close(ppo_kl_est_grad(-1.0, -1.5, PPO_KL_K3), 0.3934693402873666, 1e-14, 0);
    /* k3 is never negative, and exact near d = 0 (no cancellation) */
    assert_true(ppo_kl_est(-2.0, -2.0 + 1e-9, PPO_KL_K3) >= 0);
    assert_close(ppo_kl_est(0.0, 1e-6, PPO_KL_K3), 0.5e-12, 1e-6, 0);
}

static void test_gae_by_hand(void **state) {
    (void)state;
    /* One row of 3 tokens + 1 padding, rewards (0, 0, 1), values (0.5, 0.25, 0.75), gamma 0.9,
     * lambda 0.5:
     *   delta2 = 1 + 0 - 0.75 = 0.25                    A2 = 0.25
     *   delta1 = 0 + 0.9*0.75 - 0.25 = 0.425            A1 = 0.425 + 0.45*0.25 = 0.5375
     *   delta0 = 0 + 0.9*0.25 - 0.5 = -0.275            A0 = -0.275 + 0.45*0.5375 = -0.033125
     * returns = A + V: 0.466875, 0.7875, 1.0 */
    float mask[4] = {1, 1, 1, 0}, r[4] = {0, 0, 1, 5}, v[4] = {0.5f, 0.25f, 0.75f, 9};
    float adv[4], ret[4];
    ppo_gae(1, 4, mask, r, v, 0.9f, 0.5f, adv, ret);
    assert_close(adv[0], -0.033125, 1e-6, 1e-7);
    assert_close(adv[1], 0.5375, 1e-6, 0);
    assert_close(adv[2], 0.25, 1e-6, 0);
    assert_close(ret[0], 0.466875, 1e-6, 0);
    assert_close(ret[1], 0.7875, 1e-6, 0);
    assert_close(ret[2], 1.0, 1e-6, 0);
    assert_true(adv[3] == 0 && ret[3] == 0);
    /* gamma = lambda = 1 (REINFORCE with baseline): A_k = (sum of rewards from k) - V_k */
    ppo_gae(1, 4, mask, r, v, 1.0f, 1.0f, adv, ret);
    assert_close(adv[0], 0.5, 1e-6, 0);
    assert_close(adv[1], 0.75, 1e-6, 0);
    assert_close(adv[2], 0.25, 1e-6, 0);
    for (int k = 0; k < 3; k++) assert_close(ret[k], 1.0, 1e-6, 0);
}

static void test_token_rewards_by_hand(void **state) {
    (void)state;
    /* beta 0.1, k1: -0.1*d per token, score 2 on the last token (k = 1) */
    float mask[3] = {1, 1, 0}, lp[3] = {-1, -2, -3}, ref[3] = {-1.5f, -1, -9}, score = 2;
    float rw[3], kl[3];
    ppo_token_rewards(1, 3, mask, lp, ref, &score, 0.1f, PPO_KL_K1, rw, kl);
    assert_close(rw[0], -0.05, 1e-6, 0);
    assert_close(rw[1], 0.1 + 2.0, 1e-6, 0);
    assert_true(rw[2] == 0 && kl[2] == 0);
    assert_close(kl[0], 0.5, 1e-7, 0);
    assert_close(kl[1], -1.0, 1e-7, 0);
}

static void test_policy_loss_by_hand(void **state) {
    (void)state;
    /* eps 0.2. Token 0: ratio e^0.5 = 1.6487, A = 1: -A r = -1.6487 < -A*1.2 = -1.2, so the
     * clipped term (-1.2) is the max: loss -1.2, gradient 0, clipped.
     * Token 1: ratio e^-0.5 = 0.6065, A = 1: -0.6065 > -0.8: unclipped, gradient -A r.
     * Token 2: ratio 1, A = -2: loss 2, gradient 2 (= -A r). */
    float mask[3] = {1, 1, 1}, lp[3] = {0.5f, -0.5f, 0}, old[3] = {0, 0, 0}, A[3] = {1, 1, -2};
    float g[3];
    ppo_stats st = {0};
    double loss = ppo_policy_loss(3, mask, lp, old, A, 0.2f, 1.0f, g, &st);
    assert_close(loss, -1.2 - exp(-0.5) + 2.0, 1e-6, 0);
    assert_close(g[0], 0.0, 0, 0);
    assert_close(g[1], -exp(-0.5), 1e-6, 0);
    assert_close(g[2], 2.0, 1e-6, 0);
    assert_close(st.clipped, 1, 0, 0);
    assert_close(st.approx_kl, 0.25, 1e-7, 0);
}

static void test_value_loss_by_hand(void **state) {
    (void)state;
    /* clip 0.2, V_old 0, G 1. V = 0.5: clipped V 0.2, (0.2-1)^2 = 0.64 > (0.5-1)^2 = 0.25,
     * so loss 0.32 with gradient 0 (outside the band). V = 0.1: inside the band, both terms
     * equal 0.81: loss 0.405, gradient V - G = -0.9. */
    float mask[2] = {1, 1}, v[2] = {0.5f, 0.1f}, vo[2] = {0, 0}, G[2] = {1, 1}, g[2];
    ppo_stats st = {0};
    double loss = ppo_value_loss(2, mask, v, vo, G, 0.2f, 1.0f, g, &st);
    assert_close(loss, 0.32 + 0.405, 1e-6, 0);
    assert_close(g[0], 0, 0, 0);
    assert_close(g[1], -0.9, 1e-6, 0);
    assert_close(st.clipped, 1, 0, 0);
}

static void test_kl_controller_by_hand(void **state) {
    (void)state;
    /* coef 0.1, target 6, horizon 10000. KL 9 over 64 responses: error 0.5 clipped to 0.2,
     * coef *= 1 + 0.2 * 64 / 10000 = 1.00128 -> 0.100128. Then KL 5.4: error -0.1,
     * coef *= 1 - 0.1 * 64 / 10000 = 0.99936 -> 0.10006391808. */
    ppo_kl_ctl c = {.coef = 0.1, .target = 6, .horizon = 10000};
    ppo_kl_ctl_update(&c, 9.0, 64);
    assert_close(c.coef, 0.100128, 1e-12, 0);
    ppo_kl_ctl_update(&c, 5.4, 64);
    assert_close(c.coef, 0.10006391808, 1e-12, 0);
    /* no target: fixed */
    ppo_kl_ctl f = {.coef = 0.05, .target = 0, .horizon = 10000};
    ppo_kl_ctl_update(&f, 100, 64);
    assert_close(f.coef, 0.05, 0, 0);
}

static void test_whiten_by_hand(void **state) {
    (void)state;
    /* x = 1, 2, 3 on the mask (and 100 off it): mean 2, unbiased var 1 -> -1, 0, 1 */
    float x[4] = {1, 100, 2, 3}, mask[4] = {1, 0, 1, 1};
    ppo_whiten(4, x, mask, 1);
    assert_close(x[0], -1.0, 1e-6, 0);
    assert_close(x[2], 0.0, 0, 1e-7);
    assert_close(x[3], 1.0, 1e-6, 0);
    assert_true(x[1] == 0);
    /* explained variance: v = ret gives 1; v = 0 gives 0 */
    float ret[3] = {1, 2, 4}, v0[3] = {0, 0, 0}, m3[3] = {1, 1, 1};
    double m[5];
    ppo_explained_variance_moments(3, m3, ret, ret, m);
    assert_close(ppo_explained_variance(m), 1.0, 1e-12, 0);
    ppo_explained_variance_moments(3, m3, v0, ret, m);
    assert_close(ppo_explained_variance(m), 0.0, 0, 1e-12);
}

/* ------------------------------------------------------------------ against PyTorch */

static void test_ref_rewards(void **state) {
    (void)state;
    if (!have_ref) skip();
    inputs in;
    load(&in);
    const char *est[3] = {"k1", "k2", "k3"};
    float *rw = malloc(sizeof(float) * in.n), *kl = malloc(sizeof(float) * in.n);
    for (int k = 0; k < 3; k++) {
        char path[64];
        size_t n;
        ppo_token_rewards(in.B, in.R, in.mask, in.logp, in.logp_ref, in.score, in.beta, k, rw, kl);
        snprintf(path, sizeof path, "rewards/%s", est[k]);
        double *want = read_ds(in.f, path, &n);
        compare(path, rw, want, n);
        free(want);
        snprintf(path, sizeof path, "kl/%s", est[k]);
        want = read_ds(in.f, path, &n);
        compare(path, kl, want, n);
        free(want);
    }
    free(rw), free(kl);
    unload(&in);
}

static void test_ref_gae(void **state) {
    (void)state;
    if (!have_ref) skip();
    inputs in;
    load(&in);
    size_t n;
    float *rw = read_floats(in.f, "rewards/k1", &n);
    float *adv = malloc(sizeof(float) * in.n), *ret = malloc(sizeof(float) * in.n);
    const char *tags[2] = {"g099_l095", "g1_l1"};
    const float gl[2][2] = {{0.99f, 0.95f}, {1.0f, 1.0f}};
    for (int t = 0; t < 2; t++) {
        ppo_gae(in.B, in.R, in.mask, rw, in.values, gl[t][0], gl[t][1], adv, ret);
        char path[64];
        snprintf(path, sizeof path, "gae/%s/adv", tags[t]);
        double *want = read_ds(in.f, path, &n);
        compare(path, adv, want, n);
        free(want);
        snprintf(path, sizeof path, "gae/%s/ret", tags[t]);
        want = read_ds(in.f, path, &n);
        compare(path, ret, want, n);
        free(want);
    }
    free(rw), free(adv), free(ret);
    unload(&in);
}

static void test_ref_whiten(void **state) {
    (void)state;
    if (!have_ref) skip();
    inputs in;
    load(&in);
    float *x = malloc(sizeof(float) * in.n);
    for (int shift = 1; shift >= 0; shift--) {
        memcpy(x, in.adv_in, sizeof(float) * in.n);
        /* in two halves, as two ranks would: moments summed, then applied */
        double m1[3], m2[3], mean, var;
        size_t h = in.n / 2;
        ppo_moments(h, x, in.mask, m1);
        ppo_moments(in.n - h, x + h, in.mask + h, m2);
        for (int i = 0; i < 3; i++) m1[i] += m2[i];
        ppo_moments_stats(m1, &mean, &var);
        ppo_whiten_apply(in.n, x, in.mask, mean, var, shift);
        size_t n;
        double *want = read_ds(in.f, shift ? "whiten/shift" : "whiten/noshift", &n);
        compare(shift ? "whiten/shift" : "whiten/noshift", x, want, n);
        free(want);
    }
    free(x);
    unload(&in);
}

static void test_ref_losses(void **state) {
    (void)state;
    if (!have_ref) skip();
    inputs in;
    load(&in);
    float *g = malloc(sizeof(float) * in.n);
    const char *tags[2] = {"clip02", "noclip"};
    const float clips[2] = {0.2f, 0.0f};
    for (int t = 0; t < 2; t++) {
        char path[64];
        size_t n;
        ppo_stats st = {0};
        double loss = ppo_policy_loss(in.n, in.mask, in.logp, in.logp_old, in.adv_in, clips[t],
                                      in.scale, g, &st);
        snprintf(path, sizeof path, "policy/%s/loss", tags[t]);
        assert_close(loss, read_scalar(in.f, path), RTOL, ATOL);
        snprintf(path, sizeof path, "policy/%s/grad", tags[t]);
        double *want = read_ds(in.f, path, &n);
        compare(path, g, want, n);
        free(want);
        snprintf(path, sizeof path, "policy/%s/clipped", tags[t]);
        assert_close(st.clipped, read_scalar(in.f, path), 0, 0);
        snprintf(path, sizeof path, "policy/%s/approx_kl", tags[t]);
        assert_close(st.approx_kl, read_scalar(in.f, path), 1e-6, 0);

        ppo_stats vs = {0};
        loss = ppo_value_loss(in.n, in.mask, in.values, in.v_old, in.ret_in, clips[t], in.scale, g,
                              &vs);
        snprintf(path, sizeof path, "value/%s/loss", tags[t]);
        assert_close(loss, read_scalar(in.f, path), RTOL, ATOL);
        snprintf(path, sizeof path, "value/%s/grad", tags[t]);
        want = read_ds(in.f, path, &n);
        compare(path, g, want, n);
        free(want);
        snprintf(path, sizeof path, "value/%s/clipped", tags[t]);
        assert_close(vs.clipped, read_scalar(in.f, path), 0, 0);
    }
    const char *est[3] = {"k1", "k2", "k3"};
    for (int k = 0; k < 3; k++) {
        char path[64];
        size_t n;
        memset(g, 0, sizeof(float) * in.n);
        double loss = ppo_kl_loss(in.n, in.mask, in.logp, in.logp_ref, k, 0.3f, in.scale, g);
        snprintf(path, sizeof path, "klloss/%s/loss", est[k]);
        assert_close(loss, read_scalar(in.f, path), RTOL, ATOL);
        snprintf(path, sizeof path, "klloss/%s/grad", est[k]);
        double *want = read_ds(in.f, path, &n);
        compare(path, g, want, n);
        free(want);
    }
    /* entropy bonus: -coef * scale * sum H, gradient -coef * scale on the mask */
    double hs = 0;
    for (size_t i = 0; i < in.n; i++) hs += in.mask[i] * in.entropy[i];
    double eb = ppo_entropy_bonus(in.n, in.mask, in.entropy, 0.01f, in.scale, g);
    assert_close(eb, -0.01 * in.scale * hs, 1e-6, 0);
    for (size_t i = 0; i < in.n; i++)
        assert_close(g[i], in.mask[i] ? -0.01 * in.scale : 0.0, 1e-6, 0);
    double m[5];
    ppo_explained_variance_moments(in.n, in.mask, in.values, in.ret_in, m);
    assert_close(ppo_explained_variance(m), read_scalar(in.f, "explained_variance"), 1e-9, 1e-12);
    free(g);
    unload(&in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kl_by_hand),
        cmocka_unit_test(test_gae_by_hand),
        cmocka_unit_test(test_token_rewards_by_hand),
        cmocka_unit_test(test_policy_loss_by_hand),
        cmocka_unit_test(test_value_loss_by_hand),
        cmocka_unit_test(test_kl_controller_by_hand),
        cmocka_unit_test(test_whiten_by_hand),
        cmocka_unit_test(test_ref_rewards),
        cmocka_unit_test(test_ref_gae),
        cmocka_unit_test(test_ref_whiten),
        cmocka_unit_test(test_ref_losses),
    };
    return cmocka_run_group_tests_name("ppo", tests, setup, NULL);
}
