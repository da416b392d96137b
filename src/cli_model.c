/* cli_model: the model-file subcommands: inspect, tokenize, logits, generate, export. Each
 * validates its arguments, prints one precise line on error and returns the exit status (2 for
 * bad input). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "gguf_model.h"
#include "model.h"
#include "rng.h"
#include "sample.h"
#include "tokenizer.h"

static int fail(const rl_err *e) {
    fprintf(stderr, "rlaif: %s\n", e->msg);
    return err_exit_status(e->code);
}

static int usage_error(const char *cmd, const char *msg, const char *usage) {
    fprintf(stderr, "rlaif %s: %s\nusage: rlaif %s\n", cmd, msg, usage);
    return 2;
}

/* ------------------------------------------------------------------ inspect */

static const char *const inspect_usage = "inspect FILE.gguf [--all-keys]";

static void print_tokenizer(const tokenizer *t) {
    int n = tokenizer_n_vocab(t);
    printf("\ntokenizer\n");
    printf("  model            %s (%s)\n", tokenizer_model_name(t),
           tokenizer_kind(t) == TOKENIZER_SPM ? "SentencePiece-style" : "byte-level BPE");
    printf("  pre-tokenizer    %s\n", tokenizer_pretokenizer(t));
    printf("  tokens           %d\n", n);
    if (tokenizer_kind(t) == TOKENIZER_BPE)
        printf("  merges           %d\n", tokenizer_n_merges(t));
    int counts[7] = {0};
    for (int i = 0; i < n; i++) {
        int ty = tokenizer_token_type(t, i);
        counts[ty >= 0 && ty <= 6 ? ty : 0]++;
    }
    static const char *const tn[7] = {"undefined",    "normal", "unknown", "control",
                                      "user-defined", "unused", "byte"};
    printf("  token types     ");
    for (int k = 0; k < 7; k++)
        if (counts[k]) printf(" %s %d", tn[k], counts[k]);
    printf("\n");
    struct {
        const char *what;
        int id;
    } sp[] = {{"bos", tokenizer_bos(t)},
              {"eos", tokenizer_eos(t)},
              {"unk", tokenizer_unk(t)},
              {"pad", tokenizer_pad(t)}};
    for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) {
        if (sp[k].id < 0) {
            printf("  %-16s none\n", sp[k].what);
            continue;
        }
        size_t len;
        const char *s = tokenizer_token_text(t, sp[k].id, &len);
        printf("  %-16s %d '%.*s'\n", sp[k].what, sp[k].id, (int)(len > 60 ? 60 : len), s);
    }
    printf("  add bos / eos    %s / %s\n", tokenizer_add_bos(t) ? "yes" : "no",
           tokenizer_add_eos(t) ? "yes" : "no");
    printf("  end of generation");
    int shown = 0;
    for (int i = 0; i < n && shown < 8; i++)
        if (tokenizer_is_eog(t, i)) {
            size_t len;
            const char *s = tokenizer_token_text(t, i, &len);
            printf(" %d '%.*s'", i, (int)(len > 40 ? 40 : len), s);
            shown++;
        }
    printf("\n");
}

