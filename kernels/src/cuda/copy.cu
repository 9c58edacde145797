// Data movement: strided copy (the `contiguous` workhorse), strided
// assignment (copy_, cat, narrow backward), dtype casts, fill, where.

// out[i] = x[view(i)], out contiguous.
#define KILN_COPY(T)                                                                    \
    extern "C" __global__ void copy_##T(i64 n, const T* __restrict__ x, Strided lx,    \
                                        T* __restrict__ out) {                         \
        KILN_GRID_LOOP(i, n) { out[i] = x[strided_offset(lx, i)]; }                    \
    }                                                                                   \
    extern "C" __global__ void assign_##T(i64 n, T* dst, Strided ld, const T* src,     \
                                          Strided ls) {                                 \
        KILN_GRID_LOOP(i, n) { dst[strided_offset(ld, i)] = src[strided_offset(ls, i)]; } \
    }                                                                                   \
    extern "C" __global__ void fill_##T(i64 n, T* dst, Strided ld, double v) {         \
        T x = Num<T>::from_f64(v);                                                      \
        KILN_GRID_LOOP(i, n) { dst[strided_offset(ld, i)] = x; }                        \
    }                                                                                   \
    extern "C" __global__ void where_##T(i64 n, const bool* c, Strided lc, const T* a, \
                                         Strided la, const T* b, Strided lb,            \
                                         T* __restrict__ out) {                         \
        KILN_GRID_LOOP(i, n) {                                                          \
            out[i] = c[strided_offset(lc, i)] ? a[strided_offset(la, i)]                \
                                              : b[strided_offset(lb, i)];               \
        }                                                                               \
    }
KILN_ALL_TYPES(KILN_COPY)

// out[i] = D(x[view(i)]), like the CPU's cast: between integer types
// (and bool) through i64, wrapping; otherwise through double.
template <typename T> struct IsInt { static const bool v = false; };
#define KILN_IS_INT(T) template <> struct IsInt<T> { static const bool v = true; };
KILN_INT_TYPES(KILN_IS_INT)
KILN_IS_INT(bool)
template <typename S, typename D> __device__ __forceinline__ D cast_value(S x) {
    if (IsInt<S>::v && IsInt<D>::v) return Num<D>::from((i64)Num<S>::to(x));
    return Num<D>::from_f64(Num<S>::to_f64(x));
}
#define KILN_CAST(S, D)                                                                 \
    extern "C" __global__ void cast_##S##_##D(i64 n, const S* __restrict__ x,          \
                                              Strided lx, D* __restrict__ out) {        \
        KILN_GRID_LOOP(i, n) { out[i] = cast_value<S, D>(x[strided_offset(lx, i)]); }  \
    }
#define KILN_CAST_FROM(S) \
    KILN_CAST(S, f32) KILN_CAST(S, f64) KILN_CAST(S, f16) KILN_CAST(S, bf16) \
    KILN_CAST(S, i64) KILN_CAST(S, i32) KILN_CAST(S, i16) KILN_CAST(S, u8) KILN_CAST(S, bool)
KILN_ALL_TYPES(KILN_CAST_FROM)

// f16 <-> f32 and bf16 <-> f32 directly (no double rounding).
extern "C" __global__ void cast_f32_f16_direct(i64 n, const f32* x, Strided lx, f16* out) {
    KILN_GRID_LOOP(i, n) { out[i] = Num<f16>::from(x[strided_offset(lx, i)]); }
}
extern "C" __global__ void cast_f32_bf16_direct(i64 n, const f32* x, Strided lx, bf16* out) {
    KILN_GRID_LOOP(i, n) { out[i] = Num<bf16>::from(x[strided_offset(lx, i)]); }
}

// out[c, s] += bias[c] for a contiguous [n, C, S] tensor (conv bias).
#define KILN_ADD_BIAS(T)                                                                \
    extern "C" __global__ void add_bias_##T(i64 total, T* out, const T* bias, i64 c,   \
                                            i64 s) {                                    \
        KILN_GRID_LOOP(i, total) {                                                      \
            i64 ch = (i / s) % c;                                                       \
            out[i] = Num<T>::from(Num<T>::to(out[i]) + Num<T>::to(bias[ch]));           \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_ADD_BIAS)
