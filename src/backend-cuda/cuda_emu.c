/*
 * The CPU emulation of the CUDA runtime and cuBLAS entries the cuda
 * backend uses (see cuda_emu.h): host memory, synchronous "streams", a
 * plain column-major SGEMM that rejects what cuBLAS rejects, and kernel
 * launches whose threads run as cooperative coroutines.  Test code only:
 * linked into tests/test_cuda_emu, never into the library.
 *
 * The threads of a block are coroutines on stacks of their own (switched
 * by a few instructions on x86-64, by ucontext's swapcontext elsewhere).
 * A thread runs until it waits (at __syncthreads or a warp collective) or
 * exits; then a runnable thread of the block, picked pseudo-randomly
 * (next_runnable), runs.  Waiting threads are released when the last
 * thread their barrier waits for arrives.  With no runnable thread left while some
 * still wait, the barriers can never complete: that is reported (which
 * thread waits where) and the program aborts.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "backend-cuda/cuda_kernels.h"

#if defined(__SANITIZE_ADDRESS__)
#define LC_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LC_EMU_ASAN 1
#endif
#endif
#ifdef LC_EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct lc_emu_dim lc_emu_thread_idx, lc_emu_block_idx, lc_emu_block_dim, lc_emu_grid_dim;
long long lc_emu_launches;
long long lc_emu_switches;

static cudaError_t last_error = cudaSuccess;
static int stream_token;
static int handle_token;

void lc_emu_launch_failed(cudaError_t e)
{
    if (last_error == cudaSuccess) {
        last_error = e;
    }
}

void lc_emu_fatal(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cuda emulation, block %u thread %u: ", lc_emu_block_idx.x,
            lc_emu_thread_idx.x);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

/* ------------------------------------------------- threads of a block */

/* generous: kernels keep register arrays on the stack, sanitizers add
 * red zones; mapped lazily, so untouched pages cost nothing */
#define STACK_BYTES ((size_t)256 << 10)
#define MAX_THREADS 1024
/* the dynamic shared memory a kernel may have without opting in, and
 * the most it may opt in to (sm_90) */
#define SMEM_DEFAULT ((size_t)48 << 10)
#define SMEM_MAX ((size_t)227 << 10)

enum thread_state { RUNNABLE, WAIT_BLOCK, WAIT_WARP, DONE };

static void thread_main(void);

/* (-DLC_EMU_UCONTEXT tests the portable switch on x86-64) */
#if defined(__x86_64__) && defined(__ELF__) && !defined(LC_EMU_UCONTEXT)
/* x86-64 System V: lc_emu_ctx_switch pushes the callee-saved registers on
 * the stack it leaves, stores the stack pointer in *save_sp, switches to
 * load_sp and pops the registers saved there (no system call, unlike
 * swapcontext, which also switches the signal mask: the threads here
 * share one).  The floating-point control state is shared too. */
struct emu_ctx {
    void *sp;
};

void lc_emu_ctx_switch(void **save_sp, void *load_sp);
__asm__(".text\n"
        ".globl lc_emu_ctx_switch\n"
        ".hidden lc_emu_ctx_switch\n"
        ".type lc_emu_ctx_switch, @function\n"
        ".p2align 4\n"
        "lc_emu_ctx_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size lc_emu_ctx_switch, .-lc_emu_ctx_switch\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");

/* A fresh context: its first switch "returns" into thread_main with the
 * stack aligned as after a call (thread_main never returns). */
static void ctx_start(struct emu_ctx *c, void *stack, size_t size)
{
    void **sp = (void **)(((uintptr_t)stack + size) & ~(uintptr_t)15);
    void (*entry)(void) = thread_main;

    *--sp = NULL; /* thread_main's return address: never used */
    memcpy(--sp, &entry, sizeof(entry));
    for (int i = 0; i < 6; i++) {
        *--sp = NULL; /* rbp, rbx, r12-r15 */
    }
    c->sp = sp;
}

static void ctx_switch(struct emu_ctx *from, struct emu_ctx *to)
{
    lc_emu_ctx_switch(&from->sp, to->sp);
}
#else
#include <ucontext.h>

struct emu_ctx {
    ucontext_t uc;
};

