/* Unit tests for server/fingerprint.c: which requests share a context
 * fingerprint (cache partition) and which must not. */
#include "tap.h"
#include "common/err.h"
#include "server/fingerprint.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The fingerprint of a request given as JSON text; the result code goes to
 * *rc (fp 0 when it is not SC_OK). */
static uint64_t fp_of(int kind, const char *text, int *rc)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o) {
        *rc = SC_EINVAL;
        return 0;
    }
    uint64_t fp = 0;
    char *prompt = NULL;
    size_t len = 0;
    char err[256] = "";
    *rc = sc_fp_request(kind, o, &fp, &prompt, &len, err, sizeof err);
    free(prompt);
    json_decref(o);
    return *rc == SC_OK ? fp : 0;
}

#define CHAT(params) "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]" params "}"
#define COMPL(params) "{\"model\":\"m\",\"prompt\":\"hi\"" params "}"

/* 1 when both requests are cacheable and share a fingerprint. */
static int same_fp(int kind, const char *a, const char *b)
{
    int ra, rb;
    uint64_t fa = fp_of(kind, a, &ra), fb = fp_of(kind, b, &rb);
    if (ra != SC_OK || rb != SC_OK) sc_test_fail(__FILE__, __LINE__, "rc %d / %d for %s | %s", ra, rb, a, b);
    return ra == SC_OK && rb == SC_OK && fa == fb;
}

SC_TEST(fingerprint_defaults_dropped)
{
    const char *plain = CHAT("");
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"n\":1")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"temperature\":1")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"temperature\":1.0")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"top_p\":1")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"top_p\":1.0")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"presence_penalty\":0")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"frequency_penalty\":0.0")));
    CHECK(same_fp(SC_FP_CHAT, plain, CHAT(",\"frequency_penalty\":-0.0")));
    CHECK(same_fp(SC_FP_CHAT, plain,
                  CHAT(",\"n\":1,\"temperature\":1.0,\"top_p\":1,\"presence_penalty\":0,"
                       "\"frequency_penalty\":0")));
    CHECK(same_fp(SC_FP_COMPLETION, COMPL(""), COMPL(",\"n\":1,\"temperature\":1.0,\"top_p\":1")));
    /* The model-keyed partition of /cache/store is the plain request's. */
    int rc;
    CHECK(fp_of(SC_FP_CHAT, CHAT(",\"temperature\":1.0,\"n\":1"), &rc) == sc_fp_for_model("m"));
}

SC_TEST(fingerprint_integral_reals_are_integers)
{
    CHECK(same_fp(SC_FP_CHAT, CHAT(",\"temperature\":2"), CHAT(",\"temperature\":2.0")));
    CHECK(same_fp(SC_FP_CHAT, CHAT(",\"top_p\":0"), CHAT(",\"top_p\":0.0")));
    CHECK(same_fp(SC_FP_CHAT, CHAT(",\"presence_penalty\":-1"), CHAT(",\"presence_penalty\":-1.0")));
    CHECK(same_fp(SC_FP_CHAT, CHAT(",\"temperature\":0.7"), CHAT(",\"temperature\":0.70")));
    CHECK(same_fp(SC_FP_CHAT, CHAT(",\"temperature\":0.7"), CHAT(",\"temperature\":7e-1")));
}

SC_TEST(fingerprint_answer_changing_values_differ)
{
    int r1, r2;
    /* Non-integral reals stay exact. */
    CHECK(fp_of(SC_FP_CHAT, CHAT(",\"temperature\":0.7"), &r1) !=
          fp_of(SC_FP_CHAT, CHAT(",\"temperature\":0.70001"), &r2));
    CHECK(fp_of(SC_FP_CHAT, CHAT(",\"top_p\":0.9999999999999999"), &r1) !=
          fp_of(SC_FP_CHAT, CHAT(",\"top_p\":1"), &r2));
    CHECK(r1 == SC_OK && r2 == SC_OK);
    /* A value other than the default is kept. */
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"temperature\":0"), &r2));
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"presence_penalty\":0.5"), &r2));
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"top_p\":0.5"), &r2));
    /* Null is not taken for the default (conservative). */
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"temperature\":null"), &r2));
    CHECK(r2 == SC_OK);
    /* Parameters without a listed default are never dropped. */
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"seed\":1"), &r2));
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) != fp_of(SC_FP_CHAT, CHAT(",\"max_tokens\":1"), &r2));
    /* Defaults inside nested objects are not top-level parameters. */
    CHECK(fp_of(SC_FP_CHAT, CHAT(""), &r1) !=
          fp_of(SC_FP_CHAT, CHAT(",\"response_format\":{\"temperature\":1}"), &r2));
    /* n = 2 (several answers) is never cached, so never shares the plain
     * request's partition; n = 0 neither. */
    fp_of(SC_FP_CHAT, CHAT(",\"n\":2"), &r1);
    CHECK_EQ_INT(r1, SC_EUNSUPPORTED);
    fp_of(SC_FP_CHAT, CHAT(",\"n\":0"), &r1);
    CHECK_EQ_INT(r1, SC_EUNSUPPORTED);
}

SC_TEST(fingerprint_nested_numbers_untouched)
{
    /* Tool schemas may reach the model as text, where 1.0 and 1 differ:
     * only top-level parameters are canonicalised. */
    int r1, r2;
    CHECK(fp_of(SC_FP_CHAT, CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                                 "\"parameters\":{\"type\":\"number\",\"minimum\":1}}}]"), &r1) !=
          fp_of(SC_FP_CHAT, CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                                 "\"parameters\":{\"type\":\"number\",\"minimum\":1.0}}}]"), &r2));
    CHECK(r1 == SC_OK && r2 == SC_OK);
}
