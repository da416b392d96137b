/* task_world: the closed vocabulary of the built-in task and the scanner that splits text into
 * words, commas, sentence ends and other bytes.
 *
 * Every word a document or a generated summary can contain is listed here, either as a content
 * word (a lexeme of one class: a person, an action with all its synonyms and tenses, an object,
 * ...) or as a function word. The generator (task.c) and the gold rater (task_gold.c) share it.
 * Lookups are linear scans over ~230 short strings: plenty fast for summaries; the gold rater
 * bounds how many words it looks up.
 *
 * Deliberately not here: templates and sampling (task.c), scoring (task_gold.c). */
#include "task.h"

#include <string.h>

#include "task_internal.h"

/* ---------------------------------------------------------------- content words */

const task_person task_persons[TASK_N_PERSONS] = {
    {"Anna", 1},  {"Ben", 0},   {"Clara", 1}, {"David", 0}, {"Emma", 1},  {"Felix", 0},
    {"Grace", 1}, {"Hugo", 0},  {"Iris", 1},  {"Jack", 0},  {"Kate", 1},  {"Leo", 0},
    {"Lucy", 1},  {"Maria", 1}, {"Max", 0},   {"Nora", 1},  {"Oscar", 0}, {"Paul", 0},
    {"Rosa", 1},  {"Sam", 0},   {"Tom", 0},   {"Vera", 1},  {"Will", 0},  {"Zoe", 1},
};

/* Past tense and past participle of each synonym; the first synonym is the canonical one. */
const task_action task_actions[TASK_N_ACTIONS] = {
    {{"found", "discovered"}, {"found", "discovered"}, 2},
    {{"repaired", "fixed", "mended"}, {"repaired", "fixed", "mended"}, 3},
    {{"sold"}, {"sold"}, 1},
    {{"bought", "purchased"}, {"bought", "purchased"}, 2},
    {{"lost"}, {"lost"}, 1},
    {{"painted"}, {"painted"}, 1},
    {{"delivered"}, {"delivered"}, 1},
    {{"built", "made"}, {"built", "made"}, 2},
    {{"stole"}, {"stolen"}, 1},
    {{"borrowed"}, {"borrowed"}, 1},
    {{"hid"}, {"hidden"}, 1},
    {{"cleaned"}, {"cleaned"}, 1},
    {{"won"}, {"won"}, 1},
    {{"returned"}, {"returned"}, 1},
};

const char *const task_objects[TASK_N_OBJECTS] = {
    "map",    "lamp", "basket", "violin", "boat", "clock", "kite", "painting", "letter", "key",
    "camera", "hat",  "book",   "ladder", "drum", "chair", "tent", "bicycle",  "ring",   "umbrella",
};

/* The preposition each place takes: "at the harbour", "in the park", "on the farm". */
const task_place task_places[TASK_N_PLACES] = {
    {"market", "at"},  {"park", "in"},     {"library", "at"}, {"harbour", "at"}, {"school", "at"},
    {"station", "at"}, {"bakery", "at"},   {"museum", "at"},  {"farm", "on"},    {"garden", "in"},
    {"river", "by"},   {"hospital", "at"}, {"castle", "at"},  {"beach", "on"},   {"forest", "in"},
    {"church", "at"},  {"bridge", "near"}, {"square", "in"},  {"mill", "at"},    {"hotel", "at"},
};

/* The time word, the phrase it sits in, and the same phrase opening a sentence. */
const task_time task_times[TASK_N_TIMES] = {
    {"Monday", "on Monday", "On Monday", "on"},
    {"Tuesday", "on Tuesday", "On Tuesday", "on"},
    {"Wednesday", "on Wednesday", "On Wednesday", "on"},
    {"Thursday", "on Thursday", "On Thursday", "on"},
    {"Friday", "on Friday", "On Friday", "on"},
    {"Saturday", "on Saturday", "On Saturday", "on"},
    {"Sunday", "on Sunday", "On Sunday", "on"},
    {"yesterday", "yesterday", "Yesterday", NULL},
    {"dawn", "at dawn", "At dawn", "at"},
    {"noon", "at noon", "At noon", "at"},
    {"night", "last night", "Last night", "last"},
    {"week", "last week", "Last week", "last"},
};

