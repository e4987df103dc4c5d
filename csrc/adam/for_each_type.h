/*
 * for_each_type.h: instantiates the template header named by ADAM_TEMPLATE once per element
 * type of the Adam family, with T (the element type), SUF (its name suffix) and SQRT (its
 * square root) defined:
 *     #define ADAM_TEMPLATE "body_tmpl.h"
 *     #include "for_each_type.h"
 * No include guard: each inclusion stamps another template.
 */
#define T float
#define SUF f32
#define SQRT sqrtf
#include ADAM_TEMPLATE
#undef T
#undef SUF
#undef SQRT

#define T double
#define SUF f64
#define SQRT sqrt
#include ADAM_TEMPLATE
#undef T
#undef SUF
#undef SQRT

#undef ADAM_TEMPLATE