int cli_inspect(int argc, char **argv) {
    const char *path = NULL;
    int all = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: rlaif %s\n\nPrints the architecture, dimensions, metadata, tensor table "
                   "and tokenizer of a GGUF file.\n  --all-keys  print every metadata value "
                   "(arrays: first 8 items)\n",
                   inspect_usage);
            return 0;
        }
        if (strcmp(argv[i], "--all-keys") == 0)
            all = 1;
        else if (argv[i][0] == '-')
            return usage_error("inspect", "unknown option", inspect_usage);
        else if (!path)
            path = argv[i];
        else
            return usage_error("inspect", "more than one file given", inspect_usage);
    }
    if (!path) return usage_error("inspect", "no file given", inspect_usage);
    rl_err e = {0};
    gguf_file *f;
    if (gguf_open(path, &f, &e)) return fail(&e);
    printf("file               %s\n", path);
    printf("format             GGUF v%u, %llu bytes, %lld metadata pairs, %lld tensors, "
           "alignment %llu, data at byte %llu\n",
           gguf_version(f), (unsigned long long)gguf_file_size(f), (long long)gguf_n_kv(f),
           (long long)gguf_n_tensors(f), (unsigned long long)gguf_alignment(f),
           (unsigned long long)gguf_data_offset(f));
    gguf_str s;
    if (gguf_get_str(f, "general.name", &s, 0, &e) == ERR_OK && gguf_find_kv(f, "general.name"))
        printf("name               %.*s\n", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    if (gguf_get_str(f, "general.architecture", &s, 0, &e) == ERR_OK &&
        gguf_find_kv(f, "general.architecture"))
        printf("architecture       %.*s\n", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    model_config cfg;
    rl_err me = {0};
    if (gguf_model_config(f, &cfg, &me) == ERR_OK) {
        printf("model              C %d, L %d, NH %d, NKV %d, HS %d, FF %d, V %d, context %d\n",
               cfg.dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn_dim,
               cfg.vocab_size, cfg.max_seq);
        printf("                   rope theta %g (%s), rms eps %g, qkv bias %s, output %s\n",
               (double)cfg.rope_theta, cfg.rope_neox ? "neox, half-split" : "adjacent pairs",
               (double)cfg.norm_eps, cfg.qkv_bias ? "yes" : "no", cfg.tied_output ? "tied" : "own");
    } else if (gguf_n_tensors(f) > 0) {
        printf("model              not loadable by rlaif: %s\n", me.msg);
    }
    printf("\nmetadata\n");
    char buf[1024];
    for (int64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        int is_arr = kv->type == GGUF_TYPE_ARRAY;
        gguf_kv_format(f, kv, buf, sizeof buf, all ? 8 : (is_arr ? 3 : 16));
        printf("  %-44.*s %-5s %s\n", (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.ptr,
               gguf_type_name(kv->type), buf);
    }
    if (gguf_n_tensors(f) > 0) {
        printf("\ntensors\n  %-32s %-7s %-22s %14s %12s\n", "name", "type", "shape (row-major)",
               "file offset", "bytes");
        uint64_t total = 0, params = 0;
        for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
            const gguf_tensor_info *t = gguf_tensor_at(f, i);
            char shape[96];
            size_t k = 0;
            for (int d = (int)t->n_dims - 1; d >= 0 && k < sizeof shape; d--)
                k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%llu",
                                      d == (int)t->n_dims - 1 ? "" : " x ",
                                      (unsigned long long)t->ne[d]);
            printf("  %-32s %-7s %-22s %14llu %12llu\n", t->name, ggml_type_name(t->type), shape,
                   (unsigned long long)(gguf_data_offset(f) + t->offset),
                   (unsigned long long)t->nbytes);
            total += t->nbytes;
            params += t->nelements;
        }
        printf("  %lld tensors, %llu parameters, %llu bytes\n", (long long)gguf_n_tensors(f),
               (unsigned long long)params, (unsigned long long)total);
    }
    if (gguf_find_kv(f, "tokenizer.ggml.model")) {
        tokenizer *t;
        if (tokenizer_from_gguf(f, &t, &e) == ERR_OK) {
            print_tokenizer(t);
            tokenizer_free(t);
        } else {
            printf("\ntokenizer          not usable by rlaif: %s\n", e.msg);
        }
    } else {
        printf("\ntokenizer          none in this file\n");
    }
    gguf_close(f);
    return 0;
}

/* ------------------------------------------------------------------ tokenize */

static const char *const tokenize_usage = "tokenize --model FILE.gguf [--bos] [--special]";

/* Reads all of a stream; returns NULL on a read error. */
static char *read_all(FILE *fp, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *p = xmalloc(cap);
    for (;;) {
        if (n == cap) p = xrealloc(p, cap *= 2);
        size_t k = fread(p + n, 1, cap - n, fp);
        n += k;
        if (k == 0) break;
    }
    if (ferror(fp)) {
        free(p);
        return NULL;
    }
    *len = n;
    return p;
}

