/* cli_model: the model-file subcommands: inspect, tokenize (and, with the engine, logits,
 * generate, export). Each validates its arguments, prints one precise line on error and returns
 * the exit status (2 for bad input). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "gguf_model.h"
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
    int *ids, n;
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
