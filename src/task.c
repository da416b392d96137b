/* task: the generator of the built-in summarisation world (see include/task.h).
 *
 * Documents, reference summaries, flawed summaries, SFT examples and the BPE corpus, each a pure
 * function of (seed, split, index) through rng streams of purpose RNG_TASK keyed by the item, so
 * that nothing depends on split sizes, rank layout or call order.
 *
 * A summary is first described by a `spec` (which key facts it states, in which word order, what
 * it adds, how it is damaged) and then rendered, so that every flaw is one small edit of a good
 * summary and the flaw kinds compose (TASK_MIXED).
 *
 * Deliberately not here: scoring (task_gold.c: the generator never asks the gold rater anything,
 * except task_gold_pair, which lives there), the vocabulary (task_world.c). */
#include "task.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "task_internal.h"

/* Documents longer than this many words lose trailing non-main sentences (keeping >= 3). */
#define DOC_MAX_WORDS 64

/* ---------------------------------------------------------------- names and config */

static const char *const kind_names[TASK_N_KINDS_ALL] = {"good",     "verbose",   "missing",
                                                         "invented", "malformed", "mixed"};
static const char *const split_names[TASK_N_SPLITS] = {"train", "val", "test"};
static const char *const slot_names[TASK_N_SLOTS] = {"who", "what", "object", "where", "when"};
static const int slot_classes[TASK_N_SLOTS] = {TASK_C_PERSON, TASK_C_ACTION, TASK_C_OBJECT,
                                               TASK_C_PLACE, TASK_C_TIME};
static const char *const role_names[TASK_N_ROLES] = {"main",         "background", "other_event",
                                                     "other_object", "weather",    "event",
                                                     "place_desc",   "reaction",   "object_detail"};

const char *task_kind_name(int kind) {
    return kind >= 0 && kind < TASK_N_KINDS_ALL ? kind_names[kind] : "?";
}
const char *task_split_name(int split) {
    return split >= 0 && split < TASK_N_SPLITS ? split_names[split] : "?";
}
int task_split_parse(const char *s) {
    for (int i = 0; s && i < TASK_N_SPLITS; i++)
        if (strcmp(s, split_names[i]) == 0) return i;
    return -1;
}
int task_slot_class(int slot) {
    return slot >= 0 && slot < TASK_N_SLOTS ? slot_classes[slot] : -1;
}
const char *task_slot_name(int slot) {
    return slot >= 0 && slot < TASK_N_SLOTS ? slot_names[slot] : "?";
}
const char *task_role_name(int role) {
    return role >= 0 && role < TASK_N_ROLES ? role_names[role] : "?";
}

void task_config_default(task_config *c) {
    memset(c, 0, sizeof *c);
    c->seed = 1;
    c->n_docs[TASK_TRAIN] = 4000;
    c->n_docs[TASK_VAL] = 500;
    c->n_docs[TASK_TEST] = 1000;
    c->mix[TASK_GOOD] = 0.35;
    c->mix[TASK_VERBOSE] = 0.25;
    c->mix[TASK_MISSING] = 0.15;
    c->mix[TASK_INVENTED] = 0.15;
    c->mix[TASK_MALFORMED] = 0.10;
    c->n_judge_pairs = 400;
}

int task_config_check(const task_config *c, rl_err *e) {
    static const char *const n_keys[TASK_N_SPLITS] = {"task.n_train", "task.n_val", "task.n_test"};
    for (int s = 0; s < TASK_N_SPLITS; s++)
        if (c->n_docs[s] < 1 || c->n_docs[s] > 100000000L)
            return err_set(e, ERR_INPUT, "%s = %ld is out of range [1, 100000000]", n_keys[s],
                           c->n_docs[s]);
    double sum = 0;
    for (int k = 0; k < TASK_N_KINDS; k++) {
        if (!(c->mix[k] >= 0.0 && c->mix[k] <= 1.0))
            return err_set(e, ERR_INPUT, "task.mix.%s = %g is out of range [0, 1]", kind_names[k],
                           c->mix[k]);
        sum += c->mix[k];
    }
    if (fabs(sum - 1.0) > 1e-6)
        return err_set(e, ERR_INPUT,
                       "task.mix: the proportions (good, verbose, missing, invented, malformed) "
                       "sum to %.6g; they must sum to 1",
                       sum);
    if (c->n_judge_pairs < 0 || c->n_judge_pairs > 100000000L)
        return err_set(e, ERR_INPUT, "task.judge_pairs = %ld is out of range [0, 100000000]",
                       c->n_judge_pairs);
    return ERR_OK;
}

/* ---------------------------------------------------------------- string building */

typedef struct sbuf {
    char *p;
    size_t cap, len;
    int overflow;
} sbuf;

static void sb_init(sbuf *b, char *p, size_t cap) {
    b->p = p, b->cap = cap, b->len = 0, b->overflow = cap == 0;
    if (cap) p[0] = '\0';
}

static void sb_put(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->overflow || b->len + n + 1 > b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static void __attribute__((format(printf, 2, 3))) sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->overflow) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len) {
        b->overflow = 1;
        b->p[b->len] = '\0';
        return;
    }
    b->len += (size_t)n;
}

static void cap_first(char *s) {
    if (s[0] >= 'a' && s[0] <= 'z') s[0] = (char)(s[0] - 'a' + 'A');
}

