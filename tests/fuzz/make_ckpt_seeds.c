/* make_ckpt_seeds: writes the seed corpus of fuzz_ckpt into DIR (`make fuzz-seeds` writes
 * tests/fuzz/corpus/ckpt): seed-file-N, the component files fuzz_ckpt_sample writes with the
 * real checkpoint writer, and seed-manifest-*, inputs of the manifest mode (a latest text, a
 * NUL, a MANIFEST) that verify against sample 0 or fail one check each. */
#include <sys/stat.h>

#include "fuzz_ckpt.c"

static int copy_file(const char *src, const char *dst, long *size) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) {
        fprintf(stderr, "make_ckpt_seeds: cannot copy %s to %s\n", src, dst);
        return 1;
    }
    char buf[8192];
    size_t n;
    *size = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) *size += (long)fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out) != 0;
}

static int put(const char *dir, const char *name, const char *latest, const char *manifest) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return 1;
    fputc('M', fp);
    fwrite(latest, 1, strlen(latest), fp);
    fputc(0, fp);
    fwrite(manifest, 1, strlen(manifest), fp);
    return fclose(fp) != 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_ckpt_seeds OUT_DIR\n");
        return 2;
    }
    char run[] = "/tmp/rlaif-ckpt-seeds.XXXXXX";
    if (!mkdtemp(run)) return 1;
    int rc = 0;
    long size0 = 0;
    char src[600], dst[700];
    snprintf(src, sizeof src, "%s/ckpt/step_%08d/policy.h5", run, FUZZ_CKPT_STEP);
    for (int which = FUZZ_CKPT_SAMPLES - 1; which >= 0 && !rc; which--) {
        long size = 0;
        snprintf(dst, sizeof dst, "%s/seed-file-%d", argv[1], which);
        rc = fuzz_ckpt_sample(run, which) || copy_file(src, dst, &size);
        if (which == 0) size0 = size;
    }
    /* the index CRC of sample 0, as the manifest records it */
    ckpt_file *f = NULL;
    rl_err e = {0};
    char text[1024];
    if (!rc && ckpt_file_open(run, FUZZ_CKPT_STEP, "policy", &f, &e) == ERR_OK) {
        const char *names[1] = {"policy"};
        ckpt_file_close(f);
        rc = ckpt_commit_step(run, FUZZ_CKPT_STEP, names, 1, &e);
        char mpath[700];
        snprintf(mpath, sizeof mpath, "%s/ckpt/step_%08d/MANIFEST", run, FUZZ_CKPT_STEP);
        FILE *fp = fopen(mpath, "rb");
        size_t n = fp ? fread(text, 1, sizeof text - 1, fp) : 0;
        text[n] = '\0';
        if (fp) fclose(fp);
        unsigned icrc = 0, fcrc = 0;
        char *line = strstr(text, "component policy ");
        if (!line || sscanf(line, "component policy %*d %8x %8x", &icrc, &fcrc) != 2) rc = 1;
        char m[1024];
        /* the file CRC differs between two writes (the marker holds the time): 3-field lines */
        snprintf(m, sizeof m,
                 "rlaif-ckpt-manifest 1\nstep 3\nwritten x\ncomponent policy %ld %08x\nend\n",
                 size0, icrc);
        rc = rc || put(argv[1], "seed-manifest-ok", "step_00000003\n", m);
        snprintf(m, sizeof m,
                 "rlaif-ckpt-manifest 1\nstep 3\ncomponent policy %ld %08x 00000000\nend\n", size0,
                 icrc);
        rc = rc || put(argv[1], "seed-manifest-filecrc", "step_00000003", m);
        snprintf(m, sizeof m,
                 "rlaif-ckpt-manifest 1\nstep 3\ncomponent policy 12 %08x\n"
                 "component coordinator 100 0\nend\n",
                 icrc);
        rc = rc || put(argv[1], "seed-manifest-size", "step_3\n", m);
        rc = rc || put(argv[1], "seed-manifest-empty", "", "");
    } else {
        rc = 1;
    }
    if (rc) fprintf(stderr, "make_ckpt_seeds: failed (%s)\n", e.msg);
    snprintf(dst, sizeof dst, "rm -rf '%s'", run);
    if (system(dst) != 0) fprintf(stderr, "make_ckpt_seeds: could not remove %s\n", run);
    return rc;
}