static void ctx_start(struct emu_ctx *c, void *stack, size_t size)
{
    if (getcontext(&c->uc) != 0) {
        lc_emu_fatal("getcontext failed");
    }
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL; /* thread_main never returns */
    makecontext(&c->uc, thread_main, 0);
}

static void ctx_switch(struct emu_ctx *from, struct emu_ctx *to)
{
    if (swapcontext(&from->uc, &to->uc) != 0) {
        lc_emu_fatal("swapcontext failed");
    }
}
#endif

struct emu_thread {
    struct emu_ctx ctx;
    void *stack;
    enum thread_state state;
};

/* the collective a warp's lanes are gathering at */
struct emu_warp {
    unsigned arrived;  /* lanes arrived so far (0: none in flight) */
    unsigned mask;     /* the mask they named */
    int kind;
    unsigned phase;    /* slot buffer of the collective in flight */
    unsigned char slots[2][32][LC_EMU_SLOT];
};

static struct {
    struct emu_thread thr[MAX_THREADS];
    struct emu_warp warps[MAX_THREADS / 32];
    unsigned nthreads;
    unsigned live;          /* threads that have not exited */
    unsigned at_barrier;    /* threads waiting at __syncthreads */
    unsigned cur;           /* the running thread */
    struct emu_ctx main_ctx; /* the launcher */
    void (*body)(void *);
    void *arg;
    unsigned char *smem;    /* dynamic shared memory of the block */
    size_t smem_cap;
#ifdef LC_EMU_ASAN
    int from_main;          /* the switch under way leaves the launcher */
    const void *main_bottom;
    size_t main_size;
#endif
} E;

/* dynamic shared memory limits set with cudaFuncSetAttribute */
static struct {
    const void *kernel;
    size_t bytes;
} smem_limits[64];
static int n_smem_limits;

static const char *state_name(enum thread_state s)
{
    switch (s) {
    case RUNNABLE:
        return "runnable";
    case WAIT_BLOCK:
        return "waits at __syncthreads";
    case WAIT_WARP:
        return "waits at a warp collective";
    default:
        return "exited";
    }
}

/* Switches from the running context (save; the launcher's when
 * from_main) to thread next, or to the launcher (next = -1); a thread that
 * has exited switches away for good (dying).  AddressSanitizer is told
 * about the change of stacks. */
