// Elementwise binary ops with broadcasting (both operands as strided views
// of the output's shape, zero strides where broadcast), in-place forms and
// comparisons.

#define KILN_BINARY(NAME, T, EXPR)                                                      \
    extern "C" __global__ void binary_##NAME##_##T(i64 n, const T* a, Strided la,      \
                                                   const T* b, Strided lb,              \
                                                   T* __restrict__ out) {               \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n) {                                                          \
            A x = Num<T>::to(a[strided_offset(la, i)]);                                 \
            A y = Num<T>::to(b[strided_offset(lb, i)]);                                 \
            out[i] = Num<T>::from((A)(EXPR));                                           \
        }                                                                               \
    }

// Float ops (f32/f64 computed natively, f16/bf16 in f32).
#define KILN_BINARY_FLOAT(T)                                                            \
    KILN_BINARY(add, T, x + y)                                                          \
    KILN_BINARY(sub, T, x - y)                                                          \
    KILN_BINARY(mul, T, x * y)                                                          \
    KILN_BINARY(div, T, x / y)                                                          \
    KILN_BINARY(maximum, T, (x != x) ? y : ((y != y) ? x : (x > y ? x : y)))            \
    KILN_BINARY(minimum, T, (x != x) ? y : ((y != y) ? x : (x < y ? x : y)))            \
    KILN_BINARY(pow, T, pow(x, y))                                                      \
    KILN_BINARY(atan2, T, atan2(x, y))
KILN_FLOAT_TYPES(KILN_BINARY_FLOAT)

// Integer ops wrap like Rust's wrapping_* (computed in unsigned 64-bit).
#define KILN_BINARY_INT(T)                                                              \
    KILN_BINARY(add, T, (i64)((unsigned long long)x + (unsigned long long)y))           \
    KILN_BINARY(sub, T, (i64)((unsigned long long)x - (unsigned long long)y))           \
    KILN_BINARY(mul, T, (i64)((unsigned long long)x * (unsigned long long)y))           \
    KILN_BINARY(maximum, T, x > y ? x : y)                                              \
    KILN_BINARY(minimum, T, x < y ? x : y)
KILN_BINARY_INT(i64)
KILN_BINARY_INT(i32)
KILN_BINARY_INT(i16)
KILN_BINARY_INT(u8)

// dst[view] = f(dst[view], src[view]), computed through double for integer
// types (like the CPU's in-place ops).
#define KILN_INPLACE(NAME, T, EXPR)                                                     \
    extern "C" __global__ void inplace_##NAME##_##T(i64 n, T* dst, Strided ld,         \
                                                    const T* src, Strided ls) {         \
        KILN_GRID_LOOP(i, n) {                                                          \
            i64 o = strided_offset(ld, i);                                              \
            double x = Num<T>::to_f64(dst[o]);                                          \
            double y = Num<T>::to_f64(src[strided_offset(ls, i)]);                      \
            dst[o] = Num<T>::from_f64(EXPR);                                            \
        }                                                                               \
    }
#define KILN_INPLACE_FLOAT(NAME, T, EXPR)                                               \
    extern "C" __global__ void inplace_##NAME##_##T(i64 n, T* dst, Strided ld,         \
                                                    const T* src, Strided ls) {         \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n) {                                                          \
            i64 o = strided_offset(ld, i);                                              \
            A x = Num<T>::to(dst[o]);                                                   \
            A y = Num<T>::to(src[strided_offset(ls, i)]);                               \
            dst[o] = Num<T>::from((A)(EXPR));                                           \
        }                                                                               \
    }
#define KILN_INPLACE_F(T)                                                               \
    KILN_INPLACE_FLOAT(add, T, x + y)                                                   \
    KILN_INPLACE_FLOAT(sub, T, x - y)                                                   \
    KILN_INPLACE_FLOAT(mul, T, x * y)                                                   \
    KILN_INPLACE_FLOAT(div, T, x / y)
#define KILN_INPLACE_I(T)                                                               \
    KILN_INPLACE(add, T, x + y)                                                         \
    KILN_INPLACE(sub, T, x - y)                                                         \
    KILN_INPLACE(mul, T, x * y)                                                         \
    KILN_INPLACE(div, T, x / y)
KILN_FLOAT_TYPES(KILN_INPLACE_F)
KILN_INPLACE_I(i64)
KILN_INPLACE_I(i32)
KILN_INPLACE_I(i16)
KILN_INPLACE_I(u8)
KILN_INPLACE_I(bool)

// Comparisons: bool output, computed in double like the CPU path.
#define KILN_CMP(NAME, T, OP)                                                           \
    extern "C" __global__ void cmp_##NAME##_##T(i64 n, const T* a, Strided la,         \
                                                const T* b, Strided lb,                 \
                                                bool* __restrict__ out) {               \
        KILN_GRID_LOOP(i, n) {                                                          \
            double x = Num<T>::to_f64(a[strided_offset(la, i)]);                        \
            double y = Num<T>::to_f64(b[strided_offset(lb, i)]);                        \
            out[i] = x OP y;                                                            \
        }                                                                               \
    }
#define KILN_CMP_ALL(T)                                                                 \
    KILN_CMP(eq, T, ==) KILN_CMP(ne, T, !=) KILN_CMP(lt, T, <)                          \
    KILN_CMP(le, T, <=) KILN_CMP(gt, T, >) KILN_CMP(ge, T, >=)
KILN_ALL_TYPES(KILN_CMP_ALL)

// Logical ops on any dtype (nonzero is true), bool output.
#define KILN_LOGICAL(NAME, T, EXPR)                                                     \
    extern "C" __global__ void logical_##NAME##_##T(i64 n, const T* a, Strided la,     \
                                                    const T* b, Strided lb,             \
                                                    bool* __restrict__ out) {           \
        KILN_GRID_LOOP(i, n) {                                                          \
            bool x = Num<T>::to_f64(a[strided_offset(la, i)]) != 0.0;                   \
            bool y = Num<T>::to_f64(b[strided_offset(lb, i)]) != 0.0;                   \
            out[i] = EXPR;                                                              \
        }                                                                               \
    }
#define KILN_LOGICAL_ALL(T)                                                             \
    KILN_LOGICAL(and, T, x && y) KILN_LOGICAL(or, T, x || y) KILN_LOGICAL(xor, T, x != y)
KILN_ALL_TYPES(KILN_LOGICAL_ALL)
