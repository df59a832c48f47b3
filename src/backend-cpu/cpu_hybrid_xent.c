/*
 * Attention-weight cross-entropy on the CPU (method doc 4.1; the formulas
 * are spelled out beside the reference, ref_hybrid_impl.h).  Quadratic by
 * nature: every query row compares against all its causal keys.  Rows go
 * in blocks of XENT_QB with the scores and linear weights of a block from
 * SGEMM; work is split over (batch, query head), and dtheta partials are
 * summed in batch order afterwards.
 */
#include "config.h"

#include <math.h>
#include <omp.h>

#include "backend-cpu/cpu_hybrid.h"
#include "backend-cpu/cpu_hybrid_rows.h"
#include "core/ref/ref.h"
#include "core/util.h"

#define XENT_QB 64
#define XENT_CLAMP 1e-12f

struct xent_task {
    int T, D, F, W, mode, ldq, ldk, ldf, ldm;
    float gamma, scale, grad_scale;
    const float *Q, *K, *FQ, *FK;
    float *LOSS, *DFQ, *DFK;
};

/* scratch floats of one task */
static size_t xent_slice(int T)
{
    return 2 * lc_hy_round((size_t)XENT_QB * (size_t)T) + 2 * lc_hy_round((size_t)T);
}

/* Returns the sum over rows of sum_W G_ij e_ij. */
static double xent_task_run(const struct lc_cpu_kernels *kr, const struct xent_task *x,
                            float *ws)
{
    const int T = x->T, F = x->F;
    float *A = lc_hy_take(&ws, (size_t)XENT_QB * (size_t)T);  /* scores */
    float *L = lc_hy_take(&ws, (size_t)XENT_QB * (size_t)T);  /* linear weights, then G */
    float *et = lc_hy_take(&ws, (size_t)T);                   /* teacher weights */
    float *om = lc_hy_take(&ws, (size_t)T);                   /* student weights */
    double acc_theta = 0.0;

    for (int i0 = 0; i0 < T; i0 += XENT_QB) {
        const int nb = T - i0 < XENT_QB ? T - i0 : XENT_QB;
        const int kend = i0 + nb;
        /* the window start grows with i: the last row has the most linear keys */
        const int kl = lc_window_start(kend - 1, x->W, x->mode);

        lc_hy_sgemm(0, 1, nb, kend, x->D, x->scale, x->Q + (size_t)i0 * (size_t)x->ldq, x->ldq,
                    x->K, x->ldk, 0.0f, A, kend);
        if (kl > 0) {
            lc_hy_sgemm(0, 1, nb, kl, F, 1.0f, x->FQ + (size_t)i0 * (size_t)x->ldf, x->ldf,
                        x->FK, x->ldf, 0.0f, L, kl);
        }
        for (int r = 0; r < nb; r++) {
            const int i = i0 + r;
            const int lo = lc_window_start(i, x->W, x->mode);
            const float *s = A + (size_t)r * (size_t)kend;
            float *lr = L + (size_t)r * (size_t)kl;
            float tmax, m, tsum, Z, iz, it, rowsum, irs, loss = 0.0f, sum_da = 0.0f, ge = 0.0f;

            /* the teacher's weights from the same scores: the student
             * attends with the teacher's q and k */
            tsum = kr->exp_row(et, s, i + 1, 1.0f, &tmax);
            Z = kr->exp_row(om + lo, s + lo, i - lo + 1, x->gamma, &m);
            for (int j = 0; j < lo; j++) {
                om[j] = lr[j];
                Z += lr[j];
            }
            /* om becomes A_pred, et A_true; the keys j > i have A_pred = 0,
             * clamped.  The loops other than the one with logf are
             * vectorized (omp simd): they are most of the work. */
            iz = 1.0f / Z;
            it = 1.0f / tsum;
            rowsum = (float)(T - 1 - i) * XENT_CLAMP;
#pragma omp simd reduction(+ : rowsum)
            for (int j = 0; j <= i; j++) {
                om[j] = om[j] * iz;
                et[j] = et[j] * it;
                rowsum += om[j] < XENT_CLAMP ? XENT_CLAMP : om[j];
            }
            for (int j = 0; j <= i; j++) {
                loss -= et[j] * logf(om[j] < XENT_CLAMP ? XENT_CLAMP : om[j]);
            }
            irs = 1.0f / rowsum;
#pragma omp simd reduction(+ : sum_da)
            for (int j = 0; j <= i; j++) {
                sum_da += om[j] >= XENT_CLAMP ? om[j] * irs - et[j] : 0.0f;
            }
            /* G_j = grad_scale (dA_j - sum_da) / Z with dA_j = (A_j / rowsum
             * - A_true) / A_j; on window keys G_j omega_j = grad_scale
             * (dA_j - sum_da) A_j goes to dtheta */
#pragma omp simd
            for (int j = 0; j < lo; j++) {
                float da = om[j] >= XENT_CLAMP ? (om[j] * irs - et[j]) / om[j] : 0.0f;
                lr[j] = x->grad_scale * (da - sum_da) * iz;
            }
#pragma omp simd reduction(+ : ge)
            for (int j = lo; j <= i; j++) {
                float da = om[j] >= XENT_CLAMP ? (om[j] * irs - et[j]) / om[j] : 0.0f;
                ge += x->grad_scale * (da - sum_da) * om[j];
            }
            for (int j = lo; j < kl; j++) {
                lr[j] = 0.0f;
            }
            acc_theta += ge;
            if (x->LOSS != NULL) {
                x->LOSS[(size_t)i * (size_t)x->ldm] = loss;
            }
        }
        /* L holds G on each row's linear keys and 0 elsewhere: one GEMM
         * each adds dfq += G fk and dfk += G^T fq to what is there */
        if (kl > 0 && x->DFQ != NULL) {
            lc_hy_sgemm(0, 0, nb, F, kl, 1.0f, L, kl, x->FK, x->ldf, 1.0f,
                        x->DFQ + (size_t)i0 * (size_t)x->ldf, x->ldf);
        }
        if (kl > 0 && x->DFK != NULL) {
            lc_hy_sgemm(1, 0, kl, F, nb, 1.0f, L, kl, x->FQ + (size_t)i0 * (size_t)x->ldf, x->ldf,
                        1.0f, x->DFK, x->ldf);
        }
    }
    return acc_theta;
}

