/* The faiss backend's side of the FAISS C API: creates, trains, fills and
 * searches one FAISS index (built by faiss_index_factory from the
 * configured description, inner-product metric) and turns FAISS failures
 * into SC_E* codes with a logged message. The C API functions themselves
 * come from faiss_c.cpp, since Debian ships only their headers. Which
 * vectors go in, tombstone filtering and exact re-scoring are index.c's
 * business; here a FAISS label is simply the insertion order. */
#include "index/index_int.h"
#include "common/err.h"
#include "common/log.h"

#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/index_factory_c.h>

/* error_c.h declares this with an empty parameter list, which strict C
 * prototypes reject; the same function, declared properly. */
const char *faiss_get_last_error(void);

static int fail(const char *what)
{
    const char *msg = faiss_get_last_error();
    sc_warn("faiss: %s: %s", what, msg ? msg : "unknown error");
    return SC_EINVAL;
}

int sc_index__faiss_new(void **out, uint32_t dim, const char *desc)
{
    FaissIndex *fx = NULL;
    sc_index__faiss_single_thread();
    if (faiss_index_factory(&fx, (int)dim, desc, METRIC_INNER_PRODUCT) != 0) {
        *out = NULL;
        return fail(desc);
    }
    *out = fx;
    return 0;
}

void sc_index__faiss_free(void *fx)
{
    if (fx) faiss_Index_free(fx);
}

int sc_index__faiss_is_trained(const void *fx)
{
    return faiss_Index_is_trained(fx);
}

int sc_index__faiss_train(void *fx, size_t n, const float *x)
{
    sc_index__faiss_single_thread();
    return faiss_Index_train(fx, (idx_t)n, x) ? fail("train") : 0;
}

int sc_index__faiss_add(void *fx, size_t n, const float *x)
{
    sc_index__faiss_single_thread();
    return faiss_Index_add(fx, (idx_t)n, x) ? fail("add") : 0;
}

int sc_index__faiss_search(const void *fx, const float *q, size_t k, float *dist, int64_t *labels)
{
    sc_index__faiss_single_thread();
    return faiss_Index_search(fx, 1, q, (idx_t)k, dist, labels) ? fail("search") : 0;
}
