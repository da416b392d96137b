/* stage_util: see include/stage_util.h. */
#include "stage_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "judge.h"
#include "log.h"
#include "task_lm.h"

int stage_group_create(run_ctx *ctx, const comm_role roles[3], int n, stage_group *g, rl_err *e) {
    memset(g, 0, sizeof *g);
    g->comm = MPI_COMM_NULL;
    const comm_ctx *c = &ctx->comm;
    if (n <= 0) n = c->count[roles[0]];
    /* the order of the group: roles[0]'s ranks, then roles[1]'s, then roles[2]'s */
    int pos = -1, k = 0;
    g->leader = -1;
    for (int r = 0; r < 3 && k < n; r++)
        for (int i = 0; i < c->count[roles[r]] && k < n; i++, k++) {
            int w = comm_world_rank(c, roles[r], i);
            if (k == 0) g->leader = w;
            if (w == c->rank) pos = k;
        }
    g->size = k;
    g->member = pos >= 0;
    MPI_Comm comm;
    if (MPI_Comm_split(MPI_COMM_WORLD, g->member ? 1 : MPI_UNDEFINED, pos, &comm) != MPI_SUCCESS)
        return err_set(e, ERR_MPI, "cannot split the ranks that train");
    if (g->member) {
        g->comm = comm;
        MPI_Comm_rank(comm, &g->rank);
    }
    return ERR_OK;
}

void stage_group_free(stage_group *g) {
    if (g->comm != MPI_COMM_NULL) MPI_Comm_free(&g->comm);
    g->comm = MPI_COMM_NULL;
}

void stage_model_path(const run_ctx *ctx, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", ctx->models_dir, name);
}

void stage_model_file(const run_ctx *ctx, const char *produced, const char *deck_file, char *out,
                      size_t cap) {
    char p[4400];
    stage_model_path(ctx, produced, p, sizeof p);
    if (access(p, R_OK) == 0)
        snprintf(out, cap, "%s", p);
    else
        snprintf(out, cap, "%s", deck_file ? deck_file : "");
}

int stage_agree(MPI_Comm comm, int rc, rl_err *e) {
    int worst = rc;
    comm_allreduce_max_int(&worst, comm);
    if (worst && !rc) err_set(e, worst, "another rank of the group failed");
    return worst;
}

int stage_task_tokenizer(run_ctx *ctx, MPI_Comm comm, tokenizer **tok, rl_err *e) {
    *tok = NULL;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    char path[4400];
    stage_model_path(ctx, "tokenizer.gguf", path, sizeof path);
    int rc = ERR_OK;
    if (rank == 0 && access(path, F_OK) != 0) {
        task_config tc;
        task_lm_task_config(&ctx->cfg, &tc);
        judge_opts jo;
        rc = judge_opts_from_config(&ctx->cfg, &jo, e);
        if (!rc) {
            char **texts;
            int n;
            judge_opts_texts(&jo, &texts, &n);
            double t0 = log_now();
            /* the judge's texts occur in every judge prompt: weigh them like frequent words */
            rc = task_lm_train_tokenizer(&tc, (const char *const *)texts, n, 500,
                                         ctx->cfg.tokenizer.vocab_size, tok, e);
            judge_texts_free(texts, n);
            judge_opts_free(&jo);
            if (!rc) rc = task_lm_save_tokenizer(*tok, path, e);
            if (!rc)
                log_info("tokenizer: %d tokens learned from the task corpus in %.1f s -> %s",
                         tokenizer_n_vocab(*tok), log_now() - t0, path);
        }
    }
    rc = stage_agree(comm, rc, e);
    if (rc) {
        if (*tok) tokenizer_free(*tok);
        *tok = NULL;
        return rc;
    }
    if (!*tok) rc = task_lm_load_tokenizer(path, tok, e);
    return stage_agree(comm, rc, e);
}
