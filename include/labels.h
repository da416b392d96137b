/* labels: the run's labels.h5, every AI-labelled pair, written by rank 0 in the label stage and
 * read by the reward stage (docs/RUNFILES.md has the layout).
 *
 *   /pairs/prompt_id     int64 (N)     the prompt (task training document, or pairs-file row)
 *   /pairs/context       string (N)    the text the responses answer
 *   /pairs/a, /pairs/b   string (N)    the candidates
 *   /pairs/p_ab          float64 (N)   P(a better), a shown first
 *   /pairs/p_ba          float64 (N)   P(a better), a shown second; NaN without debiasing
 *   /pairs/p             float64 (N)   the soft label (mean, clamped)
 *   /pairs/rationale_ab, rationale_ba  string (N)  chain-of-thought rationales ("" when off)
 *   /pairs/principle     int32 (N)     constitution principle drawn (-1: none)
 *   /pairs/truncated     uint8 (N)     the context was cut to fit the judge
 *   /pairs/done          uint8 (N)     1 once the row holds a label
 *   attributes of /: format "rlaif-labels 1", n_rows, fingerprint (what the labels depend on:
 *   judge and policy model files, prompt, sampling; a resumed run refuses rows made with
 *   anything else), and the judge's prompt parts and label token ids.
 *
 * The file is created with all N rows (numbers with their fill values: NaN, 0, -1; empty
 * strings), opened, written and closed again for every block of rows (labels_write). Rows are
 * written in any order; `done` goes last within a block.
 *
 * A kill can still land inside an HDF5 write and leave the file unreadable, so every block is
 * first appended to a journal (labels.h5.journal: the fingerprint, then one record per row with
 * its CRC-32C, fsynced) before it goes into the file. A resumed run reads the file (or, when it
 * is damaged, starts a new one) and replays the journal: no labelled row is lost. The journal is
 * removed once the file holds every row.
 * Not here: MPI, judging. */
#ifndef RLAIF_LABELS_H
#define RLAIF_LABELS_H

#include <stdint.h>

#include "err.h"

typedef struct labels_row {
    int64_t prompt_id;
    char *context, *a, *b;
    double p_ab, p_ba, p;
    char *rationale_ab, *rationale_ba;
    int32_t principle;
    uint8_t truncated;
    uint8_t done;
} labels_row;

/* Attributes written at creation: texts and integers. */
typedef struct labels_meta {
    const char *const *text_names;
    const char *const *texts;
    int n_texts;
    const char *const *int_names;
    const int64_t *ints;
    int n_ints;
} labels_meta;

/* Opens path for n_rows rows: an existing file with the same n_rows and fingerprint is kept and
 * its rows read into rows (n_rows, zeroed by the caller; strings malloc'd), anything else is set
 * aside (renamed to path + ".stale" or ".damaged"; *note says why) and a new file is created.
 * *n_done is the number of rows already labelled. */
int labels_open(const char *path, int64_t n_rows, const char *fingerprint, const labels_meta *meta,
                labels_row *rows, int64_t *n_done, char *note, size_t note_cap, rl_err *e);
/* Writes rows idx[0..n) (any order) from rows[idx[k]]; opens and closes the file. */
int labels_write(const char *path, const labels_row *rows, const int64_t *idx, int n, rl_err *e);
/* Reads every row of a labels file (for the reward stage and tests). *rows is malloc'd (n). */
int labels_read(const char *path, labels_row **rows, int64_t *n, rl_err *e);
/* The journal: appends rows idx[0..n) (creating the file with the fingerprint when missing) and
 * fsyncs it; replays the records of a journal with the same fingerprint into rows (n_rows),
 * marking them done (a torn last record is ignored; *n_replayed counts rows that were not done);
 * removes it. */
int labels_journal_append(const char *path, const char *fingerprint, const labels_row *rows,
                          const int64_t *idx, int n, rl_err *e);
int labels_journal_replay(const char *path, const char *fingerprint, labels_row *rows,
                          int64_t n_rows, int64_t *n_replayed, rl_err *e);
int labels_journal_remove(const char *path, rl_err *e);

void labels_row_free(labels_row *r);
void labels_rows_free(labels_row *rows, int64_t n);

#endif
