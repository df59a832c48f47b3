/*
 * The reference Hedgehog feature maps, hybrid window attention and
 * decoding ops, written once over REAL: ref_hybrid.c includes this file
 * with float for the "ref" backend, ref_hybrid_f64.c with double for the
 * _f64 twins that the finite-difference tests differentiate.
 *
 * This is the quadratic form, literally the formulas of DESIGN.md section 6
 * and the method doc (2.1, 2.4, 3.3, 3.7, 4.1): every query row walks over
 * all its keys.  Nothing is stored between passes: a row's weights are
 * recomputed in each pass, so the kernels need no scratch memory.
 *
 * The includer defines:
 *   REAL        float or double
 *   FN(name)    the name of an entry, LINKAGE its linkage (static or empty)
 *   LOCAL(name) the name of a file-local helper
 *   EXP, LOG, SQRT, XENT_CLAMP (the 1e-12 floor of the attention weights)
 */

/* Element offset of token t of batch b, head h, in a [B, T, nh, dim]
 * tensor. */
static inline size_t LOCAL(at)(int b, int t, int T, int nh, int h, int dim)
{
    return (((size_t)b * (size_t)T + (size_t)t) * (size_t)nh + (size_t)h) * (size_t)dim;
}

static inline REAL LOCAL(dot)(const REAL *a, const REAL *b, int n)
{
    REAL acc = 0;

    for (int i = 0; i < n; i++) {
        acc += a[i] * b[i];
    }
    return acc;
}

static inline REAL LOCAL(sigmoid)(REAL x)
{
    return 1 / (1 + EXP(-x));
}

/* s_ij = q_i . k_j / sqrt(D).  One function for every pass, so that a
 * recomputed score has the same bits as the first one (the argmax test of
 * the backward compares them for equality). */
static inline REAL LOCAL(score)(const REAL *qi, const REAL *kj, int D, REAL scale)
{
    return LOCAL(dot)(qi, kj, D) * scale;
}

/* ------------------------------------------------------------ feature map */

/* z_c = (x W_h)_c for one token, W_h [D, f] */
static inline REAL LOCAL(fmap_z)(const REAL *xr, const REAL *Wh, int D, int f, int c)
{
    REAL acc = 0;

    for (int d = 0; d < D; d++) {
        acc += xr[d] * Wh[(size_t)d * (size_t)f + (size_t)c];
    }
    return acc;
}

/* in-place softmax of n values */
static void LOCAL(softmax)(REAL *p, int n)
{
    REAL mx = p[0];
    REAL sum = 0;

    for (int c = 1; c < n; c++) {
        mx = p[c] > mx ? p[c] : mx;
    }
    for (int c = 0; c < n; c++) {
        p[c] = EXP(p[c] - mx);
        sum += p[c];
    }
    for (int c = 0; c < n; c++) {
        p[c] = p[c] / sum;
    }
}

LINKAGE void FN(fmap_fwd)(REAL *phi, const REAL *x, const REAL *W, int N, int H, int Hx,
                          int D, int f, REAL eps)
{
    const int rep = H / Hx;

    for (int n = 0; n < N; n++) {
        for (int h = 0; h < H; h++) {
            const REAL *xr = x + ((size_t)n * (size_t)Hx + (size_t)(h / rep)) * (size_t)D;
            const REAL *Wh = W + (size_t)h * (size_t)D * (size_t)f;
            REAL *out = phi + ((size_t)n * (size_t)H + (size_t)h) * (size_t)(2 * f);

            for (int c = 0; c < f; c++) {
                REAL z = LOCAL(fmap_z)(xr, Wh, D, f, c);
                out[c] = z;
                out[f + c] = -z;
            }
            LOCAL(softmax)(out, f);
            LOCAL(softmax)(out + f, f);
            for (int c = 0; c < 2 * f; c++) {
                out[c] = out[c] < eps ? eps : out[c];
            }
        }
    }
}

