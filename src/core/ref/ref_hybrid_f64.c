/* The reference feature maps, hybrid attention and decoding ops in
 * double, for the finite-difference tests. */
#include "config.h"

#include <math.h>
#include <stddef.h>

#include "core/ref/ref_hybrid_f64.h"

#define REAL double
#define FN(name) lc_ref_##name##_f64
#define LINKAGE
#define LOCAL(name) name##_f64
#define EXP exp
#define LOG log
#define SQRT sqrt
#define XENT_CLAMP 1e-12
#include "core/ref/ref_hybrid_impl.h"
