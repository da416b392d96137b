/* stage: see include/stage.h. */
#include "stage.h"

#include <stddef.h>

#include "run.h"

/* Weak references: a stage without its file in the build links as NULL. */
#pragma weak stage_sft
#pragma weak stage_judge_sft
#pragma weak stage_label
#pragma weak stage_reward
#pragma weak stage_rl
#pragma weak stage_eval

/* One entry per enum config_stage. */
static const stage_fn stage_table[STAGE_COUNT] = {
    [STAGE_SFT] = stage_sft,     [STAGE_JUDGE_SFT] = stage_judge_sft,
    [STAGE_LABEL] = stage_label, [STAGE_REWARD] = stage_reward,
    [STAGE_RL] = stage_rl,       [STAGE_EVAL] = stage_eval,
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
