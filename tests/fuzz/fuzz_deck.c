/* fuzz_deck: libFuzzer target for the deck loader. Any input either fails with a message that
 * has a position, or loads; a deck that loads emits an effective deck that loads back and emits
 * the same text again (the property rank 0's broadcast relies on). A violation aborts.
 * Build and run with `make fuzz` (clang, -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1u << 16)) return 0;
    config c;
    rl_err e = {0};
    int rc = config_load_string("fuzz.yaml", (const char *)data, size, &c, &e);
    if (rc) {
        /* every message line starts with "fuzz.yaml:" */
        if (strncmp(e.msg, "fuzz.yaml:", 10) != 0) {
            fprintf(stderr, "message without the deck name: %s\n", e.msg);
            abort();
        }
        return 0;
    }
    char *text = config_emit(&c);
    config c2;
    rc = config_load_string("effective", text, strlen(text), &c2, &e);
    if (rc) {
        fprintf(stderr, "effective deck does not load back: %s\n---\n%s", e.msg, text);
        abort();
    }
    char *text2 = config_emit(&c2);
    if (strcmp(text, text2) != 0) {
        fprintf(stderr, "effective deck changes on reload:\n%s\n---\n%s", text, text2);
        abort();
    }
    free(text);
    free(text2);
    config_free(&c);
    config_free(&c2);
    return 0;
}
