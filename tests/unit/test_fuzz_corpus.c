/* fuzz corpus replay: every input kept in tests/fuzz/corpus (seeds, and the inputs that once
 * crashed or hung the fuzz targets) runs through the fuzz targets' code, built normally (no
 * libFuzzer; the san variant adds AddressSanitizer). A target that aborts fails the test. */
#include "test_util.h"

#include <dirent.h>

#define LLVMFuzzerTestOneInput fuzz_gguf_one
#include "../fuzz/fuzz_gguf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenize_one
#define LLVMFuzzerInitialize   fuzz_tokenize_init
#include "../fuzz/fuzz_tokenize.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_deck_one
#include "../fuzz/fuzz_deck.c"
#undef LLVMFuzzerTestOneInput
#undef LLVMFuzzerInitialize
#define LLVMFuzzerTestOneInput fuzz_ckpt_one
#define LLVMFuzzerInitialize   fuzz_ckpt_init
#include "../fuzz/fuzz_ckpt.c"

static int replay(const char *sub, int (*one)(const uint8_t *, size_t)) {
    const char *root = getenv("ROOT");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", root && *root ? root : ".", sub);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *fp = fopen(path, "rb");
        if (!fp) continue;
        fseek(fp, 0, SEEK_END);
        long len = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        uint8_t *buf = malloc((size_t)len + 1); /* exact size: overreads are caught */
        if (fread(buf, 1, (size_t)len, fp) != (size_t)len) fail_msg("short read of %s", path);
        fclose(fp);
        one(buf, (size_t)len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

static void test_replay_gguf(void **state) {
    (void)state;
    int n = replay("gguf", fuzz_gguf_one);
    printf("# %d GGUF inputs replayed\n", n);
    assert_true(n > 0);
}

static void test_replay_tokenize(void **state) {
    (void)state;
    fuzz_tokenize_init(NULL, NULL);
    int n = replay("tokenize", fuzz_tokenize_one);
    printf("# %d tokenizer inputs replayed over %d vocabularies\n", n, n_toks);
    assert_true(n > 0);
    for (int i = 0; i < n_toks; i++) tokenizer_free(toks[i]);
}

static void test_replay_deck(void **state) {
    (void)state;
    int n = replay("deck", fuzz_deck_one);
    printf("# %d deck inputs replayed\n", n);
    assert_true(n > 0);
}

/* the checkpoint inputs: those that crash inside libhdf5 live apart, in tests/fuzz/hdf5-crashes
 * (not replayed: we cannot fix them; run --resume checks a file's CRC before HDF5 reads it) */
static void test_replay_ckpt(void **state) {
    (void)state;
    fuzz_ckpt_init(NULL, NULL);
    int n = replay("ckpt", fuzz_ckpt_one);
    printf("# %d checkpoint inputs replayed\n", n);
    assert_true(n > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_deck),
        cmocka_unit_test(test_replay_gguf),
        cmocka_unit_test(test_replay_tokenize),
        cmocka_unit_test(test_replay_ckpt),
    };
    return cmocka_run_group_tests_name("fuzz_corpus", tests, NULL, NULL);
}
