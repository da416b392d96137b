/* task: the built-in quickstart task, a small procedurally generated summarisation world.
 *
 * A document is 3-5 sentences (14-51 words, 32 on average) about one main event, "who did what
 * to which object, where, and (in three documents of four) when", among distractor sentences
 * about other people, places, objects, the weather, an occupation, a coming festival. Every word
 * comes from a closed vocabulary of about 230 words (src/task_world.c); sentences come from
 * several templates per kind and the main event from six phrasings, and the main event is the
 * first, second or third sentence, so the same facts read differently. A good summary is one
 * short sentence naming exactly the key facts:
 *
 *   document  At noon, Sam hid an old clock at the market. The weather was foggy, so most people
 *             stayed at home. Sam is a nurse who lives in the village. Hugo was reading on the
 *             beach. The market was busy that day.
 *   prompt    <document>\nTL;DR:
 *   target     Sam hid a clock at the market at noon.
 *
 * Everything is a pure function of (seed, split, index): document i of a split is the same
 * whatever the split sizes, on any rank. Splits are disjoint by construction: the main event
 * (who, action, object, place) is hashed into ten buckets, 0-7 train, 8 val, 9 test, and a
 * document only takes main events of its own split's buckets, so no validation or test document
 * shares its main event with any training document.
 *
 * Besides the reference, the generator writes flawed summaries of four kinds (verbose, missing a
 * key fact, inventing a fact, malformed), the mixture the SFT stage trains on, and the corpus the
 * BPE trainer learns its vocabulary from.
 *
 * The GOLD section at the end is the "human" rater. It is kept apart on purpose: only the SFT
 * data, the judge_sft comparisons and the evaluation may call it; the label, reward and RL
 * stages must never see it (the whole point of the experiment is that they learn without it).
 *
 * What this module deliberately does not do: tokenise, train, sample or know about models,
 * and read decks (the config module fills task_config). */
#ifndef RLAIF_TASK_H
#define RLAIF_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "rng.h"

/* ---------------------------------------------------------------- the world's vocabulary */

/* Word classes. The first ten are content classes: every content word is one lexeme (class, id);
 * the synonyms and tenses of an action ("found", "discovered") are one lexeme. */
enum task_class {
    TASK_C_PERSON = 0, /* Anna, Ben, ...                                           */
    TASK_C_ACTION,     /* found/discovered, repaired/fixed/mended, stole/stolen, ... */
    TASK_C_OBJECT,     /* map, lamp, violin, ...                                    */
    TASK_C_PLACE,      /* harbour, market, ...                                      */
    TASK_C_TIME,       /* Monday..Sunday, yesterday, dawn, noon, night, week        */
    TASK_C_ATTR,       /* old, red, wooden, ... (attributes of objects)             */
    TASK_C_OCC,        /* baker, teacher, ...                                       */
    TASK_C_ACTIVITY,   /* reading, fishing, ...                                     */
    TASK_C_DESC,       /* cold, busy, happy, ... (weather, places, feelings)        */
    TASK_C_EVENT,      /* festival, wedding, ...                                    */
    TASK_N_CLASSES,
    TASK_C_FUNCTION = TASK_N_CLASSES, /* a, the, was, while, ...: known, carry no fact */
    TASK_C_UNKNOWN                    /* not a word of this world                     */
};

enum {
    TASK_N_PERSONS = 24,
    TASK_N_ACTIONS = 14,
    TASK_N_OBJECTS = 20,
    TASK_N_PLACES = 20,
    TASK_N_TIMES = 12,
    TASK_N_ATTRS = 10,
    TASK_N_OCCS = 12,
    TASK_N_ACTIVITIES = 10,
    TASK_N_DESCS = 15,
    TASK_N_EVENTS = 5,
    /* all content lexemes, numbered class by class in enum order */
    TASK_N_LEXEMES = 24 + 14 + 20 + 20 + 12 + 10 + 12 + 10 + 15 + 5
};

/* Number of entities of a content class (0 for other values). */
int task_class_size(int cls);
const char *task_class_name(int cls);
/* Canonical spelling of a lexeme ("Anna", "found", "harbour", "Monday"); "?" when out of range. */
const char *task_word(int cls, int id);
/* Lexeme number in [0, TASK_N_LEXEMES), or -1 when (cls, id) is not a content lexeme. */
int task_lexeme(int cls, int id);
/* Looks up n bytes of w, ASCII case-insensitively. Returns the class (TASK_C_FUNCTION or
 * TASK_C_UNKNOWN for non-content words) and sets *id for content words (-1 otherwise). */
