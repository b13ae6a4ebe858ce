// The few functions of the FAISS C API that the faiss backend uses.
//
// Debian ships the C API headers (/usr/include/faiss/c_api) but not their
// implementation, only the C++ library. This file implements the handful
// of faiss_* functions we call, with the exact signatures of those headers
// (included below so the compiler checks them), on top of the C++ API:
// every call catches C++ exceptions, keeps the message in a thread-local
// string for faiss_get_last_error() and returns a negative code, so no
// exception ever crosses into C. It also provides
// sc_index__faiss_single_thread(): OpenMP's thread count is per thread, so
// each calling thread limits itself to one (single-query latency on a
// 2-core machine stalls with an OpenMP team).
#include <faiss/Index.h>
#include <faiss/index_factory.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <omp.h>

#include <exception>
#include <string>

extern "C" void sc_index__faiss_single_thread(void);

namespace {
thread_local std::string last_error;

int fail(const char *what)
{
    last_error = what;
    return -2;
}

faiss::Index *idx(FaissIndex *p) { return reinterpret_cast<faiss::Index *>(p); }
const faiss::Index *idx(const FaissIndex *p) { return reinterpret_cast<const faiss::Index *>(p); }
} // namespace

extern "C" {

void sc_index__faiss_single_thread(void)
{
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);
}

const char *faiss_get_last_error()
{
    return last_error.empty() ? nullptr : last_error.c_str();
}

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    try {
        faiss::Index *ix = faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric));
        *p_index = reinterpret_cast<FaissIndex *>(ix);
        return 0;
    } catch (std::exception &e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown FAISS error");
    }
}

void faiss_Index_free(FaissIndex *obj) { delete idx(obj); }

int faiss_Index_is_trained(const FaissIndex *obj) { return idx(obj)->is_trained ? 1 : 0; }

idx_t faiss_Index_ntotal(const FaissIndex *obj) { return idx(obj)->ntotal; }

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    try {
        idx(index)->train(n, x);
        return 0;
    } catch (std::exception &e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown FAISS error");
    }
}

int faiss_Index_add(FaissIndex *index, idx_t n, const float *x)
{
    try {
        idx(index)->add(n, x);
        return 0;
    } catch (std::exception &e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown FAISS error");
    }
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    try {
        idx(index)->search(n, x, k, distances, labels);
        return 0;
    } catch (std::exception &e) {
        return fail(e.what());
    } catch (...) {
        return fail("unknown FAISS error");
    }
}

} // extern "C"
