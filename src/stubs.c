/* stubs: subcommands whose modules are not in this build yet. Each says so and fails. */
#include <stdio.h>

#include "cli.h"

static int missing(const char *what) {
    fprintf(stderr, "rlaif: '%s' is not available in this build yet\n", what);
    return 1;
}

int cli_logits(int argc, char **argv) { (void)argc, (void)argv; return missing("logits"); }
int cli_generate(int argc, char **argv) { (void)argc, (void)argv; return missing("generate"); }
int cli_export(int argc, char **argv) { (void)argc, (void)argv; return missing("export"); }
