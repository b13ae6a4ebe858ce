/* binary16 <-> binary32 by bit manipulation (see half.h). */
#include "common/half.h"

#include <string.h>

float sc_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t sc_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504 */
    if (absx < 0x38800000u) {                                    /* subnormal or zero */
        if (absx < 0x33000000u) return sign;
        uint32_t man = (absx & 0x7fffffu) | 0x800000u;
        int shift = 113 - (int)(absx >> 23) + 13;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx >> 13) - (112u << 10)), rem = absx & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}


/* ---- arrays: F16C where the CPU has it (vcvtps2ph rounds to nearest
 * even, as sc_float_to_half does; the unit test compares them) ---- */

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>

__attribute__((target("avx,f16c"))) static void encode_f16c(uint16_t *dst, const float *src,
                                                           size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(void *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = sc_float_to_half(src[i]);
}

__attribute__((target("avx,f16c"))) static void decode_f16c(float *dst, const uint16_t *src,
                                                           size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(src + i))));
    for (; i < n; i++) dst[i] = sc_half_to_float(src[i]);
}

/* CPUID leaf 1: ECX bit 29 F16C, bit 28 AVX, bit 27 OSXSAVE, and the OS
 * saving the YMM state (XCR0 bits 1-2). Asked directly: clang's
 * __builtin_cpu_supports does not know "f16c". */
static int probe_f16c(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 29)) || !(c & (1u << 28)) || !(c & (1u << 27))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6u) == 6u;
}

static int have_f16c(void)
{
    static atomic_int known = -1;
    int v = atomic_load_explicit(&known, memory_order_relaxed);
    if (v < 0) {
        v = probe_f16c();
        atomic_store_explicit(&known, v, memory_order_relaxed);
    }
    return v;
}

int sc_half_cpu_f16c(void)
{
    return have_f16c();
}
#else
static int have_f16c(void) { return 0; }
int sc_half_cpu_f16c(void) { return 0; }
#define encode_f16c(d, s, n) ((void)0)
#define decode_f16c(d, s, n) ((void)0)
#endif

int sc_half_simd_force;

void sc_half_encode(uint16_t *dst, const float *src, size_t n)
{
    if (!sc_half_simd_force && have_f16c()) {
        encode_f16c(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = sc_float_to_half(src[i]);
}

void sc_half_decode(float *dst, const uint16_t *src, size_t n)
{
    if (!sc_half_simd_force && have_f16c()) {
        decode_f16c(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = sc_half_to_float(src[i]);
}