static int count_words(const char *s) {
    int n = 0;
    task_token t;
    while (task_next_token(&s, &t))
        if (t.type == TASK_TOK_WORD || t.type == TASK_TOK_OTHER) n++;
    return n;
}

/* ---------------------------------------------------------------- phrases */

static int starts_with_vowel(const char *w) {
    return w[0] && strchr("aeiouAEIOU", w[0]) != NULL;
}

/* "a map", "an old map", "an umbrella" */
static void np_indef(sbuf *b, int attr, int obj) {
    const char *first = attr >= 0 ? task_attrs[attr] : task_objects[obj];
    sb_put(b, starts_with_vowel(first) ? "an " : "a ");
    if (attr >= 0) sb_printf(b, "%s ", task_attrs[attr]);
    sb_put(b, task_objects[obj]);
}

static void place_phrase(sbuf *b, int place) {
    sb_printf(b, "%s the %s", task_places[place].prep, task_places[place].name);
}

static const char *pron_subj(int female) {
    return female ? "she" : "he";
}

static uint32_t below(rng *r, int n) {
    return rng_below(r, (uint32_t)n);
}

/* A uniformly drawn entity of class size n different from each of the excluded ids (-1 = none). */
static int draw_other(rng *r, int n, int ex1, int ex2) {
    for (;;) {
        int v = (int)below(r, n);
        if (v != ex1 && v != ex2) return v;
    }
}

/* ---------------------------------------------------------------- documents */

/* Ten buckets over the main event; 0-7 train, 8 val, 9 test (splitmix64 finaliser). */
static int event_split(int who, int action, int object, int place) {
    uint64_t x = (((uint64_t)who * 64 + (uint64_t)action) * 64 + (uint64_t)object) * 64 +
                 (uint64_t)place + 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    int bucket = (int)(x % 10);
    return bucket < 8 ? TASK_TRAIN : bucket == 8 ? TASK_VAL : TASK_TEST;
}

int task_main_event_split(const task_doc *d) {
    return event_split(d->key[TASK_WHO], d->key[TASK_WHAT], d->key[TASK_OBJ], d->key[TASK_WHERE]);
}

int task_doc_mentions(const task_doc *d, int cls, int id) {
    int l = task_lexeme(cls, id);
    return l >= 0 && d->present[l];
}

const char *task_context(const task_doc *d) {
    return d->text;
}

typedef struct draft_sent {
    int role;
    char text[256];
} draft_sent;

/* The entities of the non-main sentences, drawn before the sentences are written. */
typedef struct doc_cast {
    int q, q_female, act, place2, time2;
    int owner, owner_female, obj2, attr2;
    int occ, weather, place_desc, feeling, event;
} doc_cast;

static void main_sentence(const task_doc *d, int form, int attr_in_main, draft_sent *s,
                          draft_sent *s2, int *n_out) {
    sbuf b;
    sb_init(&b, s->text, sizeof s->text);
    const char *who = task_persons[d->key[TASK_WHO]].name;
    const task_action *a = &task_actions[d->key[TASK_WHAT]];
    const char *v = a->past[d->verb_form], *vpp = a->part[d->verb_form];
    int obj = d->key[TASK_OBJ], place = d->key[TASK_WHERE], t = d->key[TASK_WHEN];
    *n_out = 1;
    s->role = TASK_R_MAIN;
    if (form == 0 && t < 0) form = 1;
    switch (form) {
    case 0: /* On Monday, Anna found an old map at the harbour. */
        sb_printf(&b, "%s, %s %s ", task_times[t].initial, who, v);
        np_indef(&b, attr_in_main, obj);
        sb_put(&b, " ");
        place_phrase(&b, place);
        break;
    case 1: /* Anna found an old map at the harbour on Monday. */
        sb_printf(&b, "%s %s ", who, v);
        np_indef(&b, attr_in_main, obj);
        sb_put(&b, " ");
        place_phrase(&b, place);
        if (t >= 0) sb_printf(&b, " %s", task_times[t].phrase);
        break;
    case 2: /* At the harbour, Anna found an old map on Monday. */
        place_phrase(&b, place);
        sb_printf(&b, ", %s %s ", who, v);
        np_indef(&b, attr_in_main, obj);
        if (t >= 0) sb_printf(&b, " %s", task_times[t].phrase);
        break;
    case 3: /* An old map was found by Anna at the harbour on Monday. */
        np_indef(&b, attr_in_main, obj);
        sb_printf(&b, " was %s by %s ", vpp, who);
        place_phrase(&b, place);
        if (t >= 0) sb_printf(&b, " %s", task_times[t].phrase);
        break;
    case 4: { /* On Monday, Anna went to the harbour. There she found an old map. */
        if (t >= 0) sb_printf(&b, "%s, ", task_times[t].initial);
        sb_printf(&b, "%s went to the %s.", who, task_places[place].name);
        sbuf b2;
        sb_init(&b2, s2->text, sizeof s2->text);
        sb_printf(&b2, "there %s %s ", pron_subj(d->female), v);
        np_indef(&b2, attr_in_main, obj);
        sb_put(&b2, ".");
        cap_first(s2->text);
        s2->role = TASK_R_MAIN;
        *n_out = 2;
        cap_first(s->text);
        return;
    }
    default: /* Anna was at the harbour on Monday, where she found an old map. */
        sb_printf(&b, "%s was ", who);
        place_phrase(&b, place);
        if (t >= 0) sb_printf(&b, " %s", task_times[t].phrase);
        sb_printf(&b, ", where %s %s ", pron_subj(d->female), v);
        np_indef(&b, attr_in_main, obj);
        break;
    }
    sb_put(&b, ".");
    cap_first(s->text);
}

