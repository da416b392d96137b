/* stage: the table of pipeline stages and the dispatch to their code (src/stage_*.c).
 *
 * Each stage function is called on every rank with the step to continue from (0: from the
 * start) and returns when the stage's work is done on that rank: rank 0 after serving the
 * workers' reports (run_coord_serve), workers after reporting done. The run loop then commits
 * the stage's end checkpoint and releases the ranks. */
#ifndef RLAIF_STAGE_H
#define RLAIF_STAGE_H

#include <stdint.h>

#include "config.h"
#include "err.h"

struct run_ctx;

typedef int (*stage_fn)(struct run_ctx *ctx, int64_t from_step, rl_err *e);

/* The stages, one file each (src/stage_<name>.c). A stage whose file is not in the build is a
 * NULL entry of the table (weak references), and a deck that lists it is refused at start. */
int stage_sft(struct run_ctx *ctx, int64_t from_step, rl_err *e);
int stage_judge_sft(struct run_ctx *ctx, int64_t from_step, rl_err *e);
int stage_label(struct run_ctx *ctx, int64_t from_step, rl_err *e);
int stage_reward(struct run_ctx *ctx, int64_t from_step, rl_err *e);
int stage_rl(struct run_ctx *ctx, int64_t from_step, rl_err *e);
int stage_eval(struct run_ctx *ctx, int64_t from_step, rl_err *e);

/* ERR_INPUT naming the deck position when the deck lists a stage this build cannot run. */
int stage_check_available(const config *cfg, rl_err *e);
int stage_run(struct run_ctx *ctx, int stage, int64_t from_step, rl_err *e);

#endif
