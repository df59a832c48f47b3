/* The "ref" backend: host memory and the reference kernels. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/ref/ref.h"
#include "core/util.h"

/* Large buffers start on a huge-page boundary and ask for transparent
 * huge pages, which many systems give only on request: the attention
 * kernels read a head's rows of a token-major tensor (16 KiB apart at
 * 8B sizes), each in a 4 KiB page of its own, and a TLB miss per row
 * costs 5-10% of the hybrid attention's time there.  LC_HUGE_PAGES=0
 * keeps the system's default pages. */
#define LC_HUGE_PAGE ((size_t)2 << 20)
#define LC_HUGE_MIN ((size_t)8 << 20)

static int huge_pages_wanted(void)
{
    const char *v = getenv("LC_HUGE_PAGES");
    return v == NULL || strcmp(v, "0") != 0;
}

/* Allocations are 64-byte aligned (AVX-512 loads) and zero-filled. */
void *lc_host_alloc(struct lc_backend *be, size_t bytes)
{
    void *p = NULL;
    size_t rounded, align;

    (void)be;
    if (!lc_add_size(bytes, 63, &rounded)) {
        return NULL;
    }
    rounded &= ~(size_t)63;
    if (rounded == 0) {
        rounded = 64;
    }
    align = rounded >= LC_HUGE_MIN && huge_pages_wanted() ? LC_HUGE_PAGE : 64;
    if (posix_memalign(&p, align, rounded) != 0) {
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    /* a hint: where it is refused, the buffer keeps small pages */
    if (align == LC_HUGE_PAGE) {
        (void)madvise(p, rounded & ~(LC_HUGE_PAGE - 1), MADV_HUGEPAGE);
    }
#endif
    memset(p, 0, rounded);
    return p;
}

void lc_host_release(struct lc_backend *be, void *p)
{
    (void)be;
    free(p);
}

void lc_host_copy(struct lc_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes > 0 && dst != src) {
        memmove(dst, src, bytes);
    }
}

void lc_host_zero(struct lc_backend *be, void *dst, size_t bytes)
{
    (void)be;
    if (bytes > 0) {
        memset(dst, 0, bytes);
    }
}

lc_status lc_host_sync(struct lc_backend *be, struct lc_error *err)
{
    (void)be;
    (void)err;
    return LC_OK;
}

static lc_status ref_init(struct lc_backend *be, struct lc_error *err)
{
    (void)err;
    be->ctx = NULL;
    return LC_OK;
}

static void ref_fini(struct lc_backend *be)
{
    (void)be;
}

static const char *ref_describe(struct lc_backend *be)
{
    strcpy(be->description, "ref: plain C reference kernels, 1 thread");
    return be->description;
}

const struct lc_backend_ops lc_ref_ops = {
    .name = "ref",
    .abi = LC_BACKEND_ABI,
    .host_memory = 1,
    .init = ref_init,
    .fini = ref_fini,
    .describe = ref_describe,

    .alloc = lc_host_alloc,
    .release = lc_host_release,
    .upload = lc_host_copy,
    .download = lc_host_copy,
    .copy = lc_host_copy,
    .zero = lc_host_zero,
    .sync = lc_host_sync,

    /* dense algebra, embedding, norms, RoPE, SwiGLU, softmax attention,
     * losses, optimizer */
    .gemm = lc_ref_gemm,
    .linear_fwd = lc_ref_linear_fwd,
    .linear_bwd = lc_ref_linear_bwd,
    .add = lc_ref_add,
    .dropout = lc_ref_dropout,
    .embedding_fwd = lc_ref_embedding_fwd,
    .embedding_bwd = lc_ref_embedding_bwd,
    .rmsnorm_fwd = lc_ref_rmsnorm_fwd,
    .rmsnorm_bwd = lc_ref_rmsnorm_bwd,
    .rope_fwd = lc_ref_rope_fwd,
    .rope_bwd = lc_ref_rope_bwd,
    .swiglu_fwd = lc_ref_swiglu_fwd,
    .swiglu_bwd = lc_ref_swiglu_bwd,
    .attn_fwd = lc_ref_attn_fwd,
    .mse_fwd_bwd = lc_ref_mse_fwd_bwd,
    .xent_fwd_bwd = lc_ref_xent_fwd_bwd,
    .adamw = lc_ref_adamw,

    /* feature maps, hybrid attention, decoding */
    .fmap_fwd = lc_ref_fmap_fwd,
    .fmap_bwd = lc_ref_fmap_bwd,
    .hybrid_fwd = lc_ref_hybrid_fwd,
    .hybrid_bwd = lc_ref_hybrid_bwd,
    .hybrid_xent = lc_ref_hybrid_xent,
    .hybrid_decode = lc_ref_hybrid_decode,
    .linstate_add = lc_ref_linstate_add,
    .hybrid_add_state = lc_ref_hybrid_add_state,
};
