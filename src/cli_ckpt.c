/* cli_ckpt: `rlaif ckpt verify RUN_DIR [--step ID] [--all] [--quick]`, the checks `run --resume`
 * makes, on their own: is the checkpoint ckpt/latest names whole (MANIFEST, file sizes, HDF5
 * metadata, completeness markers, every dataset's CRC-32C)? For operators after a crash, a full
 * disk or a copy between machines, and for the tests that kill runs.
 *
 * Does not repair, prune or move anything, and does not fall back to an older step (that is
 * `run --resume`'s job): it reports. Needs no MPI. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "config.h"
#include "run.h"

static int usage(FILE *f) {
    fprintf(f,
            "usage: rlaif ckpt verify RUN_DIR [--step ID] [--all] [--quick]\n\n"
            "  Verifies the checkpoint RUN_DIR/ckpt/latest names (or step ID, the number in\n"
            "  ckpt/step_ID) as `rlaif run --resume` would: MANIFEST, file sizes, HDF5\n"
            "  metadata, completeness markers and every dataset's CRC-32C.\n"
            "  --all     also report every step directory (committed or not)\n"
            "  --quick   structure and sizes only, no data CRCs\n\n"
            "Exit status: 0 the checkpoint is whole, 1 it is not (or there is none), 2 usage.\n");
    return f == stdout ? 0 : 2;
}

static void describe(int64_t id, char *out, size_t cap) {
    int stage = (int)(id / RUN_CKPT_ID(1, 0));
    int64_t step = id % RUN_CKPT_ID(1, 0);
    if (stage >= 0 && stage < STAGE_COUNT)
        snprintf(out, cap, "%s step %lld", config_stage_name(stage), (long long)step);
    else
        snprintf(out, cap, "the end of the run");
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* every ckpt/step_* directory, sorted; returns the count (*out malloc'd) */
static size_t step_dirs(const char *run_dir, int64_t **out) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long v;
        char tail;
        if (sscanf(de->d_name, "step_%lld%c", &v, &tail) != 1 || v < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[n++] = v;
    }
    closedir(d);
    if (n) qsort(*out, n, sizeof **out, cmp_i64);
    return n;
}

static int verify(int argc, char **argv) {
    const char *run_dir = NULL;
    int all = 0, mode = CKPT_VERIFY_FULL;
    int64_t want = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--quick"))
            mode = CKPT_VERIFY_QUICK;
        else if (!strcmp(argv[i], "--step") && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || v < 0) {
                fprintf(stderr, "rlaif ckpt: --step needs a checkpoint id >= 0, got '%s'\n",
                        argv[i]);
                return 2;
            }
            want = v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            return usage(stdout);
        } else if (argv[i][0] == '-' || run_dir) {
            fprintf(stderr, "rlaif ckpt: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        } else {
            run_dir = argv[i];
        }
    }
    if (!run_dir) return usage(stderr);

    rl_err e = {0};
    int64_t latest = -1;
    int status = 0;
    char what[96];
    if (ckpt_latest(run_dir, &latest, &e) != ERR_OK) {
        printf("%s/ckpt/latest: %s\n", run_dir, e.msg);
        status = 1;
        latest = -1;
    } else if (latest < 0 && want < 0) {
        printf("%s/ckpt/latest is missing: no committed checkpoint\n", run_dir);
        status = 1;
    }
    int64_t target = want >= 0 ? want : latest;
    if (target >= 0) {
        describe(target, what, sizeof what);
        if (ckpt_verify_step(run_dir, target, mode, &e) == ERR_OK) {
            printf("%s/ckpt/step_%08lld (%s%s): whole, %s\n", run_dir, (long long)target,
                   target == latest ? "ckpt/latest, " : "", what,
                   mode == CKPT_VERIFY_FULL ? "every CRC-32C matches"
                                            : "structure and sizes check");
        } else {
            printf("%s/ckpt/step_%08lld (%s%s): NOT usable: %s\n", run_dir, (long long)target,
                   target == latest ? "ckpt/latest, " : "", what, e.msg);
            status = 1;
        }
    }
    if (all) {
        int64_t *steps = NULL;
        size_t n = step_dirs(run_dir, &steps);
        for (size_t i = 0; i < n; i++) {
            if (steps[i] == target) continue;
            describe(steps[i], what, sizeof what);
            char mpath[4300];
            snprintf(mpath, sizeof mpath, "%s/ckpt/step_%08lld/MANIFEST", run_dir,
                     (long long)steps[i]);
            FILE *fp = fopen(mpath, "r");
            if (!fp) {
                printf("  step_%08lld (%s): not committed (no MANIFEST)%s\n", (long long)steps[i],
                       what,
                       latest >= 0 && steps[i] > latest ? ": a write that never finished" : "");
                continue;
            }
            fclose(fp);
            rl_err e2 = {0};
            if (ckpt_verify_step(run_dir, steps[i], mode, &e2) == ERR_OK)
                printf("  step_%08lld (%s): whole\n", (long long)steps[i], what);
            else
                printf("  step_%08lld (%s): NOT usable: %s\n", (long long)steps[i], what, e2.msg);
        }
        free(steps);
    }
    return status;
}

int cli_ckpt(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return usage(argc < 2 ? stderr : stdout);
    if (!strcmp(argv[1], "verify")) return verify(argc, argv);
    fprintf(stderr, "rlaif ckpt: unknown subcommand '%s'\n", argv[1]);
    return usage(stderr);
}
