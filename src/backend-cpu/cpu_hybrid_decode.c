/*
 * Constant-memory decoding on the CPU: one query token against the window
 * cache plus the linear state, and the update that moves keys from the
 * window into the state.  Heads are independent: each is one task.
 */
#include "config.h"

#include <math.h>

#include "backend-cpu/cpu_hybrid.h"
#include "core/util.h"

/* below this many multiply-adds a call stays on one thread */
#define DECODE_PAR_MIN 32768

void lc_cpu_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int rep = H / Hkv;
    const int64_t work = (int64_t)H * ((int64_t)ncache * 2 + F) * D;
    struct lc_hy_work ws;
    float *sc = NULL; /* [H, ncache] scores, then weights */

    if (H <= 0 || !lc_hy_work_get(be, &ws, (size_t)H * (size_t)(ncache > 0 ? ncache : 1), 0, 1)) {
        return;
    }
    sc = ws.shared;

#pragma omp parallel for schedule(static) if (work >= DECODE_PAR_MIN)
    for (int h = 0; h < H; h++) {
        const int g = h / rep;
        const float gamma = 1.0f / (1.0f + expf(-theta[h]));
        const float scale = 1.0f / sqrtf((float)D);
        const float *qh = q + (size_t)h * (size_t)D;
        const float *fqh = fq + (size_t)h * (size_t)F;
        const float *Sh = S + (size_t)h * (size_t)F * (size_t)D;
        const float *zh = z + (size_t)h * (size_t)F;
        float *e = sc + (size_t)h * (size_t)ncache;
        float *yh = y + (size_t)h * (size_t)D;
        float den = 0.0f, m;

        for (int c = 0; c < ncache; c++) {
            const float *kcr = kc + ((size_t)c * (size_t)Hkv + (size_t)g) * (size_t)D;
            float acc = 0.0f;
            for (int d = 0; d < D; d++) {
                acc += qh[d] * kcr[d];
            }
            e[c] = acc * scale;
        }
        if (ncache > 0) {
            den = kr->exp_row(e, e, ncache, gamma, &m);
        }
        /* linear part: fq^T S, fq . z */
        for (int d = 0; d < D; d++) {
            yh[d] = 0.0f;
        }
        for (int f = 0; f < F; f++) {
            const float a = fqh[f];
            const float *Sr = Sh + (size_t)f * (size_t)D;
            for (int d = 0; d < D; d++) {
                yh[d] += a * Sr[d];
            }
            den += a * zh[f];
        }
        for (int c = 0; c < ncache; c++) {
            const float *vr = vc + ((size_t)c * (size_t)Hkv + (size_t)g) * (size_t)D;
            for (int d = 0; d < D; d++) {
                yh[d] += e[c] * vr[d];
            }
        }
        for (int d = 0; d < D; d++) {
            yh[d] = yh[d] / den;
        }
    }
}

void lc_cpu_hybrid_add_state(struct lc_backend *be, float *y, const float *den,
                             const float *fq, const float *S, const float *z, int n, int H,
                             int D, int F)
{
    const int64_t work = (int64_t)H * n * F * D;

    (void)be;
#pragma omp parallel for schedule(static) if (work >= DECODE_PAR_MIN)
    for (int h = 0; h < H; h++) {
        const float *fqh = fq + (size_t)h * (size_t)F;
        const float *zh = z + (size_t)h * (size_t)F;
        float *yh = y + (size_t)h * (size_t)D;

        if (n <= 0) {
            continue;
        }
        /* y * den (the numerator hybrid_fwd divided), plus fq S */
        for (int r = 0; r < n; r++) {
            float *yr = yh + (size_t)r * (size_t)H * (size_t)D;
            const float d0 = den[(size_t)r * (size_t)H + (size_t)h];
            for (int d = 0; d < D; d++) {
                yr[d] *= d0;
            }
        }
        lc_hy_sgemm(0, 0, n, D, F, 1.0f, fqh, H * F, S + (size_t)h * (size_t)F * (size_t)D, D,
                    1.0f, yh, H * D);
        for (int r = 0; r < n; r++) {
            const float *fr = fqh + (size_t)r * (size_t)H * (size_t)F;
            float *yr = yh + (size_t)r * (size_t)H * (size_t)D;
            float d1 = den[(size_t)r * (size_t)H + (size_t)h];
            for (int f = 0; f < F; f++) {
                d1 += fr[f] * zh[f];
            }
            for (int d = 0; d < D; d++) {
                yr[d] /= d1;
            }
        }
    }
}

void lc_cpu_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F)
{
    const int rep = H / Hkv;
    const int64_t work = (int64_t)H * n * F * D;

    (void)be;
#pragma omp parallel for schedule(static) if (work >= DECODE_PAR_MIN)
    for (int h = 0; h < H; h++) {
        const float *fkh = fk + (size_t)h * (size_t)F;
        const float *vh = v + (size_t)(h / rep) * (size_t)D;
        float *Sh = S + (size_t)h * (size_t)F * (size_t)D;
        float *zh = z + (size_t)h * (size_t)F;

        if (n <= 0) {
            continue;
        }
        lc_hy_sgemm(1, 0, F, D, n, 1.0f, fkh, H * F, vh, Hkv * D, 1.0f, Sh, D);
        for (int r = 0; r < n; r++) {
            const float *fr = fkh + (size_t)r * (size_t)H * (size_t)F;
            for (int f = 0; f < F; f++) {
                zh[f] += fr[f];
            }
        }
    }
}