static void other_sentence(const task_doc *d, int role, const doc_cast *k, rng *r, draft_sent *s) {
    sbuf b;
    sb_init(&b, s->text, sizeof s->text);
    s->role = role;
    const char *who = task_persons[d->key[TASK_WHO]].name;
    int v = (int)below(r, 4);
    switch (role) {
    case TASK_R_BACKGROUND: {
        const char *occ = task_occs[k->occ];
        if (v == 0)
            sb_printf(&b, "%s has worked as a %s in the town for many years.", who, occ);
        else if (v == 1)
            sb_printf(&b, "%s works as a %s in the town.", who, occ);
        else if (v == 2)
            sb_printf(&b, "%s is a %s who lives in the village.", who, occ);
        else
            sb_printf(&b, "everyone in the town knows %s, the %s.", who, occ);
        break;
    }
    case TASK_R_OTHER_EVENT: {
        const char *q = task_persons[k->q].name, *act = task_activities[k->act];
        if (k->time2 >= 0)
            sb_printf(&b, "%s, ", task_times[k->time2].initial);
        else if (k->place2 < 0 && v < 2)
            sb_put(&b, "meanwhile, ");
        if (k->place2 >= 0) {
            sb_printf(&b, "%s was %s ", q, act);
            place_phrase(&b, k->place2);
            sb_put(&b, ".");
        } else if (k->time2 < 0 && v >= 2) {
            sb_printf(&b, "not far away, %s was %s.", q, act);
        } else {
            sb_printf(&b, "%s was %s at home.", q, act);
        }
        break;
    }
    case TASK_R_OTHER_OBJ:
        sb_printf(&b, "%s %s ", task_persons[k->owner].name, v < 2 ? "had" : "was carrying");
        np_indef(&b, k->attr2, k->obj2);
        sb_put(&b, ".");
        break;
    case TASK_R_WEATHER: {
        const char *w = task_descs[k->weather];
        if (v == 0)
            sb_printf(&b, "the weather was %s.", w);
        else if (v == 1)
            sb_printf(&b, "the weather was %s, so most people stayed at home.", w);
        else if (v == 2)
            sb_printf(&b, "it was a %s day.", w);
        else
            sb_printf(&b, "the day was %s and few people were out.", w);
        break;
    }
    case TASK_R_EVENT: {
        const char *ev = task_events[k->event];
        if (v < 2)
            sb_printf(&b, "the town was getting ready for the %s.", ev);
        else if (v == 2)
            sb_printf(&b, "everyone in the village was talking about the %s.", ev);
        else
            sb_printf(&b, "the %s was only days away.", ev);
        break;
    }
    case TASK_R_PLACE_DESC: {
        int pl = d->key[TASK_WHERE];
        if (v < 2)
            sb_printf(&b, "the %s was %s that day.", task_places[pl].name,
                      task_descs[k->place_desc]);
        else {
            sb_printf(&b, "it was %s ", task_descs[k->place_desc]);
            place_phrase(&b, pl);
            sb_put(&b, ".");
        }
        break;
    }
    case TASK_R_REACTION: {
        const char *q = task_persons[k->q].name;
        if (v == 0)
            sb_printf(&b, "later, %s showed the %s to %s.", who, task_objects[d->key[TASK_OBJ]], q);
        else if (v == 1)
            sb_printf(&b, "when %s heard about it, %s was very %s.", q, pron_subj(k->q_female),
                      task_descs[k->feeling]);
        else
            sb_printf(&b, "%s was %s to hear the news.", q, task_descs[k->feeling]);
        break;
    }
    case TASK_R_OBJ_DETAIL:
        if (v < 2)
            sb_printf(&b, "the %s was %s.", task_objects[d->key[TASK_OBJ]], task_attrs[d->attr]);
        else {
            sb_put(&b, "it was ");
            sb_put(&b, starts_with_vowel(task_attrs[d->attr]) ? "an " : "a ");
            sb_printf(&b, "%s one.", task_attrs[d->attr]);
        }
        break;
    }
    cap_first(s->text);
}

void task_doc_reindex(task_doc *d) {
    d->n_words = count_words(d->text);
    memset(d->present, 0, sizeof d->present);
    const char *p = d->text;
    task_token t;
    while (task_next_token(&p, &t)) {
        if (t.type != TASK_TOK_WORD) continue;
        int id, cls = task_lookup(t.s, t.n, &id);
        if (cls < TASK_N_CLASSES) d->present[task_lexeme(cls, id)] = 1;
    }
    d->n_distract = 0;
    for (int cls = 0; cls < TASK_N_CLASSES; cls++)
        for (int id = 0; id < task_class_size(cls); id++) {
            if (!d->present[task_lexeme(cls, id)]) continue;
            int is_key = 0;
            for (int s = 0; s < TASK_N_SLOTS; s++)
                if (slot_classes[s] == cls && d->key[s] == id) is_key = 1;
            if (is_key || (cls == TASK_C_ATTR && id == d->attr)) continue;
            if (d->n_distract < TASK_MAX_DISTRACT)
                d->distract[d->n_distract++] = (task_fact){cls, id};
        }
}

