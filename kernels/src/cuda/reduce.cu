// Reductions. The host permutes the input view so that its dimensions are
// [kept..., reduced...]; output o reduces elements o*n_red .. (o+1)*n_red
// of that view. `_block` kernels use one block per output (long
// reductions; blockDim.x a power of two <= 1024), `_thread` kernels one
// thread per output (short ones).

// Sums of floats accumulate in double and keep the dtype; sums of integers
// and bools accumulate in and return i64, like the CPU path.
template <typename T> struct SumOut { typedef T type; };
template <typename T> struct SumAcc { typedef double type; };
#define KILN_SUM_TO_I64(T)                                                              \
    template <> struct SumOut<T> { typedef i64 type; };                                 \
    template <> struct SumAcc<T> { typedef i64 type; };
KILN_INT_TYPES(KILN_SUM_TO_I64)
KILN_SUM_TO_I64(bool)
template <typename T> __device__ __forceinline__ typename SumOut<T>::type sum_out(double v) {
    return Num<typename SumOut<T>::type>::from_f64(v);
}
template <typename T> __device__ __forceinline__ typename SumOut<T>::type sum_out(i64 v) {
    return (typename SumOut<T>::type)v;
}
__device__ __forceinline__ double sum_in(double a, f32 v) { return a + (double)v; }
__device__ __forceinline__ double sum_in(double a, f64 v) { return a + v; }
__device__ __forceinline__ double sum_in(double a, f16 v) { return a + (double)Num<f16>::to(v); }
__device__ __forceinline__ double sum_in(double a, bf16 v) { return a + (double)Num<bf16>::to(v); }
__device__ __forceinline__ i64 sum_in(i64 a, i64 v) { return a + v; }
__device__ __forceinline__ i64 sum_in(i64 a, i32 v) { return a + (i64)v; }
__device__ __forceinline__ i64 sum_in(i64 a, i16 v) { return a + (i64)v; }
__device__ __forceinline__ i64 sum_in(i64 a, u8 v) { return a + (i64)v; }
__device__ __forceinline__ i64 sum_in(i64 a, bool v) { return a + (v ? 1 : 0); }

#define KILN_SUM(T)                                                                     \
    extern "C" __global__ void sum_block_##T(i64 n_out, i64 n_red, const T* x,         \
                                             Strided lx, SumOut<T>::type* out,          \
                                             double scale) {                            \
        typedef SumAcc<T>::type A;                                                      \
        for (i64 o = blockIdx.x; o < n_out; o += gridDim.x) {                           \
            A acc = 0;                                                                  \
            for (i64 r = threadIdx.x; r < n_red; r += blockDim.x)                       \
                acc = sum_in(acc, x[strided_offset(lx, o * n_red + r)]);                \
            acc = block_sum(acc);                                                       \
            if (threadIdx.x == 0) out[o] = sum_out<T>((A)(acc * (A)scale));             \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void sum_thread_##T(i64 n_out, i64 n_red, const T* x,        \
                                              Strided lx, SumOut<T>::type* out,         \
                                              double scale) {                           \
        typedef SumAcc<T>::type A;                                                      \
        KILN_GRID_LOOP(o, n_out) {                                                      \
            A acc = 0;                                                                  \
            for (i64 r = 0; r < n_red; ++r)                                             \
                acc = sum_in(acc, x[strided_offset(lx, o * n_red + r)]);                \
            out[o] = sum_out<T>((A)(acc * (A)scale));                                   \
        }                                                                               \
    }
KILN_ALL_TYPES(KILN_SUM)

// max / min with the index (within the reduced extent) of the first
// extreme element; NaN wins, like PyTorch.
template <typename A> __device__ __forceinline__ bool better_max(A v, i64 i, A best, i64 bi) {
    if (best != best) return v != v && i < bi;
    if (v != v) return true;
    return v > best || (v == best && i < bi);
}
template <typename A> __device__ __forceinline__ bool better_min(A v, i64 i, A best, i64 bi) {
    if (best != best) return v != v && i < bi;
    if (v != v) return true;
    return v < best || (v == best && i < bi);
}

#define KILN_ARGREDUCE(NAME, CMP, T)                                                    \
    extern "C" __global__ void NAME##_block_##T(i64 n_out, i64 n_red, const T* x,      \
                                                Strided lx, T* out, i64* idx) {         \
        typedef Num<T>::acc A;                                                          \
        __shared__ A sv[1024];                                                          \
        __shared__ i64 si[1024];                                                        \
        for (i64 o = blockIdx.x; o < n_out; o += gridDim.x) {                           \
            A best = 0;                                                                 \
            i64 bi = -1;                                                                \
            for (i64 r = threadIdx.x; r < n_red; r += blockDim.x) {                     \
                A v = Num<T>::to(x[strided_offset(lx, o * n_red + r)]);                 \
                if (bi < 0 || CMP(v, r, best, bi)) { best = v; bi = r; }                \
            }                                                                           \
            __syncthreads();                                                            \
            sv[threadIdx.x] = best;                                                     \
            si[threadIdx.x] = bi;                                                       \
            __syncthreads();                                                            \
            for (int s = blockDim.x / 2; s > 0; s >>= 1) {                              \
                if (threadIdx.x < s) {                                                  \
                    i64 j = si[threadIdx.x + s];                                        \
                    A v = sv[threadIdx.x + s];                                          \
                    if (j >= 0 && (si[threadIdx.x] < 0 || CMP(v, j, sv[threadIdx.x], si[threadIdx.x]))) { \
                        sv[threadIdx.x] = v;                                            \
                        si[threadIdx.x] = j;                                            \
                    }                                                                   \
                }                                                                       \
                __syncthreads();                                                        \
            }                                                                           \
            if (threadIdx.x == 0) {                                                     \
                out[o] = Num<T>::from(sv[0]);                                           \
                idx[o] = si[0];                                                         \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void NAME##_thread_##T(i64 n_out, i64 n_red, const T* x,     \
                                                 Strided lx, T* out, i64* idx) {        \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(o, n_out) {                                                      \
            A best = Num<T>::to(x[strided_offset(lx, o * n_red)]);                      \
            i64 bi = 0;                                                                 \
            for (i64 r = 1; r < n_red; ++r) {                                           \
                A v = Num<T>::to(x[strided_offset(lx, o * n_red + r)]);                 \
                if (CMP(v, r, best, bi)) { best = v; bi = r; }                          \
            }                                                                           \
            out[o] = Num<T>::from(best);                                                \
            idx[o] = bi;                                                                \
        }                                                                               \
    }
#define KILN_ARGREDUCE_ALL(T) KILN_ARGREDUCE(max, better_max, T) KILN_ARGREDUCE(min, better_min, T)
KILN_ARGREDUCE_ALL(f32)
KILN_ARGREDUCE_ALL(f64)
KILN_ARGREDUCE_ALL(f16)
KILN_ARGREDUCE_ALL(bf16)
KILN_ARGREDUCE_ALL(i64)
KILN_ARGREDUCE_ALL(i32)
KILN_ARGREDUCE_ALL(i16)
KILN_ARGREDUCE_ALL(u8)
