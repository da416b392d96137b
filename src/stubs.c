/* stubs: subcommands whose modules are not in this build yet. Each says so and fails. */
#include <stdio.h>

#include "cli.h"

static int missing(const char *what) {
    fprintf(stderr, "rlaif: '%s' is not available in this build yet\n", what);
    return 1;
}

int cli_run(int argc, char **argv) { (void)argc, (void)argv; return missing("run"); }
int cli_check(int argc, char **argv) { (void)argc, (void)argv; return missing("check"); }
#if !__has_include("sample.h") /* src/cli_model.c has them once the engine is merged */
int cli_logits(int argc, char **argv) { (void)argc, (void)argv; return missing("logits"); }
int cli_generate(int argc, char **argv) { (void)argc, (void)argv; return missing("generate"); }
int cli_export(int argc, char **argv) { (void)argc, (void)argv; return missing("export"); }
#endif
int cli_bench(int argc, char **argv) { (void)argc, (void)argv; return missing("bench"); }
