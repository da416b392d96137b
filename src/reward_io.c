/* reward_io: the files of the reward stage: labels.h5 (read) and models with a scalar head as
 * GGUF (reward and value models: llama.cpp's layout plus score_head.weight (C) and
 * score_head.bias (1), and rlaif.* metadata for the normalisation).
 *
 * A scalar-head file is the plain export (gguf_model_export) with the head and the metadata
 * added; reading it is gguf_model_load's walk with the head's two tensors allowed. A plain
 * language model (no head) reads too: the head is then zero and has_head 0.
 * Not here: training (reward.c), the stage (stage_reward.c). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_model.h"
#include "h5io.h"
#include "reward.h"
#include "task_lm.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------ GGUF with a scalar head */

int reward_model_save(const char *path, const char *name, const model *m, const tokenizer *tok,
                      const reward_norm *norm, rl_err *e) {
    if (!m->cfg.scalar_head)
        return err_set(e, ERR_INTERNAL, "%s: the model has no scalar head", path);
    char body[4200];
    snprintf(body, sizeof body, "%s.body", path);
    int rc = gguf_model_export(body, name, &m->cfg, m->tensors, m->n_tensors, m->params, tok, NULL,
                               GGML_TYPE_F32, e);
    if (rc) return rc;
    gguf_file *f = NULL;
    if ((rc = gguf_open(body, &f, e))) {
        unlink(body);
        return rc;
    }
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(f); i++) gguf_writer_copy_kv(w, f, gguf_kv_at(f, i));
    float **bufs = xcalloc((size_t)gguf_n_tensors(f) + 1, sizeof *bufs);
    for (int64_t i = 0; i < gguf_n_tensors(f) && !rc; i++) {
        const gguf_tensor_info *t = gguf_tensor_at(f, i);
        bufs[i] = xmalloc(sizeof(float) * (size_t)t->nelements);
        rc = gguf_tensor_to_f32(f, t, bufs[i], t->nelements, e);
        if (!rc) rc = gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, bufs[i], e);
    }
    uint64_t ne_w[1] = {(uint64_t)m->cfg.dim}, ne_b[1] = {1};
    if (!rc)
        rc =
            gguf_writer_add_tensor(w, "score_head.weight", GGML_TYPE_F32, 1, ne_w, m->p.score_w, e);
    if (!rc)
        rc = gguf_writer_add_tensor(w, "score_head.bias", GGML_TYPE_F32, 1, ne_b, m->p.score_b, e);
    gguf_writer_set_bool(w, "rlaif.scalar_head", 1);
    if (norm) {
        gguf_writer_set_bool(w, "rlaif.reward.normalised", norm->folded);
        gguf_writer_set_f32(w, "rlaif.reward.gain", (float)norm->gain);
        gguf_writer_set_f32(w, "rlaif.reward.bias", (float)norm->bias);
        gguf_writer_set_f32(w, "rlaif.reward.raw_mean", (float)norm->raw_mean);
        gguf_writer_set_f32(w, "rlaif.reward.raw_std", (float)norm->raw_std);
        gguf_writer_set_u32(w, "rlaif.reward.norm_samples", (uint32_t)norm->samples);
    }
    if (!rc) rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) free(bufs[i]);
    free(bufs);
    gguf_close(f);
    unlink(body);
    return rc;
}

