/*
 * Generic C row kernels of the hybrid attention and the feature maps, the
 * ISA dispatch between them and their AVX-512 twins, and kernel scratch.
 */
#include "config.h"

#include <math.h>
#include <omp.h>

#include "backend-cpu/cpu_hybrid.h"
#include "core/util.h"

int lc_hy_work_get(struct lc_backend *be, struct lc_hy_work *w, size_t shared, size_t per_thread,
                   int nt)
{
    const size_t sh = lc_hy_round(shared), sl = lc_hy_round(per_thread);
    size_t total, bytes;
    float *p = NULL;

    if (!lc_mul_size(sl, (size_t)(nt > 0 ? nt : 1), &total) || !lc_add_size(total, sh, &total) ||
        !lc_mul_size(total, sizeof(float), &bytes)) {
        lc_cpu_fail(be, LC_ERR_NOMEM, "cpu backend: kernel scratch of %zu + %d x %zu floats "
                    "overflows", shared, nt, per_thread);
        return 0;
    }
    p = lc_cpu_scratch(be, bytes > 0 ? bytes : 64);
    if (p == NULL) {
        return 0;
    }
    w->shared = p;
    w->slices = p + sh;
    w->slice = sl;
    return 1;
}

float *lc_hy_work_slice(const struct lc_hy_work *w)
{
    return w->slices + (size_t)omp_get_thread_num() * w->slice;
}

void lc_hy_dtheta_add(float *dtheta, const float *theta, const double *acc, int B, int H)
{
    for (int h = 0; h < H; h++) {
        const double gamma = 1.0 / (1.0 + exp(-(double)theta[h]));
        double sum = 0.0;
        for (int b = 0; b < B; b++) {
            sum += acc[b * H + h];
        }
        dtheta[h] += (float)(sum * (1.0 - gamma));
    }
}

static float exp_row_c(float *e, const float *s, int n, float gamma, float *m_out)
{
    float m = s[0];
    float sum = 0.0f;

    for (int c = 1; c < n; c++) {
        m = s[c] > m ? s[c] : m;
    }
    for (int c = 0; c < n; c++) {
        e[c] = gamma * expf(s[c] - m);
        sum += e[c];
    }
    *m_out = m;
    return sum;
}

static float bwd_row_c(float *ds, float *p, const float *s, int n, float m, float gamma,
                       float delta, float invz)
{
    float sum = 0.0f, dm;
    int nties = 0;

    for (int c = 0; c < n; c++) {
        float e = gamma * expf(s[c] - m);
        float G = (ds[c] - delta) * invz;
        ds[c] = G * e;
        p[c] = e * invz;
        sum += ds[c];
        nties += s[c] == m;
    }
    if (nties == 0) {
        /* m is not this row's max (it came from another computation of
         * the scores): route the max path to the row's own argmax */
        m = s[0];
        for (int c = 1; c < n; c++) {
            m = s[c] > m ? s[c] : m;
        }
        for (int c = 0; c < n; c++) {
            nties += s[c] == m;
        }
    }
    dm = -sum / (float)nties;
    for (int c = 0; c < n; c++) {
        ds[c] += s[c] == m ? dm : 0.0f;
    }
    return sum;
}

/* out[c] = exp(sign z[c] - max(sign z)); returns the sum */
static float exp_half_c(float *out, const float *z, int f, float sign)
{
    float mx = sign * z[0];
    float sum = 0.0f;

    for (int c = 1; c < f; c++) {
        mx = sign * z[c] > mx ? sign * z[c] : mx;
    }
    for (int c = 0; c < f; c++) {
        out[c] = expf(sign * z[c] - mx);
        sum += out[c];
    }
    return sum;
}

static void fmap_row_c(float *phi, const float *z, int f, float eps)
{
    float sp = exp_half_c(phi, z, f, 1.0f);
    float sn = exp_half_c(phi + f, z, f, -1.0f);

    for (int c = 0; c < f; c++) {
        float a = phi[c] / sp;
        float b = phi[f + c] / sn;
        phi[c] = a < eps ? eps : a;
        phi[f + c] = b < eps ? eps : b;
    }
}

static void fmap_bwd_row_c(float *dz, const float *z, const float *dphi, int f, float eps,
                           float *tmp)
{
    float *p = tmp, *pn = tmp + f;
    float sp = exp_half_c(p, z, f, 1.0f);
    float sn = exp_half_c(pn, z, f, -1.0f);
    float ip = 0.0f, in = 0.0f;

    for (int c = 0; c < f; c++) {
        p[c] = p[c] / sp;
        pn[c] = pn[c] / sn;
        ip += (p[c] >= eps ? dphi[c] : 0.0f) * p[c];
        in += (pn[c] >= eps ? dphi[f + c] : 0.0f) * pn[c];
    }
    for (int c = 0; c < f; c++) {
        float gp = p[c] >= eps ? dphi[c] : 0.0f;
        float gn = pn[c] >= eps ? dphi[f + c] : 0.0f;
        dz[c] = p[c] * (gp - ip) - pn[c] * (gn - in);
    }
}

static const struct lc_cpu_hybrid_kernels kernels_c = {
    .exp_row = exp_row_c,
    .bwd_row = bwd_row_c,
    .fmap_row = fmap_row_c,
    .fmap_bwd_row = fmap_bwd_row_c,
};

#ifdef LC_HAVE_AVX512
static const struct lc_cpu_hybrid_kernels kernels_avx512 = {
    .exp_row = lc_avx512_exp_row,
    .bwd_row = lc_avx512_bwd_row,
    .fmap_row = lc_avx512_fmap_row,
    .fmap_bwd_row = lc_avx512_fmap_bwd_row,
};
#endif

const struct lc_cpu_hybrid_kernels *lc_cpu_hybrid_kernels(const struct lc_backend *be)
{
#ifdef LC_HAVE_AVX512
    if (lc_cpu_isa_of(be) == LC_CPU_ISA_AVX512) {
        return &kernels_avx512;
    }
#else
    (void)be;
#endif
    return &kernels_c;
}
