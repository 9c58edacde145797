// Elementwise unary ops over a strided view into a contiguous output. `p`
// and `q` are the op's scalar parameters (add_scalar's scalar, pow's
// exponent, clamp's bounds, ...), passed as double.

#define KILN_UNARY(NAME, T, EXPR)                                                       \
    extern "C" __global__ void unary_##NAME##_##T(i64 n, const T* __restrict__ x_,     \
                                                  Strided lx, T* __restrict__ out,      \
                                                  double p_, double q_) {               \
        typedef Num<T>::acc A;                                                          \
        A p = (A)p_;                                                                    \
        A q = (A)q_;                                                                    \
        (void)p;                                                                        \
        (void)q;                                                                        \
        KILN_GRID_LOOP(i, n) {                                                          \
            A x = Num<T>::to(x_[strided_offset(lx, i)]);                                \
            out[i] = Num<T>::from((A)(EXPR));                                           \
        }                                                                               \
    }

template <typename A> __device__ __forceinline__ A kiln_sigmoid(A x) {
    return x >= (A)0 ? (A)1 / ((A)1 + exp(-x)) : exp(x) / ((A)1 + exp(x));
}
template <typename A> __device__ __forceinline__ A kiln_softplus(A x, A beta, A threshold) {
    return x * beta > threshold ? x : log1p(exp(x * beta)) / beta;
}
template <typename A> __device__ __forceinline__ A kiln_round_half_even(A x) {
    return rint(x);
}

#define KILN_UNARY_FLOAT(T)                                                             \
    KILN_UNARY(neg, T, -x)                                                              \
    KILN_UNARY(exp, T, exp(x))                                                          \
    KILN_UNARY(log, T, log(x))                                                          \
    KILN_UNARY(log2, T, log2(x))                                                        \
    KILN_UNARY(log1p, T, log1p(x))                                                      \
    KILN_UNARY(expm1, T, expm1(x))                                                      \
    KILN_UNARY(sqrt, T, sqrt(x))                                                        \
    KILN_UNARY(rsqrt, T, (A)1 / sqrt(x))                                                \
    KILN_UNARY(abs, T, fabs(x))                                                         \
    KILN_UNARY(sign, T, (A)((x > (A)0) - (x < (A)0)))                                   \
    KILN_UNARY(floor, T, floor(x))                                                      \
    KILN_UNARY(ceil, T, ceil(x))                                                        \
    KILN_UNARY(round, T, kiln_round_half_even(x))                                       \
    KILN_UNARY(trunc, T, trunc(x))                                                      \
    KILN_UNARY(sin, T, sin(x))                                                          \
    KILN_UNARY(cos, T, cos(x))                                                          \
    KILN_UNARY(tan, T, tan(x))                                                          \
    KILN_UNARY(reciprocal, T, (A)1 / x)                                                 \
    KILN_UNARY(square, T, x * x)                                                        \
    KILN_UNARY(relu, T, x > (A)0 ? x : (x != x ? x : (A)0))                             \
    KILN_UNARY(sigmoid, T, kiln_sigmoid(x))                                             \
    KILN_UNARY(tanh, T, tanh(x))                                                        \
    KILN_UNARY(erf, T, erf(x))                                                          \
    KILN_UNARY(gelu, T, (A)0.5 * x * ((A)1 + erf(x * (A)0.70710678118654752440)))        \
    KILN_UNARY(gelu_tanh, T,                                                            \
               (A)0.5 * x *                                                             \
                   ((A)1 + tanh((A)0.79788456080286535588 * (x + (A)0.044715 * x * x * x)))) \
    KILN_UNARY(silu, T, x * kiln_sigmoid(x))                                            \
    KILN_UNARY(add_scalar, T, x + p)                                                    \
    KILN_UNARY(mul_scalar, T, x * p)                                                    \
    KILN_UNARY(pow, T, p == (A)2 ? x * x : pow(x, p))                                   \
    KILN_UNARY(rpow, T, pow(p, x))                                                      \
    KILN_UNARY(leaky_relu, T, x >= (A)0 ? x : x * p)                                    \
    KILN_UNARY(elu, T, x > (A)0 ? x : p * expm1(x))                                     \
    KILN_UNARY(softplus, T, kiln_softplus(x, p, q))                                     \
    KILN_UNARY(clamp, T, x != x ? x : (x < p ? p : (x > q ? q : x)))                    \
    KILN_UNARY(clamp_min, T, x != x ? x : (x < p ? p : x))                              \
    KILN_UNARY(clamp_max, T, x != x ? x : (x > p ? p : x))                              \
    KILN_UNARY(threshold, T, x <= p ? q : x)
KILN_FLOAT_TYPES(KILN_UNARY_FLOAT)

#define KILN_UNARY_INT(T)                                                               \
    KILN_UNARY(neg, T, (i64)(0ULL - (unsigned long long)x))                             \
    KILN_UNARY(abs, T, x < 0 ? -x : x)                                                  \
    KILN_UNARY(sign, T, (x > 0) - (x < 0))                                              \
    KILN_UNARY(square, T, (i64)((unsigned long long)x * (unsigned long long)x))         \
    KILN_UNARY(relu, T, x > 0 ? x : 0)                                                  \
    KILN_UNARY(add_scalar, T, (i64)((unsigned long long)x + (unsigned long long)p))     \
    KILN_UNARY(mul_scalar, T, (i64)((unsigned long long)x * (unsigned long long)p))     \
    KILN_UNARY(pow, T, p == 2 ? x * x : (i64)pow((double)x, (double)p))                 \
    KILN_UNARY(clamp, T, x < p ? p : (x > q ? q : x))                                   \
    KILN_UNARY(clamp_min, T, x < p ? p : x)                                             \
    KILN_UNARY(clamp_max, T, x > p ? p : x)
KILN_UNARY_INT(i64)
KILN_UNARY_INT(i32)
KILN_UNARY_INT(i16)
KILN_UNARY_INT(u8)

// Logical not, any dtype, bool output.
#define KILN_NOT(T)                                                                     \
    extern "C" __global__ void logical_not_##T(i64 n, const T* x, Strided lx, bool* out) { \
        KILN_GRID_LOOP(i, n) { out[i] = Num<T>::to_f64(x[strided_offset(lx, i)]) == 0.0; } \
    }
KILN_ALL_TYPES(KILN_NOT)
// isnan / isfinite for floats, bool output.
#define KILN_ISNAN(T)                                                                   \
    extern "C" __global__ void isnan_##T(i64 n, const T* x, Strided lx, bool* out) {   \
        KILN_GRID_LOOP(i, n) { double v = Num<T>::to_f64(x[strided_offset(lx, i)]); out[i] = v != v; } \
    }                                                                                   \
    extern "C" __global__ void isfinite_##T(i64 n, const T* x, Strided lx, bool* out) { \
        KILN_GRID_LOOP(i, n) {                                                          \
            double v = Num<T>::to_f64(x[strided_offset(lx, i)]);                        \
            out[i] = v == v && v - v == 0.0;                                            \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_ISNAN)
