/*
 * key_type.h: the parameters of a top-k template header (*_tmpl.h) for one element type.
 * A file instantiates a template by defining TOPK_DTYPE (TP_FLOAT16, TP_BFLOAT16, TP_FLOAT32 or
 * TP_FLOAT64) and including it; the template includes this header first and key_type_end.h
 * last, which #undefs everything.
 *
 *   BITS_T    the stored bits of one element (uint16_t, uint32_t, uint64_t)
 *   KEY_T     the key type: its magnitude bits (the 16-bit types' held in 32 bits)
 *   KEY_ABS   the sign-clearing mask; KEY_INF: Inf's key (anything above is NaN)
 *   SUF       the name suffix (f16, bf16, f32, f64); DTYPE_CODE: the dtype code of tensorpress.h
 * float16 and bfloat16 share storage, key width and the hand-written 16-bit passes; they differ
 * in Inf's key (0x7c00, 0x7f80) and so in which keys are NaN.
 * No include guard: included once per instantiation.
 */
#if TOPK_DTYPE == TP_FLOAT16
#define SUF f16
#define BITS_T uint16_t
#define KEY_T uint32_t
#define KEY_ABS KEYMASK_f16
#define KEY_INF INFKEY_f16
#define DTYPE_CODE TP_FLOAT16
#elif TOPK_DTYPE == TP_BFLOAT16
#define SUF bf16
#define BITS_T uint16_t
#define KEY_T uint32_t
#define KEY_ABS KEYMASK_bf16
#define KEY_INF INFKEY_bf16
#define DTYPE_CODE TP_BFLOAT16
#elif TOPK_DTYPE == TP_FLOAT32
#define SUF f32
#define BITS_T uint32_t
#define KEY_T uint32_t
#define KEY_ABS KEYMASK_f32
#define KEY_INF INFKEY_f32
#define DTYPE_CODE TP_FLOAT32
#elif TOPK_DTYPE == TP_FLOAT64
#define SUF f64
#define BITS_T uint64_t
#define KEY_T uint64_t
#define KEY_ABS KEYMASK_f64
#define KEY_INF INFKEY_f64
#define DTYPE_CODE TP_FLOAT64
#else
#error "define TOPK_DTYPE as TP_FLOAT16, TP_BFLOAT16, TP_FLOAT32 or TP_FLOAT64 before including a top-k template header"
#endif