int cli_tokenize(int argc, char **argv) {
    const char *model_path = NULL;
    int flags = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: rlaif %s\n\nReads all of standard input as one UTF-8 string (a trailing "
                   "newline is part of it) and prints its token ids on one line.\n"
                   "  --bos      prepend the BOS token\n"
                   "  --special  control tokens written in the text (<s>, <|im_end|>) become "
                   "those tokens\n",
                   tokenize_usage);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model_path = argv[++i];
        else if (strcmp(argv[i], "--bos") == 0)
            flags |= TOK_ADD_BOS;
        else if (strcmp(argv[i], "--special") == 0)
            flags |= TOK_PARSE_SPECIAL;
        else
            return usage_error("tokenize", "unknown or incomplete option", tokenize_usage);
    }
    if (!model_path) return usage_error("tokenize", "--model is required", tokenize_usage);
    rl_err e = {0};
    gguf_file *f;
    if (gguf_open(model_path, &f, &e)) return fail(&e);
    tokenizer *t;
    if (tokenizer_from_gguf(f, &t, &e)) {
        gguf_close(f);
        return fail(&e);
    }
    size_t len;
    char *text = read_all(stdin, &len);
    if (!text) {
        fprintf(stderr, "rlaif tokenize: reading standard input failed: %s\n", strerror(errno));
        tokenizer_free(t);
        gguf_close(f);
        return 1;
    }
    int *ids = NULL, n = 0;
    int rc = tokenizer_encode(t, text, len, flags, &ids, &n, &e);
    if (rc == ERR_OK) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
        free(ids);
    }
    free(text);
    tokenizer_free(t);
    gguf_close(f);
    return rc ? fail(&e) : 0;
}

/* ------------------------------------------------------------------ loading a model */

/* The weights of an open file in a new engine model; max_seq (> 0) replaces the file's context
 * length, which sizes the rotary tables. */
static int load_weights(const gguf_file *f, int max_seq, model *m, rl_err *e) {
    model_config cfg;
    int rc = gguf_model_config(f, &cfg, e);
    if (rc) return rc;
    if (max_seq > 0) cfg.max_seq = max_seq;
    if ((rc = model_create(m, &cfg, e))) return rc;
    rc = gguf_model_load(f, &m->cfg, m->tensors, m->n_tensors, m->params, e);
    if (rc) model_free(m);
    return rc;
}

/* The tokenizer of an open model file, checked against its embedding. */
static int load_tokenizer(const gguf_file *f, tokenizer **tok, rl_err *e) {
    model_config cfg;
    int rc = gguf_model_config(f, &cfg, e);
    if (!rc) rc = tokenizer_from_gguf(f, tok, e);
    if (!rc && tokenizer_n_vocab(*tok) != cfg.vocab_size) {
        rc = err_set(e, ERR_INPUT, "%s: the tokenizer has %d tokens but token_embd.weight %d rows",
                     gguf_path(f), tokenizer_n_vocab(*tok), cfg.vocab_size);
        tokenizer_free(*tok);
    }
    return rc;
}

/* ------------------------------------------------------------------ logits */

static const char *const logits_usage = "logits --model FILE.gguf --ids-file IDS --out OUT.f32";

