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

// dst[view] = f(dst[view], src[view]), computed in A with the conversions
// TO / FROM: floats in their accumulation type, integer types through
// double (like the CPU's in-place ops).
#define KILN_INPLACE(NAME, T, A, TO, FROM, EXPR)                                        \
    extern "C" __global__ void inplace_##NAME##_##T(i64 n, T* dst, Strided ld,         \
                                                    const T* src, Strided ls) {         \
        KILN_GRID_LOOP(i, n) {                                                          \
            i64 o = strided_offset(ld, i);                                              \
            A x = Num<T>::TO(dst[o]);                                                   \
            A y = Num<T>::TO(src[strided_offset(ls, i)]);                               \
            dst[o] = Num<T>::FROM((A)(EXPR));                                           \
        }                                                                               \
    }
#define KILN_INPLACE_OPS(T, A, TO, FROM)                                                \
    KILN_INPLACE(add, T, A, TO, FROM, x + y)                                            \
    KILN_INPLACE(sub, T, A, TO, FROM, x - y)                                            \
    KILN_INPLACE(mul, T, A, TO, FROM, x * y)                                            \
    KILN_INPLACE(div, T, A, TO, FROM, x / y)
#define KILN_INPLACE_F(T) KILN_INPLACE_OPS(T, Num<T>::acc, to, from)
#define KILN_INPLACE_I(T) KILN_INPLACE_OPS(T, double, to_f64, from_f64)
KILN_FLOAT_TYPES(KILN_INPLACE_F)
KILN_INPLACE_I(i64)
KILN_INPLACE_I(i32)
KILN_INPLACE_I(i16)
KILN_INPLACE_I(u8)
KILN_INPLACE_I(bool)

// Bool-valued binary ops: out[i] = EXPR of x and y, the operands read as
// double (like the CPU path) and converted with CONV to V.
#define KILN_BOOL_BINARY(NAME, T, V, CONV, EXPR)                                        \
    extern "C" __global__ void NAME##_##T(i64 n, const T* a, Strided la, const T* b,   \
                                          Strided lb, bool* __restrict__ out) {         \
        KILN_GRID_LOOP(i, n) {                                                          \
            V x = CONV(Num<T>::to_f64(a[strided_offset(la, i)]));                       \
            V y = CONV(Num<T>::to_f64(b[strided_offset(lb, i)]));                       \
            out[i] = EXPR;                                                              \
        }                                                                               \
    }
#define KILN_AS_IS(v) (v)
#define KILN_NONZERO(v) ((v) != 0.0)

// Comparisons.
#define KILN_CMP(NAME, T, OP) KILN_BOOL_BINARY(cmp_##NAME, T, double, KILN_AS_IS, x OP y)
#define KILN_CMP_ALL(T)                                                                 \
    KILN_CMP(eq, T, ==) KILN_CMP(ne, T, !=) KILN_CMP(lt, T, <)                          \
    KILN_CMP(le, T, <=) KILN_CMP(gt, T, >) KILN_CMP(ge, T, >=)
KILN_ALL_TYPES(KILN_CMP_ALL)

// Logical ops on any dtype (nonzero is true).
#define KILN_LOGICAL(NAME, T, EXPR)                                                     \
    KILN_BOOL_BINARY(logical_##NAME, T, bool, KILN_NONZERO, EXPR)
#define KILN_LOGICAL_ALL(T)                                                             \
    KILN_LOGICAL(and, T, x && y) KILN_LOGICAL(or, T, x || y) KILN_LOGICAL(xor, T, x != y)
KILN_ALL_TYPES(KILN_LOGICAL_ALL)