int task_doc_make(uint64_t seed, int split, long index, task_doc *d, rl_err *e) {
    if (split < 0 || split >= TASK_N_SPLITS)
        return err_set(e, ERR_INPUT, "task: split %d is not train, val or test", split);
    if (index < 0 || index > (long)UINT32_MAX)
        return err_set(e, ERR_INPUT, "task: document index %ld is out of range [0, %lu]", index,
                       (unsigned long)UINT32_MAX);
    memset(d, 0, sizeof *d);
    d->seed = seed, d->split = split, d->index = index;
    rng r;
    rng_init(&r, seed, task_purpose(TASK_SUB_DOC, (uint32_t)split), (uint32_t)index);

    /* the main event, from this split's share of (who, action, object, place) */
    int tries = 0;
    do {
        d->key[TASK_WHO] = (int)below(&r, TASK_N_PERSONS);
        d->key[TASK_WHAT] = (int)below(&r, TASK_N_ACTIONS);
        d->key[TASK_OBJ] = (int)below(&r, TASK_N_OBJECTS);
        d->key[TASK_WHERE] = (int)below(&r, TASK_N_PLACES);
        if (++tries > 10000) return err_set(e, ERR_INTERNAL, "task: no main event for split");
    } while (event_split(d->key[TASK_WHO], d->key[TASK_WHAT], d->key[TASK_OBJ],
                         d->key[TASK_WHERE]) != split);
    d->verb_form = (int)below(&r, task_actions[d->key[TASK_WHAT]].n);
    d->key[TASK_WHEN] = below(&r, 4) < 3 ? (int)below(&r, TASK_N_TIMES) : -1;
    d->attr = below(&r, 10) < 6 ? (int)below(&r, TASK_N_ATTRS) : -1;
    d->female = task_persons[d->key[TASK_WHO]].female;
    d->n_key = d->key[TASK_WHEN] >= 0 ? 5 : 4;

    /* the cast of the other sentences */
    doc_cast k;
    k.q = draw_other(&r, TASK_N_PERSONS, d->key[TASK_WHO], -1);
    k.q_female = task_persons[k.q].female;
    k.act = (int)below(&r, TASK_N_ACTIVITIES);
    k.place2 = below(&r, 10) < 7 ? draw_other(&r, TASK_N_PLACES, d->key[TASK_WHERE], -1) : -1;
    k.time2 = below(&r, 10) < 4 ? draw_other(&r, TASK_N_TIMES, d->key[TASK_WHEN], -1) : -1;
    k.owner = below(&r, 2) ? k.q : draw_other(&r, TASK_N_PERSONS, d->key[TASK_WHO], k.q);
    k.owner_female = task_persons[k.owner].female;
    k.obj2 = draw_other(&r, TASK_N_OBJECTS, d->key[TASK_OBJ], -1);
    k.attr2 = below(&r, 10) < 7 ? draw_other(&r, TASK_N_ATTRS, d->attr, -1) : -1;
    k.occ = (int)below(&r, TASK_N_OCCS);
    k.weather = TASK_DESC_WEATHER0 + (int)below(&r, TASK_DESC_WEATHER_N);
    k.place_desc = TASK_DESC_PLACE0 + (int)below(&r, TASK_DESC_PLACE_N);
    k.feeling = TASK_DESC_FEEL0 + (int)below(&r, TASK_DESC_FEEL_N);
    k.event = (int)below(&r, TASK_N_EVENTS);

    /* which sentences, in which order */
    int form = (int)below(&r, 6);
    if (form == 0 && d->key[TASK_WHEN] < 0) form = 1;
    int main_sents = form == 4 ? 2 : 1;
    /* 3..5 sentences in all, mostly 4 or 5 */
    static const int extra_sents[4] = {0, 1, 2, 2};
    int n_other = (main_sents == 2 ? 1 : 2) + extra_sents[below(&r, 4)];
    int pool[TASK_N_ROLES], n_pool = 0;
    for (int role = TASK_R_BACKGROUND; role < TASK_N_ROLES; role++)
        if (role != TASK_R_OBJ_DETAIL || d->attr >= 0) pool[n_pool++] = role;
    rng_shuffle_int(&r, pool, n_pool);
    if (n_other > n_pool) n_other = n_pool;
    int has_detail = 0;
    for (int i = 0; i < n_other; i++) has_detail |= pool[i] == TASK_R_OBJ_DETAIL;

    draft_sent sents[TASK_MAX_SENT];
    int order[TASK_MAX_SENT], n = 0;
    /* free sentences (any position) first, the main event at position 0..2 among them, then the
     * sentences that refer back to the main event somewhere after it */
    draft_sent free_s[TASK_N_ROLES], after_s[TASK_N_ROLES];
    int n_free = 0, n_after = 0;
    for (int i = 0; i < n_other; i++) {
        int role = pool[i];
        if (role == TASK_R_PLACE_DESC || role == TASK_R_REACTION || role == TASK_R_OBJ_DETAIL)
            other_sentence(d, role, &k, &r, &after_s[n_after++]);
        else
            other_sentence(d, role, &k, &r, &free_s[n_free++]);
    }
    int main_pos = (int)below(&r, (n_free < 2 ? n_free : 2) + 1);
    int nm;
    for (int i = 0; i < n_free; i++) {
        if (i == main_pos) {
            main_sentence(d, form, has_detail ? -1 : d->attr, &sents[n], &sents[n + 1], &nm);
            n += nm;
        }
        sents[n++] = free_s[i];
    }
    if (main_pos >= n_free) {
        main_sentence(d, form, has_detail ? -1 : d->attr, &sents[n], &sents[n + 1], &nm);
        n += nm;
    }
    int first_after_main = 0;
    for (int i = 0; i < n; i++)
        if (sents[i].role == TASK_R_MAIN) first_after_main = i + 1;
    for (int a = 0; a < n_after; a++) {
        int pos = first_after_main + (int)below(&r, n - first_after_main + 1);
        memmove(&sents[pos + 1], &sents[pos], sizeof sents[0] * (size_t)(n - pos));
        sents[pos] = after_s[a];
        n++;
    }
    for (int i = 0; i < n; i++) order[i] = 1;

    /* assemble; drop trailing non-main sentences while too long (keeping >= 3) */
    for (;;) {
        sbuf b;
        sb_init(&b, d->text, sizeof d->text);
        d->n_sent = 0;
        for (int i = 0; i < n; i++) {
            if (!order[i]) continue;
            if (b.len) sb_put(&b, " ");
            d->sent[d->n_sent].off = (int)b.len;
            sb_put(&b, sents[i].text);
            d->sent[d->n_sent].len = (int)b.len - d->sent[d->n_sent].off;
            d->sent[d->n_sent].role = sents[i].role;
            d->n_sent++;
        }
        if (b.overflow) return err_set(e, ERR_INTERNAL, "task: document buffer overflow");
        d->n_words = count_words(d->text);
        if (d->n_words <= DOC_MAX_WORDS || d->n_sent <= 3) break;
        int dropped = 0;
        for (int i = n - 1; i >= 0 && !dropped; i--)
            if (order[i] && sents[i].role != TASK_R_MAIN) order[i] = 0, dropped = 1;
        if (!dropped) break;
    }

    /* which of the cast made it into the text */
    d->other_person = d->other_activity = d->other_place = d->other_time = -1;
    d->obj_owner = d->other_object = d->other_attr = d->occupation = -1;
    for (int i = 0; i < d->n_sent; i++) {
        switch (d->sent[i].role) {
        case TASK_R_OTHER_EVENT:
            d->other_person = k.q, d->other_activity = k.act;
            d->other_place = k.place2, d->other_time = k.time2;
            break;
        case TASK_R_OTHER_OBJ:
            d->obj_owner = k.owner, d->other_object = k.obj2, d->other_attr = k.attr2;
            break;
        case TASK_R_BACKGROUND:
            d->occupation = k.occ;
            break;
        case TASK_R_REACTION:
            if (d->other_person < 0) d->other_person = k.q;
            break;
        default:
            break;
        }
    }
    task_doc_reindex(d);
    return ERR_OK;
}

