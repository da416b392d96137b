/* task_gold: the gold rater of the built-in task, the stand-in for human judges.
 *
 * GOLD: only the SFT data, the judge_sft comparisons and the evaluation may call this. The
 * label, reward and RL stages never do: they must learn what a good summary is from the judge.
 *
 * The rule is documented in include/task.h (GOLD section) and implemented once, in
 * task_gold_points. It parses any byte string back against the document's facts with the task's
 * closed vocabulary: coverage of the key facts, invented or misattributed entities, distractor
 * facts, length, and form (final period, capital, one sentence, known words, no repetition,
 * articles before nouns). All arithmetic is in integer points so that ties are exact and the
 * preference is a strict total order.
 *
 * Also here, because it needs gold labels: the comparisons judge_sft trains on.
 *
 * Deliberately not here: any model, any randomness in scoring, any knowledge of how the summary
 * was generated (the rater sees only the document and the text). */
#include "task.h"

#include <string.h>

#include "task_internal.h"

/* Only the first GOLD_MAX_TOKENS tokens are looked up; later ones count for length, sentence
 * ends and the final period (the length penalty has long reached its cap by then). */
#define GOLD_MAX_TOKENS 512

enum {
    PTS_INVENTED = 400,
    CAP_INVENTED = 3,
    PTS_EXTRA = 100,
    CAP_EXTRA = 5,
    LEN_BASE = 7,      /* "Anna found a map at the harbour": free words, plus the time phrase's */
    PTS_LEN = 40,      /* per word beyond that */
    LEN_LONG = 8,      /* and beyond that many more words */
    PTS_LEN_LONG = 20, /* another 20 per word */
    CAP_LEN = 1000,
    PTS_NO_PERIOD = 300,
    PTS_NO_CAPITAL = 100,
    PTS_STOP = 150,
    CAP_STOP = 3,
    PTS_UNKNOWN = 100,
    CAP_UNKNOWN = 5,
    PTS_REPEAT = 100,
    CAP_REPEAT = 5,
    PTS_GRAMMAR = 100,
    CAP_GRAMMAR = 5
};

static int imin(int a, int b) {
    return a < b ? a : b;
}
static int is_space(int ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}
static int lower(int ch) {
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int tok_is(const task_token *t, const char *w) {
    size_t n = strlen(w);
    if (t->type != TASK_TOK_WORD || t->n != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)t->s[i]) != w[i]) return 0;
    return 1;
}

static int tok_same(const task_token *a, const task_token *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (lower((unsigned char)a->s[i]) != lower((unsigned char)b->s[i])) return 0;
    return 1;
}

static int is_determiner(const task_token *t) {
    return tok_is(t, "a") || tok_is(t, "an") || tok_is(t, "the") || tok_is(t, "her") ||
           tok_is(t, "his") || tok_is(t, "their");
}

/* The slot whose key facts have class cls, or -1. */
static int slot_of_class(int cls) {
    for (int s = 0; s < TASK_N_SLOTS; s++)
        if (task_slot_class(s) == cls) return s;
    return -1;
}

/* Words of the main event's time phrase: 0 (none), 1 ("yesterday") or 2 ("on Monday"). */
static int time_phrase_words(const task_doc *d) {
    int t = d->key[TASK_WHEN];
    if (t < 0 || t >= TASK_N_TIMES) return 0;
    return task_times[t].prep ? 2 : 1;
}

typedef struct parsed {
    task_token t;
    int cls, id;
} parsed;

/* Is the noun at tokens[i] ungrammatical: no determiner before it (up to three adjectives,
 * "very" or unknown words - already penalised as such - may stand between), or a time word
 * without its preposition? Commas and stops are tokens here, so they break the chain. */
static int bad_noun(const parsed *tk, int i) {
    int cls = tk[i].cls;
    if (cls == TASK_C_TIME) {
        const char *prep = task_times[tk[i].id].prep;
        return prep && !(i > 0 && tok_is(&tk[i - 1].t, prep));
    }
    int j = i - 1;
    while (j >= 0 && j >= i - 3 && tk[j].t.type == TASK_TOK_WORD &&
           (tk[j].cls == TASK_C_ATTR || tk[j].cls == TASK_C_DESC || tk[j].cls == TASK_C_UNKNOWN ||
            tok_is(&tk[j].t, "very")))
        j--;
    return !(j >= 0 && is_determiner(&tk[j].t));
}