int task_lookup(const char *w, size_t n, int *id);
/* The function words (known words that name no fact); returns their count. */
int task_function_words(const char *const **words);

/* The scanner both the generator (to index what a document mentions) and the gold rater use.
 * Words are maximal runs of ASCII letters; a run of '.', '!' or '?' is one STOP; ',' is a COMMA;
 * any other maximal run of bytes that are not whitespace (digits, other punctuation, non-ASCII
 * bytes) is one OTHER token. Whitespace separates tokens and is not reported. */
enum task_tok { TASK_TOK_WORD, TASK_TOK_COMMA, TASK_TOK_STOP, TASK_TOK_OTHER };
typedef struct task_token {
    int type;
    const char *s;
    size_t n;
} task_token;
/* Reads the token at *p (a NUL-terminated string), advances *p; returns 0 at the end. */
int task_next_token(const char **p, task_token *t);

/* ---------------------------------------------------------------- configuration */

enum task_split { TASK_TRAIN = 0, TASK_VAL = 1, TASK_TEST = 2, TASK_N_SPLITS = 3 };

/* Summary kinds. The first five are the SFT mixture; MIXED (two flaws at once) only appears in
 * the judge_sft comparisons. */
enum task_kind {
    TASK_GOOD = 0,  /* the key facts in one short sentence (several equal-score wordings) */
    TASK_VERBOSE,   /* adds distractor facts, an occupation, a copied sentence or filler    */
    TASK_MISSING,   /* drops one key fact (who, action, object, place or time)              */
    TASK_INVENTED,  /* replaces or adds an entity the document does not support              */
    TASK_MALFORMED, /* no final period, truncated, a repeated word/sentence, lower-case start */
    TASK_N_KINDS,
    TASK_MIXED = TASK_N_KINDS,
    TASK_N_KINDS_ALL
};
const char *task_kind_name(int kind);
const char *task_split_name(int split);
/* "train"/"val"/"test" -> split; -1 when unknown. */
int task_split_parse(const char *s);

typedef struct task_config {
    uint64_t seed;              /* run.seed or task.seed                                   */
    long n_docs[TASK_N_SPLITS]; /* documents per split: train, val, test                   */
    double mix[TASK_N_KINDS];   /* SFT target mixture by kind; non-negative, sums to 1     */
    long n_judge_pairs;         /* gold-labelled comparisons for judge_sft (both orders are
                                   then trained on; each counts once in gold_labels_used)  */
} task_config;

/* Defaults: seed 1; 4000/500/1000 documents; mixture good 0.35, verbose 0.25, missing 0.15,
 * invented 0.15, malformed 0.10 (gold mean of the SFT targets about 0.72; always writing the
 * reference would beat them about 82% of the time); 400 judge pairs. */
void task_config_default(task_config *c);
/* Checks ranges (sizes >= 1 and <= 10^8, mixture entries in [0,1] summing to 1 +- 1e-6,
 * n_judge_pairs >= 0). The message names the field, e.g. "task.mix.verbose". */
int task_config_check(const task_config *c, rl_err *e);

/* ---------------------------------------------------------------- documents */

enum {
    TASK_DOC_MAX = 1024,    /* bytes of a document, NUL included (the longest is ~300) */
    TASK_SUMMARY_MAX = 512, /* bytes of a generated summary, NUL included              */
    TASK_PROMPT_MAX = TASK_DOC_MAX + 16,
    TASK_MAX_SENT = 8,
    TASK_MAX_DISTRACT = 16
};

/* Key-fact slots of the main event, and the class each slot holds. */
enum task_slot { TASK_WHO = 0, TASK_WHAT, TASK_OBJ, TASK_WHERE, TASK_WHEN, TASK_N_SLOTS };
int task_slot_class(int slot);
const char *task_slot_name(int slot);

/* Sentence roles. */
enum task_role {
    TASK_R_MAIN = 0,    /* the main event (one sentence, or two for the "went to ... There" form) */
    TASK_R_BACKGROUND,  /* the main person's occupation                                          */
    TASK_R_OTHER_EVENT, /* another person doing an activity somewhere, maybe at another time      */
    TASK_R_OTHER_OBJ,   /* another person with another object                                    */
    TASK_R_WEATHER,
    TASK_R_EVENT,      /* a coming festival, wedding, ...                                       */
    TASK_R_PLACE_DESC, /* how the main place was that day (after the main event)                */
    TASK_R_REACTION,   /* someone's reaction, or the object shown to someone (after)            */
    TASK_R_OBJ_DETAIL, /* the main object's attribute (after)                                   */
    TASK_N_ROLES
};
const char *task_role_name(int role);

