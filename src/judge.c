/* judge: see include/judge.h.
 *
 * Cache slots: the first few hold prefixes (preamble, principle, exemplars, template head), kept
 * by least-recent use; the rest are work slots, two per pair (one per order) and, with sampled
 * rationales, one per (order, sample). A pair's first-order slot gets the prefix by copy, then
 * the tokens both orders share; the second-order slot copies that and both continue with their
 * own tokens in one batched model_step whose logits are read at each prompt's last token. */
#include "judge.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rng.h"
#include "sample.h"
#include "tokenizer_pre.h"

#define PREFIX_SLOTS_MAX 8
#define SCORE_PREFIX_KEY (-2) /* the prefix cache key of score mode */

/* ------------------------------------------------------------------ options */

static char *dup0(const char *s) {
    return xstrdup(s ? s : "");
}

void judge_opts_default(judge_opts *o) {
    memset(o, 0, sizeof *o);
    o->mode = JUDGE_PREFERENCE;
    o->preamble = dup0("You are an expert summary rater. Given a piece of text and two of its "
                       "possible summaries, output 1 or 2 to indicate which summary is better.");
    o->template_text = dup0("Text - {context}\nSummary 1 - {a}\nSummary 2 - {b}\n\n");
    o->ending = dup0("Preferred Summary=");
    o->label_1 = dup0("1");
    o->label_2 = dup0("2");
    o->position_debias = 1;
    o->cot_ending = dup0("Consider the coherence, accuracy, coverage, and overall quality of each "
                         "summary and explain which one is better.\n\nRationale:");
    o->cot_max_tokens = 48;
    o->cot_samples = 1;
    o->clamp_low = 0;
    o->clamp_high = 1;
    o->score_preamble = dup0("You are an expert summary rater. Given a piece of text and a summary "
                             "of it, rate the summary from 1 (worst) to 10 (best).");
    o->score_template = dup0("Text - {context}\nSummary - {response}\n\n");
    o->score_ending = dup0("Score (1-10)=");
    o->lik_template = dup0(" {context}\nTL;DR: {response}");
    o->lik_temperature = 4.0;
    o->lik_eos = 1;
    o->reuse_prefix = 1;
}

void judge_opts_free(judge_opts *o) {
    if (!o) return;
    free(o->preamble);
    for (int i = 0; i < o->n_exemplars; i++) {
        judge_exemplar *x = &o->exemplars[i];
        free(x->context), free(x->a), free(x->b), free(x->rationale);
    }
    free(o->exemplars);
    free(o->template_text), free(o->ending), free(o->label_1), free(o->label_2);
    free(o->cot_ending);
    for (int i = 0; i < o->n_principles; i++) free(o->principles[i]);
    free(o->principles);
    free(o->score_preamble), free(o->score_template), free(o->score_ending);
    free(o->lik_template);
    memset(o, 0, sizeof *o);
}

static void opts_copy(judge_opts *d, const judge_opts *s) {
    *d = *s;
    d->preamble = dup0(s->preamble);
    d->exemplars = s->n_exemplars ? xcalloc((size_t)s->n_exemplars, sizeof *d->exemplars) : NULL;
    for (int i = 0; i < s->n_exemplars; i++) {
        d->exemplars[i].context = dup0(s->exemplars[i].context);
        d->exemplars[i].a = dup0(s->exemplars[i].a);
        d->exemplars[i].b = dup0(s->exemplars[i].b);
        d->exemplars[i].rationale = dup0(s->exemplars[i].rationale);
        d->exemplars[i].label = s->exemplars[i].label;
    }
    d->template_text = dup0(s->template_text);
    d->ending = dup0(s->ending);
    d->label_1 = dup0(s->label_1);
    d->label_2 = dup0(s->label_2);
    d->cot_ending = dup0(s->cot_ending);
    d->principles = s->n_principles ? xcalloc((size_t)s->n_principles, sizeof(char *)) : NULL;
    for (int i = 0; i < s->n_principles; i++) d->principles[i] = dup0(s->principles[i]);
    d->score_preamble = dup0(s->score_preamble);
    d->score_template = dup0(s->score_template);
    d->score_ending = dup0(s->score_ending);
    d->lik_template = dup0(s->lik_template);
}

static char *read_text_file(const char *path, rl_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(e, ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (n < cap - 1) break;
        if (cap > (16u << 20)) {
            fclose(f);
            free(buf);
            err_set(e, ERR_INPUT, "'%s' is larger than 16 MiB; is it a preamble?", path);
            return NULL;
        }
        buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        err_set(e, ERR_IO, "read error on '%s'", path);
        return NULL;
    }
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    return buf;
}

int judge_opts_from_config(const config *cfg, judge_opts *o, rl_err *e) {
    memset(o, 0, sizeof *o);
    o->mode = cfg->judge.mode;
    if (cfg->judge.preamble_file[0]) {
        o->preamble = read_text_file(cfg->judge.preamble_file, e);
        if (!o->preamble) {
            config_pos p = config_key_pos(cfg, "judge.preamble_file");
            return err_prefix(e, "%s:%d:%d: judge.preamble_file", cfg->deck_path, p.line, p.col);
        }
    } else {
        o->preamble = dup0(cfg->judge.preamble);
    }
    o->n_exemplars = cfg->judge.exemplars.n;
    o->exemplars = o->n_exemplars ? xcalloc((size_t)o->n_exemplars, sizeof *o->exemplars) : NULL;
    for (int i = 0; i < o->n_exemplars; i++) {
        const config_exemplar *x = (const config_exemplar *)cfg->judge.exemplars.items + i;
        o->exemplars[i].context = dup0(x->context);
        o->exemplars[i].a = dup0(x->a);
        o->exemplars[i].b = dup0(x->b);
        o->exemplars[i].rationale = dup0(x->rationale);
        o->exemplars[i].label = x->label;
    }
    o->template_text = dup0(cfg->judge.template_text);
    o->ending = dup0(cfg->judge.ending);
    o->label_1 = dup0(cfg->judge.label_1);
    o->label_2 = dup0(cfg->judge.label_2);
    o->position_debias = cfg->judge.position_debias;
    o->cot = cfg->judge.cot.enabled;
    o->cot_ending = dup0(cfg->judge.cot.ending);
    o->cot_max_tokens = cfg->judge.cot.max_tokens;
    o->cot_temperature = cfg->judge.cot.temperature;
    o->cot_samples = cfg->judge.cot.samples;
    o->n_principles = cfg->judge.principles.n;
    o->principles = o->n_principles ? xcalloc((size_t)o->n_principles, sizeof(char *)) : NULL;
    for (int i = 0; i < o->n_principles; i++)
        o->principles[i] = dup0(cfg->judge.principles.items[i]);
    o->clamp_low = cfg->judge.clamp_low;
    o->clamp_high = cfg->judge.clamp_high;
    o->score_preamble = dup0(cfg->judge.score.preamble);
    o->score_template = dup0(cfg->judge.score.template_text);
    o->score_ending = dup0(cfg->judge.score.ending);
    o->lik_template = dup0(cfg->judge.likelihood.template_text);
    o->lik_temperature = cfg->judge.likelihood.temperature;
    o->lik_eos = cfg->judge.likelihood.eos;
    o->seed = (uint64_t)cfg->run.seed;
    o->reuse_prefix = 1;
    return ERR_OK;
}