static void switch_to(struct emu_ctx *save, int next, int from_main, int dying)
{
    struct emu_ctx *to = next < 0 ? &E.main_ctx : &E.thr[next].ctx;
#ifdef LC_EMU_ASAN
    void *fake = NULL;
    E.from_main = from_main;
    if (next < 0) {
        __sanitizer_start_switch_fiber(dying ? NULL : &fake, E.main_bottom, E.main_size);
    } else {
        __sanitizer_start_switch_fiber(dying ? NULL : &fake, E.thr[next].stack, STACK_BYTES);
    }
#else
    (void)from_main;
    (void)dying;
#endif
    if (next >= 0) {
        E.cur = (unsigned)next;
        lc_emu_thread_idx.x = (unsigned)next;
    }
    lc_emu_switches++;
    ctx_switch(save, to);
#ifdef LC_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* The order threads run in: a thread that waits hands over to a runnable
 * thread picked by a pseudo-random generator of fixed seed (the
 * environment's LC_CUDA_EMU_SEED, a number, replaces it), so that runs are
 * reproducible, while a kernel whose result depends on the order of its
 * threads between barriers (a missing __syncthreads, say) is unlikely to
 * pass by the luck of one fixed order. */
static uint64_t sched_state;

static unsigned sched_pick(unsigned n)
{
    if (sched_state == 0) {
        const char *seed = getenv("LC_CUDA_EMU_SEED");
        sched_state = seed != NULL ? strtoull(seed, NULL, 0) : 0;
        sched_state = sched_state * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
        if (sched_state == 0) {
            sched_state = 1;
        }
    }
    /* xorshift64* */
    sched_state ^= sched_state >> 12;
    sched_state ^= sched_state << 25;
    sched_state ^= sched_state >> 27;
    return (unsigned)((sched_state * 0x2545f4914f6cdd1dull) >> 32) % n;
}

/* a runnable thread, or -1: none */
static int next_runnable(void)
{
    const unsigned start = sched_pick(E.nthreads);

    for (unsigned i = 0; i < E.nthreads; i++) {
        unsigned t = (start + i) % E.nthreads;
        if (E.thr[t].state == RUNNABLE) {
            return (int)t;
        }
    }
    return -1;
}

static void report_deadlock(void)
{
    fprintf(stderr, "cuda emulation, block %u: the threads wait for barriers that cannot "
                    "complete (divergent __syncthreads or warp collectives):\n",
            lc_emu_block_idx.x);
    for (unsigned t = 0; t < E.nthreads; t++) {
        if (E.thr[t].state != DONE) {
            fprintf(stderr, "  thread %u (warp %u, lane %u) %s\n", t, t / 32, t % 32,
                    state_name(E.thr[t].state));
        }
    }
    fflush(stderr);
    abort();
}

/* The running thread waits: run another one until it is released. */
static void wait_released(void)
{
    unsigned self = E.cur;
    int next = next_runnable();

    if (next < 0) {
        report_deadlock();
    }
    switch_to(&E.thr[self].ctx, next, 0, 0);
}

/* __syncthreads waits for the threads that have not exited */
static void release_block_barrier_if_complete(void)
{
    if (E.at_barrier == 0 || E.at_barrier < E.live) {
        return;
    }
    for (unsigned t = 0; t < E.nthreads; t++) {
        if (E.thr[t].state == WAIT_BLOCK) {
            E.thr[t].state = RUNNABLE;
        }
    }
    E.at_barrier = 0;
}

void lc_emu_syncthreads(void)
{
    unsigned self = E.cur;

    E.thr[self].state = WAIT_BLOCK;
    E.at_barrier++;
    release_block_barrier_if_complete();
    if (E.thr[self].state != RUNNABLE) {
        wait_released();
    }
}

const unsigned char (*lc_emu_warp_collective(unsigned mask, int kind, const void *mine,
                                             size_t n))[LC_EMU_SLOT]
{
    unsigned self = E.cur;
    unsigned lane = self % 32;
    unsigned wbase = self - lane;
    struct emu_warp *w = &E.warps[self / 32];
    unsigned phase;

    if (!((mask >> lane) & 1u)) {
        lc_emu_fatal("a warp collective's mask 0x%08x does not name the calling lane %u", mask,
                     lane);
    }
    for (unsigned l = 0; l < 32; l++) {
        if (((mask >> l) & 1u) && (wbase + l >= E.nthreads || E.thr[wbase + l].state == DONE)) {
            lc_emu_fatal("a warp collective's mask 0x%08x names lane %u, which %s", mask, l,
                         wbase + l >= E.nthreads ? "the block does not have" : "has exited");
        }
    }
    if (w->arrived == 0) {
        w->mask = mask;
        w->kind = kind;
    } else if (w->mask != mask || w->kind != kind) {
        lc_emu_fatal("lanes of warp %u meet at different collectives (kind %d, mask 0x%08x; "
                     "kind %d, mask 0x%08x in flight): undefined in CUDA, or two collectives "
                     "with disjoint masks at once, which the emulation does not run",
                     self / 32, kind, mask, w->kind, w->mask);
    }
    if (n > LC_EMU_SLOT) {
        lc_emu_fatal("a warp collective of %zu bytes per lane", n);
    }
    phase = w->phase;
    if (n > 0) {
        memcpy(w->slots[phase][lane], mine, n);
    }
    w->arrived |= 1u << lane;
    if (w->arrived == mask) {
        /* the last lane: release the others; the next collective uses
         * the other buffer, so that this one stays readable until every
         * lane has arrived at the next one */
        for (unsigned l = 0; l < 32; l++) {
            if (((mask >> l) & 1u) && E.thr[wbase + l].state == WAIT_WARP) {
                E.thr[wbase + l].state = RUNNABLE;
            }
        }
        w->arrived = 0;
        w->phase ^= 1u;
    } else {
        E.thr[self].state = WAIT_WARP;
        wait_released();
    }
    return (const unsigned char(*)[LC_EMU_SLOT])w->slots[phase];
}

void *lc_emu_dyn_smem(void)
{
    return E.smem;
}

/* every thread's function: the kernel, then on to the next runnable
 * thread (or back to the launcher); never returns */
static void thread_main(void)
{
    unsigned self;

#ifdef LC_EMU_ASAN
    {
        const void *bottom = NULL;
        size_t size = 0;
        __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
        if (E.from_main) {
            E.main_bottom = bottom;
            E.main_size = size;
        }
    }
#endif
    E.body(E.arg);
    self = E.cur;
    E.thr[self].state = DONE;
    E.live--;
    release_block_barrier_if_complete();
    {
        int next = next_runnable();
        if (next < 0 && E.live > 0) {
            report_deadlock();
        }
        /* this context is not resumed again: its save area is scratch */
        switch_to(&E.thr[self].ctx, next, 0, 1);
    }
}

static size_t smem_limit(const void *kernel)
{
    for (int i = 0; i < n_smem_limits; i++) {
        if (smem_limits[i].kernel == kernel) {
            return smem_limits[i].bytes > SMEM_DEFAULT ? smem_limits[i].bytes : SMEM_DEFAULT;
        }
    }
    return SMEM_DEFAULT;
}

cudaError_t lc_emu_cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value)
{
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) {
        return cudaSuccess; /* the others change nothing the emulation models */
    }
    if (value < 0 || (size_t)value > SMEM_MAX) {
        return cudaErrorInvalidValue;
    }
    for (int i = 0; i < n_smem_limits; i++) {
        if (smem_limits[i].kernel == func) {
            smem_limits[i].bytes = (size_t)value;
            return cudaSuccess;
        }
    }
    if (n_smem_limits == (int)(sizeof(smem_limits) / sizeof(smem_limits[0]))) {
        lc_emu_fatal("more kernels with a shared memory limit than the emulation keeps");
    }
    smem_limits[n_smem_limits].kernel = func;
    smem_limits[n_smem_limits].bytes = (size_t)value;
    n_smem_limits++;
    return cudaSuccess;
}

