/* stage_util: what the stages of the built-in task share: the group of ranks that trains a
 * model (a role's own ranks, or, when the deck says so, more worker ranks: on a small machine a
 * stage's idle ranks are cores), the task's tokenizer in the run directory, and paths.
 * Not here: any stage's own work (src/stage_*.c). */
#ifndef RLAIF_STAGE_UTIL_H
#define RLAIF_STAGE_UTIL_H

#include <mpi.h>

#include "comm.h"
#include "run.h"
#include "task.h"
#include "tokenizer.h"

typedef struct stage_group {
    MPI_Comm comm; /* the group's ranks; MPI_COMM_NULL outside it */
    int member;    /* this rank is in the group */
    int rank, size; /* in comm (size is known on every rank) */
    int leader;    /* world rank of the group's rank 0 */
} stage_group;

/* The first n worker ranks in the order roles[0], roles[1], roles[2] (each role's ranks in
 * order); n = 0 means the ranks of roles[0]. Collective over MPI_COMM_WORLD (rank 0 included,
 * outside the group). */
int stage_group_create(run_ctx *ctx, const comm_role roles[3], int n, stage_group *g, rl_err *e);
void stage_group_free(stage_group *g);

/* ctx->models_dir/name into out. */
void stage_model_path(const run_ctx *ctx, const char *name, char *out, size_t cap);

/* The task's tokenizer: models/tokenizer.gguf when it exists, otherwise learned from the task
 * corpus and the judge's prompt texts by the group's rank 0 and written there. Collective over
 * the group's communicator. */
int stage_task_tokenizer(run_ctx *ctx, MPI_Comm comm, tokenizer **tok, rl_err *e);

/* Agrees on a status over comm (the worst code wins) so that every rank of a group fails
 * together; the message stays with the rank that had it. */
int stage_agree(MPI_Comm comm, int rc, rl_err *e);

#endif
