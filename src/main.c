/* main: dispatches `rlaif SUBCOMMAND ...` to the cli_* functions (include/cli.h).
 * Global options: --help, --version. MPI is initialised by the subcommands that need it. */
#include <stdio.h>
#include <string.h>

#include "blas.h"
#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *usage;
} commands[] = {
    {"run", cli_run, "run DECK [--resume] [--force] [-v|-q]   run the stages of an input deck"},
    {"check", cli_check,
     "check DECK | check --schema            validate a deck, print it with defaults"},
    {"inspect", cli_inspect,
     "inspect FILE.gguf                       architecture, tensors, tokenizer"},
    {"tokenize", cli_tokenize, "tokenize --model FILE.gguf [--bos]      stdin text -> token ids"},
    {"logits", cli_logits,
     "logits --model F --ids-file I --out O   raw float32 logits of one forward pass"},
    {"generate", cli_generate, "generate --model F --prompt TEXT [...]  sample a continuation"},
    {"export", cli_export, "export ...                              write a trained model as GGUF"},
    {"ckpt", cli_ckpt,
     "ckpt verify RUN_DIR [--all]             is the latest checkpoint whole (CRCs)?"},
    {"task", cli_task,
     "task sample|score|stats|corpus|pairs    the built-in task and its gold rater"},
    {"bench", cli_bench, "bench sgemm|train|decode [...]          throughput figures"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "rlaif - Reinforcement Learning from AI Feedback on MPI ranks\n\n"
               "usage: mpirun -np N rlaif run DECK [--resume] [--force]\n"
               "       rlaif COMMAND [ARGS...]\n\ncommands:\n");
    for (int i = 0; i < n_commands; i++) fprintf(f, "  rlaif %s\n", commands[i].usage);
    fprintf(f, "\n  rlaif --help | --version\n\n"
               "Run `rlaif COMMAND --help` for the options of one command. Decks are YAML; see\n"
               "`rlaif check --schema` for every key, its type, default, range and meaning.\n");
}

int main(int argc, char **argv) {
    blas_init(argc, argv); /* may re-exec with OPENBLAS_CORETYPE set: before anything else */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        fputs(cli_version_string(), stdout);
        return 0;
    }
    for (int i = 0; i < n_commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "rlaif: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