int reward_model_load(const char *path, int max_seq, model *m, tokenizer **tok, reward_norm *norm,
                      int *has_head, rl_err *e) {
    gguf_file *f = NULL;
    memset(m, 0, sizeof *m);
    if (tok) *tok = NULL;
    if (norm) memset(norm, 0, sizeof *norm);
    int rc = gguf_open(path, &f, e);
    if (rc) return rc;
    model_config mc;
    uint8_t *used = NULL;
    if ((rc = gguf_model_config(f, &mc, e))) goto done;
    if (max_seq > 0 && max_seq < mc.max_seq) mc.max_seq = max_seq;
    int head = gguf_find_tensor(f, "score_head.weight") != NULL;
    if (has_head) *has_head = head;
    mc.scalar_head = 1;
    if ((rc = model_create(m, &mc, e))) goto done;
    int64_t nt = gguf_n_tensors(f);
    used = xcalloc((size_t)(nt ? nt : 1), 1);
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const model_tensor *mt = &m->tensors[i];
        if (mc.tied_output && strcmp(mt->name, "output.weight") == 0) continue;
        const gguf_tensor_info *t = gguf_find_tensor(f, mt->name);
        if (!t) {
            if (!head && strncmp(mt->name, "score_head.", 11) == 0) continue; /* stays 0 */
            rc = err_set(e, ERR_INPUT, "%s: tensor '%s' is missing", path, mt->name);
            break;
        }
        uint64_t want[GGUF_MAX_DIMS] = {1, 1, 1, 1};
        if (mt->ndim == 1)
            want[0] = (uint64_t)mt->shape[0];
        else
            want[0] = (uint64_t)mt->shape[1], want[1] = (uint64_t)mt->shape[0];
        for (int d = 0; d < GGUF_MAX_DIMS && !rc; d++)
            if (t->ne[d] != want[d])
                rc = err_set(e, ERR_INPUT,
                             "%s: byte %llu: tensor '%s' has ggml shape [%llu, %llu], the model "
                             "needs [%llu, %llu]",
                             path, (unsigned long long)t->info_offset, mt->name,
                             (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                             (unsigned long long)want[0], (unsigned long long)want[1]);
        if (!rc) rc = gguf_tensor_to_f32(f, t, m->params + mt->offset, mt->numel, e);
        used[t - gguf_tensor_at(f, 0)] = 1;
        for (size_t k = 0; !rc && k < mt->numel; k++)
            if (!isfinite(m->params[mt->offset + k]))
                rc = err_set(e, ERR_INPUT, "%s: tensor '%s' element %zu is not finite", path,
                             mt->name, k);
    }
    for (int64_t i = 0; i < nt && !rc; i++)
        if (!used[i])
            rc = err_set(e, ERR_INPUT,
                         "%s: tensor '%s' is not part of a llama model with a scalar head", path,
                         gguf_tensor_at(f, i)->name);
    if (!rc && norm) {
        double v = 0;
        int b = 0;
        uint64_t u = 0;
        if (!(rc = gguf_get_bool(f, "rlaif.reward.normalised", &b, 0, e))) norm->folded = b;
        if (!rc && !(rc = gguf_get_float(f, "rlaif.reward.gain", &v, 0, e))) norm->gain = v;
        v = 0;
        if (!rc && !(rc = gguf_get_float(f, "rlaif.reward.bias", &v, 0, e))) norm->bias = v;
        v = 0;
        if (!rc && !(rc = gguf_get_float(f, "rlaif.reward.raw_mean", &v, 0, e))) norm->raw_mean = v;
        v = 0;
        if (!rc && !(rc = gguf_get_float(f, "rlaif.reward.raw_std", &v, 0, e))) norm->raw_std = v;
        if (!rc && !(rc = gguf_get_uint(f, "rlaif.reward.norm_samples", UINT32_MAX, &u, 0, e)))
            norm->samples = (long)u;
    }
    if (!rc && tok) {
        rc = tokenizer_from_gguf(f, tok, e);
        if (!rc && tokenizer_n_vocab(*tok) > mc.vocab_size)
            rc = err_set(e, ERR_INPUT, "%s: the tokenizer has %d tokens, the model's vocabulary %d",
                         path, tokenizer_n_vocab(*tok), mc.vocab_size);
    }
done:
    free(used);
    gguf_close(f);
    if (rc) {
        model_free(m);
        if (tok && *tok) tokenizer_free(*tok), *tok = NULL;
    }
    return rc;
}

int reward_prompt_tokens(const tokenizer *tok, const char *prompt, int **ids, int *n, rl_err *e) {
    return task_lm_encode_prompt(tok, prompt, ids, n, e);
}

/* ------------------------------------------------------------------ labels.h5 */

void reward_labels_free(reward_labels *l) {
    if (!l) return;
    for (long i = 0; i < l->n; i++) free(l->context[i]), free(l->a[i]), free(l->b[i]);
    free(l->context), free(l->a), free(l->b), free(l->p), free(l->prompt_id);
    memset(l, 0, sizeof *l);
}

static int read_col(hid_t g, const char *name, hid_t memtype, void *buf, long n, const char *path,
                    rl_err *e) {
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return h5io_err(e, ERR_INPUT, "%s: no dataset /pairs/%s", path, name);
    hid_t sp = H5Dget_space(d);
    hssize_t got = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (got != n) {
        H5Dclose(d);
        return err_set(e, ERR_INPUT, "%s: /pairs/%s has %lld rows, /pairs/done has %ld", path, name,
                       (long long)got, n);
    }
    herr_t st = H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d);
    if (st < 0) return h5io_err(e, ERR_INPUT, "%s: cannot read /pairs/%s", path, name);
    return ERR_OK;
}

