/* The dense reference kernels in float: the entries of the ref backend. */
#include "config.h"

#include "core/ref/ref.h"

#define REAL float
#define REF_FN(op) lc_ref_##op
#include "core/ref/ref_dense_impl.h"
