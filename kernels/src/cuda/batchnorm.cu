// Batch norm over a contiguous [n, c, s] tensor (s = H*W, 1 for 1-D), per
// channel c. Statistics are kept in the accumulation type A (f32, or f64
// for f64 tensors): `mean` and `invstd` are A arrays of length c.

#define KILN_BN(T)                                                                      \
    /* One block per channel: batch mean and 1/sqrt(var + eps) (two passes), and */   \
    /* the running statistics updated in place when given (unbiased variance). */     \
    extern "C" __global__ void bn_stats_##T(i64 n, i64 c, i64 s, const T* __restrict__ x, \
                                            Num<T>::acc* mean, Num<T>::acc* invstd,     \
                                            T* running_mean, T* running_var,            \
                                            double momentum, double eps) {              \
        typedef Num<T>::acc A;                                                          \
        i64 m = n * s;                                                                  \
        for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {                            \
            A acc = 0;                                                                  \
            for (i64 j = threadIdx.x; j < m; j += blockDim.x)                           \
                acc += Num<T>::to(x[((j / s) * c + ch) * s + j % s]);                   \
            A mu = block_sum(acc) / (A)m;                                               \
            A sq = 0;                                                                   \
            for (i64 j = threadIdx.x; j < m; j += blockDim.x) {                         \
                A d = Num<T>::to(x[((j / s) * c + ch) * s + j % s]) - mu;               \
                sq += d * d;                                                            \
            }                                                                           \
            A var = block_sum(sq) / (A)m;                                               \
            if (threadIdx.x == 0) {                                                     \
                mean[ch] = mu;                                                          \
                invstd[ch] = (A)1 / sqrt(var + (A)eps);                                 \
                if (running_mean) {                                                     \
                    A mo = (A)momentum;                                                 \
                    A unbiased = m > 1 ? var * (A)m / (A)(m - 1) : var;                 \
                    running_mean[ch] = Num<T>::from(((A)1 - mo) * Num<T>::to(running_mean[ch]) + mo * mu); \
                    running_var[ch] = Num<T>::from(((A)1 - mo) * Num<T>::to(running_var[ch]) + mo * unbiased); \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* Eval mode: statistics from the running buffers. */                             \
    extern "C" __global__ void bn_running_stats_##T(i64 c, const T* running_mean,      \
                                                    const T* running_var, double eps,   \
                                                    Num<T>::acc* mean, Num<T>::acc* invstd) { \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(ch, c) {                                                         \
            mean[ch] = Num<T>::to(running_mean[ch]);                                    \
            invstd[ch] = (A)1 / sqrt(Num<T>::to(running_var[ch]) + (A)eps);             \
        }                                                                               \
    }                                                                                   \
    /* y = (x - mean) * invstd * weight + bias (weight/bias may be null). */          \
    extern "C" __global__ void bn_apply_##T(i64 total, i64 c, i64 s, const T* __restrict__ x, \
                                            const Num<T>::acc* mean, const Num<T>::acc* invstd, \
                                            const T* weight, const T* bias, T* __restrict__ y) { \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, total) {                                                      \
            i64 ch = (i / s) % c;                                                       \
            A v = (Num<T>::to(x[i]) - mean[ch]) * invstd[ch];                           \
            if (weight) v *= Num<T>::to(weight[ch]);                                    \
            if (bias) v += Num<T>::to(bias[ch]);                                        \
            y[i] = Num<T>::from(v);                                                     \
        }                                                                               \
    }                                                                                   \
    /* One block per channel: sum(dy) and sum(dy * xhat). */                          \
    extern "C" __global__ void bn_bwd_reduce_##T(i64 n, i64 c, i64 s, const T* __restrict__ x, \
                                                 const T* __restrict__ gy,              \
                                                 const Num<T>::acc* mean,               \
                                                 const Num<T>::acc* invstd,             \
                                                 Num<T>::acc* sum_dy, Num<T>::acc* sum_dy_xhat) { \
        typedef Num<T>::acc A;                                                          \
        i64 m = n * s;                                                                  \
        for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {                            \
            A a = 0, b = 0;                                                             \
            for (i64 j = threadIdx.x; j < m; j += blockDim.x) {                         \
                i64 k = ((j / s) * c + ch) * s + j % s;                                 \
                A g = Num<T>::to(gy[k]);                                                \
                a += g;                                                                 \
                b += g * (Num<T>::to(x[k]) - mean[ch]) * invstd[ch];                    \
            }                                                                           \
            a = block_sum(a);                                                           \
            b = block_sum(b);                                                           \
            if (threadIdx.x == 0) {                                                     \
                sum_dy[ch] = a;                                                         \
                sum_dy_xhat[ch] = b;                                                    \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    /* Training: dx = w * invstd * (dy - sum_dy/m - xhat * sum_dy_xhat/m);           \
       eval: dx = dy * w * invstd. */                                                  \
    extern "C" __global__ void bn_bwd_apply_##T(i64 total, i64 c, i64 s, const T* __restrict__ x, \
                                                const T* __restrict__ gy,               \
                                                const Num<T>::acc* mean,                \
                                                const Num<T>::acc* invstd, const T* weight, \
                                                const Num<T>::acc* sum_dy,              \
                                                const Num<T>::acc* sum_dy_xhat, int training, \
                                                T* __restrict__ gx) {                   \
        typedef Num<T>::acc A;                                                          \
        A m = (A)(total / c);                                                           \
        KILN_GRID_LOOP(i, total) {                                                      \
            i64 ch = (i / s) % c;                                                       \
            A w = weight ? Num<T>::to(weight[ch]) : (A)1;                               \
            A g = Num<T>::to(gy[i]);                                                    \
            A d;                                                                        \
            if (training) {                                                             \
                A xhat = (Num<T>::to(x[i]) - mean[ch]) * invstd[ch];                    \
                d = w * invstd[ch] * (g - sum_dy[ch] / m - xhat * sum_dy_xhat[ch] / m); \
            } else {                                                                    \
                d = g * w * invstd[ch];                                                 \
            }                                                                           \
            gx[i] = Num<T>::from(d);                                                    \
        }                                                                               \
    }                                                                                   \
    /* Accumulation-type statistics back to T (weight/bias grads, saved stats). */    \
    extern "C" __global__ void bn_acc_to_##T(i64 n, const Num<T>::acc* a, T* out) {    \
        KILN_GRID_LOOP(i, n) { out[i] = Num<T>::from(a[i]); }                           \
    }
KILN_FLOAT_TYPES(KILN_BN)
