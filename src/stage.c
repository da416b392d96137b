/* stage: see include/stage.h. */
#include "stage.h"

#include <stddef.h>

#include "run.h"

/* One entry per enum config_stage; NULL while a stage is not built. */
static const stage_fn stage_table[STAGE_COUNT] = {
    [STAGE_SFT] = NULL,
    [STAGE_JUDGE_SFT] = NULL,
    [STAGE_LABEL] = NULL,
    [STAGE_REWARD] = NULL,
    [STAGE_RL] = NULL,
    [STAGE_EVAL] = NULL,
};

int stage_check_available(const config *cfg, rl_err *e) {
    for (int i = 0; i < cfg->stages.n; i++) {
        int s = cfg->stages.items[i];
        if (s < 0 || s >= STAGE_COUNT || !stage_table[s]) {
            config_pos p = config_key_pos(cfg, "stages");
            return err_set(e, ERR_INPUT, "%s:%d:%d: stage '%s' is not available in this build",
                           cfg->deck_path, p.line, p.col, config_stage_name(s));
        }
    }
    return ERR_OK;
}

int stage_run(struct run_ctx *ctx, int stage, int64_t from_step, rl_err *e) {
    if (stage < 0 || stage >= STAGE_COUNT || !stage_table[stage])
        return err_set(e, ERR_INTERNAL, "stage %d has no code", stage);
    return stage_table[stage](ctx, from_step, e);
}
