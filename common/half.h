/* IEEE 754 binary16 ("half") conversions, portable and exact.
 *
 * Vectors are stored (on disk and in the index's re-score rows) as halves:
 * an L2-normalised 512-d vector's components are ~0.04 in magnitude, where
 * a half keeps 11 significant bits (relative error <= 2^-11), so a cosine
 * moves by ~1e-4 at most (BENCHMARKS.md, "Memory and disk per entry").
 *
 * sc_float_to_half rounds to nearest, ties to even, like the F16C
 * instruction vcvtps2ph with rounding mode 0; overflow gives +-inf, NaN
 * stays NaN. sc_half_to_float is exact (every half is a float). Pure, any
 * thread. */
#ifndef SC_HALF_H
#define SC_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t sc_float_to_half(float f);
float sc_half_to_float(uint16_t h);

/* Array forms: n values from src into dst, 8 at a time with F16C where
 * the CPU has it (the same results as the scalar functions, NaN payloads
 * aside). Neither array needs more than its element alignment. */
void sc_half_encode(uint16_t *dst, const float *src, size_t n);
void sc_half_decode(float *dst, const uint16_t *src, size_t n);
/* 1 when this CPU (and OS) can run F16C with AVX. */
int sc_half_cpu_f16c(void);
/* Tests: non-zero makes the array forms use the scalar functions. */
extern int sc_half_simd_force;

#endif