/* ------------------------------------------------------------------ text assembly */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}
static void sb_str(sbuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

static int is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s trimmed of surrounding whitespace, at most max bytes (max < 0: all), cut at a UTF-8
 * character boundary. */
static void sb_trimmed(sbuf *b, const char *s, long max) {
    if (!s) return;
    while (*s && is_ws(*s)) s++;
    size_t n = strlen(s);
    while (n && is_ws(s[n - 1])) n--;
    if (max >= 0 && (size_t)max < n) {
        n = (size_t)max;
        while (n && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
        while (n && is_ws(s[n - 1])) n--;
    }
    sb_add(b, s, n);
}

/* Fills template t: {name_k} -> value_k (trimmed; max_bytes[k] >= 0 cuts it). */
static void render(sbuf *b, const char *t, int n, const char *const *names,
                   const char *const *values, const long *max_bytes) {
    while (*t) {
        int hit = -1;
        if (*t == '{')
            for (int k = 0; k < n && hit < 0; k++) {
                size_t l = strlen(names[k]);
                if (!strncmp(t + 1, names[k], l) && t[1 + l] == '}') hit = k;
            }
        if (hit >= 0) {
            sb_trimmed(b, values[hit], max_bytes ? max_bytes[hit] : -1);
            t += strlen(names[hit]) + 2;
        } else {
            sb_add(b, t, 1);
            t++;
        }
    }
}

/* Length of t before its first placeholder among names (strlen(t) when none). */
static size_t head_len(const char *t, int n, const char *const *names) {
    for (const char *p = t; *p; p++)
        if (*p == '{')
            for (int k = 0; k < n; k++) {
                size_t l = strlen(names[k]);
                if (!strncmp(p + 1, names[k], l) && p[1 + l] == '}') return (size_t)(p - t);
            }
    return strlen(t);
}

static const char *const pair_names[3] = {"context", "a", "b"};
static const char *const score_names[2] = {"context", "response"};

/* preamble [\n principle] \n\n exemplars: everything before the sample */
static void pref_head(sbuf *b, const judge_opts *o, int principle, int cot) {
    sb_str(b, o->preamble);
    if (principle >= 0 && principle < o->n_principles) {
        if (o->preamble[0]) sb_str(b, "\n");
        sb_str(b, o->principles[principle]);
    }
    if (b->len) sb_str(b, "\n\n");
    for (int i = 0; i < o->n_exemplars; i++) {
        const judge_exemplar *x = &o->exemplars[i];
        const char *vals[3] = {x->context, x->a, x->b};
        render(b, o->template_text, 3, pair_names, vals, NULL);
        if (cot && x->rationale[0]) {
            sb_str(b, o->cot_ending);
            sb_str(b, " ");
            sb_trimmed(b, x->rationale, -1);
            sb_str(b, "\n");
        }
        sb_str(b, o->ending);
        sb_str(b, x->label == 2 ? o->label_2 : o->label_1);
        sb_str(b, "\n\n");
    }
}

static void score_head(sbuf *b, const judge_opts *o) {
    sb_str(b, o->score_preamble);
    if (b->len) sb_str(b, "\n\n");
}

void judge_opts_texts(const judge_opts *o, char ***texts, int *n) {
    int cap = 16 + 3 * o->n_exemplars + o->n_principles, k = 0;
    char **t = xcalloc((size_t)cap, sizeof *t);
    sbuf b = {0};
    pref_head(&b, o, -1, 1);
    t[k++] = b.s;
    for (int i = 0; i < o->n_principles; i++) t[k++] = dup0(o->principles[i]);
    const char *empty[3] = {"", "", ""};
    b = (sbuf){0};
    render(&b, o->template_text, 3, pair_names, empty, NULL);
    sb_str(&b, o->ending);
    sb_str(&b, o->label_1);
    t[k++] = b.s ? b.s : dup0("");
    b = (sbuf){0};
    sb_str(&b, o->ending);
    sb_str(&b, o->label_2);
    t[k++] = b.s;
    b = (sbuf){0};
    sb_str(&b, o->cot_ending);
    sb_str(&b, " ");
    t[k++] = b.s;
    b = (sbuf){0};
    score_head(&b, o);
    render(&b, o->score_template, 2, score_names, empty, NULL);
    sb_str(&b, o->score_ending);
    t[k++] = b.s ? b.s : dup0("");
    t[k++] = dup0("1 2 3 4 5 6 7 8 9 10");
    b = (sbuf){0};
    render(&b, o->lik_template, 2, score_names, empty, NULL);
    t[k++] = b.s ? b.s : dup0("");
    *texts = t;
    *n = k;
}

void judge_texts_free(char **texts, int n) {
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

/* ------------------------------------------------------------------ prompts */

struct judge_prompt {
    judge_opts o;
    const tokenizer *tok;
    int max_seq;
    int tok1, tok2;    /* label tokens */
    int score_tok[10]; /* first token of "1" .. "10" */
    int ten_second;    /* "10" is score_tok[9] = "1" then this token; -1 when "10" is one token */
    int *stop;         /* EOS and every token whose text holds a newline: rationale stops */
    int n_stop;
    int bos, eos;
    int *end_tokens; /* "\n" + ending and the ending alone, for CoT */
    int n_end_nl;
    int *end_plain;
    int n_end_plain;
};

const judge_opts *judge_prompt_opts(const judge_prompt *p) {
    return &p->o;
}
int judge_prompt_label_token(const judge_prompt *p, int which) {
    return which == 2 ? p->tok2 : p->tok1;
}

static int encode(const tokenizer *tok, const char *text, int bos, int **ids, int *n, rl_err *e) {
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

int judge_prompt_create(judge_prompt **out, const judge_opts *o, const tokenizer *tok, int max_seq,
                        rl_err *e) {
    *out = NULL;
    judge_prompt *p = xcalloc(1, sizeof *p);
    opts_copy(&p->o, o);
    p->tok = tok;
    p->max_seq = max_seq;
    p->bos = tokenizer_bos(tok);
    p->eos = tokenizer_eos(tok);
    int rc = ERR_OK;
    p->tok1 = tokenizer_single_token(tok, o->label_1);
    p->tok2 = tokenizer_single_token(tok, o->label_2);
    if (p->tok1 < 0 || p->tok2 < 0) {
        rc = err_set(e, ERR_INPUT,
                     "judge: the label '%s' is not one token of the judge's vocabulary; choose "
                     "judge.label_1 / judge.label_2 that are",
                     p->tok1 < 0 ? o->label_1 : o->label_2);
        goto fail;
    }
    if (p->tok1 == p->tok2) {
        rc = err_set(e, ERR_INPUT, "judge: the two labels are the same token");
        goto fail;
    }
    p->ten_second = -1;
    for (int i = 1; i <= 10; i++) {
        char s[4];
        snprintf(s, sizeof s, "%d", i);
        int *ids = NULL, n = 0;
        if ((rc = encode(tok, s, 0, &ids, &n, e))) goto fail;
        if (n == 1) {
            p->score_tok[i - 1] = ids[0];
        } else if (i == 10 && n == 2 && ids[0] == p->score_tok[0]) {
            p->score_tok[9] = ids[0];
            p->ten_second = ids[1];
        } else if (o->mode == JUDGE_SCORE) {
            free(ids);
            rc = err_set(e, ERR_INPUT,
                         "judge: the score '%s' is %d tokens in the judge's vocabulary", s, n);
            goto fail;
        } else {
            p->score_tok[i - 1] = -1;
        }
        free(ids);
    }
    int V = tokenizer_n_vocab(tok);
    p->stop = xmalloc(sizeof(int) * (size_t)(V + 1));
    if (p->eos >= 0) p->stop[p->n_stop++] = p->eos;
    for (int t = 0; t < V; t++) {
        size_t len;
        const char *s = tokenizer_piece(tok, t, &len);
        if (t != p->eos && s && memchr(s, '\n', len)) p->stop[p->n_stop++] = t;
    }
    sbuf b = {0};
    sb_str(&b, "\n");
    sb_str(&b, o->ending);
    rc = encode(tok, b.s, 0, &p->end_tokens, &p->n_end_nl, e);
    free(b.s);
    if (!rc) rc = encode(tok, o->ending, 0, &p->end_plain, &p->n_end_plain, e);
    if (rc) goto fail;
    *out = p;
    return ERR_OK;
fail:
    judge_prompt_free(p);
    return rc;
}

void judge_prompt_free(judge_prompt *p) {
    if (!p) return;
    judge_opts_free(&p->o);
    free(p->stop);
    free(p->end_tokens);
    free(p->end_plain);
    free(p);
}

int judge_prompt_principle(const judge_prompt *p, int64_t id) {
    if (p->o.n_principles <= 0) return -1;
    rng r;
    rng_init(&r, p->o.seed, rng_purpose(RNG_JUDGE, 1),
             (uint32_t)((uint64_t)id ^ ((uint64_t)id >> 32)));
    return (int)rng_below(&r, (uint32_t)p->o.n_principles);
}

char *judge_prompt_pair_text(const judge_prompt *p, const judge_pair *pair, int swap, int cot,
                             long max_context_bytes) {
    sbuf b = {0};
    pref_head(&b, &p->o, judge_prompt_principle(p, pair->id), cot);
    const char *vals[3] = {pair->context, swap ? pair->b : pair->a, swap ? pair->a : pair->b};
    long maxb[3] = {max_context_bytes, -1, -1};
    render(&b, p->o.template_text, 3, pair_names, vals, maxb);
    sb_str(&b, cot ? p->o.cot_ending : p->o.ending);
    return b.s;
}

/* The prefix text shared by every pair with this principle (or score mode). */
static char *prefix_text(const judge_prompt *p, int key) {
    sbuf b = {0};
    if (key == SCORE_PREFIX_KEY) {
        score_head(&b, &p->o);
        size_t h = head_len(p->o.score_template, 2, score_names);
        sb_add(&b, p->o.score_template, h);
    } else {
        pref_head(&b, &p->o, key, p->o.cot);
        size_t h = head_len(p->o.template_text, 3, pair_names);
        sb_add(&b, p->o.template_text, h);
    }
    return b.s ? b.s : dup0("");
}

static char *score_text(const judge_prompt *p, const char *context, const char *response,
                        long max_context_bytes) {
    sbuf b = {0};
    score_head(&b, &p->o);
    const char *vals[2] = {context, response};
    long maxb[2] = {max_context_bytes, -1};
    render(&b, p->o.score_template, 2, score_names, vals, maxb);
    sb_str(&b, p->o.score_ending);
    return b.s;
}

typedef char *(*text_fn)(const judge_prompt *p, const void *arg, long max_context_bytes);

typedef struct pair_arg {
    const judge_pair *pair;
    int swap, cot;
} pair_arg;
static char *pair_text_fn(const judge_prompt *p, const void *arg, long max) {
    const pair_arg *a = arg;
    return judge_prompt_pair_text(p, a->pair, a->swap, a->cot, max);
}
typedef struct score_arg {
    const char *context, *response;
} score_arg;
static char *score_text_fn(const judge_prompt *p, const void *arg, long max) {
    const score_arg *a = arg;
    return score_text(p, a->context, a->response, max);
}

/* Tokens of a prompt that fits in max_seq - room tokens: the context is cut (binary search on
 * its byte length) when the whole does not fit. */
static int fit_tokens(const judge_prompt *p, text_fn fn, const void *arg, const char *context,
                      int room, int **ids, int *n, int *truncated, rl_err *e) {
    int limit = p->max_seq - room;
    *truncated = 0;
    char *text = fn(p, arg, -1);
    int rc = encode(p->tok, text, 1, ids, n, e);
    free(text);
    if (rc || *n <= limit) return rc;
    free(*ids);
    *ids = NULL;
    long lo = 0, hi = context ? (long)strlen(context) : 0, best = -1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int *t = NULL, nt = 0;
        text = fn(p, arg, mid);
        rc = encode(p->tok, text, 1, &t, &nt, e);
        free(text);
        if (rc) return rc;
        free(t);
        if (nt <= limit)
            best = mid, lo = mid + 1;
        else
            hi = mid - 1;
    }
    if (best < 0)
        return err_set(e, ERR_INPUT,
                       "judge: the prompt does not fit the judge's context of %d tokens even "
                       "without its context (%d tokens kept free); shorten the preamble, "
                       "exemplars or responses, or use a judge with a longer context",
                       p->max_seq, room);
    text = fn(p, arg, best);
    rc = encode(p->tok, text, 1, ids, n, e);
    free(text);
    *truncated = 1;
    return rc;
}

int judge_prompt_pair_tokens(const judge_prompt *p, const judge_pair *pair, int swap, int cot,
                             int room, int **ids, int *n, int *truncated, rl_err *e) {
    pair_arg a = {pair, swap, cot};
    return fit_tokens(p, pair_text_fn, &a, pair->context, room, ids, n, truncated, e);
}

int judge_prompt_score_tokens(const judge_prompt *p, const char *context, const char *response,
                              int **ids, int *n, int *truncated, rl_err *e) {
    score_arg a = {context, response};
    return fit_tokens(p, score_text_fn, &a, context, p->ten_second >= 0 ? 1 : 0, ids, n, truncated,
                      e);
}

/* Likelihood mode: where the response part of the template starts (the white space before
 * {response}); the template has {response} (config checks it; without it: the end). */
static size_t lik_split(const char *t) {
    const char *r = strstr(t, "{response}");
    if (!r) return strlen(t);
    while (r > t && is_ws(r[-1])) r--;
    return (size_t)(r - t);
}
typedef struct lik_arg {
    const char *context;
} lik_arg;
static char *lik_head_fn(const judge_prompt *p, const void *arg, long max) {
    const lik_arg *a = arg;
    size_t h = lik_split(p->o.lik_template);
    char *head = xmalloc(h + 1);
    memcpy(head, p->o.lik_template, h);
    head[h] = '\0';
    sbuf b = {0};
    const char *vals[2] = {a->context, ""};
    long maxb[2] = {max, -1};
    render(&b, head, 2, score_names, vals, maxb);
    free(head);
    return b.s ? b.s : dup0("");
}

int judge_prompt_likelihood_tokens(const judge_prompt *p, const char *context, const char *response,
                                   int **head, int *n_head, int **resp, int *n_resp, int *truncated,
                                   rl_err *e) {
    *head = *resp = NULL;
    *n_head = *n_resp = 0;
    sbuf b = {0};
    const char *vals[2] = {context, response};
    render(&b, p->o.lik_template + lik_split(p->o.lik_template), 2, score_names, vals, NULL);
    int *r = NULL, nr = 0;
    int rc = encode(p->tok, b.s ? b.s : "", 0, &r, &nr, e);
    free(b.s);
    if (rc) return rc;
    if (p->o.lik_eos && p->eos >= 0) {
        r = xrealloc(r, sizeof(int) * (size_t)(nr + 1));
        r[nr++] = p->eos;
    }
    if (nr + 2 > p->max_seq) {
        free(r);
        return err_set(e, ERR_INPUT,
                       "judge: a response of %d tokens does not fit the judge's context of %d "
                       "tokens (likelihood mode scores it whole)",
                       nr, p->max_seq);
    }
    lik_arg a = {context};
    if ((rc = fit_tokens(p, lik_head_fn, &a, context, nr, head, n_head, truncated, e))) {
        free(r);
        return rc;
    }
    *resp = r;
    *n_resp = nr;
    return ERR_OK;
}

double judge_loglik_from_logits(const float *logits, int V, const int *resp, int n_resp) {
    double s = 0;
    for (int m = 0; m < n_resp; m++) {
        const float *row = logits + (size_t)m * (size_t)V;
        double mx = row[0], z = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > mx) mx = row[v];
        for (int v = 0; v < V; v++) z += exp((double)row[v] - mx);
        s += (double)row[resp[m]] - mx - log(z);
    }
    return s;
}

double judge_pref_from_logits(const float *logits, int tok1, int tok2) {
    double d = (double)logits[tok2] - (double)logits[tok1];
    return 1.0 / (1.0 + exp(d));
}

void judge_score_from_logits(const judge_prompt *p, const float *logits_first,
                             const float *logits_after_1, judge_score *out) {
    memset(out->prob, 0, sizeof out->prob);
    int n_first = p->ten_second >= 0 ? 9 : 10; /* distinct first tokens */
    double mx = -INFINITY, z[10];
    for (int i = 0; i < n_first; i++) {
        z[i] = p->score_tok[i] >= 0 ? (double)logits_first[p->score_tok[i]] : -INFINITY;
        if (z[i] > mx) mx = z[i];
    }
    double s = 0;
    for (int i = 0; i < n_first; i++) s += (z[i] = exp(z[i] - mx));
    for (int i = 0; i < n_first; i++) out->prob[i] = z[i] / s;
    if (p->ten_second >= 0) {
        double ten = 0;
        if (logits_after_1) {
            int V = tokenizer_n_vocab(p->tok);
            double m2 = -INFINITY, s2 = 0;
            for (int v = 0; v < V; v++) m2 = fmax(m2, (double)logits_after_1[v]);
            for (int v = 0; v < V; v++) s2 += exp((double)logits_after_1[v] - m2);
            ten = exp((double)logits_after_1[p->ten_second] - m2) / s2;
        }
        double one = out->prob[0];
        out->prob[0] = one * (1.0 - ten);
        out->prob[9] = one * ten;
    }
    double ex = 0;
    for (int i = 0; i < 10; i++) ex += (i + 1) * out->prob[i];
    out->expected = ex;
    out->reward = (ex - 5.5) / 4.5;
}

/* ------------------------------------------------------------------ the judge */

struct judge {
    const model *m;
    judge_prompt *p;
    int max_pairs;
    kvcache kv;
    int n_prefix; /* prefix slots 0 .. n_prefix-1 */
    int prefix_key[PREFIX_SLOTS_MAX];
    int *prefix_tok[PREFIX_SLOTS_MAX];
    int prefix_len[PREFIX_SLOTS_MAX];
    long prefix_used[PREFIX_SLOTS_MAX];
    long clock;
    int work0, n_work;
    float *logits; /* (n_work, V) */
    judge_stats st;
};

const judge_prompt *judge_get_prompt(const judge *j) {
    return j->p;
}
const judge_stats *judge_get_stats(const judge *j) {
    return &j->st;
}
void judge_reset_stats(judge *j) {
    memset(&j->st, 0, sizeof j->st);
}

int judge_create(judge **out, const model *m, const tokenizer *tok, const judge_opts *o,
                 int max_pairs, rl_err *e) {
    *out = NULL;
    if (max_pairs < 1) max_pairs = 1;
    if (tokenizer_n_vocab(tok) > m->cfg.vocab_size)
        return err_set(e, ERR_INPUT, "judge: the tokenizer has %d tokens, the model %d",
                       tokenizer_n_vocab(tok), m->cfg.vocab_size);
    judge *j = xcalloc(1, sizeof *j);
    j->m = m;
    j->max_pairs = max_pairs;
    int rc = judge_prompt_create(&j->p, o, tok, m->cfg.max_seq, e);
    if (rc) {
        free(j);
        return rc;
    }
    int samples = o->cot && o->cot_samples > 1 ? o->cot_samples : 1;
    j->n_prefix =
        1 + (o->n_principles < PREFIX_SLOTS_MAX - 1 ? o->n_principles : PREFIX_SLOTS_MAX - 1);
    j->work0 = j->n_prefix;
    j->n_work = 2 * max_pairs * samples;
    for (int i = 0; i < PREFIX_SLOTS_MAX; i++) j->prefix_key[i] = -1000;
    if ((rc = kvcache_create(&j->kv, &m->cfg, j->n_prefix + j->n_work, m->cfg.max_seq, e))) {
        judge_free(j);
        return rc;
    }
    j->logits = xmalloc_aligned(sizeof(float) * (size_t)j->n_work * m->cfg.vocab_size);
    *out = j;
    return ERR_OK;
}

void judge_free(judge *j) {
    if (!j) return;
    judge_prompt_free(j->p);
    kvcache_free(&j->kv);
    for (int i = 0; i < PREFIX_SLOTS_MAX; i++) free(j->prefix_tok[i]);
    free(j->logits);
    free(j);
}

void judge_label_free(judge_label *l) {
    if (!l) return;
    free(l->rationale_ab);
    free(l->rationale_ba);
    l->rationale_ab = l->rationale_ba = NULL;
}

int judge_same_position(const judge_label *l) {
    /* a first: position 1 preferred when p_ab > 0.5; b first: position 1 (b) when p_ba < 0.5 */
    return (l->p_ab > 0.5) == (l->p_ba < 0.5);
}

static int lcp(const int *a, int na, const int *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* The slot holding the prefix of `key` (computing it when no slot holds it). */
static int prefix_slot(judge *j, int key, rl_err *e) {
    j->clock++;
    int lru = 0;
    for (int s = 0; s < j->n_prefix; s++) {
        if (j->prefix_key[s] == key) {
            j->prefix_used[s] = j->clock;
            return s;
        }
        if (j->prefix_used[s] < j->prefix_used[lru]) lru = s;
    }
    char *text = prefix_text(j->p, key);
    int *ids = NULL, n = 0;
    int rc = encode(j->p->tok, text, 1, &ids, &n, e);
    free(text);
    if (rc) return -1;
    if (n > j->kv.max_seq - 2)
        n = j->kv.max_seq - 2; /* a prefix this long cannot be reused whole */
    kvcache_reset(&j->kv, lru);
    if (n > 0) {
        int slot = lru;
        if ((rc = model_step(j->m, &j->kv, 1, &slot, &n, ids, NULL, e))) {
            free(ids);
            return -1;
        }
        j->st.tokens_computed += n;
    }
    free(j->prefix_tok[lru]);
    j->prefix_tok[lru] = ids;
    j->prefix_len[lru] = n;
    j->prefix_key[lru] = key;
    j->prefix_used[lru] = j->clock;
    return lru;
}

/* A batch of sequences for one model_step. */
typedef struct step_batch {
    int n;
    int *slots, *n_new;
    int *tokens;
    size_t ntok, cap;
} step_batch;

static void sb_init(step_batch *b, int max) {
    memset(b, 0, sizeof *b);
    b->slots = xmalloc(sizeof(int) * (size_t)max);
    b->n_new = xmalloc(sizeof(int) * (size_t)max);
}
static void sb_free(step_batch *b) {
    free(b->slots), free(b->n_new), free(b->tokens);
}
static void sb_push(step_batch *b, int slot, const int *tok, int n) {
    if (n <= 0) return;
    if (b->ntok + (size_t)n > b->cap) {
        b->cap = (b->ntok + (size_t)n) * 2;
        b->tokens = xrealloc(b->tokens, sizeof(int) * b->cap);
    }
    memcpy(b->tokens + b->ntok, tok, sizeof(int) * (size_t)n);
    b->ntok += (size_t)n;
    b->slots[b->n] = slot;
    b->n_new[b->n] = n;
    b->n++;
}
static int sb_run(judge *j, step_batch *b, float *logits, rl_err *e) {
    if (b->n == 0) return ERR_OK;
    model_step_out out = {.logits = logits};
    int rc = model_step(j->m, &j->kv, b->n, b->slots, b->n_new, b->tokens, logits ? &out : NULL, e);
    j->st.tokens_computed += (long)b->ntok;
    b->n = 0;
    b->ntok = 0;
    return rc;
}

/* A prompt placed in a work slot: copies the reusable prefix (or resets), returns where its own
 * tokens start. */
static int place_prompt(judge *j, int key, int slot, const int *ids, int n, rl_err *e) {
    if (!j->p->o.reuse_prefix) {
        kvcache_reset(&j->kv, slot);
        return 0;
    }
    int ps = prefix_slot(j, key, e);
    if (ps < 0) return -1;
    int L = lcp(j->prefix_tok[ps], j->prefix_len[ps], ids, n);
    if (L > n - 1) L = n - 1; /* the last token must run: its logits are read */
    if (kvcache_copy_prefix(&j->kv, ps, slot, L, e)) return -1;
    j->st.tokens_reused += L;
    return L;
}

static double clamp01(double p, double lo, double hi) {
    return p < lo ? lo : p > hi ? hi : p;
}

/* Non-CoT preference labels of k <= max_pairs pairs. */
static int label_chunk(judge *j, const judge_pair *pairs, int k, judge_label *out, rl_err *e) {
    const judge_opts *o = &j->p->o;
    int debias = o->position_debias, V = j->m->cfg.vocab_size, rc = ERR_OK;
    int *tok[2 * 64], len[2 * 64], start[2 * 64], shared[64];
    int kk = k > 64 ? 64 : k; /* callers pass at most 64 per chunk */
    memset(tok, 0, sizeof tok);
    step_batch sb;
    sb_init(&sb, 2 * kk);
    for (int i = 0; i < kk && !rc; i++) {
        int tr[2] = {0, 0};
        for (int ord = 0; ord < 1 + debias && !rc; ord++)
            rc = judge_prompt_pair_tokens(j->p, &pairs[i], ord, 0, 0, &tok[2 * i + ord],
                                          &len[2 * i + ord], &tr[ord], e);
        if (rc) break;
        out[i].truncated = tr[0] || tr[1];
        out[i].principle = judge_prompt_principle(j->p, pairs[i].id);
        int key = out[i].principle;
        int sab = j->work0 + 2 * i, sba = sab + 1;
        int L0 = place_prompt(j, key, sab, tok[2 * i], len[2 * i], e);
        if (L0 < 0) {
            rc = e->code ? e->code : ERR_INTERNAL;
            break;
        }
        start[2 * i] = L0;
        shared[i] = L0;
        if (debias && o->reuse_prefix) {
            /* the tokens both orders share are computed once, in the a-first slot */
            int L = lcp(tok[2 * i], len[2 * i], tok[2 * i + 1], len[2 * i + 1]);
            int lim = (len[2 * i] < len[2 * i + 1] ? len[2 * i] : len[2 * i + 1]) - 1;
            if (L > lim) L = lim;
            if (L > L0) {
                sb_push(&sb, sab, tok[2 * i] + L0, L - L0);
                shared[i] = L;
                start[2 * i] = L;
            }
        }
        (void)sba;
    }
    if (!rc) rc = sb_run(j, &sb, NULL, e);
    /* both orders continue from the shared tokens */
    for (int i = 0; i < kk && !rc; i++) {
        int sab = j->work0 + 2 * i, sba = sab + 1;
        if (debias) {
            if (o->reuse_prefix) {
                rc = kvcache_copy_prefix(&j->kv, sab, sba, shared[i], e);
                j->st.tokens_reused += shared[i];
                start[2 * i + 1] = shared[i];
            } else {
                kvcache_reset(&j->kv, sba);
                start[2 * i + 1] = 0;
            }
        }
        sb_push(&sb, sab, tok[2 * i] + start[2 * i], len[2 * i] - start[2 * i]);
        if (debias)
            sb_push(&sb, sba, tok[2 * i + 1] + start[2 * i + 1], len[2 * i + 1] - start[2 * i + 1]);
    }
    if (!rc) rc = sb_run(j, &sb, j->logits, e);
    for (int i = 0; i < kk && !rc; i++) {
        const float *lab = j->logits + (size_t)(debias ? 2 * i : i) * V;
        out[i].p_ab = judge_pref_from_logits(lab, j->p->tok1, j->p->tok2);
        if (debias) {
            const float *lba = j->logits + (size_t)(2 * i + 1) * V;
            out[i].p_ba = 1.0 - judge_pref_from_logits(lba, j->p->tok1, j->p->tok2);
            out[i].p = 0.5 * (out[i].p_ab + out[i].p_ba);
        } else {
            out[i].p_ba = NAN;
            out[i].p = out[i].p_ab;
        }
        out[i].p = clamp01(out[i].p, o->clamp_low, o->clamp_high);
        out[i].rationale_ab = dup0("");
        out[i].rationale_ba = dup0("");
        j->st.prompts += 1 + debias;
        j->st.truncated += out[i].truncated;
    }
    for (int i = 0; i < 2 * kk; i++) free(tok[i]);
    sb_free(&sb);
    return rc;
}

/* Likelihood-mode labels of k <= 64 pairs: slot 2i holds a's sequence, 2i+1 b's; the head
 * (all but its last token) is computed once and copied, then each slot runs the head's last
 * token and its response part, with logits at every one of those tokens. */
static int label_chunk_lik(judge *j, const judge_pair *pairs, int k, judge_label *out, rl_err *e) {
    const judge_opts *o = &j->p->o;
    int V = j->m->cfg.vocab_size, rc = ERR_OK, kk = k > 64 ? 64 : k;
    int *head[64], nh[64], *resp[2 * 64], nr[2 * 64];
    memset(head, 0, sizeof head);
    memset(resp, 0, sizeof resp);
    step_batch sb;
    sb_init(&sb, 2 * kk);
    size_t rows = 0;
    for (int i = 0; i < kk && !rc; i++) {
        int *h2 = NULL, n2 = 0, tr[2] = {0, 0};
        rc = judge_prompt_likelihood_tokens(j->p, pairs[i].context, pairs[i].a, &head[i], &nh[i],
                                            &resp[2 * i], &nr[2 * i], &tr[0], e);
        if (!rc)
            rc = judge_prompt_likelihood_tokens(j->p, pairs[i].context, pairs[i].b, &h2, &n2,
                                                &resp[2 * i + 1], &nr[2 * i + 1], &tr[1], e);
        if (rc) {
            free(h2);
            break;
        }
        if (n2 < nh[i]) { /* the longer response cut the context more: both use that head */
            free(head[i]);
            head[i] = h2, nh[i] = n2;
        } else {
            free(h2);
        }
        out[i].truncated = tr[0] || tr[1];
        out[i].principle = -1;
        int sa = j->work0 + 2 * i;
        kvcache_reset(&j->kv, sa);
        kvcache_reset(&j->kv, sa + 1);
        sb_push(&sb, sa, head[i], nh[i] - 1);
        if (!o->reuse_prefix) sb_push(&sb, sa + 1, head[i], nh[i] - 1);
        rows += (size_t)(nr[2 * i] + nr[2 * i + 1]);
    }
    if (!rc) rc = sb_run(j, &sb, NULL, e);
    float *lg = rc ? NULL : xmalloc_aligned(sizeof(float) * (rows ? rows : 1) * (size_t)V);
    int *seq = NULL;
    size_t seq_cap = 0;
    for (int i = 0; i < kk && !rc; i++) {
        int sa = j->work0 + 2 * i;
        if (o->reuse_prefix && nh[i] > 1) {
            rc = kvcache_copy_prefix(&j->kv, sa, sa + 1, nh[i] - 1, e);
            j->st.tokens_reused += nh[i] - 1;
        }
        for (int s = 0; s < 2 && !rc; s++) {
            int n = nr[2 * i + s];
            if (n <= 0) continue;
            if ((size_t)n > seq_cap)
                seq_cap = (size_t)n * 2, seq = xrealloc(seq, sizeof(int) * seq_cap);
            seq[0] = head[i][nh[i] - 1];
            memcpy(seq + 1, resp[2 * i + s], sizeof(int) * (size_t)(n - 1));
            sb_push(&sb, sa + s, seq, n);
        }
    }
    if (!rc && sb.n) {
        model_step_out so = {.all_logits = lg};
        rc = model_step(j->m, &j->kv, sb.n, sb.slots, sb.n_new, sb.tokens, &so, e);
        j->st.tokens_computed += (long)sb.ntok;
        sb.n = 0;
        sb.ntok = 0;
    }
    size_t row = 0;
    for (int i = 0; i < kk && !rc; i++) {
        double l[2];
        for (int s = 0; s < 2; s++) {
            int n = nr[2 * i + s];
            l[s] =
                n > 0 ? judge_loglik_from_logits(lg + row * (size_t)V, V, resp[2 * i + s], n) : 0;
            row += (size_t)(n > 0 ? n : 0);
        }
        double p = 1.0 / (1.0 + exp(-(l[0] - l[1]) / o->lik_temperature));
        out[i].p_ab = p;
        out[i].p_ba = o->position_debias ? p : NAN;
        out[i].p = clamp01(p, o->clamp_low, o->clamp_high);
        out[i].rationale_ab = dup0("");
        out[i].rationale_ba = dup0("");
        j->st.prompts += 2;
        j->st.truncated += out[i].truncated;
    }
    free(lg);
    free(seq);
    for (int i = 0; i < kk; i++) free(head[i]), free(resp[2 * i]), free(resp[2 * i + 1]);
    sb_free(&sb);
    return rc;
}

static int is_stop(const judge_prompt *p, int t) {
    for (int i = 0; i < p->n_stop; i++)
        if (p->stop[i] == t) return 1;
    return 0;
}

/* Chain-of-thought labels of k pairs: per (pair, order, sample) one slot. */
static int label_chunk_cot(judge *j, const judge_pair *pairs, int k, judge_label *out, rl_err *e) {
    const judge_prompt *p = j->p;
    const judge_opts *o = &p->o;
    int debias = o->position_debias, S = o->cot_samples > 1 ? o->cot_samples : 1;
    int V = j->m->cfg.vocab_size, maxnew = o->cot_max_tokens, rc = ERR_OK;
    int n_ord = 1 + debias, n_seq = k * n_ord * S;
    int room = maxnew + p->n_end_nl + 1;
    int **tok = xcalloc((size_t)k * n_ord, sizeof *tok);
    int *len = xcalloc((size_t)k * n_ord, sizeof *len);
    gen_seq *seqs = xcalloc((size_t)n_seq, sizeof *seqs);
    rng *streams = xcalloc((size_t)n_seq, sizeof *streams);
    int *gen = xmalloc(sizeof(int) * (size_t)n_seq * (size_t)maxnew);
    double *psum = xcalloc((size_t)k * n_ord, sizeof *psum);
    step_batch sb;
    sb_init(&sb, n_seq);
    /* prompts up to their last token in the first sample's slot, then copied to the others */
    for (int i = 0; i < k && !rc; i++) {
        out[i].principle = judge_prompt_principle(p, pairs[i].id);
        out[i].truncated = 0;
        for (int ord = 0; ord < n_ord && !rc; ord++) {
            int q = i * n_ord + ord, tr = 0;
            rc = judge_prompt_pair_tokens(p, &pairs[i], ord, 1, room, &tok[q], &len[q], &tr, e);
            if (rc) break;
            out[i].truncated |= tr;
            int slot = j->work0 + q * S;
            int L = place_prompt(j, out[i].principle, slot, tok[q], len[q], e);
            if (L < 0) {
                rc = e->code ? e->code : ERR_INTERNAL;
                break;
            }
            sb_push(&sb, slot, tok[q] + L, len[q] - 1 - L);
        }
    }
    if (!rc) rc = sb_run(j, &sb, NULL, e);
    for (int q = 0; q < k * n_ord && !rc; q++) {
        int slot = j->work0 + q * S;
        for (int s = 0; s < S && !rc; s++) {
            int idx = q * S + s;
            if (s > 0) rc = kvcache_copy_prefix(&j->kv, slot, slot + s, len[q] - 1, e);
            int i = q / n_ord, ord = q % n_ord;
            uint32_t stream =
                (uint32_t)((uint64_t)pairs[i].id * (uint64_t)(2 * S) + (uint64_t)(ord * S + s));
            rng_init(&streams[idx], o->seed, rng_purpose(RNG_JUDGE, 2), stream);
            seqs[idx] = (gen_seq){.prompt = tok[q] + len[q] - 1,
                                  .prompt_len = 1,
                                  .slot = slot + s,
                                  .r = &streams[idx],
                                  .out = gen + (size_t)idx * maxnew};
        }
    }
    if (!rc) {
        gen_config g = {.sp = {.temperature = (float)o->cot_temperature},
                        .max_new = maxnew,
                        .eos = p->stop,
                        .n_eos = p->n_stop};
        rc = sample_generate(j->m, &j->kv, seqs, n_seq, &g, e);
    }
    /* append the rationale's last token (when it is not EOS), a newline and the ending */
    int *tail = xmalloc(sizeof(int) * (size_t)(p->n_end_nl + 2));
    for (int idx = 0; idx < n_seq && !rc; idx++) {
        gen_seq *s = &seqs[idx];
        int nt = 0, last = s->n_out ? s->out[s->n_out - 1] : -1;
        if (last >= 0 && last != p->eos) tail[nt++] = last;
        int nl = last >= 0 && last != p->eos && is_stop(p, last);
        const int *end = nl ? p->end_plain : p->end_tokens;
        int ne = nl ? p->n_end_plain : p->n_end_nl;
        memcpy(tail + nt, end, sizeof(int) * (size_t)ne);
        nt += ne;
        sb_push(&sb, s->slot, tail, nt);
        j->st.tokens_generated += s->n_out;
    }
    free(tail);
    if (!rc) rc = sb_run(j, &sb, j->logits, e);
    for (int idx = 0; idx < n_seq && !rc; idx++) {
        int q = idx / S;
        double p1 = judge_pref_from_logits(j->logits + (size_t)idx * V, p->tok1, p->tok2);
        psum[q] += (q % n_ord == 0 ? p1 : 1.0 - p1) / S;
    }
    for (int i = 0; i < k && !rc; i++) {
        for (int ord = 0; ord < n_ord; ord++) {
            gen_seq *s = &seqs[(i * n_ord + ord) * S];
            int n = s->n_out - (s->hit_eos && s->n_out && s->out[s->n_out - 1] == p->eos);
            char *text = NULL;
            size_t tl = 0;
            rc = tokenizer_decode(p->tok, s->out, n, 0, &text, &tl, e);
            if (rc) break;
            size_t cl;
            char *clean = tokenizer_utf8_sanitize(text, tl, &cl); /* stays valid UTF-8 */
            free(text);
            char *nlp = strchr(clean, '\n');
            if (nlp) *nlp = '\0';
            sbuf b = {0};
            sb_trimmed(&b, clean, -1);
            free(clean);
            if (ord == 0)
                out[i].rationale_ab = b.s ? b.s : dup0("");
            else
                out[i].rationale_ba = b.s ? b.s : dup0("");
        }
        if (rc) break;
        if (!out[i].rationale_ba) out[i].rationale_ba = dup0("");
        out[i].p_ab = psum[i * n_ord];
        out[i].p_ba = debias ? psum[i * n_ord + 1] : NAN;
        out[i].p = debias ? 0.5 * (out[i].p_ab + out[i].p_ba) : out[i].p_ab;
        out[i].p = clamp01(out[i].p, o->clamp_low, o->clamp_high);
        j->st.prompts += n_ord;
        j->st.truncated += out[i].truncated;
    }
    for (int q = 0; q < k * n_ord; q++) free(tok[q]);
    free(tok), free(len), free(seqs), free(streams), free(gen), free(psum);
    sb_free(&sb);
    return rc;
}

int judge_label_pairs(judge *j, const judge_pair *pairs, int n, judge_label *out, rl_err *e) {
    if (j->p->o.mode != JUDGE_PREFERENCE && j->p->o.mode != JUDGE_LIKELIHOOD)
        return err_set(e, ERR_INPUT,
                       "judge: label_pairs needs judge.mode: preference or likelihood");
    double t0 = log_now();
    int rc = ERR_OK;
    int chunk = j->max_pairs < 64 ? j->max_pairs : 64;
    for (int i = 0; i < n; i++) memset(&out[i], 0, sizeof out[i]);
    for (int i0 = 0; i0 < n && !rc; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        rc = j->p->o.mode == JUDGE_LIKELIHOOD ? label_chunk_lik(j, pairs + i0, k, out + i0, e)
             : j->p->o.cot                    ? label_chunk_cot(j, pairs + i0, k, out + i0, e)
                                              : label_chunk(j, pairs + i0, k, out + i0, e);
    }
    j->st.seconds += log_now() - t0;
    if (rc)
        for (int i = 0; i < n; i++) judge_label_free(&out[i]);
    return rc;
}

int judge_score_responses(judge *j, const judge_response *r, int n, judge_score *out, rl_err *e) {
    if (j->p->o.mode != JUDGE_SCORE)
        return err_set(e, ERR_INPUT, "judge: score_responses needs judge.mode: score");
    double t0 = log_now();
    const judge_prompt *p = j->p;
    int V = j->m->cfg.vocab_size, chunk = j->n_work, rc = ERR_OK;
    int two = p->ten_second >= 0;
    float *after = two ? xmalloc_aligned(sizeof(float) * (size_t)chunk * V) : NULL;
    step_batch sb;
    sb_init(&sb, chunk);
    int **tok = xcalloc((size_t)chunk, sizeof *tok), *len = xcalloc((size_t)chunk, sizeof *len);
    for (int i0 = 0; i0 < n && !rc; i0 += chunk) {
        int k = n - i0 < chunk ? n - i0 : chunk;
        for (int i = 0; i < k && !rc; i++) {
            int tr = 0;
            rc = judge_prompt_score_tokens(p, r[i0 + i].context, r[i0 + i].response, &tok[i],
                                           &len[i], &tr, e);
            if (rc) break;
            out[i0 + i].truncated = tr;
            j->st.truncated += tr;
            int slot = j->work0 + i;
            int L = place_prompt(j, SCORE_PREFIX_KEY, slot, tok[i], len[i], e);
            if (L < 0) {
                rc = e->code ? e->code : ERR_INTERNAL;
                break;
            }
            sb_push(&sb, slot, tok[i] + L, len[i] - L);
        }
        if (!rc) rc = sb_run(j, &sb, j->logits, e);
        if (!rc && two) {
            for (int i = 0; i < k; i++) sb_push(&sb, j->work0 + i, &p->score_tok[0], 1);
            rc = sb_run(j, &sb, after, e);
        }
        for (int i = 0; i < k && !rc; i++) {
            judge_score_from_logits(p, j->logits + (size_t)i * V,
                                    two ? after + (size_t)i * V : NULL, &out[i0 + i]);
            j->st.prompts++;
        }
        for (int i = 0; i < k; i++) free(tok[i]), tok[i] = NULL;
    }
    free(tok), free(len), free(after);
    sb_free(&sb);
    j->st.seconds += log_now() - t0;
    return rc;
}