typedef struct task_fact {
    int cls, id;
} task_fact;

typedef struct task_doc {
    uint64_t seed;
    int split;
    long index;
    char text[TASK_DOC_MAX]; /* sentences separated by one space, ends with '.' */
    int n_words;
    int n_sent;
    struct {
        int off, len, role;
    } sent[TASK_MAX_SENT];

    /* The main event. key[slot] is an id of class task_slot_class(slot), or -1 when the slot is
     * absent (only TASK_WHEN can be). */
    int key[TASK_N_SLOTS];
    int n_key;     /* 4 or 5 */
    int verb_form; /* which synonym of the action the document uses */
    int attr;      /* the main object's attribute, a neutral detail, or -1 */
    int female;    /* the main person's pronoun is she (1) or he (0) */

    /* Everything else the document mentions: distractor facts (any content class). */
    task_fact distract[TASK_MAX_DISTRACT];
    int n_distract;
    /* The entities other sentences use, -1 when the document has no such sentence. */
    int other_person, other_activity, other_place, other_time; /* OTHER_EVENT (place/time opt.);
                                                                  other_person also REACTION */
    int obj_owner, other_object, other_attr;                   /* OTHER_OBJ                   */
    int occupation;                                            /* BACKGROUND                  */

    /* present[task_lexeme(c, i)] = 1 when the text mentions that lexeme in any form. */
    unsigned char present[TASK_N_LEXEMES];
} task_doc;

/* Generates document `index` (>= 0) of `split`. Pure function of (seed, split, index). */
int task_doc_make(uint64_t seed, int split, long index, task_doc *d, rl_err *e);
/* The split a main event belongs to (its bucket of ten): every document of a split passes this. */
int task_main_event_split(const task_doc *d);
/* Recomputes n_words, present[] and distract[] from text, key[] and attr: for documents built by
 * hand (tests, or a user's own world). */
void task_doc_reindex(task_doc *d);
/* Whether the document mentions lexeme (cls, id) anywhere. */
int task_doc_mentions(const task_doc *d, int cls, int id);

/* ---------------------------------------------------------------- prompts and summaries */

/* The summarisation prompt is the document exactly, then a newline and "TL;DR:"; a target (what
 * the policy writes) begins with one space and ends with the summary's final period. The EOS
 * token is the trainer's business. */
#define TASK_PROMPT_SUFFIX "\nTL;DR:"
int task_prompt(const task_doc *d, char *out, size_t cap, rl_err *e);
/* The context the judge's template puts after "Text - ": the document text itself. */
const char *task_context(const task_doc *d);

/* The reference summary: "{who} {verb} a/an {object} {at the place}[ {time}]." in the
 * document's own verb. Always the best summary the generator can write (see the tests). */
int task_reference(const task_doc *d, char *out, size_t cap, rl_err *e);
/* A summary of the given kind (TASK_GOOD .. TASK_MIXED) drawn with r. Writes nothing longer than
 * TASK_SUMMARY_MAX - 1 bytes. */
int task_summary(const task_doc *d, int kind, rng *r, char *out, size_t cap, rl_err *e);

/* One SFT example: document `index` of `split`, a summary kind drawn from c->mix and a summary
 * of that kind; a pure function of (c->seed, c->mix, split, index, draw). `draw` (0..16383) picks
 * a fresh kind and summary for the same document, e.g. one per SFT epoch. */
typedef struct task_example {
    int split;
    long index;
    int draw;
    int kind;
    char prompt[TASK_PROMPT_MAX];      /* task_prompt() */
    char target[TASK_SUMMARY_MAX + 1]; /* " " + summary */
} task_example;
int task_sft_example(const task_config *c, int split, long index, int draw, task_example *ex,
                     rl_err *e);

/* ---------------------------------------------------------------- the corpus for the BPE trainer
 */

/* Walks the training documents in order and yields, for each, its prompt (document + suffix),
 * its reference and one summary of each flawed kind: 6 pieces per document, every word of the
 * vocabulary and the prompt suffix included. Valid until the next call. */
typedef struct task_corpus {
    const task_config *c;
    long doc;
    int part;
    task_doc d;
    char buf[TASK_PROMPT_MAX + TASK_SUMMARY_MAX];
} task_corpus;
void task_corpus_begin(task_corpus *it, const task_config *c);
/* Sets *text to the next piece, or to NULL at the end. */
int task_corpus_next(task_corpus *it, const char **text, rl_err *e);
/* Writes every piece followed by "\n\n" to f. */
int task_corpus_write(const task_config *c, FILE *f, rl_err *e);

