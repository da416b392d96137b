/* log: line tags, level filtering by rank, progress lines with rate and ETA in batch logs and a
 * live line on terminals. stderr is redirected into a file the test reads back. */
#include "test_util.h"

#include <unistd.h>

#include "log.h"

static char *capture_path(void) {
    static char path[1100];
    snprintf(path, sizeof path, "%s/log.txt", test_tmpdir("log"));
    return path;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs fn with stderr going to a fresh file; returns the file's text. */
static char *with_stderr(void (*fn)(void)) {
    char *path = capture_path();
    fflush(stderr);
    int saved = dup(2);
    if (!freopen(path, "w", stderr)) fail_msg("cannot redirect stderr");
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return slurp(path);
}

static void emit_levels(void) {
    log_setup(0, "coord");
    log_set_level(LOG_INFO);
    log_info("hello %d", 42);
    log_debug("hidden");
    log_setup(3, "judge");
    log_info("rank 3 info stays quiet");
    log_warn("rank 3 warns");
    log_set_level(LOG_DEBUG);
    log_info("rank 3 info in debug mode");
    log_set_level(LOG_INFO);
    log_setup(0, "coord");
}

static void test_tags_and_levels(void **state) {
    (void)state;
    char *out = with_stderr(emit_levels);
    assert_non_null(strstr(out, "r0/coord] hello 42"));
    assert_null(strstr(out, "hidden"));
    assert_null(strstr(out, "rank 3 info stays quiet"));
    assert_non_null(strstr(out, "r3/judge] WARN  rank 3 warns"));
    assert_non_null(strstr(out, "r3/judge] debug rank 3 info in debug mode") ||
                    strstr(out, "r3/judge] rank 3 info in debug mode"));
    /* "[HH:MM:SS +S.SSs rR/ROLE]" */
    int hh, mm, ss;
    double el;
    assert_int_equal(sscanf(out, "[%d:%d:%d %lfs", &hh, &mm, &ss, &el), 4);
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("loud"), -1);
}

static void emit_progress(void) {
    log_setup(0, "coord");
    log_set_progress_interval(0.05);
    log_progress p;
    log_progress_begin(&p, "sft", "steps", 10);
    for (int i = 1; i <= 10; i++) {
        usleep(20000);
        log_progress_update(&p, i, "loss 1.5");
    }
    log_progress_end(&p, NULL);
}

static void test_progress_lines(void **state) {
    (void)state;
    setenv("RLAIF_PROGRESS", "lines", 1);
    char *out = with_stderr(emit_progress);
    /* periodic lines (every 0.05 s of 0.2 s) with count, percentage, rate, ETA, extra */
    int lines = 0;
    for (char *p = out; (p = strstr(p, "sft: ")); p++) lines++;
    assert_in_range(lines, 3, 8);
    assert_non_null(strstr(out, "/10 steps ("));
    assert_non_null(strstr(out, "steps/s"));
    assert_non_null(strstr(out, "ETA"));
    assert_non_null(strstr(out, "loss 1.5"));
    assert_non_null(strstr(out, "10/10 steps (100.0%)"));
    assert_null(strstr(out, "\r"));
    setenv("RLAIF_PROGRESS", "live", 1);
    out = with_stderr(emit_progress);
    assert_non_null(strstr(out, "\r\033[K")); /* rewritten in place */
    unsetenv("RLAIF_PROGRESS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tags_and_levels),
        cmocka_unit_test(test_progress_lines),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
