/* The dense reference kernels in double, for the finite-difference tests. */
#include "config.h"

#include "core/ref/ref_f64.h"

#define REAL double
#define REF_FN(op) lc_ref_##op##_f64
#include "core/ref/ref_dense_impl.h"
