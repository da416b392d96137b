/* task_internal: the vocabulary tables of src/task_world.c, shared by task.c and task_gold.c.
 * Private to the task module (not in include/): other modules go through include/task.h. */
#ifndef RLAIF_TASK_INTERNAL_H
#define RLAIF_TASK_INTERNAL_H

#include "task.h"

typedef struct task_person {
    const char *name;
    int female;
} task_person;

typedef struct task_action {
    const char *past[3]; /* "found", "discovered" */
    const char *part[3]; /* past participles, same order */
    int n;               /* synonyms */
} task_action;

typedef struct task_place {
    const char *name;
    const char *prep; /* at / in / on / by / near */
} task_place;

typedef struct task_time {
    const char *word;    /* the lexeme: "Monday", "dawn" */
    const char *phrase;  /* "on Monday", "at dawn", "yesterday" */
    const char *initial; /* "On Monday", "At dawn", "Yesterday" */
    const char *prep;    /* the word that must precede `word`, or NULL */
} task_time;

extern const task_person task_persons[TASK_N_PERSONS];
extern const task_action task_actions[TASK_N_ACTIONS];
extern const char *const task_objects[TASK_N_OBJECTS];
extern const task_place task_places[TASK_N_PLACES];
extern const task_time task_times[TASK_N_TIMES];
extern const char *const task_attrs[TASK_N_ATTRS];
extern const char *const task_occs[TASK_N_OCCS];
extern const char *const task_activities[TASK_N_ACTIVITIES];
extern const char *const task_descs[TASK_N_DESCS];
extern const char *const task_events[TASK_N_EVENTS];

/* Sub-purposes of RNG_TASK: one family of streams per use; the stream is the item's index.
 * The purpose is (RNG_TASK, use << 16 | extra): DOC's extra is the split, SFT's draw * 4 + split,
 * CORPUS's the part of a document's corpus entry. */
enum { TASK_SUB_DOC = 0x10, TASK_SUB_SFT = 0x20, TASK_SUB_PAIR = 0x30, TASK_SUB_CORPUS = 0x40 };
static inline uint32_t task_purpose(uint32_t use, uint32_t extra) {
    return rng_purpose(RNG_TASK, (use << 16) | (extra & 0xffffu));
}

/* Descriptor ranges in task_descs. */
enum {
    TASK_DESC_WEATHER0 = 0,
    TASK_DESC_WEATHER_N = 6,
    TASK_DESC_PLACE0 = 6,
    TASK_DESC_PLACE_N = 4,
    TASK_DESC_FEEL0 = 10,
    TASK_DESC_FEEL_N = 5
};

#endif
