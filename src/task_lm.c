/* task_lm: see include/task_lm.h. The gold-rater helpers are in task_lm_eval.c. */
#include "task_lm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"
#include "gguf.h"
#include "gguf_model.h"
#include "tokenizer_pre.h"

void task_lm_task_config(const config *cfg, task_config *tc) {
    task_config_default(tc);
    tc->seed = (uint64_t)cfg->task.seed;
    tc->n_docs[TASK_TRAIN] = cfg->task.n_train;
    tc->n_docs[TASK_VAL] = cfg->task.n_val;
    tc->n_docs[TASK_TEST] = cfg->task.n_test;
    tc->mix[TASK_GOOD] = cfg->task.mix_good;
    tc->mix[TASK_VERBOSE] = cfg->task.mix_verbose;
    tc->mix[TASK_MISSING] = cfg->task.mix_missing;
    tc->mix[TASK_INVENTED] = cfg->task.mix_invented;
    tc->mix[TASK_MALFORMED] = cfg->task.mix_malformed;
    tc->n_judge_pairs = cfg->task.judge_pairs;
}

char *task_lm_trim(const char *s) {
    if (!s) return xstrdup("");
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    char *out = xmalloc(n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* ------------------------------------------------------------------ tokenizer */

int task_lm_train_tokenizer(const task_config *tc, const char *const *extra, int n_extra,
                            int extra_weight, int vocab_size, tokenizer **out, rl_err *e) {
    *out = NULL;
    task_corpus it;
    task_corpus_begin(&it, tc);
    size_t cap = 1024, n = 0;
    char **docs = xmalloc(sizeof *docs * cap);
    int rc = ERR_OK;
    for (;;) {
        const char *text;
        if ((rc = task_corpus_next(&it, &text, e))) break;
        if (!text) break;
        if (n == cap) docs = xrealloc(docs, sizeof *docs * (cap *= 2));
        docs[n++] = xstrdup(text);
    }
    if (extra_weight < 1) extra_weight = 1;
    size_t n_own = n;
    for (int r = 0; r < extra_weight && !rc; r++)
        for (int i = 0; i < n_extra; i++) {
            if (n == cap) docs = xrealloc(docs, sizeof *docs * (cap *= 2));
            docs[n++] = (char *)extra[i]; /* not owned; only the first n_own are freed */
        }
    if (!rc && n > (size_t)INT32_MAX) rc = err_set(e, ERR_INPUT, "tokenizer: corpus too large");
    if (!rc) {
        static const char *const specials[] = {TASK_LM_BOS, TASK_LM_EOS};
        bpe_train_opts o = {.vocab_size = vocab_size,
                            .min_frequency = 2,
                            .pre = NULL, /* qwen2: digits one by one, exact round trip */
                            .specials = specials,
                            .n_specials = 2,
                            .bos = 0,
                            .eos = 1,
                            .pad = -1,
                            .add_bos = 1};
        rc = bpe_train((const char *const *)docs, NULL, (int)n, &o, out, e);
        if (rc) err_prefix(e, "tokenizer from the task corpus");
    }
    for (size_t i = 0; i < n_own; i++) free(docs[i]);
    free(docs);
    return rc;
}

int task_lm_save_tokenizer(const tokenizer *tok, const char *path, rl_err *e) {
    gguf_writer *w = gguf_writer_new();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "rlaif task tokenizer");
    tokenizer_write_gguf(tok, w);
    int rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    return rc;
}

int task_lm_load_tokenizer(const char *path, tokenizer **out, rl_err *e) {
    gguf_file *f = NULL;
    int rc = gguf_open(path, &f, e);
    if (rc) return rc;
    rc = tokenizer_from_gguf(f, out, e);
    gguf_close(f);
    return rc;
}

int task_lm_encode(const tokenizer *tok, const char *text, int bos, int **ids, int *n, rl_err *e) {
    *ids = NULL;
    *n = 0;
    int *raw = NULL, nraw = 0;
    int rc = tokenizer_encode(tok, text, strlen(text), 0, &raw, &nraw, e);
    if (rc) return rc;
    int b = bos && tokenizer_bos(tok) >= 0;
    int *out = xmalloc(sizeof(int) * (size_t)(nraw + b + 1));
    if (b) out[0] = tokenizer_bos(tok);
    if (nraw) memcpy(out + b, raw, sizeof(int) * (size_t)nraw);
    free(raw);
    *ids = out;
    *n = nraw + b;
    return ERR_OK;
}

int task_lm_sft_sequence(const tokenizer *tok, const task_example *ex, int **ids, int *n,
                         int *n_prompt, rl_err *e) {
    int *p = NULL, np = 0, *t = NULL, nt = 0;
    int rc = task_lm_encode(tok, ex->prompt, 1, &p, &np, e);
    if (!rc) rc = task_lm_encode(tok, ex->target, 0, &t, &nt, e);
    if (rc) {
        free(p);
        free(t);
        return rc;
    }
    int eos = tokenizer_eos(tok);
    int *out = xmalloc(sizeof(int) * (size_t)(np + nt + 1));
    memcpy(out, p, sizeof(int) * (size_t)np);
    memcpy(out + np, t, sizeof(int) * (size_t)nt);
    int len = np + nt;
    if (eos >= 0) out[len++] = eos;
    free(p);
    free(t);
    *ids = out;
    *n = len;
    *n_prompt = np;
    return ERR_OK;
}

/* ------------------------------------------------------------------ models */

void task_lm_model_config(const config_model *cm, int vocab_size, model_config *mc) {
    memset(mc, 0, sizeof *mc);
    mc->dim = cm->dim;
    mc->n_layers = cm->layers;
    mc->n_heads = cm->heads;
    mc->n_kv_heads = cm->kv_heads;
    mc->head_dim = cm->dim / cm->heads;
    mc->ffn_dim = cm->ffn;
    mc->vocab_size = vocab_size;
    mc->max_seq = cm->max_seq;
    mc->rope_theta = (float)cm->rope_theta;
    mc->rope_neox = 0;
    mc->norm_eps = 1e-5f;
    mc->qkv_bias = 0;
    mc->tied_output = 0;
    mc->scalar_head = 0;
}

int task_lm_load_model(const char *path, int max_seq, model *m, tokenizer **tok, rl_err *e) {
    gguf_file *f = NULL;
    memset(m, 0, sizeof *m);
    *tok = NULL;
    int rc = gguf_open(path, &f, e);
    if (rc) return rc;
    model_config mc;
    if ((rc = gguf_model_config(f, &mc, e))) goto done;
    if (max_seq > 0 && max_seq < mc.max_seq) mc.max_seq = max_seq;
    if ((rc = model_create(m, &mc, e))) goto done;
    if ((rc = gguf_model_load(f, &m->cfg, m->tensors, m->n_tensors, m->params, e))) goto done;
    if ((rc = tokenizer_from_gguf(f, tok, e))) goto done;
    if (tokenizer_n_vocab(*tok) > mc.vocab_size)
        rc = err_set(e, ERR_INPUT, "%s: the tokenizer has %d tokens, the model's vocabulary %d",
                     path, tokenizer_n_vocab(*tok), mc.vocab_size);
done:
    gguf_close(f);
    if (rc) {
        model_free(m);
        if (*tok) tokenizer_free(*tok);
        *tok = NULL;
    }
    return rc;
}

int task_lm_save_model(const char *path, const char *name, const model *m, const tokenizer *tok,
                       rl_err *e) {
    return gguf_model_export(path, name, &m->cfg, m->tensors, m->n_tensors, m->params, tok, NULL,
                             GGML_TYPE_F32, e);
}

/* ------------------------------------------------------------------ sampling */

int task_lm_generate(const model *m, const tokenizer *tok, kvcache *kv, const char *const *prompts,
                     int n, const sample_params *sp, int max_new, rng *streams, char **out,
                     rl_err *e) {
    int slots = kv->n_slots, eos = tokenizer_eos(tok);
    int rc = ERR_OK;
    for (int i = 0; i < n; i++) out[i] = NULL;
    gen_seq *seqs = xcalloc((size_t)slots, sizeof *seqs);
    int **ptoks = xcalloc((size_t)slots, sizeof *ptoks);
    int *outbuf = xmalloc(sizeof(int) * (size_t)slots * (size_t)max_new);
    for (int i0 = 0; i0 < n && !rc; i0 += slots) {
        int k = n - i0 < slots ? n - i0 : slots;
        for (int j = 0; j < k && !rc; j++) {
            int np = 0;
            rc = task_lm_encode(tok, prompts[i0 + j], 1, &ptoks[j], &np, e);
            if (rc) break;
            int room = kv->max_seq - np;
            if (room < 1) {
                rc = err_set(e, ERR_INPUT,
                             "a prompt of %d tokens leaves no room in a context of %d tokens", np,
                             kv->max_seq);
                break;
            }
            kvcache_reset(kv, j);
            seqs[j] = (gen_seq){.prompt = ptoks[j],
                                .prompt_len = np,
                                .slot = j,
                                .r = &streams[i0 + j],
                                .out = outbuf + (size_t)j * max_new};
        }
        if (!rc) {
            int mn = max_new;
            for (int j = 0; j < k; j++)
                if (kv->max_seq - seqs[j].prompt_len < mn) mn = kv->max_seq - seqs[j].prompt_len;
            gen_config g = {.sp = *sp, .max_new = mn, .eos = &eos, .n_eos = eos >= 0};
            rc = sample_generate(m, kv, seqs, k, &g, e);
        }
        for (int j = 0; j < k && !rc; j++) {
            int len = seqs[j].n_out - (seqs[j].hit_eos ? 1 : 0);
            char *text = NULL;
            size_t tl = 0;
            rc = tokenizer_decode(tok, seqs[j].out, len, 0, &text, &tl, e);
            if (!rc) {
                /* a model can emit byte tokens that do not form UTF-8: texts stay valid UTF-8 */
                size_t cl;
                out[i0 + j] = tokenizer_utf8_sanitize(text, tl, &cl);
                free(text);
            }
        }
        for (int j = 0; j < k; j++) free(ptoks[j]), ptoks[j] = NULL;
    }
    free(seqs);
    free(ptoks);
    free(outbuf);
    if (rc)
        for (int i = 0; i < n; i++) free(out[i]), out[i] = NULL;
    return rc;
}
