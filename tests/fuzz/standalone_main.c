/* A plain main() for libFuzzer targets that do not bring their own
 * (those without a FUZZ_STANDALONE section), so tests/fuzz/run.sh can also
 * run every target as an ordinary gcc + ASan/UBSan program.
 *
 *   prog [FILE | DIR]... [-n ITERATIONS]
 *
 * Runs LLVMFuzzerTestOneInput over each file (directories: each file in
 * them), then ITERATIONS (default 20000) deterministic inputs: mutations of
 * those files (bit flips, truncation, splices, random bytes) or, with no
 * files, random byte strings. Each input sits in an exact-size heap block
 * so ASan sees any over-read. Exit status 0 when nothing aborted. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct blob {
    uint8_t *p;
    size_t n;
} blob;

static blob *seeds;
static size_t nseeds, seeds_cap;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void run(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) abort();
    if (n) memcpy(copy, p, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (1 << 22)) {
        fclose(f);
        return;
    }
    blob b = {malloc((size_t)len + 1), (size_t)len};
    if (!b.p || fread(b.p, 1, b.n, f) != b.n) {
        free(b.p);
        fclose(f);
        return;
    }
    fclose(f);
    if (nseeds == seeds_cap) {
        seeds_cap = seeds_cap ? seeds_cap * 2 : 16;
        seeds = realloc(seeds, seeds_cap * sizeof *seeds);
        if (!seeds) abort();
    }
    seeds[nseeds++] = b;
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        add_file(full);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    long iters = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iters = atol(argv[++i]);
        else
            add_path(argv[i]);
    }
    for (size_t i = 0; i < nseeds; i++) run(seeds[i].p, seeds[i].n);
    size_t cap = 8192;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    for (long it = 0; it < iters; it++) {
        size_t n;
        if (nseeds == 0 || next() % 8 == 0) {
            n = next() % 512;
            for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)next();
        } else {
            blob *b = &seeds[next() % nseeds];
            n = b->n < cap ? b->n : cap;
            memcpy(buf, b->p, n);
            int muts = 1 + (int)(next() % 4);
            for (int m = 0; m < muts && n; m++) {
                switch (next() % 4) {
                case 0: buf[next() % n] ^= (uint8_t)(1u << (next() % 8)); break;
                case 1: buf[next() % n] = (uint8_t)next(); break;
                case 2: n = next() % (n + 1); break;
                case 3: { /* splice in part of another seed */
                    blob *o = &seeds[next() % nseeds];
                    if (!o->n) break;
                    size_t at = next() % n, from = next() % o->n;
                    size_t k = o->n - from;
                    if (at + k > cap) k = cap - at;
                    memcpy(buf + at, o->p + from, k);
                    if (at + k > n) n = at + k;
                    break;
                }
                }
            }
        }
        run(buf, n);
    }
    printf("%zu seed(s), %ld iterations ok\n", nseeds, iters);
    free(buf);
    for (size_t i = 0; i < nseeds; i++) free(seeds[i].p);
    free(seeds);
    return 0;
}