/* ---------------------------------------------------------------- summaries */

enum { FORM_CANON = 0, FORM_TFIRST, FORM_LFIRST, FORM_PASSIVE };
enum { CLAUSE_NONE = 0, CLAUSE_EVENT, CLAUSE_OBJ };
enum { MAL_NONE = 0, MAL_NO_PERIOD, MAL_TRUNCATE, MAL_REPEAT_WORD, MAL_REPEAT_SENT, MAL_LOWER };

static const char *const fillers[] = {"it was reported that", "in short,",
                                      "according to the story,", "as it turns out,"};
#define N_FILLERS ((int)(sizeof fillers / sizeof fillers[0]))

/* What a summary says and how it is damaged; -1 means "left out" for the facts. */
typedef struct spec {
    int form;
    int who, action, vform, obj, place, time;
    int attr;      /* attribute shown on the object */
    int companion; /* "with Zoe" */
    int appos_occ; /* "Anna, a baker," */
    int clause;    /* CLAUSE_*: ", while Ben was fishing by the river" / ", while Ben had a kite" */
    int prefix;    /* filler index */
    int extra_sent; /* index of a document sentence appended verbatim */
    int mal;        /* MAL_* */
    int mal_arg;
} spec;

static void spec_reference(const task_doc *d, spec *s) {
    s->form = FORM_CANON;
    s->who = d->key[TASK_WHO], s->action = d->key[TASK_WHAT], s->vform = d->verb_form;
    s->obj = d->key[TASK_OBJ], s->place = d->key[TASK_WHERE], s->time = d->key[TASK_WHEN];
    s->attr = s->companion = s->appos_occ = s->prefix = s->extra_sent = -1;
    s->clause = CLAUSE_NONE;
    s->mal = MAL_NONE, s->mal_arg = 0;
}

/* A good summary: the reference facts in one of three equally short word orders. */
static void spec_good(const task_doc *d, rng *r, spec *s) {
    spec_reference(d, s);
    uint32_t u = below(r, 20);
    if (u < 12)
        s->form = FORM_CANON;
    else if (u < 17)
        s->form = s->time >= 0 ? FORM_TFIRST : FORM_LFIRST;
    else
        s->form = FORM_LFIRST;
}