void lc_emu_run_grid(const void *kernel, unsigned blocks, unsigned threads, size_t dyn_smem,
                     void (*body)(void *), void *arg)
{
    if (blocks < 1 || threads < 1 || threads > MAX_THREADS || blocks > 2147483647u) {
        lc_emu_launch_failed(cudaErrorInvalidConfiguration);
        return;
    }
    if (dyn_smem > smem_limit(kernel)) {
        lc_emu_launch_failed(cudaErrorInvalidValue);
        return;
    }
    if (dyn_smem > E.smem_cap) {
        free(E.smem);
        E.smem = malloc(dyn_smem);
        if (E.smem == NULL) {
            lc_emu_fatal("out of memory for %zu bytes of shared memory", dyn_smem);
        }
        E.smem_cap = dyn_smem;
    }
    for (unsigned t = 0; t < threads; t++) {
        if (E.thr[t].stack == NULL) {
            void *s = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (s == MAP_FAILED) {
                lc_emu_fatal("cannot map a thread stack");
            }
            E.thr[t].stack = s;
        }
    }
    lc_emu_launches++;
    lc_emu_grid_dim = (struct lc_emu_dim){blocks, 1, 1};
    lc_emu_block_dim = (struct lc_emu_dim){threads, 1, 1};
    E.nthreads = threads;
    E.body = body;
    E.arg = arg;
    for (unsigned b = 0; b < blocks; b++) {
        lc_emu_block_idx = (struct lc_emu_dim){b, 0, 0};
        lc_emu_thread_idx = (struct lc_emu_dim){0, 0, 0};
        if (dyn_smem > 0) {
            memset(E.smem, 0xff, dyn_smem); /* NaN: reads of unwritten memory show */
        }
        for (unsigned t = 0; t < threads; t++) {
            ctx_start(&E.thr[t].ctx, E.thr[t].stack, STACK_BYTES);
            E.thr[t].state = RUNNABLE;
        }
        for (unsigned w = 0; w < (threads + 31) / 32; w++) {
            E.warps[w].arrived = 0;
        }
        E.live = threads;
        E.at_barrier = 0;
        /* every thread ends by switching to a runnable one; the last one
         * comes back here */
        switch_to(&E.main_ctx, next_runnable(), 1, 0);
        if (E.live != 0) {
            lc_emu_fatal("a block ended with %u threads still running", E.live);
        }
    }
}

cudaError_t lc_emu_cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t lc_emu_cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    (void)flags;
    *stream = (cudaStream_t)(void *)&stream_token;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaStreamDestroy(cudaStream_t stream)
{
    (void)stream;
    return cudaSuccess;
}