static int is_sep(char c) {
    return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Token ids separated by commas and/or white space, each in [0, vocab). */
static int read_ids(const char *path, int vocab, int **ids, int *n, rl_err *e) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return err_set(e, ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t len;
    char *text = read_all(fp, &len);
    fclose(fp);
    if (!text) return err_set(e, ERR_IO, "%s: read failed", path);
    int cap = 256, k = 0, rc = ERR_OK;
    int *v = xmalloc(sizeof(int) * (size_t)cap);
    for (size_t i = 0; i < len && !rc;) {
        if (is_sep(text[i])) {
            i++;
            continue;
        }
        size_t start = i;
        long long x = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9' && x <= INT32_MAX)
            x = x * 10 + (text[i++] - '0');
        if (i == start || (i < len && !is_sep(text[i])))
            rc = err_set(e, ERR_INPUT, "%s: byte %zu: expected a token id, found byte 0x%02x", path,
                         i, (unsigned char)text[i < len ? i : start]);
        else if (x >= vocab)
            rc = err_set(e, ERR_INPUT,
                         "%s: byte %zu: token id %lld is outside the vocabulary "
                         "(0..%d)",
                         path, start, x, vocab - 1);
        else {
            if (k == cap) v = xrealloc(v, sizeof(int) * (size_t)(cap *= 2));
            v[k++] = (int)x;
        }
    }
    free(text);
    if (!rc && k == 0) rc = err_set(e, ERR_INPUT, "%s: holds no token ids", path);
    if (rc) {
        free(v);
        return rc;
    }
    *ids = v;
    *n = k;
    return ERR_OK;
}

int cli_logits(int argc, char **argv) {
    const char *mpath = NULL, *ids_path = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: rlaif %s\n\nOne causal forward pass over the ids of IDS (separated by "
                   "commas or white space); OUT gets the raw little-endian float32 logits "
                   "[n_ids][n_vocab].\n",
                   logits_usage);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            mpath = argv[++i];
        else if (strcmp(argv[i], "--ids-file") == 0 && i + 1 < argc)
            ids_path = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else
            return usage_error("logits", "unknown or incomplete option", logits_usage);
    }
    if (!mpath || !ids_path || !out_path)
        return usage_error("logits", "--model, --ids-file and --out are required", logits_usage);
    rl_err e = {0};
    gguf_file *f;
    if (gguf_open(mpath, &f, &e)) return fail(&e);
    model_config cfg;
    int *ids = NULL, n = 0;
    int rc = gguf_model_config(f, &cfg, &e);
    if (!rc) rc = read_ids(ids_path, cfg.vocab_size, &ids, &n, &e);
    model m;
    if (!rc) rc = load_weights(f, n, &m, &e);
    gguf_close(f);
    if (rc) {
        free(ids);
        return fail(&e);
    }
    kvcache c;
    rc = kvcache_create(&c, &m.cfg, 1, n, &e);
    int have_cache = !rc;
    FILE *fp = NULL;
    if (!rc && !(fp = fopen(out_path, "wb")))
        rc = err_set(&e, ERR_IO, "%s: cannot create: %s", out_path, strerror(errno));
    /* in chunks, so that the logits of a long input never sit in memory at once */
    const int chunk = 256;
    size_t V = (size_t)m.cfg.vocab_size;
    float *logits = xmalloc(sizeof(float) * V * (size_t)(n < chunk ? n : chunk));
    for (int i = 0; i < n && !rc; i += chunk) {
        int k = n - i < chunk ? n - i : chunk, slot = 0;
        model_step_out o = {.all_logits = logits};
        rc = model_step(&m, &c, 1, &slot, &k, ids + i, &o, &e);
        if (!rc && fwrite(logits, sizeof(float), V * (size_t)k, fp) != V * (size_t)k)
            rc = err_set(&e, ERR_IO, "%s: write failed: %s", out_path, strerror(errno));
    }
    if (fp && fclose(fp) != 0 && !rc)
        rc = err_set(&e, ERR_IO, "%s: write failed: %s", out_path, strerror(errno));
    free(logits);
    if (have_cache) kvcache_free(&c);
    model_free(&m);
    free(ids);
    return rc ? fail(&e) : 0;
}

/* ------------------------------------------------------------------ generate */

static const char *const generate_usage =
    "generate --model FILE.gguf --prompt TEXT [--max-tokens N] [--temperature T] [--seed S] "
    "[--top-k K] [--top-p P]";

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