int reward_labels_read(const char *path, reward_labels *l, rl_err *e) {
    memset(l, 0, sizeof *l);
    h5io_quiet q;
    h5io_quiet_begin(&q);
    hid_t fapl = h5io_fapl();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        /* the message first: any HDF5 call (H5Pclose too) clears the error stack */
        if (access(path, F_OK) != 0)
            err_set(e, ERR_INPUT,
                    "%s: cannot open the labels: %s (run the label stage first, or set "
                    "reward.labels_file)",
                    path, strerror(errno));
        else
            h5io_err(e, ERR_INPUT,
                     "%s: the labels file does not open as HDF5: truncated or damaged (move it "
                     "away and run the label stage again, or set reward.labels_file)",
                     path);
        H5Pclose(fapl);
        h5io_quiet_end(&q);
        return ERR_INPUT;
    }
    H5Pclose(fapl);
    int rc = ERR_OK;
    hid_t g = H5Gopen2(f, "pairs", H5P_DEFAULT);
    long n = 0;
    uint8_t *done = NULL;
    int64_t *pid = NULL;
    double *p = NULL;
    char **ctx = NULL, **a = NULL, **b = NULL;
    hid_t st = h5io_str_type();
    if (g < 0) {
        rc = h5io_err(e, ERR_INPUT, "%s: no group /pairs; is this a labels.h5?", path);
        goto out;
    }
    {
        hid_t d = H5Dopen2(g, "done", H5P_DEFAULT);
        if (d < 0) {
            rc = h5io_err(e, ERR_INPUT, "%s: no dataset /pairs/done", path);
            goto out;
        }
        hid_t sp = H5Dget_space(d);
        n = (long)H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        H5Dclose(d);
    }
    size_t k = (size_t)(n > 0 ? n : 1);
    done = xcalloc(k, 1);
    pid = xcalloc(k, sizeof *pid);
    p = xcalloc(k, sizeof *p);
    ctx = xcalloc(k, sizeof *ctx), a = xcalloc(k, sizeof *a), b = xcalloc(k, sizeof *b);
    if ((rc = read_col(g, "done", H5T_NATIVE_UINT8, done, n, path, e)) ||
        (rc = read_col(g, "prompt_id", H5T_NATIVE_INT64, pid, n, path, e)) ||
        (rc = read_col(g, "p", H5T_NATIVE_DOUBLE, p, n, path, e)) ||
        (rc = read_col(g, "context", st, ctx, n, path, e)) ||
        (rc = read_col(g, "a", st, a, n, path, e)) || (rc = read_col(g, "b", st, b, n, path, e)))
        goto out;
    long m = 0;
    for (long i = 0; i < n; i++) m += done[i] != 0;
    l->context = xcalloc((size_t)(m + 1), sizeof *l->context);
    l->a = xcalloc((size_t)(m + 1), sizeof *l->a);
    l->b = xcalloc((size_t)(m + 1), sizeof *l->b);
    l->p = xcalloc((size_t)(m + 1), sizeof *l->p);
    l->prompt_id = xcalloc((size_t)(m + 1), sizeof *l->prompt_id);
    l->rows = n;
    for (long i = 0, j = 0; i < n; i++) {
        if (!done[i]) continue;
        if (!(p[i] >= 0 && p[i] <= 1)) {
            rc = err_set(e, ERR_INPUT, "%s: row %ld has the label p = %g, outside [0, 1]", path, i,
                         p[i]);
            break;
        }
        l->context[j] = xstrdup(ctx[i] ? ctx[i] : "");
        l->a[j] = xstrdup(a[i] ? a[i] : "");
        l->b[j] = xstrdup(b[i] ? b[i] : "");
        l->p[j] = p[i];
        l->prompt_id[j] = pid[i];
        l->n = ++j;
    }
out:
    if (ctx) {
        /* variable-length strings were allocated by HDF5 */
        for (long i = 0; i < n; i++) {
            if (ctx[i]) H5free_memory(ctx[i]);
            if (a[i]) H5free_memory(a[i]);
            if (b[i]) H5free_memory(b[i]);
        }
    }
    free(done), free(pid), free(p), free(ctx), free(a), free(b);
    H5Tclose(st);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    h5io_quiet_end(&q);
    if (rc) reward_labels_free(l);
    return rc;
}