/* fresh memory is NaN bytes: reads of scratch nobody wrote show up */
cudaError_t lc_emu_cudaMalloc(void **p, size_t size)
{
    /* more than a test could want: out of memory, as a device would say */
    if (size > ((size_t)1 << 36)) {
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    *p = malloc(size > 0 ? size : 1);
    if (*p == NULL) {
        return cudaErrorMemoryAllocation;
    }
    memset(*p, 0xff, size);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaFree(void *p)
{
    free(p);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemsetAsync(void *p, int value, size_t count, cudaStream_t stream)
{
    (void)stream;
    memset(p, value, count);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaMemcpyAsync(void *dst, const void *src, size_t count,
                                   enum cudaMemcpyKind kind, cudaStream_t stream)
{
    (void)kind;
    (void)stream;
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t lc_emu_cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

const char *lc_emu_cudaGetErrorString(cudaError_t error)
{
    switch (error) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument (emulated)";
    case cudaErrorMemoryAllocation:
        return "out of memory (emulated)";
    default:
        return "error (emulated)";
    }
}

cudaError_t lc_emu_cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    (void)device;
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "CPU emulation");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->totalGlobalMem = (size_t)1 << 30;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaRuntimeGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t lc_emu_cudaDriverGetVersion(int *v)
{
    *v = CUDART_VERSION;
    return cudaSuccess;
}

/* ------------------------------------------------------------- cuBLAS */

cublasStatus_t lc_emu_cublasCreate(cublasHandle_t *handle)
{
    *handle = (cublasHandle_t)(void *)&handle_token;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasDestroy(cublasHandle_t handle)
{
    (void)handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    (void)handle;
    (void)stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t lc_emu_cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    (void)handle;
    (void)mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *lc_emu_cublasGetStatusString(cublasStatus_t status)
{
    return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS"
                                           : "CUBLAS_STATUS_INVALID_VALUE (emulated)";
}

cublasStatus_t lc_emu_cublasGetProperty(libraryPropertyType type, int *value)
{
    *value = type == MAJOR_VERSION ? 13 : 0;
    return CUBLAS_STATUS_SUCCESS;
}

static int max1(int a)
{
    return a > 1 ? a : 1;
}

/* column-major C = alpha op(A) op(B) + beta C per batch entry; beta = 0
 * ignores C (NaN there does not propagate), as cuBLAS does */
cublasStatus_t lc_emu_cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                                cublasOperation_t transb, int m, int n, int k,
                                                const float *alpha, const float *A, int lda,
                                                long long int strideA, const float *B, int ldb,
                                                long long int strideB, const float *beta,
                                                float *C, int ldc, long long int strideC,
                                                int batchCount)
{
    const int ta = transa != CUBLAS_OP_N;
    const int tb = transb != CUBLAS_OP_N;

    (void)handle;
    if ((transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) ||
        (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) || m < 0 || n < 0 || k < 0 ||
        batchCount < 0 || lda < max1(ta ? k : m) || ldb < max1(tb ? n : k) || ldc < max1(m)) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int bt = 0; bt < batchCount; bt++) {
        const float *a = A + (long long)bt * strideA;
        const float *b = B + (long long)bt * strideB;
        float *c = C + (long long)bt * strideC;

        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                float acc = 0.0f;
                float *cij = c + (size_t)j * ldc + i;
                for (int l = 0; l < k; l++) {
                    float x = ta ? a[(size_t)i * lda + l] : a[(size_t)l * lda + i];
                    float y = tb ? b[(size_t)l * ldb + j] : b[(size_t)j * ldb + l];
                    acc += x * y;
                }
                *cij = *beta == 0.0f ? *alpha * acc : *alpha * acc + *beta * *cij;
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* fp32 operands only; the TF32 compute type is emulated as fp32 */
cublasStatus_t lc_emu_cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA,
    const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    (void)algo;
    if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F ||
        (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32)) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    return lc_emu_cublasSgemmStridedBatched(handle, transa, transb, m, n, k, alpha, A, lda,
                                            strideA, B, ldb, strideB, beta, C, ldc, strideC,
                                            batchCount);
}

/* --------------------------------------------------- the backend's own */

/* The kernels run on any host. */
const char *lc_cuda_probe(void)
{
    return NULL;
}