/* An entity of class cls the document never mentions. */
static int draw_unmentioned(const task_doc *d, rng *r, int cls) {
    for (;;) {
        int id = (int)below(r, task_class_size(cls));
        if (!task_doc_mentions(d, cls, id)) return id;
    }
}

static void apply_verbose(const task_doc *d, rng *r, spec *s) {
    int ops[4], n_ops = 0;
    if (s->who >= 0 && d->occupation >= 0) ops[n_ops++] = 0;              /* apposition */
    if (d->other_activity >= 0 || d->other_object >= 0) ops[n_ops++] = 1; /* clause */
    ops[n_ops++] = 2;                                                     /* filler prefix */
    ops[n_ops++] = 3;                                                     /* extra sentence */
    rng_shuffle_int(r, ops, n_ops);
    int take = below(r, 10) < 7 ? 1 : 2;
    for (int i = 0; i < take && i < n_ops; i++) {
        switch (ops[i]) {
        case 0:
            s->appos_occ = d->occupation;
            break;
        case 1:
            if (d->other_activity >= 0 && (d->other_object < 0 || below(r, 2)))
                s->clause = CLAUSE_EVENT;
            else
                s->clause = CLAUSE_OBJ;
            break;
        case 2:
            s->prefix = (int)below(r, N_FILLERS);
            break;
        default: {
            int cand[TASK_MAX_SENT], nc = 0;
            for (int j = 0; j < d->n_sent; j++)
                if (d->sent[j].role != TASK_R_MAIN) cand[nc++] = j;
            if (nc)
                s->extra_sent = cand[below(r, nc)];
            else
                s->prefix = (int)below(r, N_FILLERS);
            break;
        }
        }
    }
}

static void apply_missing(const task_doc *d, rng *r, spec *s) {
    int *slot_val[TASK_N_SLOTS] = {&s->who, &s->action, &s->obj, &s->place, &s->time};
    int cand[TASK_N_SLOTS], nc = 0;
    for (int k = 0; k < TASK_N_SLOTS; k++)
        if (*slot_val[k] >= 0) cand[nc++] = k;
    if (!nc) return;
    int k = cand[below(r, nc)];
    *slot_val[k] = -1;
    if (k == TASK_WHO) {
        s->appos_occ = -1;
        s->form = (s->obj >= 0 && s->action >= 0 && below(r, 10) < 7) ? FORM_PASSIVE : FORM_CANON;
    }
    if (k == TASK_OBJ || k == TASK_WHAT) {
        s->attr = -1;
        if (s->form == FORM_PASSIVE) s->form = FORM_CANON;
    }
    if (k == TASK_WHEN && s->form == FORM_TFIRST) s->form = FORM_CANON;
    if (k == TASK_WHERE && s->form == FORM_LFIRST) s->form = FORM_CANON;
    (void)d;
}

static void apply_invented(const task_doc *d, rng *r, spec *s) {
    uint32_t u = below(r, 20);
    if (u < 3 && s->obj >= 0) { /* an attribute the document never gives */
        s->attr = draw_unmentioned(d, r, TASK_C_ATTR);
        return;
    }
    if (u < 6) { /* a companion who is not in the document */
        s->companion = draw_unmentioned(d, r, TASK_C_PERSON);
        return;
    }
    if (u < 8 && s->time < 0) { /* a time the document never gives */
        s->time = draw_unmentioned(d, r, TASK_C_TIME);
        return;
    }
    /* replace a stated key fact by another entity of its kind: one the document never mentions,
     * or (one time in three, when there is one) a distractor of the document */
    int *slot_val[TASK_N_SLOTS] = {&s->who, &s->action, &s->obj, &s->place, &s->time};
    int cand[TASK_N_SLOTS], nc = 0;
    for (int k = 0; k < TASK_N_SLOTS; k++)
        if (*slot_val[k] >= 0) cand[nc++] = k;
    if (!nc) {
        s->companion = draw_unmentioned(d, r, TASK_C_PERSON);
        return;
    }
    int k = cand[below(r, nc)];
    int other = -1;
    if (below(r, 3) == 0) {
        if (k == TASK_WHO) other = d->other_person >= 0 ? d->other_person : d->obj_owner;
        if (k == TASK_OBJ) other = d->other_object;
        if (k == TASK_WHERE) other = d->other_place;
        if (k == TASK_WHEN) other = d->other_time;
    }
    *slot_val[k] = other >= 0 ? other : draw_unmentioned(d, r, slot_classes[k]);
    if (k == TASK_WHAT) s->vform = 0;
    if (k == TASK_WHO && s->companion == *slot_val[k]) s->companion = -1;
}

static void apply_malformed(rng *r, spec *s) {
    uint32_t u = below(r, 20);
    if (u < 6)
        s->mal = MAL_NO_PERIOD;
    else if (u < 12)
        s->mal = MAL_TRUNCATE, s->mal_arg = 1 + (int)below(r, 3);
    else if (u < 15)
        s->mal = MAL_REPEAT_WORD, s->mal_arg = (int)below(r, 1000);
    else if (u < 17)
        s->mal = MAL_REPEAT_SENT;
    else
        s->mal = MAL_LOWER;
}

