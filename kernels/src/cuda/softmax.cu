// Softmax and log-softmax over the middle axis of a contiguous
// [outer, len, inner] tensor; one block per (outer, inner) row. Computed
// in f32 (f64 for f64 tensors).

#define KILN_SOFTMAX(T)                                                                 \
    extern "C" __global__ void softmax_fwd_##T(i64 outer, i64 len, i64 inner,          \
                                               const T* __restrict__ x,                 \
                                               T* __restrict__ y, int log_softmax) {    \
        typedef Num<T>::acc A;                                                          \
        for (i64 row = blockIdx.x; row < outer * inner; row += gridDim.x) {             \
            i64 base = (row / inner) * len * inner + row % inner;                       \
            A m = block_row_max<A>(x + base, len, inner);                               \
            A s = 0;                                                                    \
            for (i64 j = threadIdx.x; j < len; j += blockDim.x)                         \
                s += exp(Num<T>::to(x[base + j * inner]) - m);                          \
            s = block_sum(s);                                                           \
            A lse = m + log(s);                                                         \
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) {                       \
                A v = Num<T>::to(x[base + j * inner]);                                  \
                y[base + j * inner] = Num<T>::from(log_softmax ? v - lse : exp(v - m) / s); \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy) */ \
    extern "C" __global__ void softmax_bwd_##T(i64 outer, i64 len, i64 inner,          \
                                               const T* __restrict__ y,                 \
                                               const T* __restrict__ gy,                \
                                               T* __restrict__ gx, int log_softmax) {   \
        typedef Num<T>::acc A;                                                          \
        for (i64 row = blockIdx.x; row < outer * inner; row += gridDim.x) {             \
            i64 base = (row / inner) * len * inner + row % inner;                       \
            A s = 0;                                                                    \
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) {                       \
                A g = Num<T>::to(gy[base + j * inner]);                                 \
                s += log_softmax ? g : g * Num<T>::to(y[base + j * inner]);             \
            }                                                                           \
            s = block_sum(s);                                                           \
            for (i64 j = threadIdx.x; j < len; j += blockDim.x) {                       \
                A g = Num<T>::to(gy[base + j * inner]);                                 \
                A v = Num<T>::to(y[base + j * inner]);                                  \
                gx[base + j * inner] = Num<T>::from(log_softmax ? g - exp(v) * s : v * (g - s)); \
            }                                                                           \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_SOFTMAX)
