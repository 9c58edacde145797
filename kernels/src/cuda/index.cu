// Indexing over contiguous tensors viewed as [outer, dim, inner]. Indices
// are int64; an out-of-range index sets *err = 1 (the host raises it) and
// the element is skipped (reads give 0).

// out[e] = x[o, t, i] for the output element e = (o, j, i) of [outer, k,
// inner], where t = idx[POS] (negative counts from the end).
#define KILN_TAKE(NAME, T, POS)                                                         \
    extern "C" __global__ void NAME##_##T(i64 outer, i64 dim, i64 inner,                \
                                          const T* __restrict__ x,                      \
                                          const i64* __restrict__ idx, i64 k,           \
                                          T* __restrict__ out, int* err) {              \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, o = e / (inner * k);                                     \
            i64 t = idx[POS];                                                           \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) {                                                    \
                *err = 1;                                                               \
                out[e] = Num<T>::from_f64(0.0);                                         \
            } else {                                                                    \
                out[e] = x[(o * dim + t) * inner + i];                                  \
            }                                                                           \
        }                                                                               \
    }
// index_select: idx[j], a slice per index; gather: idx[o, j, i], idx of
// the output's shape [outer, k, inner].
#define KILN_INDEX(T)                                                                   \
    KILN_TAKE(index_select, T, (e / inner) % k)                                         \
    KILN_TAKE(gather, T, e)
KILN_ALL_TYPES(KILN_INDEX)

// dst[o, t, i] += src[e] for the source element e = (o, j, i) of [outer,
// k, inner], where t = idx[POS] (atomic adds).
#define KILN_ADD_AT(NAME, T, POS)                                                       \
    extern "C" __global__ void NAME##_##T(i64 outer, i64 dim, i64 inner, T* dst,        \
                                          const i64* __restrict__ idx, i64 k,           \
                                          const T* __restrict__ src, int* err) {        \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, o = e / (inner * k);                                     \
            i64 t = idx[POS];                                                           \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) { *err = 1; continue; }                              \
            atomic_add(dst + (o * dim + t) * inner + i, Num<T>::to(src[e]));            \
        }                                                                               \
    }
// The backwards of index_select (and embedding) and of gather.
#define KILN_INDEX_ADD(T)                                                               \
    KILN_ADD_AT(index_add, T, (e / inner) % k)                                          \
    KILN_ADD_AT(scatter_add, T, e)
KILN_FLOAT_TYPES(KILN_INDEX_ADD)

// One-hot rows: out[r, c] = (idx[r] == c), as i64 (torch.nn.functional.one_hot).
extern "C" __global__ void one_hot_i64(i64 n, i64 classes, const i64* __restrict__ idx,
                                       i64* __restrict__ out, int* err) {
    KILN_GRID_LOOP(e, n * classes) {
        i64 r = e / classes, c = e % classes;
        i64 t = idx[r];
        if (t < 0 || t >= classes) *err = 1;
        out[e] = t == c ? 1 : 0;
    }
}