int cli_generate(int argc, char **argv) {
    const char *mpath = NULL, *prompt = NULL;
    double max_tokens = 64, temperature = 0.8, seed = 0, top_k = 0, top_p = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: rlaif %s\n\nSamples a continuation of TEXT (tokenized with the file's "
                   "BOS rule) and prints it. Defaults: 64 tokens, temperature 0.8 (0: greedy), "
                   "seed 0, no top-k/top-p. Stops at an end-of-generation token.\n",
                   generate_usage);
            return 0;
        }
        int ok = v != NULL;
        if (strcmp(a, "--model") == 0)
            mpath = v;
        else if (strcmp(a, "--prompt") == 0)
            prompt = v;
        else if (strcmp(a, "--max-tokens") == 0)
            ok = ok && parse_num(v, 1, 1 << 20, &max_tokens);
        else if (strcmp(a, "--temperature") == 0)
            ok = ok && parse_num(v, 0, 100, &temperature);
        else if (strcmp(a, "--seed") == 0)
            ok = ok && parse_num(v, 0, 9007199254740992.0, &seed);
        else if (strcmp(a, "--top-k") == 0)
            ok = ok && parse_num(v, 0, 1 << 30, &top_k);
        else if (strcmp(a, "--top-p") == 0)
            ok = ok && parse_num(v, 0, 1, &top_p);
        else
            ok = 0;
        if (!ok) {
            fprintf(stderr, "rlaif generate: bad or incomplete option '%s'\n", a);
            return usage_error("generate", "see above", generate_usage);
        }
        i++;
    }
    if (!mpath || !prompt)
        return usage_error("generate", "--model and --prompt are required", generate_usage);
    rl_err e = {0};
    gguf_file *f;
    if (gguf_open(mpath, &f, &e)) return fail(&e);
    tokenizer *tok = NULL;
    int *ids = NULL, n = 0, max_new = (int)max_tokens;
    model_config cfg;
    int rc = gguf_model_config(f, &cfg, &e);
    if (!rc) rc = load_tokenizer(f, &tok, &e);
    if (!rc) rc = tokenizer_encode(tok, prompt, strlen(prompt), TOK_ADD_SPECIAL, &ids, &n, &e);
    if (!rc && n == 0)
        rc = err_set(&e, ERR_INPUT, "generate: the prompt is empty and the model adds no BOS");
    if (!rc && n + max_new > cfg.max_seq)
        rc = err_set(&e, ERR_INPUT,
                     "generate: %d prompt tokens + %d new exceed the model's "
                     "context of %d",
                     n, max_new, cfg.max_seq);
    model m;
    if (!rc) rc = load_weights(f, n + max_new, &m, &e);
    gguf_close(f);
    if (rc) {
        free(ids);
        tokenizer_free(tok);
        return fail(&e);
    }
    kvcache c;
    rc = kvcache_create(&c, &m.cfg, 1, n + max_new, &e);
    if (!rc) {
        int *eos = xmalloc(sizeof(int) * (size_t)m.cfg.vocab_size), n_eos = 0;
        for (int i = 0; i < m.cfg.vocab_size; i++)
            if (tokenizer_is_eog(tok, i)) eos[n_eos++] = i;
        rng r;
        rng_init(&r, (uint64_t)seed, RNG_SAMPLE, 0);
        gen_config g = {.sp = {(float)temperature, (int)top_k, (float)top_p},
                        .max_new = max_new,
                        .eos = eos,
                        .n_eos = n_eos};
        int *out = xmalloc(sizeof(int) * (size_t)max_new);
        gen_seq sq = {.prompt = ids, .prompt_len = n, .slot = 0, .r = &r, .out = out};
        rc = sample_generate(&m, &c, &sq, 1, &g, &e);
        if (!rc) {
            char *text;
            size_t len;
            rc = tokenizer_decode(tok, out, sq.n_out - (sq.hit_eos ? 1 : 0), 0, &text, &len, &e);
            if (!rc) {
                fwrite(text, 1, len, stdout);
                fputc('\n', stdout);
                free(text);
            }
        }
        free(out);
        free(eos);
        kvcache_free(&c);
    }
    free(ids);
    tokenizer_free(tok);
    model_free(&m);
    return rc ? fail(&e) : 0;
}

/* ------------------------------------------------------------------ export */

static const char *const export_usage =
    "export --model IN.gguf --out OUT.gguf [--type f32|f16] [--name NAME]";

int cli_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *name = NULL, *type = "f16";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: rlaif %s\n\nWrites the model of IN as a GGUF file in llama.cpp's "
                   "layout and naming, with its tokenizer, chat template and descriptive "
                   "metadata; weight matrices as f16 (default) or f32, norms and biases f32.\n",
                   export_usage);
            return 0;
        }
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            in = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
            type = argv[++i];
        else
            return usage_error("export", "unknown or incomplete option", export_usage);
    }
    if (!in || !out) return usage_error("export", "--model and --out are required", export_usage);
    if (strcmp(type, "f32") != 0 && strcmp(type, "f16") != 0)
        return usage_error("export", "--type must be f32 or f16", export_usage);
    rl_err e = {0};
    gguf_file *f;
    if (gguf_open(in, &f, &e)) return fail(&e);
    tokenizer *tok = NULL;
    model m;
    int rc = load_tokenizer(f, &tok, &e);
    if (!rc) {
        rc = load_weights(f, 0, &m, &e);
        if (rc) tokenizer_free(tok);
    }
    if (rc) {
        gguf_close(f);
        return fail(&e);
    }
    char gname[256] = "rlaif";
    gguf_str s;
    if (!name && gguf_find_kv(f, "general.name") &&
        gguf_get_str(f, "general.name", &s, 1, &e) == ERR_OK)
        snprintf(gname, sizeof gname, "%.*s", (int)(s.len > 200 ? 200 : s.len), s.ptr);
    rc = gguf_model_export(out, name ? name : gname, &m.cfg, m.tensors, m.n_tensors, m.params, tok,
                           f, strcmp(type, "f32") == 0 ? GGML_TYPE_F32 : GGML_TYPE_F16, &e);
    gguf_close(f);
    tokenizer_free(tok);
    model_free(&m);
    return rc ? fail(&e) : 0;
}