/* The body of the sentence, starting lower-case where the words allow, without the final stop. */
static void render_body(const task_doc *d, const spec *s, sbuf *b) {
    int form = s->form;
    if (form == FORM_TFIRST && s->time < 0) form = FORM_CANON;
    if (form == FORM_LFIRST && s->place < 0) form = FORM_CANON;
    if (form == FORM_PASSIVE && (s->obj < 0 || s->action < 0)) form = FORM_CANON;
    char subj[96], obj[64], verb[32];
    sbuf bs, bo;
    sb_init(&bs, subj, sizeof subj);
    if (s->who >= 0) {
        sb_put(&bs, task_persons[s->who].name);
        if (s->appos_occ >= 0) sb_printf(&bs, ", a %s,", task_occs[s->appos_occ]);
    } else
        sb_put(&bs, "someone");
    sb_init(&bo, obj, sizeof obj);
    if (s->obj >= 0)
        np_indef(&bo, s->attr, s->obj);
    else
        sb_put(&bo, "something");
    int vf = s->action >= 0 && s->vform < task_actions[s->action].n ? s->vform : 0;
    snprintf(verb, sizeof verb, "%s", s->action >= 0 ? task_actions[s->action].past[vf] : "had");

    if (s->prefix >= 0) sb_printf(b, "%s ", fillers[s->prefix]);
    switch (form) {
    case FORM_TFIRST:
        sb_printf(b, "%s, %s %s %s", task_times[s->time].phrase, subj, verb, obj);
        break;
    case FORM_LFIRST:
        place_phrase(b, s->place);
        sb_printf(b, ", %s %s %s", subj, verb, obj);
        break;
    case FORM_PASSIVE:
        sb_printf(b, "%s was %s", obj, task_actions[s->action].part[vf]);
        if (s->who >= 0) sb_printf(b, " by %s", subj);
        break;
    default:
        sb_printf(b, "%s %s %s", subj, verb, obj);
        break;
    }
    if (s->companion >= 0) sb_printf(b, " with %s", task_persons[s->companion].name);
    if (form != FORM_LFIRST && s->place >= 0) {
        sb_put(b, " ");
        place_phrase(b, s->place);
    }
    if (form != FORM_TFIRST && s->time >= 0) sb_printf(b, " %s", task_times[s->time].phrase);
    if (s->clause == CLAUSE_EVENT && d->other_activity >= 0) {
        sb_printf(b, ", while %s was %s", task_persons[d->other_person].name,
                  task_activities[d->other_activity]);
        if (d->other_place >= 0) {
            sb_put(b, " ");
            place_phrase(b, d->other_place);
        }
    } else if (s->clause != CLAUSE_NONE && d->other_object >= 0) {
        sb_printf(b, ", while %s had ", task_persons[d->obj_owner].name);
        np_indef(b, d->other_attr, d->other_object);
    }
}

/* Removes the last n space-separated words (and the final stop), then a trailing comma. */
static void truncate_words(char *t, int n) {
    size_t len = strlen(t);
    while (len && (t[len - 1] == '.' || t[len - 1] == ' ')) t[--len] = '\0';
    for (int i = 0; i < n; i++) {
        char *sp = strrchr(t, ' ');
        if (!sp) break;
        *sp = '\0';
    }
    len = strlen(t);
    while (len && (t[len - 1] == ',' || t[len - 1] == ' ')) t[--len] = '\0';
}

/* Doubles the (k mod count)-th word that has no punctuation attached: "found found". */
static void repeat_word(char *t, size_t cap, int k) {
    size_t starts[128];
    int n = 0;
    size_t len = strlen(t);
    for (size_t i = 0; i < len && n < 128; i++) {
        if (i > 0 && t[i - 1] != ' ') continue;
        size_t j = i;
        while (j < len && isalpha((unsigned char)t[j])) j++;
        if (j > i && (j == len || t[j] == ' ')) starts[n++] = i;
    }
    if (!n) return;
    size_t st = starts[k % n], en = st;
    while (en < len && t[en] != ' ') en++;
    size_t wl = en - st;
    if (len + wl + 2 > cap) return;
    memmove(t + en + wl + 1, t + en, len - en + 1);
    t[en] = ' ';
    memcpy(t + en + 1, t + st, wl);
}

static int render(const task_doc *d, const spec *s, char *out, size_t cap, rl_err *e) {
    char body[TASK_SUMMARY_MAX];
    sbuf bb;
    sb_init(&bb, body, sizeof body);
    render_body(d, s, &bb);
    sb_put(&bb, ".");
    cap_first(body);
    if (bb.overflow) return err_set(e, ERR_INTERNAL, "task: summary buffer overflow");
    char text[TASK_SUMMARY_MAX];
    sbuf b;
    sb_init(&b, text, sizeof text);
    sb_put(&b, body);
    if (s->extra_sent >= 0 && s->extra_sent < d->n_sent) {
        char sent[TASK_DOC_MAX];
        snprintf(sent, sizeof sent, "%.*s", d->sent[s->extra_sent].len,
                 d->text + d->sent[s->extra_sent].off);
        sb_printf(&b, " %s", sent);
    }
    if (s->mal == MAL_REPEAT_SENT) sb_printf(&b, " %s", body);
    if (b.overflow) return err_set(e, ERR_INTERNAL, "task: summary buffer overflow");
    switch (s->mal) {
    case MAL_NO_PERIOD:
        if (b.len && text[b.len - 1] == '.') text[--b.len] = '\0';
        break;
    case MAL_TRUNCATE:
        truncate_words(text, s->mal_arg);
        break;
    case MAL_REPEAT_WORD:
        repeat_word(text, sizeof text, s->mal_arg);
        break;
    case MAL_LOWER:
        if (text[0] >= 'A' && text[0] <= 'Z') text[0] = (char)(text[0] - 'A' + 'a');
        break;
    default:
        break;
    }
    if (strlen(text) + 1 > cap) return err_set(e, ERR_INTERNAL, "task: output buffer too small");
    memcpy(out, text, strlen(text) + 1);
    return ERR_OK;
}

