/* tp_stream.h: the memory-bandwidth probe the benchmarks measure their bound with. */
#ifndef TP_STREAM_H
#define TP_STREAM_H

/* cdef: begin */
/* Reads `n_in` (1..4) float32 streams and writes `n_out` (0..3), each `n` long, every byte once:
 * out_k[i] = sum of the inputs + k. All threads, at the widest vectors this CPU runs
 * (tp_isa_current, as the kernels). The time it takes is what any kernel that
 * moves the same bytes can at best reach on this machine. */
int tp_stream_probe(const float *const *inputs, int32_t n_in, float *const *outputs,
                    int32_t n_out, int64_t n);
/* cdef: end */

#endif /* TP_STREAM_H */
