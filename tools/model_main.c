/* sc-model: the C side of the training pipeline (tools/train/).
 *
 *   sc-model export-use USE_DIR OUT_DIR   USE-lite's npm weights as
 *                                         OUT_DIR/model.bin (float32) plus
 *                                         vocab.json: the starting point
 *   sc-model tokenize [--fold] MODEL      stdin: one text a line; stdout:
 *                                         its token ids, space-separated
 *   sc-model embed [--fold] MODEL         stdin: one text a line; stdout:
 *                                         its embedding, space-separated
 *   sc-model check MODEL                  loads and validates; prints a summary
 *
 * MODEL is a directory: with model.bin in it, a semcache-embed model, else
 * USE-lite's npm dist/ folder. --fold folds the text (embed/use.h) even
 * when the model file does not say so: training a folded model starts
 * from unfolded USE-lite. Tokenizing is the server's own code, so the
 * trainer sees exactly the ids the server will. Lines are at most 1 MiB. */
#include "common/alloc.h"
#include "embed/embed.h"
#include "embed/use.h"
#include "embed/use_bin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINE (1u << 20)

static int is_bin_dir(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/model.bin", dir);
    return access(p, R_OK) == 0;
}

static sc_use_model *load(const char *dir)
{
    char err[512], name[33];
    sc_use_model *m = NULL;
    int rc = is_bin_dir(dir) ? sc_use_bin_load(&m, dir, name, err, sizeof err)
                             : sc_use_model_load(&m, dir, err, sizeof err);
    if (rc) {
        fprintf(stderr, "sc-model: %s\n", err);
        return NULL;
    }
    return m;
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int rc = a && b ? 0 : 1;
    char buf[65536];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = 1;
    if (a) fclose(a);
    if (b && fclose(b) != 0) rc = 1;
    return rc;
}

/* Reads stdin line by line; calls fn on each (without the newline). */
static int each_line(int (*fn)(void *, const char *, size_t), void *ctx)
{
    char *line = sc_malloc(MAX_LINE + 2);
    size_t lineno = 0;
    int rc = 0;
    while (!rc && fgets(line, MAX_LINE + 2, stdin)) {
        lineno++;
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        if (n > 0 && line[n - 1] == '\r') line[--n] = 0; /* CRLF input */
        else if (n > MAX_LINE) {
            fprintf(stderr, "sc-model: stdin line %zu is longer than %u bytes\n", lineno, MAX_LINE);
            rc = 1;
            break;
        }
        rc = fn(ctx, line, n);
    }
    free(line);
    return rc;
}

/* The ids the server would run for text s: encoded, clipped to max_len. */
static int encode(const sc_use_model *m, const char *s, size_t n, int32_t **ids, uint32_t *nt)
{
    size_t k = 0;
    if (sc_use_encode(m->vocab, s, n, m->max_len, ids, &k)) return 1;
    *nt = (uint32_t)(k > m->max_len ? m->max_len : k);
    return 0;
}

static int tok_line(void *ctx, const char *s, size_t n)
{
    int32_t *ids = NULL;
    uint32_t k;
    if (encode(ctx, s, n, &ids, &k)) return 1;
    for (uint32_t i = 0; i < k; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    free(ids);
    return 0;
}

static int emb_line(void *ctx, const char *s, size_t n)
{
    sc_use_model *m = ctx;
    int32_t *ids = NULL;
    uint32_t nt;
    if (encode(m, s, n, &ids, &nt)) return 1;
    float *v = sc_malloc(sizeof(float) * m->out_dim);
    const int32_t *idp = ids;
    int rc = sc_use_forward(m, &idp, &nt, 1, v);
    for (uint32_t i = 0; !rc && i < m->out_dim; i++) printf(i ? " %.8g" : "%.8g", (double)v[i]);
    putchar('\n');
    free(v);
    free(ids);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: sc-model export-use USE_DIR OUT_DIR | tokenize [--fold] MODEL | embed [--fold] MODEL | check MODEL\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 3) return usage();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "export-use")) {
        if (argc != 4) return usage();
        sc_use_model *m = load(argv[2]);
        if (!m) return 1;
        char p[4096], v[4096];
        mkdir(argv[3], 0755);
        snprintf(p, sizeof p, "%s/model.bin", argv[3]);
        int rc = sc_use_bin_save(m, p, SC_USE_BIN_F32, "use-lite-export");
        snprintf(p, sizeof p, "%s/vocab.json", argv[2]);
        snprintf(v, sizeof v, "%s/vocab.json", argv[3]);
        if (!rc) rc = copy_file(p, v);
        sc_use_model_free(m);
        if (rc) fprintf(stderr, "sc-model: cannot write %s\n", argv[3]);
        return rc ? 1 : 0;
    }
    int fold = argc == 4 && !strcmp(argv[2], "--fold") && strcmp(cmd, "check") != 0;
    if (argc != 3 + fold) return usage();
    sc_use_model *m = load(argv[2 + fold]);
    if (!m) return 1;
    if (fold) sc_use_vocab_set_fold(m->vocab, 1);
    int rc = 0;
    if (!strcmp(cmd, "tokenize")) rc = each_line(tok_line, m);
    else if (!strcmp(cmd, "embed")) rc = each_line(emb_line, m);
    else if (!strcmp(cmd, "check"))
        printf("ok: vocab rows %u, emb %u, out %u, max_len %u, heads %u/%u\n", m->n_vocab_rows, m->emb_dim,
               m->out_dim, m->max_len, m->layer[0].heads, m->layer[1].heads);
    else rc = usage();
    sc_use_model_free(m);
    return rc;
}