void lc_cpu_hybrid_xent(struct lc_backend *be, float *row_loss, float *dfq, float *dfk,
                        float *dtheta, float grad_scale, const float *q, const float *k,
                        const float *fq, const float *fk, const float *theta,
                        const struct lc_attn_shape *s)
{
    const struct lc_cpu_kernels *kr = lc_cpu_kernels(be);
    const int B = s->B, H = s->H, rep = s->H / s->Hkv;
    const int ntask = B * H;
    const int nt = omp_get_max_threads();
    struct lc_hy_work work;
    double *acc = NULL; /* [B * H] */

    if (ntask <= 0 || s->T <= 0 ||
        !lc_hy_work_get(be, &work, 2 * (size_t)ntask, xent_slice(s->T), nt)) {
        return;
    }
    /* one double per task, summed in batch order by lc_hy_dtheta_add */
    acc = (double *)work.shared;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int task = 0; task < ntask; task++) {
        const int b = task / H, h = task % H;
        const size_t bt = (size_t)b * (size_t)s->T;
        const size_t hf = (bt * (size_t)H + (size_t)h) * (size_t)s->F;
        struct xent_task x;

        x.T = s->T;
        x.D = s->D;
        x.F = s->F;
        x.W = s->window;
        x.mode = s->mode;
        x.ldq = H * s->D;
        x.ldk = s->Hkv * s->D;
        x.ldf = H * s->F;
        x.ldm = H;
        x.gamma = 1.0f / (1.0f + expf(-theta[h]));
        x.scale = 1.0f / sqrtf((float)s->D);
        x.grad_scale = grad_scale;
        x.Q = q + (bt * (size_t)H + (size_t)h) * (size_t)s->D;
        x.K = k + (bt * (size_t)s->Hkv + (size_t)(h / rep)) * (size_t)s->D;
        x.FQ = fq + hf;
        x.FK = fk + hf;
        x.LOSS = row_loss != NULL ? row_loss + bt * (size_t)H + (size_t)h : NULL;
        x.DFQ = dfq != NULL ? dfq + hf : NULL;
        x.DFK = dfk != NULL ? dfk + hf : NULL;
        acc[task] = xent_task_run(kr, &x, lc_hy_work_slice(&work));
    }

    if (dtheta != NULL) {
        lc_hy_dtheta_add(dtheta, theta, acc, B, H);
    }
}
