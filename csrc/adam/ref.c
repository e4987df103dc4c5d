/*
 * ref.c: the scalar references of the Adam family (csrc/README.md). They are the TP_ISA_SCALAR
 * slot of the dispatch tables; every other variant must give their bits.
 */
#include "adam_internal.h"

#define ADAM_TEMPLATE "ref_tmpl.h"
#include "for_each_type.h"
