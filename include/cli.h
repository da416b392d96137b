/* cli: the subcommands of build/rlaif. Each takes the arguments after its own name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef RLAIF_CLI_H
#define RLAIF_CLI_H

int cli_run(int argc, char **argv);     /* run DECK [--resume] [--force]        (src/run.c) */
int cli_check(int argc, char **argv);   /* check DECK | check --schema          (src/config.c) */
int cli_inspect(int argc, char **argv); /* inspect FILE.gguf                    (src/cli_model.c) */
int cli_tokenize(int argc, char **argv); /* tokenize --model FILE.gguf [--bos]  (src/cli_model.c) */
int cli_logits(int argc, char **argv); /* logits --model F --ids-file I --out O (src/cli_model.c) */
int cli_generate(int argc,
                 char **argv);         /* generate --model F --prompt TEXT ... (src/cli_model.c) */
int cli_export(int argc, char **argv); /* export ...                           (src/cli_model.c) */
int cli_ckpt(int argc, char **argv);   /* ckpt verify RUN_DIR [--all]            (src/cli_ckpt.c) */
int cli_task(int argc, char **argv);   /* task sample|score|stats|corpus|pairs  (src/cli_task.c) */
int cli_bench(int argc, char **argv);  /* bench sgemm|train|decode ...         (src/bench.c) */
int cli_bench_judge(int argc,
                    char **argv); /* bench judge ...                  (src/bench_judge.c) */

/* Version and build information, one "key: value" per line (for --version and metrics.h5). */
const char *cli_version_string(void);

#endif