const char *const task_attrs[TASK_N_ATTRS] = {"old",  "new",   "small",  "large",  "red",
                                              "blue", "green", "broken", "wooden", "golden"};

const char *const task_occs[TASK_N_OCCS] = {"baker",     "teacher",  "farmer", "doctor",
                                            "sailor",    "student",  "nurse",  "fisherman",
                                            "carpenter", "musician", "driver", "gardener"};

const char *const task_activities[TASK_N_ACTIVITIES] = {"reading", "walking", "sleeping", "singing",
                                                        "cooking", "fishing", "working",  "waiting",
                                                        "dancing", "swimming"};

/* 0-5 weather, 6-9 how a place was, 10-14 feelings. */
const char *const task_descs[TASK_N_DESCS] = {"cold",  "warm",      "rainy", "sunny",   "windy",
                                              "foggy", "busy",      "quiet", "crowded", "empty",
                                              "happy", "surprised", "sad",   "proud",   "worried"};

const char *const task_events[TASK_N_EVENTS] = {"festival", "wedding", "fair", "concert", "parade"};

/* ---------------------------------------------------------------- function words */

/* Every other word the templates use (documents, summaries, fillers). Nothing here names a fact. */
static const char *const function_words[] = {
    "a",       "an",       "the",       "her",     "his",       "their",    "at",       "in",
    "on",      "by",       "near",      "to",      "of",        "for",      "with",     "from",
    "about",   "as",       "and",       "while",   "when",      "where",    "who",      "that",
    "it",      "she",      "he",        "there",   "was",       "is",       "had",      "went",
    "lives",   "works",    "knows",     "showed",  "heard",     "hear",     "carrying", "getting",
    "talking", "ready",    "news",      "day",     "days",      "weather",  "town",     "village",
    "home",    "everyone", "meanwhile", "later",   "not",       "far",      "away",     "very",
    "one",     "only",     "last",      "someone", "something", "reported", "short",    "according",
    "story",   "turns",    "out",       "this",    "has",       "worked",   "many",     "years",
    "so",      "most",     "people",    "stayed",  "few",       "were",
};
#define N_FUNCTION_WORDS ((int)(sizeof function_words / sizeof function_words[0]))

/* ---------------------------------------------------------------- lookup */

static const int class_size[TASK_N_CLASSES] = {
    TASK_N_PERSONS, TASK_N_ACTIONS, TASK_N_OBJECTS,    TASK_N_PLACES, TASK_N_TIMES,
    TASK_N_ATTRS,   TASK_N_OCCS,    TASK_N_ACTIVITIES, TASK_N_DESCS,  TASK_N_EVENTS};

static const char *const class_names[TASK_N_CLASSES + 2] = {
    "person",     "action",   "object",     "place", "time",     "attribute",
    "occupation", "activity", "descriptor", "event", "function", "unknown"};

int task_class_size(int cls) {
    return cls >= 0 && cls < TASK_N_CLASSES ? class_size[cls] : 0;
}

const char *task_class_name(int cls) {
    return cls >= 0 && cls < TASK_N_CLASSES + 2 ? class_names[cls] : "?";
}

int task_lexeme(int cls, int id) {
    if (cls < 0 || cls >= TASK_N_CLASSES || id < 0 || id >= class_size[cls]) return -1;
    int off = 0;
    for (int c = 0; c < cls; c++) off += class_size[c];
    return off + id;
}

const char *task_word(int cls, int id) {
    if (task_lexeme(cls, id) < 0) return "?";
    switch (cls) {
    case TASK_C_PERSON:
        return task_persons[id].name;
    case TASK_C_ACTION:
        return task_actions[id].past[0];
    case TASK_C_OBJECT:
        return task_objects[id];
    case TASK_C_PLACE:
        return task_places[id].name;
    case TASK_C_TIME:
        return task_times[id].word;
    case TASK_C_ATTR:
        return task_attrs[id];
    case TASK_C_OCC:
        return task_occs[id];
    case TASK_C_ACTIVITY:
        return task_activities[id];
    case TASK_C_DESC:
        return task_descs[id];
    case TASK_C_EVENT:
        return task_events[id];
    }
    return "?";
}

