/* key_type_end.h: the end of a template header's instantiation (see key_type.h). */
#undef SUF
#undef BITS_T
#undef KEY_T
#undef KEY_ABS
#undef KEY_INF
#undef DTYPE_CODE
#undef TOPK_DTYPE