int task_gold_points(const task_doc *d, const char *summary, task_gold_detail *out) {
    task_gold_detail g;
    memset(&g, 0, sizeof g);
    const char *s = summary ? summary : "";
    while (*s && is_space((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && is_space((unsigned char)s[len - 1])) len--;
    g.capital_ok = len > 0 && s[0] >= 'A' && s[0] <= 'Z';
    g.terminal_ok = len > 0 && s[len - 1] == '.';

    static const parsed none = {{TASK_TOK_OTHER, "", 0}, TASK_C_UNKNOWN, -1};
    parsed tk[GOLD_MAX_TOKENS];
    int nt = 0;
    unsigned short count[TASK_N_LEXEMES];
    memset(count, 0, sizeof count);
    int stop_pending = 0;
    const char *p = s;
    task_token t;
    while (task_next_token(&p, &t)) {
        if (t.type == TASK_TOK_STOP) stop_pending = 1;
        if (t.type == TASK_TOK_STOP || t.type == TASK_TOK_COMMA) {
            /* kept as separators: a noun after a comma or a stop has no article */
            if (nt < GOLD_MAX_TOKENS) tk[nt] = none, tk[nt].t = t, nt++;
            continue;
        }
        /* a word or other bytes */
        g.words++;
        if (stop_pending) g.interior_stops++, stop_pending = 0;
        if (nt >= GOLD_MAX_TOKENS) continue;
        parsed *q = &tk[nt];
        q->t = t;
        q->id = -1;
        q->cls = t.type == TASK_TOK_WORD ? task_lookup(t.s, t.n, &q->id) : TASK_C_UNKNOWN;
        if (q->cls == TASK_C_UNKNOWN) g.unknown++;
        if (q->cls < TASK_N_CLASSES) {
            int l = task_lexeme(q->cls, q->id);
            if (count[l] < 60000) count[l]++;
            if (q->cls == TASK_C_PLACE || q->cls == TASK_C_OBJECT || q->cls == TASK_C_OCC ||
                q->cls == TASK_C_EVENT || q->cls == TASK_C_TIME)
                g.grammar += bad_noun(tk, nt);
        } else if (nt > 0 && t.type == TASK_TOK_WORD && tk[nt - 1].t.type == TASK_TOK_WORD &&
                   tok_same(&tk[nt - 1].t, &t)) {
            g.repeats++; /* "the the"; content words are counted through their lexeme */
        }
        nt++;
    }

    /* what the content words are, against the document */
    g.n_key = d->n_key;
    for (int cls = 0, l = 0; cls < TASK_N_CLASSES; cls++)
        for (int id = 0; id < task_class_size(cls); id++, l++) {
            if (!count[l]) continue;
            int slot = slot_of_class(cls);
            if (slot >= 0 && d->key[slot] == id) g.covered_mask |= 1u << slot;
        }
    for (int slot = 0; slot < TASK_N_SLOTS; slot++) g.covered += (g.covered_mask >> slot) & 1u;
    for (int cls = 0, l = 0; cls < TASK_N_CLASSES; cls++)
        for (int id = 0; id < task_class_size(cls); id++, l++) {
            if (!count[l]) continue;
            g.repeats += count[l] - 1;
            int slot = slot_of_class(cls);
            if (slot >= 0 && d->key[slot] == id) continue;
            if (cls == TASK_C_ATTR && id == d->attr) {
                g.details++;
            } else if (!d->present[l]) {
                g.invented++;
            } else if (slot >= 0 && d->key[slot] >= 0 && !((g.covered_mask >> slot) & 1u)) {
                g.misattributed++; /* a distractor standing where a key fact is missing */
            } else {
                g.extra++;
            }
        }

    g.p_coverage = d->n_key > 0 ? (1000 * g.covered + d->n_key / 2) / d->n_key : 0;
    g.p_invented = PTS_INVENTED * imin(g.invented + g.misattributed, CAP_INVENTED);
    g.p_extra = PTS_EXTRA * imin(g.extra, CAP_EXTRA);
    long free_words = LEN_BASE + time_phrase_words(d);
    long over = g.words > free_words ? g.words - free_words : 0;
    long over_long = over > LEN_LONG ? over - LEN_LONG : 0;
    long plen = PTS_LEN * over + PTS_LEN_LONG * over_long;
    g.p_length = plen > CAP_LEN ? CAP_LEN : (int)plen;
    g.p_form =
        (g.terminal_ok ? 0 : PTS_NO_PERIOD) + (g.capital_ok ? 0 : PTS_NO_CAPITAL) +
        PTS_STOP * imin(g.interior_stops, CAP_STOP) + PTS_UNKNOWN * imin(g.unknown, CAP_UNKNOWN) +
        PTS_REPEAT * imin(g.repeats, CAP_REPEAT) + PTS_GRAMMAR * imin(g.grammar, CAP_GRAMMAR);
    g.points = g.p_coverage - g.p_invented - g.p_extra - g.p_length - g.p_form;
    if (out) *out = g;
    return g.points;
}

double task_gold_score(const task_doc *d, const char *summary) {
    return task_gold_points(d, summary, NULL) / 1000.0;
}

double task_gold_margin(const task_doc *d, const char *a, const char *b) {
    return (task_gold_points(d, a, NULL) - task_gold_points(d, b, NULL)) / 1000.0;
}

static void trim(const char *s, const char **b, size_t *n) {
    if (!s) s = "";
    while (*s && is_space((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && is_space((unsigned char)s[len - 1])) len--;
    *b = s, *n = len;
}

int task_gold_prefer(const task_doc *d, const char *a, const char *b) {
    int pa = task_gold_points(d, a, NULL), pb = task_gold_points(d, b, NULL);
    if (pa != pb) return pa > pb ? 1 : 2;
    const char *ta, *tb;
    size_t na, nb;
    trim(a, &ta, &na);
    trim(b, &tb, &nb);
    if (na != nb) return na < nb ? 1 : 2;
    int c = memcmp(ta, tb, na);
    if (c) return c < 0 ? 1 : 2;
    c = strcmp(a ? a : "", b ? b : "");
    return c <= 0 ? 1 : 2;
}

/* ---------------------------------------------------------------- judge_sft comparisons */

static int draw_pair_kind(const double mix[TASK_N_KINDS], rng *r) {
    if (rng_below(r, 7) == 0) return TASK_MIXED;
    double u = rng_uniform_double(r), acc = 0;
    int last = TASK_GOOD;
    for (int k = 0; k < TASK_N_KINDS; k++) {
        if (mix[k] <= 0) continue;
        acc += mix[k];
        last = k;
        if (u < acc) return k;
    }
    return last;
}

int task_gold_pair(const task_config *c, long i, task_pair *p, rl_err *e) {
    if (i < 0 || i > (long)UINT32_MAX)
        return err_set(e, ERR_INPUT, "task: comparison index %ld is out of range", i);
    if (c->n_docs[TASK_TRAIN] < 1)
        return err_set(e, ERR_INPUT, "task.n_train = %ld: no training documents for comparisons",
                       c->n_docs[TASK_TRAIN]);
    memset(p, 0, sizeof *p);
    p->doc_index = i % c->n_docs[TASK_TRAIN];
    task_doc d;
    int rc = task_doc_make(c->seed, TASK_TRAIN, p->doc_index, &d, e);
    if (rc) return rc;
    rng r;
    rng_init(&r, c->seed, task_purpose(TASK_SUB_PAIR, 0), (uint32_t)i);
    p->kind_a = draw_pair_kind(c->mix, &r);
    if ((rc = task_summary(&d, p->kind_a, &r, p->a, sizeof p->a, e))) return rc;
    int pa = task_gold_points(&d, p->a, NULL);
    for (int attempt = 0;; attempt++) {
        /* after a few ties (a mixture of good summaries only), force a flawed one */
        p->kind_b = attempt < 8 ? draw_pair_kind(c->mix, &r) : TASK_MIXED;
        if ((rc = task_summary(&d, p->kind_b, &r, p->b, sizeof p->b, e))) return rc;
        if (task_gold_points(&d, p->b, NULL) != pa) break;
        if (attempt > 64)
            return err_set(e, ERR_INTERNAL, "task: no comparison with a gold margin for doc %ld",
                           p->doc_index);
    }
    if (rng_below(&r, 2)) {
        task_pair tmp = *p;
        memcpy(p->a, tmp.b, sizeof p->a);
        memcpy(p->b, tmp.a, sizeof p->b);
        p->kind_a = tmp.kind_b, p->kind_b = tmp.kind_a;
    }
    p->gold = task_gold_prefer(&d, p->a, p->b);
    p->margin = task_gold_margin(&d, p->a, p->b);
    return ERR_OK;
}
