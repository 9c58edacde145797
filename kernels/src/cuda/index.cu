// Indexing over contiguous tensors viewed as [outer, dim, inner]. Indices
// are int64; an out-of-range index sets *err = 1 (the host raises it) and
// the element is skipped (reads give 0).

#define KILN_INDEX(T)                                                                   \
    /* out[o, j, i] = x[o, idx[j], i]; negative indices count from the end. */        \
    extern "C" __global__ void index_select_##T(i64 outer, i64 dim, i64 inner,         \
                                                const T* __restrict__ x,                \
                                                const i64* __restrict__ idx, i64 k,     \
                                                T* __restrict__ out, int* err) {        \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, j = (e / inner) % k, o = e / (inner * k);                \
            i64 t = idx[j];                                                             \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) {                                                    \
                *err = 1;                                                               \
                out[e] = Num<T>::from_f64(0.0);                                         \
            } else {                                                                    \
                out[e] = x[(o * dim + t) * inner + i];                                  \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* out[o, j, i] = x[o, idx[o, j, i], i] (torch.gather), idx [outer, k, inner]. */ \
    extern "C" __global__ void gather_##T(i64 outer, i64 dim, i64 inner,               \
                                          const T* __restrict__ x,                      \
                                          const i64* __restrict__ idx, i64 k,           \
                                          T* __restrict__ out, int* err) {              \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, o = e / (inner * k);                                     \
            i64 t = idx[e];                                                             \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) {                                                    \
                *err = 1;                                                               \
                out[e] = Num<T>::from_f64(0.0);                                         \
            } else {                                                                    \
                out[e] = x[(o * dim + t) * inner + i];                                  \
            }                                                                           \
        }                                                                               \
    }
KILN_ALL_TYPES(KILN_INDEX)

#define KILN_INDEX_ADD(T)                                                               \
    /* dst[o, idx[j], i] += src[o, j, i] (index_select / embedding backward). */      \
    extern "C" __global__ void index_add_##T(i64 outer, i64 dim, i64 inner, T* dst,    \
                                             const i64* __restrict__ idx, i64 k,        \
                                             const T* __restrict__ src, int* err) {     \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, j = (e / inner) % k, o = e / (inner * k);                \
            i64 t = idx[j];                                                             \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) { *err = 1; continue; }                              \
            atomic_add(dst + (o * dim + t) * inner + i, Num<T>::to(src[e]));            \
        }                                                                               \
    }                                                                                   \
    /* dst[o, idx[o, j, i], i] += src[o, j, i] (gather backward, scatter_add). */     \
    extern "C" __global__ void scatter_add_##T(i64 outer, i64 dim, i64 inner, T* dst,  \
                                               const i64* __restrict__ idx, i64 k,      \
                                               const T* __restrict__ src, int* err) {   \
        KILN_GRID_LOOP(e, outer * k * inner) {                                          \
            i64 i = e % inner, o = e / (inner * k);                                     \
            i64 t = idx[e];                                                             \
            if (t < 0) t += dim;                                                        \
            if (t < 0 || t >= dim) { *err = 1; continue; }                              \
            atomic_add(dst + (o * dim + t) * inner + i, Num<T>::to(src[e]));            \
        }                                                                               \
    }
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
