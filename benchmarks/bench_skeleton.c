/* bench_skeleton: the shape every benchmark program follows: a CSV header
 * with units in the column names, then one row per configuration. This one
 * times sc_hash64 over 64-byte keys against a plain memcpy of the same
 * bytes (the reference), so the ratio, not the absolute, is the figure. */
#include "common/hash.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
    enum { N = 2000000, K = 64 };
    static char key[K], dst[K];
    memset(key, 'a', sizeof key);
    uint64_t acc = 0;
    double t0 = now_s();
    for (int i = 0; i < N; i++) {
        key[i % K] = (char)i;
        acc += sc_hash64(key, K, 0);
    }
    double t_hash = now_s() - t0;
    t0 = now_s();
    for (int i = 0; i < N; i++) {
        key[i % K] = (char)i;
        memcpy(dst, key, K);
        acc += (uint64_t)dst[i % K];
    }
    double t_copy = now_s() - t0;
    printf("bench,n,key_bytes,ns_per_op,ref_memcpy_ns_per_op,ratio_vs_ref,checksum\n");
    printf("hash64,%d,%d,%.2f,%.2f,%.2f,%llu\n", N, K, t_hash * 1e9 / N, t_copy * 1e9 / N,
           t_hash / t_copy, (unsigned long long)(acc & 0xffff));
    return 0;
}