static int lower(int ch) {
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

/* w[0..n) equals the NUL-terminated s, ignoring ASCII case. */
static int word_eq(const char *w, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || lower((unsigned char)w[i]) != lower((unsigned char)s[i])) return 0;
    return s[n] == '\0';
}

static int find_in(const char *w, size_t n, const char *const *list, int count) {
    for (int i = 0; i < count; i++)
        if (word_eq(w, n, list[i])) return i;
    return -1;
}

int task_lookup(const char *w, size_t n, int *id) {
    int dummy;
    if (!id) id = &dummy;
    *id = -1;
    if (!w || n == 0 || n > 16) return TASK_C_UNKNOWN; /* the longest word has 10 letters */
    int i;
    for (i = 0; i < TASK_N_PERSONS; i++)
        if (word_eq(w, n, task_persons[i].name)) return *id = i, TASK_C_PERSON;
    for (i = 0; i < TASK_N_ACTIONS; i++)
        for (int s = 0; s < task_actions[i].n; s++)
            if (word_eq(w, n, task_actions[i].past[s]) || word_eq(w, n, task_actions[i].part[s]))
                return *id = i, TASK_C_ACTION;
    if ((i = find_in(w, n, task_objects, TASK_N_OBJECTS)) >= 0) return *id = i, TASK_C_OBJECT;
    for (i = 0; i < TASK_N_PLACES; i++)
        if (word_eq(w, n, task_places[i].name)) return *id = i, TASK_C_PLACE;
    for (i = 0; i < TASK_N_TIMES; i++)
        if (word_eq(w, n, task_times[i].word)) return *id = i, TASK_C_TIME;
    if ((i = find_in(w, n, task_attrs, TASK_N_ATTRS)) >= 0) return *id = i, TASK_C_ATTR;
    if ((i = find_in(w, n, task_occs, TASK_N_OCCS)) >= 0) return *id = i, TASK_C_OCC;
    if ((i = find_in(w, n, task_activities, TASK_N_ACTIVITIES)) >= 0)
        return *id = i, TASK_C_ACTIVITY;
    if ((i = find_in(w, n, task_descs, TASK_N_DESCS)) >= 0) return *id = i, TASK_C_DESC;
    if ((i = find_in(w, n, task_events, TASK_N_EVENTS)) >= 0) return *id = i, TASK_C_EVENT;
    if (find_in(w, n, function_words, N_FUNCTION_WORDS) >= 0) return TASK_C_FUNCTION;
    return TASK_C_UNKNOWN;
}

int task_function_words(const char *const **words) {
    if (words) *words = function_words;
    return N_FUNCTION_WORDS;
}

/* ---------------------------------------------------------------- scanner */

static int is_space(int ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}
static int is_letter(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}
static int is_stop(int ch) {
    return ch == '.' || ch == '!' || ch == '?';
}

int task_next_token(const char **p, task_token *t) {
    const unsigned char *s = (const unsigned char *)*p;
    while (*s && is_space(*s)) s++;
    if (!*s) {
        *p = (const char *)s;
        return 0;
    }
    const unsigned char *b = s;
    if (is_letter(*s)) {
        t->type = TASK_TOK_WORD;
        while (*s && is_letter(*s)) s++;
    } else if (is_stop(*s)) {
        t->type = TASK_TOK_STOP;
        while (*s && is_stop(*s)) s++;
    } else if (*s == ',') {
        t->type = TASK_TOK_COMMA;
        s++;
    } else {
        t->type = TASK_TOK_OTHER;
        while (*s && !is_space(*s) && !is_letter(*s) && !is_stop(*s) && *s != ',') s++;
    }
    t->s = (const char *)b;
    t->n = (size_t)(s - b);
    *p = (const char *)s;
    return 1;
}