int task_reference(const task_doc *d, char *out, size_t cap, rl_err *e) {
    spec s;
    spec_reference(d, &s);
    return render(d, &s, out, cap, e);
}

int task_summary(const task_doc *d, int kind, rng *r, char *out, size_t cap, rl_err *e) {
    spec s;
    spec_good(d, r, &s);
    switch (kind) {
    case TASK_GOOD:
        break;
    case TASK_VERBOSE:
        apply_verbose(d, r, &s);
        break;
    case TASK_MISSING:
        apply_missing(d, r, &s);
        break;
    case TASK_INVENTED:
        apply_invented(d, r, &s);
        break;
    case TASK_MALFORMED:
        apply_malformed(r, &s);
        break;
    case TASK_MIXED: {
        int fam[4] = {TASK_VERBOSE, TASK_MISSING, TASK_INVENTED, TASK_MALFORMED};
        rng_shuffle_int(r, fam, 4);
        int a = fam[0] < fam[1] ? fam[0] : fam[1], b = fam[0] < fam[1] ? fam[1] : fam[0];
        int two[2] = {a, b}; /* content edits before surface damage */
        for (int i = 0; i < 2; i++) {
            if (two[i] == TASK_VERBOSE)
                apply_verbose(d, r, &s);
            else if (two[i] == TASK_MISSING)
                apply_missing(d, r, &s);
            else if (two[i] == TASK_INVENTED)
                apply_invented(d, r, &s);
            else
                apply_malformed(r, &s);
        }
        break;
    }
    default:
        return err_set(e, ERR_INPUT, "task: summary kind %d is out of range", kind);
    }
    return render(d, &s, out, cap, e);
}

/* ---------------------------------------------------------------- prompts, SFT examples, corpus */

int task_prompt(const task_doc *d, char *out, size_t cap, rl_err *e) {
    int n = snprintf(out, cap, "%s%s", d->text, TASK_PROMPT_SUFFIX);
    if (n < 0 || (size_t)n >= cap)
        return err_set(e, ERR_INTERNAL, "task: prompt buffer of %zu bytes too small", cap);
    return ERR_OK;
}

static int draw_kind(const double mix[TASK_N_KINDS], rng *r) {
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

int task_sft_example(const task_config *c, int split, long index, int draw, task_example *ex,
                     rl_err *e) {
    if (draw < 0 || draw >= 16384)
        return err_set(e, ERR_INPUT, "task: SFT draw %d is out of range [0, 16383]", draw);
    task_doc d;
    int rc = task_doc_make(c->seed, split, index, &d, e);
    if (rc) return rc;
    rng r;
    rng_init(&r, c->seed, task_purpose(TASK_SUB_SFT, (uint32_t)draw * 4u + (uint32_t)split),
             (uint32_t)index);
    ex->split = split, ex->index = index, ex->draw = draw;
    ex->kind = draw_kind(c->mix, &r);
    if ((rc = task_prompt(&d, ex->prompt, sizeof ex->prompt, e))) return rc;
    ex->target[0] = ' ';
    return task_summary(&d, ex->kind, &r, ex->target + 1, sizeof ex->target - 1, e);
}

void task_corpus_begin(task_corpus *it, const task_config *c) {
    memset(it, 0, sizeof *it);
    it->c = c;
}

int task_corpus_next(task_corpus *it, const char **text, rl_err *e) {
    *text = NULL;
    if (it->doc >= it->c->n_docs[TASK_TRAIN]) return ERR_OK;
    int rc;
    if (it->part == 0) {
        if ((rc = task_doc_make(it->c->seed, TASK_TRAIN, it->doc, &it->d, e))) return rc;
        rc = task_prompt(&it->d, it->buf, sizeof it->buf, e);
    } else if (it->part == 1) {
        rc = task_reference(&it->d, it->buf, sizeof it->buf, e);
    } else {
        rng r;
        rng_init(&r, it->c->seed, task_purpose(TASK_SUB_CORPUS, (uint32_t)it->part),
                 (uint32_t)it->doc);
        int kind = TASK_VERBOSE + (it->part - 2);
        rc = task_summary(&it->d, kind, &r, it->buf, sizeof it->buf, e);
    }
    if (rc) return rc;
    *text = it->buf;
    if (++it->part == 2 + (TASK_N_KINDS - 1)) it->part = 0, it->doc++;
    return ERR_OK;
}

int task_corpus_write(const task_config *c, FILE *f, rl_err *e) {
    task_corpus it;
    task_corpus_begin(&it, c);
    for (;;) {
        const char *t;
        int rc = task_corpus_next(&it, &t, e);
        if (rc) return rc;
        if (!t) break;
        if (fputs(t, f) == EOF || fputs("\n\n", f) == EOF)
            return err_set(e, ERR_IO, "task: writing the corpus failed");
    }
    return ERR_OK;
}