/* ================================================================================================
 * GOLD: only sft data, judge_sft comparisons and eval may call this.
 * The label, reward and rl stages (and the judge at label time) must never see the gold rater.
 * ================================================================================================
 *
 * The rule (src/task_gold.c), in integer points (1000 = 1.0), on any byte string:
 *
 *  The summary is trimmed of surrounding whitespace and scanned into tokens (task_next_token).
 *  W = number of WORD and OTHER tokens. Each content word (first 256 words) is classified
 *  against the document, by lexeme (so "discovered" covers a "found"):
 *    key       it is a key fact of the main event               -> counts towards coverage
 *    detail    it is the main object's attribute                -> neutral
 *    extra     the document mentions it, but not as a key fact  -> extra
 *    invented  the document never mentions it                   -> invented
 *    (a mentioned entity of a key slot's class - person, action, object, place, time - whose key
 *     fact the summary leaves out is a misattribution: it counts as invented, not extra)
 *
 *   score =  round(1000 * covered key facts / n_key)
 *          - 400 per distinct invented lexeme (at most 3)
 *          - 100 per distinct extra lexeme (at most 5)
 *          - 40 per word beyond the reference's length, L = 7 + the time phrase's words (0, 1 for
 *            "yesterday", 2 for "on Monday"), plus 20 more per word beyond L + 8 (<= 1000 in all)
 *          - 300 when the last character is not '.'
 *          - 100 when the first character is not an upper-case letter
 *          - 150 per sentence end ('.', '!', '?' run) followed by more words (at most 3)
 *          - 100 per unknown word or OTHER token (at most 5)
 *          - 100 per repetition (a content lexeme again, or the same word twice in a row) (<= 5)
 *          - 100 per ungrammatical noun (at most 5): a place, object, occupation or event noun
 *            not preceded by a/an/the/her/his/their (up to three adjectives, "very" or unknown
 *            words may stand between),
 *            or a time word without its preposition (on Monday, at dawn, last week)
 *
 *  So the score is in [-5.05, 1.0]; the reference and the other good summaries score 1.0, the
 *  empty string -0.4.
 */

typedef struct task_gold_detail {
    int n_key, covered;
    unsigned covered_mask; /* bit s set when slot s is covered */
    int invented, misattributed, extra, details;
    int words, unknown, repeats, grammar, interior_stops;
    int terminal_ok, capital_ok;
    int p_coverage, p_invented, p_extra, p_length, p_form; /* points; penalties are >= 0 */
    int points;                                            /* p_coverage - the penalties */
} task_gold_detail;

/* The gold score in [-5.05, 1.0] (points / 1000). summary may be NULL (treated as empty);
 * detail may be NULL. Never fails, never reads past the NUL. */
double task_gold_score(const task_doc *d, const char *summary);
int task_gold_points(const task_doc *d, const char *summary, task_gold_detail *detail);
/* score(a) - score(b), exactly (a difference of whole points). 0 is a tie: a win rate should
 * count it as half a win, and an alignment figure should leave it out. */
double task_gold_margin(const task_doc *d, const char *a, const char *b);
/* The "human" preference: 1 when a is better, 2 when b is. Ties in points go to the shorter text
 * (trimmed byte length), then to the smaller trimmed text under strcmp, then to the smaller raw
 * text under strcmp: a strict total order on distinct strings, so the preference is
 * antisymmetric and transitive. Identical strings return 1. */
int task_gold_prefer(const task_doc *d, const char *a, const char *b);

/* The gold-labelled comparisons for judge_sft. Comparison i (0 <= i < c->n_judge_pairs) uses
 * training document i % n_docs[TASK_TRAIN] and two different summaries of it of kinds drawn from
 * the SFT mixture (one time in seven a MIXED one instead); pairs whose gold margin is 0 are
 * redrawn, so every label is a real preference. a and b are in random order; the caller trains on
 * both orders. */
typedef struct task_pair {
    long doc_index; /* in TASK_TRAIN */
    int kind_a, kind_b;
    char a[TASK_SUMMARY_MAX], b[TASK_SUMMARY_MAX];
    int gold;      /* task_gold_prefer(doc, a, b) */
    double margin; /* task_gold_margin(doc, a, b), never 0 */
} task_pair;
int task_gold_pair(const task_config *c, long i, task_pair *p, rl_err *e);

#endif
