// Fused losses over [n, c] rows (class dimension last, contiguous).
// Targets are int64 class indices; `weight` (per class) may be null.
// Forward kernels write the per-sample loss and the per-sample weight
// w[target] (0 for ignored samples) so the host can take the mean as
// sum(loss) / sum(w). `err` is set to 1 when a target is out of range.

// Cross-entropy with label smoothing eps:
//   loss = (1 - eps) * w[t] * (lse - x[t]) + eps / c * sum_j w[j] * (lse - x[j])
#define KILN_CE(T)                                                                      \
    extern "C" __global__ void cross_entropy_fwd_##T(                                   \
        i64 n, i64 c, const T* __restrict__ x, const i64* __restrict__ target,          \
        const T* weight, i64 ignore_index, double eps, T* loss, T* wsum, int* err) {    \
        typedef Num<T>::acc A;                                                          \
        for (i64 row = blockIdx.x; row < n; row += gridDim.x) {                         \
            const T* xr = x + row * c;                                                  \
            i64 t = target[row];                                                        \
            if (t == ignore_index) {                                                    \
                if (threadIdx.x == 0) { loss[row] = Num<T>::from((A)0); wsum[row] = Num<T>::from((A)0); } \
                continue;                                                               \
            }                                                                           \
            if (t < 0 || t >= c) {                                                      \
                if (threadIdx.x == 0) { *err = 1; loss[row] = Num<T>::from((A)0); wsum[row] = Num<T>::from((A)0); } \
                continue;                                                               \
            }                                                                           \
            A m = block_row_max<A>(xr, c, 1);                                           \
            A s = 0, smooth = 0;                                                        \
            for (i64 j = threadIdx.x; j < c; j += blockDim.x) {                         \
                A v = Num<T>::to(xr[j]);                                                \
                s += exp(v - m);                                                        \
                A wj = weight ? Num<T>::to(weight[j]) : (A)1;                           \
                smooth += wj * v;                                                       \
            }                                                                           \
            s = block_sum(s);                                                           \
            smooth = block_sum(smooth);                                                 \
            A wtot = 0;                                                                 \
            if (eps != 0.0 && weight) {                                                 \
                for (i64 j = threadIdx.x; j < c; j += blockDim.x) wtot += Num<T>::to(weight[j]); \
                wtot = block_sum(wtot);                                                 \
            } else {                                                                    \
                wtot = (A)c;                                                            \
            }                                                                           \
            if (threadIdx.x == 0) {                                                     \
                A lse = m + log(s);                                                     \
                A wt = weight ? Num<T>::to(weight[t]) : (A)1;                           \
                A e = (A)eps;                                                           \
                A l = ((A)1 - e) * wt * (lse - Num<T>::to(xr[t]));                      \
                if (eps != 0.0) l += e / (A)c * (wtot * lse - smooth);                  \
                loss[row] = Num<T>::from(l);                                            \
                wsum[row] = Num<T>::from(wt);                                           \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* d loss / d x[j] = g * ((1 - eps) * w[t] * (p[j] - [j == t]) +                    \
                              eps / c * (sum(w) * p[j] - w[j])) */                      \
    extern "C" __global__ void cross_entropy_bwd_##T(                                   \
        i64 n, i64 c, const T* __restrict__ x, const i64* __restrict__ target,          \
        const T* weight, i64 ignore_index, double eps, const T* __restrict__ gloss,     \
        T* __restrict__ gx) {                                                           \
        typedef Num<T>::acc A;                                                          \
        for (i64 row = blockIdx.x; row < n; row += gridDim.x) {                         \
            const T* xr = x + row * c;                                                  \
            T* gr = gx + row * c;                                                       \
            i64 t = target[row];                                                        \
            if (t == ignore_index || t < 0 || t >= c) {                                 \
                for (i64 j = threadIdx.x; j < c; j += blockDim.x) gr[j] = Num<T>::from((A)0); \
                continue;                                                               \
            }                                                                           \
            A m = block_row_max<A>(xr, c, 1);                                           \
            A s = 0, wtot = 0;                                                          \
            for (i64 j = threadIdx.x; j < c; j += blockDim.x) {                         \
                s += exp(Num<T>::to(xr[j]) - m);                                        \
                wtot += weight ? Num<T>::to(weight[j]) : (A)1;                          \
            }                                                                           \
            s = block_sum(s);                                                           \
            wtot = block_sum(wtot);                                                     \
            A g = Num<T>::to(gloss[row]);                                               \
            A e = (A)eps;                                                               \
            A wt = weight ? Num<T>::to(weight[t]) : (A)1;                               \
            for (i64 j = threadIdx.x; j < c; j += blockDim.x) {                         \
                A p = exp(Num<T>::to(xr[j]) - m) / s;                                   \
                A wj = weight ? Num<T>::to(weight[j]) : (A)1;                           \
                A d = ((A)1 - e) * wt * (p - (j == t ? (A)1 : (A)0));                   \
                if (eps != 0.0) d += e / (A)c * (wtot * p - wj);                        \
                gr[j] = Num<T>::from(g * d);                                            \
            }                                                                           \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_CE)

// NLL on log-probabilities: loss = -w[t] * logp[t].
#define KILN_NLL(T)                                                                     \
    extern "C" __global__ void nll_fwd_##T(i64 n, i64 c, const T* __restrict__ logp,   \
                                           const i64* __restrict__ target,              \
                                           const T* weight, i64 ignore_index, T* loss,  \
                                           T* wsum, int* err) {                         \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(row, n) {                                                        \
            i64 t = target[row];                                                        \
            A l = 0, wt = 0;                                                            \
            if (t != ignore_index) {                                                    \
                if (t < 0 || t >= c) {                                                  \
                    *err = 1;                                                           \
                } else {                                                                \
                    wt = weight ? Num<T>::to(weight[t]) : (A)1;                         \
                    l = -wt * Num<T>::to(logp[row * c + t]);                            \
                }                                                                       \
            }                                                                           \
            loss[row] = Num<T>::from(l);                                                \
            wsum[row] = Num<T>::from(wt);                                               \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void nll_bwd_##T(i64 n, i64 c, const i64* __restrict__ target, \
                                           const T* weight, i64 ignore_index,           \
                                           const T* __restrict__ gloss,                 \
                                           T* __restrict__ glogp) {                     \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, n * c) {                                                      \
            i64 row = i / c, j = i % c;                                                 \
            i64 t = target[row];                                                        \
            A d = 0;                                                                    \
            if (t != ignore_index && t == j) {                                          \
                A wt = weight ? Num<T>::to(weight[t]) : (A)1;                           \
                d = -wt * Num<T>::to(gloss[row]);                                       \
            }                                                                           \
            glogp[i] = Num<T>::from(d);                                                 \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_NLL)
