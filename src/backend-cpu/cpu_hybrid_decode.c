/*
 * Constant-memory decoding on the CPU: one query token against the window
 * cache plus the linear state (the ISA's row kernels), and the update
 * that moves keys from the window into the state.  Heads are independent:
 * each is one task, on a team only for calls large enough to pay for it.
 */
#include "config.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend-cpu/cpu_hybrid.h"
#include "backend-cpu/cpu_hybrid_rows.h"
#include "core/util.h"

/* below this many multiply-adds a call stays on one thread */
#define DECODE_PAR_MIN 32768

/* The heads of KV heads [g0, g1): window scores and their exponentials
 * (all heads at once, so that each cached row is read once), then the
 * linear part of each head.  e holds (g1 - g0) (H / Hkv) (ncache + 1)
 * floats. */
static void decode_heads(const struct lc_cpu_kernels *kr, float *y, const float *q,
                         const float *fq, const float *kc, const float *vc, int ncache,
                         const float *S, const float *z, const float *theta, int H, int Hkv,
                         int D, int F, int g0, int g1, float *e)
{
    const int rep = H / Hkv, nh = (g1 - g0) * rep, h0 = g0 * rep;
    const float scale = 1.0f / sqrtf((float)D);
    float *den = e + (size_t)nh * (size_t)ncache;
    float *yh0 = y + (size_t)h0 * (size_t)D;
    float m;

    memset(yh0, 0, (size_t)nh * (size_t)D * sizeof(float));
    for (int h = 0; h < nh; h++) {
        den[h] = 0.0f;
    }
    if (ncache > 0) {
        kr->scores(e, q + (size_t)h0 * (size_t)D, nh, rep, kc + (size_t)g0 * (size_t)D, Hkv * D,
                   ncache, D, scale);
        for (int h = 0; h < nh; h++) {
            const float gamma = 1.0f / (1.0f + expf(-theta[h0 + h]));
            float *eh = e + (size_t)h * (size_t)ncache;
            den[h] = kr->exp_row(eh, eh, ncache, gamma, &m);
        }
        kr->wsum(yh0, e, nh, rep, vc + (size_t)g0 * (size_t)D, Hkv * D, ncache, D);
    }
    for (int h = h0; h < h0 + nh; h++) {
        /* linear part: fq^T S, fq . z */
        const float *fqh = fq + (size_t)h * (size_t)F;
        float *yh = y + (size_t)h * (size_t)D;
        const float dh = den[h - h0] + kr->dot(fqh, z + (size_t)h * (size_t)F, F);
        kr->wsum(yh, fqh, 1, 1, S + (size_t)h * (size_t)F * (size_t)D, D, F, D);
        for (int d = 0; d < D; d++) {
            yh[d] = yh[d] / dh;
        }
    }
}

void lc_cpu_hybrid_decode(struct lc_backend *be, float *y, const float *q, const float *fq,
                          const float *kc, const float *vc, int ncache, const float *S,
                          const float *z, const float *theta, int H, int Hkv, int D, int F)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int64_t work = (int64_t)H * ((int64_t)ncache * 2 + F) * D;
    const int par = work >= DECODE_PAR_MIN;
    /* one thread: all heads at once; a team: one KV head each.  A head's
     * result is the same either way: its sums run over the keys in order,
     * whatever other heads the call takes. */
    const size_t per = (size_t)(par ? H / Hkv : H) * ((size_t)ncache + 1);
    struct lc_hy_work ws;

    if (H <= 0 || !lc_hy_work_get(be, &ws, 0, per, par ? omp_get_max_threads() : 1)) {
        return;
    }
    if (!par) {
        decode_heads(kr, y, q, fq, kc, vc, ncache, S, z, theta, H, Hkv, D, F, 0, Hkv, ws.slices);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int g = 0; g < Hkv; g++) {
        decode_heads(kr, y, q, fq, kc, vc, ncache, S, z, theta, H, Hkv, D, F, g, g + 1,
                     lc_hy_work_slice(&ws));
    }
}

void lc_cpu_hybrid_add_state(struct lc_backend *be, float *y, const float *den,
                             const float *fq, const float *S, const float *z, int n, int H,
                             int D, int F)
{
    const int64_t work = (int64_t)H * n * F * D;

    (void)be;
    if (n <= 0) {
        return;
    }
    LC_CPU_PAR_FOR(work >= DECODE_PAR_MIN, h, H, 1, {
        const float *fqh = fq + (size_t)h * (size_t)F;
        const float *zh = z + (size_t)h * (size_t)F;
        float *yh = y + (size_t)h * (size_t)D;

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
    });
}

void lc_cpu_linstate_add(struct lc_backend *be, float *S, float *z, const float *fk,
                         const float *v, int n, int H, int Hkv, int D, int F)
{
    const int rep = H / Hkv;
    const int64_t work = (int64_t)H * n * F * D;

    (void)be;
    if (n <= 0) {
        return;
    }
    /* each head adds to its own S[h] and z[h]: the heads are independent */
    LC_CPU_PAR_FOR(work >= DECODE_PAR_MIN, h, H, 1, {
        const float *fkh = fk + (size_t)h * (size_t)F;
        const float *vh = v + (size_t)(h / rep) * (size_t)D;
        float *Sh = S + (size_t)h * (size_t)F * (size_t)D;
        float *zh = z + (size_t)h * (size_t)F;

        lc_hy_sgemm(1, 0, F, D, n, 1.0f, fkh, H * F, vh, Hkv * D, 1.0f, Sh, D);
        for (int r = 0; r < n; r++) {
            const float *fr = fkh + (size_t)r * (size_t)H * (size_t)F;
            for (int f = 0; f < F; f++) {
                zh[f] += fr[f];
            }
        }
    });
}
