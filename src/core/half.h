/*
 * IEEE half and bfloat16 conversions (round to nearest even), shared by the
 * file readers, the reference kernels and the CPU backend.
 */
#ifndef LC_CORE_HALF_H
#define LC_CORE_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lolcats/lolcats.h"

static inline float lc_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint16_t lc_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float lc_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    float f;

    if (exp == 0x1fu) {
        u = sign | 0x7f800000u | (man << 13); /* inf or NaN */
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else {
        /* subnormal half: normalize */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400u) == 0);
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    memcpy(&f, &u, sizeof(f));
    return f;
}

static inline uint16_t lc_f32_to_f16(float f)
{
    uint32_t u;
    uint32_t sign;
    int32_t exp;
    uint32_t man;

    memcpy(&u, &f, sizeof(u));
    sign = (u >> 16) & 0x8000u;
    exp = (int32_t)((u >> 23) & 0xffu) - 127 + 15;
    man = u & 0x7fffffu;
    if (((u >> 23) & 0xffu) == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0)); /* inf, NaN */
    }
    if (exp >= 31) {
        return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    }
    if (exp <= 0) {
        /* subnormal or zero: shift with round to nearest even */
        uint32_t shift;
        uint32_t m;
        uint32_t rem;
        uint32_t half;
        if (exp < -10) {
            return (uint16_t)sign;
        }
        m = man | 0x800000u;
        shift = (uint32_t)(14 - exp);
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
        m >>= shift;
        if (rem > half || (rem == half && (m & 1u))) {
            m++;
        }
        return (uint16_t)(sign | m);
    }
    {
        uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
        uint32_t rem = man & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) {
            h++; /* may carry into the exponent: still correct */
        }
        return (uint16_t)h;
    }
}

/* Element i of an array of fp32, fp16 or bf16 values, widened to fp32
 * (any other dtype reads as fp32: callers check the dtype first).  With a
 * constant dtype the switch folds away. */
static inline float lc_dtype_load_f32(const void *base, enum lc_dtype type, size_t i)
{
    float f;

    switch (type) {
    case LC_DTYPE_F16:
        return lc_f16_to_f32(((const uint16_t *)base)[i]);
    case LC_DTYPE_BF16:
        return lc_bf16_to_f32(((const uint16_t *)base)[i]);
    default:
        memcpy(&f, (const char *)base + 4 * i, 4);
        return f;
    }
}

#endif /* LC_CORE_HALF_H */
