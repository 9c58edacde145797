// kiln CUDA prelude, prepended to every kernel family. No system headers:
// NVRTC compiles it without a CUDA toolkit on the include path.
//
// Element types: f32, f64, i64, i32, i16, u8 and bool are the C types; f16 and bf16
// are 16-bit storage structs converted through f32 (half math is computed
// in f32, like PyTorch). Every kernel is `extern "C"` and named
// `<op>_<dtype>`.

#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif

typedef float f32;
typedef double f64;
typedef long long i64;
typedef int i32;
typedef short i16;
typedef unsigned char u8;
struct f16 { unsigned short x; };
struct bf16 { unsigned short x; };

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ unsigned short f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// Num<T>: the type T is computed in (`acc`), and conversions to and from it
// and from/to double (for casts).
template <typename T> struct Num;
template <> struct Num<f32> {
    typedef float acc;
    static __device__ __forceinline__ float to(f32 v) { return v; }
    static __device__ __forceinline__ f32 from(float v) { return v; }
    static __device__ __forceinline__ double to_f64(f32 v) { return (double)v; }
    static __device__ __forceinline__ f32 from_f64(double v) { return (float)v; }
};
template <> struct Num<f64> {
    typedef double acc;
    static __device__ __forceinline__ double to(f64 v) { return v; }
    static __device__ __forceinline__ f64 from(double v) { return v; }
    static __device__ __forceinline__ double to_f64(f64 v) { return v; }
    static __device__ __forceinline__ f64 from_f64(double v) { return v; }
};
// The 16-bit floats compute in f32, converting with TO / FROM.
#define KILN_NUM_HALF(T, TO, FROM)                                                      \
    template <> struct Num<T> {                                                         \
        typedef float acc;                                                              \
        static __device__ __forceinline__ float to(T v) { return TO(v.x); }              \
        static __device__ __forceinline__ T from(float v) { T r; r.x = FROM(v); return r; } \
        static __device__ __forceinline__ double to_f64(T v) { return (double)TO(v.x); } \
        static __device__ __forceinline__ T from_f64(double v) { return from((float)v); } \
    };
KILN_NUM_HALF(f16, f16_to_f32, f32_to_f16)
KILN_NUM_HALF(bf16, bf16_to_f32, f32_to_bf16)
template <> struct Num<i64> {
    typedef i64 acc;
    static __device__ __forceinline__ i64 to(i64 v) { return v; }
    static __device__ __forceinline__ i64 from(i64 v) { return v; }
    static __device__ __forceinline__ double to_f64(i64 v) { return (double)v; }
    // Saturating, NaN -> 0, like Rust's `as`.
    static __device__ __forceinline__ i64 from_f64(double v) {
        if (v != v) return 0;
        if (v >= 9223372036854775807.0) return 9223372036854775807LL;
        if (v <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
        return (i64)v;
    }
};
// Narrow signed integers: computed in i64, stored wrapping (like a C cast
// and PyTorch's integer arithmetic); from double saturating, NaN -> 0, like
// Rust's `as`.
#define KILN_NUM_INT(T, U, MAX)                                                         \
    template <> struct Num<T> {                                                         \
        typedef i64 acc;                                                                \
        static __device__ __forceinline__ i64 to(T v) { return (i64)v; }                \
        static __device__ __forceinline__ T from(i64 v) { return (T)(U)(unsigned long long)v; } \
        static __device__ __forceinline__ double to_f64(T v) { return (double)v; }      \
        static __device__ __forceinline__ T from_f64(double v) {                        \
            if (v != v) return 0;                                                       \
            if (v >= (double)MAX) return (T)MAX;                                        \
            if (v <= -(double)MAX - 1.0) return (T)(-MAX - 1);                          \
            return (T)v;                                                                \
        }                                                                               \
    };
KILN_NUM_INT(i32, unsigned int, 2147483647)
KILN_NUM_INT(i16, unsigned short, 32767)
template <> struct Num<u8> {
    typedef i64 acc;
    static __device__ __forceinline__ i64 to(u8 v) { return (i64)v; }
    static __device__ __forceinline__ u8 from(i64 v) { return (u8)(unsigned long long)v; }
    static __device__ __forceinline__ double to_f64(u8 v) { return (double)v; }
    static __device__ __forceinline__ u8 from_f64(double v) {
        if (v != v || v <= 0.0) return 0;
        if (v >= 255.0) return 255;
        return (u8)v;
    }
};
template <> struct Num<bool> {
    typedef i64 acc;
    static __device__ __forceinline__ i64 to(bool v) { return v ? 1 : 0; }
    static __device__ __forceinline__ bool from(i64 v) { return v != 0; }
    static __device__ __forceinline__ double to_f64(bool v) { return v ? 1.0 : 0.0; }
    static __device__ __forceinline__ bool from_f64(double v) { return v != 0.0; }
};

// A strided view of rank <= 8 (shape, strides and offset in elements), the
// same struct as the host's `Strided` (#[repr(C)], 144 bytes).
#define KILN_MAX_DIMS 8
struct Strided {
    i64 shape[KILN_MAX_DIMS];
    i64 strides[KILN_MAX_DIMS];
    i64 offset;
    i64 rank;
};

// Storage offset of the i-th element (row-major) of the view.
__device__ __forceinline__ i64 strided_offset(const Strided& l, i64 i) {
    if (l.rank <= 1) return l.offset + (l.rank == 1 ? i * l.strides[0] : 0);
    i64 off = l.offset;
#pragma unroll
    for (int d = KILN_MAX_DIMS - 1; d >= 0; --d) {
        if (d < l.rank) {
            i64 s = l.shape[d];
            off += (i % s) * l.strides[d];
            i /= s;
        }
    }
    return off;
}

#define KILN_GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// Block-wide sum and max (blockDim.x a multiple of 32, at most 1024). The
// result is returned to every thread.
template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
template <typename A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        A w = __shfl_xor_sync(0xffffffffu, v, o);
        v = (w > v || w != w) ? w : v;
    }
    return v;
}
struct WarpSum {
    template <typename A> static __device__ __forceinline__ A reduce(A v) { return warp_sum(v); }
};
struct WarpMax {
    template <typename A> static __device__ __forceinline__ A reduce(A v) { return warp_max(v); }
};
// Reduces every thread's v with the warp reduction W: within each warp,
// then across the warps' results; `identity` stands in for missing warps.
template <typename W, typename A> __device__ A block_reduce(A v, A identity) {
    __shared__ A partial[32];
    __syncthreads();
    v = W::reduce(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    int nwarps = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < nwarps) ? partial[threadIdx.x] : identity;
    if (warp == 0) v = W::reduce(v);
    if (threadIdx.x == 0) partial[0] = v;
    __syncthreads();
    return partial[0];
}
template <typename A> __device__ A block_sum(A v) { return block_reduce<WarpSum>(v, (A)0); }
template <typename A> __device__ A block_max(A v, A lowest) {
    return block_reduce<WarpMax>(v, lowest);
}