/* dz = p (gp - <gp,p>) - pn (gn - <gn,pn>) with p = softmax(z),
 * pn = softmax(-z), gp/gn the gradients of the two halves where the
 * clamp lets them through (pre-clamp value >= eps).  z is recomputed in
 * each of the three passes (max and sums, inner products, output). */
LINKAGE void FN(fmap_bwd)(REAL *dW, REAL *dx, const REAL *dphi, const REAL *x,
                          const REAL *W, int N, int H, int Hx, int D, int f, REAL eps)
{
    const int rep = H / Hx;

    for (int n = 0; n < N; n++) {
        for (int h = 0; h < H; h++) {
            const size_t xoff = ((size_t)n * (size_t)Hx + (size_t)(h / rep)) * (size_t)D;
            const REAL *xr = x + xoff;
            const REAL *Wh = W + (size_t)h * (size_t)D * (size_t)f;
            const REAL *g = dphi + ((size_t)n * (size_t)H + (size_t)h) * (size_t)(2 * f);
            REAL zmax = 0, zmin = 0, sp = 0, sn = 0, ip = 0, in = 0;

            for (int c = 0; c < f; c++) {
                REAL z = LOCAL(fmap_z)(xr, Wh, D, f, c);
                if (c == 0 || z > zmax) {
                    zmax = z;
                }
                if (c == 0 || z < zmin) {
                    zmin = z;
                }
            }
            /* max(-z) = -zmin */
            for (int c = 0; c < f; c++) {
                REAL z = LOCAL(fmap_z)(xr, Wh, D, f, c);
                sp += EXP(z - zmax);
                sn += EXP(-z + zmin);
            }
            for (int c = 0; c < f; c++) {
                REAL z = LOCAL(fmap_z)(xr, Wh, D, f, c);
                REAL p = EXP(z - zmax) / sp;
                REAL pn = EXP(-z + zmin) / sn;
                ip += (p >= eps ? g[c] : 0) * p;
                in += (pn >= eps ? g[f + c] : 0) * pn;
            }
            for (int c = 0; c < f; c++) {
                REAL z = LOCAL(fmap_z)(xr, Wh, D, f, c);
                REAL p = EXP(z - zmax) / sp;
                REAL pn = EXP(-z + zmin) / sn;
                REAL gp = p >= eps ? g[c] : 0;
                REAL gn = pn >= eps ? g[f + c] : 0;
                REAL dz = p * (gp - ip) - pn * (gn - in);

                for (int d = 0; d < D; d++) {
                    dW[(size_t)h * (size_t)D * (size_t)f + (size_t)d * (size_t)f + (size_t)c] +=
                        xr[d] * dz;
                }
                if (dx != NULL) {
                    for (int d = 0; d < D; d++) {
                        dx[xoff + (size_t)d] += dz * Wh[(size_t)d * (size_t)f + (size_t)c];
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------- hybrid attention */

/* y_i = (sum_{W(i)} e_ij v_j + sum_{L(i)} l_ij v_j) / (sum e + sum l) with
 * e_ij = sigmoid(theta_h) exp(s_ij - m_i), m_i = max_{W(i)} s_ij and
 * l_ij = fq_i . fk_j.  Window W(i) = [lo, i], linear L(i) = [0, lo). */
LINKAGE void FN(hybrid_fwd)(REAL *y, REAL *mx, REAL *den, const REAL *q, const REAL *k,
                            const REAL *v, const REAL *fq, const REAL *fk, const REAL *theta,
                            const struct lc_attn_shape *s)
{
    const int B = s->B, T = s->T, H = s->H, Hkv = s->Hkv, D = s->D, F = s->F;
    const int rep = H / Hkv;
    const REAL scale = 1 / SQRT((REAL)D);

    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const int g = h / rep;
            const REAL gamma = LOCAL(sigmoid)(theta[h]);

            for (int i = 0; i < T; i++) {
                const REAL *qi = q + LOCAL(at)(b, i, T, H, h, D);
                const REAL *fqi = fq + LOCAL(at)(b, i, T, H, h, F);
                REAL *yi = y + LOCAL(at)(b, i, T, H, h, D);
                const int lo = lc_window_start(i, s->window, s->mode);
                REAL m = 0, z = 0;

                for (int j = lo; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    m = (j == lo || sc > m) ? sc : m;
                }
                for (int d = 0; d < D; d++) {
                    yi[d] = 0;
                }
                for (int j = 0; j <= i; j++) {
                    const REAL *vj = v + LOCAL(at)(b, j, T, Hkv, g, D);
                    REAL w;

                    if (j >= lo) {
                        REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                        w = gamma * EXP(sc - m);
                    } else {
                        w = LOCAL(dot)(fqi, fk + LOCAL(at)(b, j, T, H, h, F), F);
                    }
                    z += w;
                    for (int d = 0; d < D; d++) {
                        yi[d] += w * vj[d];
                    }
                }
                for (int d = 0; d < D; d++) {
                    yi[d] = yi[d] / z;
                }
                if (mx != NULL) {
                    mx[LOCAL(at)(b, i, T, H, h, 1)] = m;
                }
                if (den != NULL) {
                    den[LOCAL(at)(b, i, T, H, h, 1)] = z;
                }
            }
        }
    }
}

static void LOCAL(zero)(REAL *p, size_t n)
{
    if (p != NULL) {
        for (size_t i = 0; i < n; i++) {
            p[i] = 0;
        }
    }
}

static void LOCAL(axpy)(REAL *y, REAL a, const REAL *x, int n)
{
    for (int i = 0; i < n; i++) {
        y[i] += a * x[i];
    }
}

/* With omega_ij the unnormalized weight (e_ij or l_ij), Z_i = den_i,
 * g_i = dL/dy_i, delta_i = g_i . y_i:
 *   G_ij = dL/domega_ij = (g_i . v_j - delta_i) / Z_i
 *   dv_j += omega_ij / Z_i g_i
 *   linear:  dfq_i += G_ij fk_j, dfk_j += G_ij fq_i
 *   window:  ds_ij = G_ij e_ij plus the max path dL/dm_i = -sum_W G_ij e_ij
 *            split evenly among the keys where s_ij equals the row max;
 *            dq_i += ds_ij k_j / sqrt(D), dk_j += ds_ij q_i / sqrt(D)
 *   dtheta_h += sum G_ij e_ij (1 - gamma)   (de/dtheta = e (1 - gamma)) */
LINKAGE void FN(hybrid_bwd)(REAL *dq, REAL *dk, REAL *dv, REAL *dfq, REAL *dfk,
                            REAL *dtheta, const REAL *dy, const REAL *y, const REAL *mx,
                            const REAL *den, const REAL *q, const REAL *k, const REAL *v,
                            const REAL *fq, const REAL *fk, const REAL *theta,
                            const struct lc_attn_shape *s)
{
    const int B = s->B, T = s->T, H = s->H, Hkv = s->Hkv, D = s->D, F = s->F;
    const int rep = H / Hkv;
    const REAL scale = 1 / SQRT((REAL)D);
    const size_t ntok = (size_t)B * (size_t)T;

    LOCAL(zero)(dq, ntok * (size_t)H * (size_t)D);
    LOCAL(zero)(dk, ntok * (size_t)Hkv * (size_t)D);
    LOCAL(zero)(dv, ntok * (size_t)Hkv * (size_t)D);
    LOCAL(zero)(dfq, ntok * (size_t)H * (size_t)F);
    LOCAL(zero)(dfk, ntok * (size_t)H * (size_t)F);

    for (int h = 0; h < H; h++) {
        const int g = h / rep;
        const REAL gamma = LOCAL(sigmoid)(theta[h]);
        REAL acc_theta = 0;

        for (int b = 0; b < B; b++) {
            for (int i = 0; i < T; i++) {
                const REAL *qi = q + LOCAL(at)(b, i, T, H, h, D);
                const REAL *fqi = fq + LOCAL(at)(b, i, T, H, h, F);
                const REAL *gi = dy + LOCAL(at)(b, i, T, H, h, D);
                const REAL delta = LOCAL(dot)(gi, y + LOCAL(at)(b, i, T, H, h, D), D);
                const REAL Z = den[LOCAL(at)(b, i, T, H, h, 1)];
                const REAL m = mx[LOCAL(at)(b, i, T, H, h, 1)];
                const int lo = lc_window_start(i, s->window, s->mode);
                REAL smax = 0, sum_ge = 0, dm = 0;
                int nties = 0;

                /* the max path: dL/dm_i, and the keys that hold the max */
                for (int j = lo; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    smax = (j == lo || sc > smax) ? sc : smax;
                }
                for (int j = lo; j <= i; j++) {
                    const REAL *kj = k + LOCAL(at)(b, j, T, Hkv, g, D);
                    const REAL *vj = v + LOCAL(at)(b, j, T, Hkv, g, D);
                    REAL sc = LOCAL(score)(qi, kj, D, scale);
                    REAL e = gamma * EXP(sc - m);
                    REAL G = (LOCAL(dot)(gi, vj, D) - delta) / Z;

                    sum_ge += G * e;
                    nties += sc == smax;
                }
                dm = -sum_ge / (REAL)nties;
                acc_theta += sum_ge;

                for (int j = 0; j <= i; j++) {
                    const REAL *kj = k + LOCAL(at)(b, j, T, Hkv, g, D);
                    const REAL *vj = v + LOCAL(at)(b, j, T, Hkv, g, D);
                    const REAL G = (LOCAL(dot)(gi, vj, D) - delta) / Z;
                    REAL w;

                    if (j >= lo) {
                        REAL sc = LOCAL(score)(qi, kj, D, scale);
                        REAL e = gamma * EXP(sc - m);
                        REAL ds = G * e + (sc == smax ? dm : 0);

                        w = e;
                        if (dq != NULL) {
                            LOCAL(axpy)(dq + LOCAL(at)(b, i, T, H, h, D), ds * scale, kj, D);
                        }
                        if (dk != NULL) {
                            LOCAL(axpy)(dk + LOCAL(at)(b, j, T, Hkv, g, D), ds * scale, qi, D);
                        }
                    } else {
                        const REAL *fkj = fk + LOCAL(at)(b, j, T, H, h, F);

                        w = LOCAL(dot)(fqi, fkj, F);
                        if (dfq != NULL) {
                            LOCAL(axpy)(dfq + LOCAL(at)(b, i, T, H, h, F), G, fkj, F);
                        }
                        if (dfk != NULL) {
                            LOCAL(axpy)(dfk + LOCAL(at)(b, j, T, H, h, F), G, fqi, F);
                        }
                    }
                    if (dv != NULL) {
                        LOCAL(axpy)(dv + LOCAL(at)(b, j, T, Hkv, g, D), w / Z, gi, D);
                    }
                }
            }
        }
        if (dtheta != NULL) {
            dtheta[h] += acc_theta * (1 - gamma);
        }
    }
}

/* Attention-weight cross-entropy (method doc 4.1).  Row i: the teacher
 * weights A_true = causal softmax of s_ij over j <= i, the student weights
 * A_pred = omega_ij / Z_i (0 for j > i), and
 *   row_loss = -sum_j A_true log(max(A_pred, c)),   c = 1e-12.
 * The gradient is PyTorch's CrossEntropyLoss with probability targets on
 * the logits x_j = log(max(A_pred, c)) over all T keys of the row:
 *   dL/dx_j = max(A_pred, c) / sum_k max(A_pred, c) - A_true
 * then dL/dA_j = dL/dx_j / A_j where A_j >= c (0 where clamped), and
 * through A = omega / Z: dL/domega_j = (dL/dA_j - sum_k dL/dA_k A_k) / Z.
 * Because the A_pred of a row sum to 1, this equals d(row_loss) up to
 * terms of the size of the clamp (1e-12). */
LINKAGE void FN(hybrid_xent)(REAL *row_loss, REAL *dfq, REAL *dfk, REAL *dtheta,
                             REAL grad_scale, const REAL *q, const REAL *k, const REAL *fq,
                             const REAL *fk, const REAL *theta, const struct lc_attn_shape *s)
{
    const int B = s->B, T = s->T, H = s->H, Hkv = s->Hkv, D = s->D, F = s->F;
    const int rep = H / Hkv;
    const REAL scale = 1 / SQRT((REAL)D);
    const REAL clampv = XENT_CLAMP;

    for (int h = 0; h < H; h++) {
        const int g = h / rep;
        const REAL gamma = LOCAL(sigmoid)(theta[h]);
        REAL acc_theta = 0;

        for (int b = 0; b < B; b++) {
            for (int i = 0; i < T; i++) {
                const REAL *qi = q + LOCAL(at)(b, i, T, H, h, D);
                const REAL *fqi = fq + LOCAL(at)(b, i, T, H, h, F);
                const int lo = lc_window_start(i, s->window, s->mode);
                REAL tmax = 0, tsum = 0, m = 0, Z = 0, loss = 0, rowsum, sum_da = 0;

                /* teacher normalizer over all causal keys, student max over the window */
                for (int j = 0; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    tmax = (j == 0 || sc > tmax) ? sc : tmax;
                    if (j >= lo) {
                        m = (j == lo || sc > m) ? sc : m;
                    }
                }
                for (int j = 0; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    tsum += EXP(sc - tmax);
                    Z += j >= lo ? gamma * EXP(sc - m)
                                 : LOCAL(dot)(fqi, fk + LOCAL(at)(b, j, T, H, h, F), F);
                }
                /* the keys j > i have A_pred = 0, clamped to c */
                rowsum = (REAL)(T - 1 - i) * clampv;
                for (int j = 0; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    REAL w = j >= lo ? gamma * EXP(sc - m)
                                     : LOCAL(dot)(fqi, fk + LOCAL(at)(b, j, T, H, h, F), F);
                    REAL a = w / Z;
                    REAL atrue = EXP(sc - tmax) / tsum;
                    REAL ac = a < clampv ? clampv : a;

                    loss -= atrue * LOG(ac);
                    rowsum += ac;
                }
                for (int j = 0; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    REAL w = j >= lo ? gamma * EXP(sc - m)
                                     : LOCAL(dot)(fqi, fk + LOCAL(at)(b, j, T, H, h, F), F);
                    REAL a = w / Z;
                    REAL atrue = EXP(sc - tmax) / tsum;

                    if (a >= clampv) {
                        sum_da += a / rowsum - atrue;
                    }
                }
                for (int j = 0; j <= i; j++) {
                    REAL sc = LOCAL(score)(qi, k + LOCAL(at)(b, j, T, Hkv, g, D), D, scale);
                    const REAL *fkj = fk + LOCAL(at)(b, j, T, H, h, F);
                    REAL w = j >= lo ? gamma * EXP(sc - m) : LOCAL(dot)(fqi, fkj, F);
                    REAL a = w / Z;
                    REAL atrue = EXP(sc - tmax) / tsum;
                    REAL da = a >= clampv ? (a / rowsum - atrue) / a : 0;
                    REAL G = grad_scale * (da - sum_da) / Z;

                    if (j >= lo) {
                        acc_theta += G * w;
                    } else {
                        if (dfq != NULL) {
                            LOCAL(axpy)(dfq + LOCAL(at)(b, i, T, H, h, F), G, fkj, F);
                        }
                        if (dfk != NULL) {
                            LOCAL(axpy)(dfk + LOCAL(at)(b, j, T, H, h, F), G, fqi, F);
                        }
                    }
                }
                if (row_loss != NULL) {
                    row_loss[LOCAL(at)(b, i, T, H, h, 1)] = loss;
                }
            }
        }
        if (dtheta != NULL) {
            dtheta[h] += acc_theta * (1 - gamma);
        }
    }
}

/* ------------------------------------------------------------- decoding */

LINKAGE void FN(hybrid_decode)(REAL *y, const REAL *q, const REAL *fq, const REAL *kc,
                               const REAL *vc, int ncache, const REAL *S, const REAL *z,
                               const REAL *theta, int H, int Hkv, int D, int F)
{
    const int rep = H / Hkv;
    const REAL scale = 1 / SQRT((REAL)D);

    for (int h = 0; h < H; h++) {
        const int g = h / rep;
        const REAL gamma = LOCAL(sigmoid)(theta[h]);
        const REAL *qh = q + (size_t)h * (size_t)D;
        const REAL *fqh = fq + (size_t)h * (size_t)F;
        const REAL *Sh = S + (size_t)h * (size_t)F * (size_t)D;
        REAL *yh = y + (size_t)h * (size_t)D;
        REAL m = 0, den;

        for (int c = 0; c < ncache; c++) {
            REAL sc = LOCAL(score)(qh, kc + ((size_t)c * (size_t)Hkv + (size_t)g) * (size_t)D,
                                   D, scale);
            m = (c == 0 || sc > m) ? sc : m;
        }
        /* linear part: fq^T S and fq . z */
        den = LOCAL(dot)(fqh, z + (size_t)h * (size_t)F, F);
        for (int d = 0; d < D; d++) {
            REAL acc = 0;
            for (int e = 0; e < F; e++) {
                acc += fqh[e] * Sh[(size_t)e * (size_t)D + (size_t)d];
            }
            yh[d] = acc;
        }
        for (int c = 0; c < ncache; c++) {
            const size_t off = ((size_t)c * (size_t)Hkv + (size_t)g) * (size_t)D;
            REAL w = gamma * EXP(LOCAL(score)(qh, kc + off, D, scale) - m);

            den += w;
            LOCAL(axpy)(yh, w, vc + off, D);
        }
        for (int d = 0; d < D; d++) {
            yh[d] = yh[d] / den;
        }
    }
}

LINKAGE void FN(hybrid_add_state)(REAL *y, const REAL *den, const REAL *fq, const REAL *S,
                                  const REAL *z, int n, int H, int D, int F)
{
    for (int r = 0; r < n; r++) {
        for (int h = 0; h < H; h++) {
            const size_t rh = (size_t)r * (size_t)H + (size_t)h;
            const REAL *fqh = fq + rh * (size_t)F;
            const REAL *Sh = S + (size_t)h * (size_t)F * (size_t)D;
            const REAL d0 = den[rh];
            const REAL d1 = d0 + LOCAL(dot)(fqh, z + (size_t)h * (size_t)F, F);
            REAL *yh = y + rh * (size_t)D;

            for (int d = 0; d < D; d++) {
                REAL acc = yh[d] * d0;
                for (int e = 0; e < F; e++) {
                    acc += fqh[e] * Sh[(size_t)e * (size_t)D + (size_t)d];
                }
                yh[d] = acc / d1;
            }
        }
    }
}

LINKAGE void FN(linstate_add)(REAL *S, REAL *z, const REAL *fk, const REAL *v, int n, int H,
                              int Hkv, int D, int F)
{
    const int rep = H / Hkv;

    for (int h = 0; h < H; h++) {
        REAL *Sh = S + (size_t)h * (size_t)F * (size_t)D;
        REAL *zh = z + (size_t)h * (size_t)F;

        for (int r = 0; r < n; r++) {
            const REAL *fkr = fk + ((size_t)r * (size_t)H + (size_t)h) * (size_t)F;
            const REAL *vr = v + ((size_t)r * (size_t)Hkv + (size_t)(h / rep)) * (size_t)D;

            for (int e = 0; e < F; e++) {
                LOCAL(axpy)(Sh + (size_t)e * (size_t)D, fkr[e], vr, D);
                zh[e] += fkr[e];
            }
        }
    }
}