// The block-wide max of x[0], x[stride], ..., x[(len - 1) * stride] (NaN
// wins, like PyTorch), for a block-per-row kernel.
template <typename A, typename T> __device__ A block_row_max(const T* x, i64 len, i64 stride) {
    A m = -(A)INFINITY;
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
        A v = Num<T>::to(x[j * stride]);
        m = (v > m || v != v) ? v : m;
    }
    return block_max(m, -(A)INFINITY);
}

// Atomic add for every float type (16-bit types through a CAS on the
// enclosing aligned 32-bit word).
__device__ __forceinline__ void atomic_add(f32* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(f64* p, double v) { atomicAdd(p, v); }
template <typename H, unsigned short (*ENC)(float), float (*DEC)(unsigned short)>
__device__ __forceinline__ void atomic_add_16(H* p, float v) {
    unsigned int* word = (unsigned int*)((size_t)p & ~(size_t)3);
    bool high = ((size_t)p & 2) != 0;
    unsigned int old = *word, assumed;
    do {
        assumed = old;
        unsigned short cur = high ? (unsigned short)(assumed >> 16) : (unsigned short)(assumed & 0xffffu);
        unsigned short nxt = ENC(DEC(cur) + v);
        unsigned int repl = high ? ((assumed & 0x0000ffffu) | ((unsigned int)nxt << 16))
                                 : ((assumed & 0xffff0000u) | (unsigned int)nxt);
        old = atomicCAS(word, assumed, repl);
    } while (assumed != old);
}
__device__ __forceinline__ void atomic_add(f16* p, float v) { atomic_add_16<f16, f32_to_f16, f16_to_f32>(p, v); }
__device__ __forceinline__ void atomic_add(bf16* p, float v) { atomic_add_16<bf16, f32_to_bf16, bf16_to_f32>(p, v); }

#define KILN_FLOAT_TYPES(M) M(f32) M(f64) M(f16) M(bf16)
#define KILN_INT_TYPES(M) M(i64) M(i32) M(i16) M(u8)
#define KILN_ALL_TYPES(M) M(f32) M(f64) M(f16) M(bf16) KILN_INT_TYPES(M) M(bool)
