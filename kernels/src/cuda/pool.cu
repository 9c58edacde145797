// 2-D pooling over contiguous NCHW tensors (planes = N*C). Backward
// kernels gather over the windows that cover each input pixel (no atomics,
// deterministic).

struct PoolGeom {
    i64 h, w;     // input size
    i64 oh, ow;   // output size
    i64 kh, kw;   // window
    i64 sh, sw;   // stride
    i64 ph, pw;   // padding
    i64 dh, dw;   // dilation (max pool only)
};

// Output rows whose window (start oy*s - p, extent ext) can contain y.
__device__ __forceinline__ void cover(i64 y, i64 s, i64 p, i64 ext, i64 out, i64* lo, i64* hi) {
    i64 a = y + p - ext + 1;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    i64 b = (y + p) / s;
    *hi = b < out - 1 ? b : out - 1;
}

// The clipped window [y0, y1) x [x0, x1) of average-pool output (oy, ox)
// and its divisor under PyTorch's rules (count_include_pad, ceil_mode,
// divisor_override > 0).
__device__ __forceinline__ i64 avg_window(i64 oy, i64 ox, const PoolGeom& g, int count_include_pad,
                                          i64 divisor_override, i64* y0, i64* y1, i64* x0,
                                          i64* x1) {
    i64 a = oy * g.sh - g.ph, b = ox * g.sw - g.pw;
    i64 c = a + g.kh, d = b + g.kw;
    if (c > g.h + g.ph) c = g.h + g.ph;
    if (d > g.w + g.pw) d = g.w + g.pw;
    i64 pool = (c - a) * (d - b);
    *y0 = a < 0 ? 0 : a;
    *x0 = b < 0 ? 0 : b;
    *y1 = c > g.h ? g.h : c;
    *x1 = d > g.w ? g.w : d;
    if (divisor_override > 0) return divisor_override;
    return count_include_pad ? pool : (*y1 - *y0) * (*x1 - *x0);
}

// The sum of plane x's window [y0, y1) x [x0, x1) (row length w).
template <typename A, typename T>
__device__ __forceinline__ A window_sum(const T* x, i64 w, i64 y0, i64 y1, i64 x0, i64 x1) {
    A acc = 0;
    for (i64 yy = y0; yy < y1; ++yy)
        for (i64 xx = x0; xx < x1; ++xx) acc += Num<T>::to(x[yy * w + xx]);
    return acc;
}

// The parameters of the average and adaptive-average pool kernels, from
// SRC into DST.
#define KILN_POOL_PARAMS(T, SRC, DST)                                                   \
    i64 planes, const T* __restrict__ SRC, T* __restrict__ DST, PoolGeom g
#define KILN_AVG_POOL_PARAMS(T, SRC, DST)                                               \
    KILN_POOL_PARAMS(T, SRC, DST), int count_include_pad, i64 divisor_override

#define KILN_POOL(T)                                                                    \
    /* Max pool: idx is the flat h*w position of the max within the plane. */        \
    extern "C" __global__ void max_pool2d_fwd_##T(i64 planes, const T* __restrict__ x, \
                                                  T* __restrict__ y, i64* __restrict__ idx, \
                                                  PoolGeom g) {                         \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.oh * g.ow) {                                       \
            i64 ox = i % g.ow, oy = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);          \
            const T* xp = x + pl * g.h * g.w;                                           \
            A best = -(A)INFINITY;                                                      \
            i64 bi = -1;                                                                \
            for (i64 ki = 0; ki < g.kh; ++ki) {                                         \
                i64 yy = oy * g.sh - g.ph + ki * g.dh;                                  \
                if (yy < 0 || yy >= g.h) continue;                                      \
                for (i64 kj = 0; kj < g.kw; ++kj) {                                     \
                    i64 xx = ox * g.sw - g.pw + kj * g.dw;                              \
                    if (xx < 0 || xx >= g.w) continue;                                  \
                    A v = Num<T>::to(xp[yy * g.w + xx]);                                \
                    if (bi < 0 || v > best || (v != v && best == best)) {               \
                        best = v;                                                       \
                        bi = yy * g.w + xx;                                             \
                    }                                                                   \
                }                                                                       \
            }                                                                           \
            y[i] = Num<T>::from(best);                                                  \
            idx[i] = bi;                                                                \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void max_pool2d_bwd_##T(i64 planes, const T* __restrict__ gy, \
                                                  const i64* __restrict__ idx,          \
                                                  T* __restrict__ gx, PoolGeom g) {     \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.h * g.w) {                                         \
            i64 pos = i % (g.h * g.w), pl = i / (g.h * g.w);                            \
            i64 yy = pos / g.w, xx = pos % g.w;                                         \
            i64 y0, y1, x0, x1;                                                         \
            cover(yy, g.sh, g.ph, (g.kh - 1) * g.dh + 1, g.oh, &y0, &y1);               \
            cover(xx, g.sw, g.pw, (g.kw - 1) * g.dw + 1, g.ow, &x0, &x1);               \
            A acc = 0;                                                                  \
            for (i64 oy = y0; oy <= y1; ++oy)                                           \
                for (i64 ox = x0; ox <= x1; ++ox) {                                     \
                    i64 o = (pl * g.oh + oy) * g.ow + ox;                               \
                    if (idx[o] == pos) acc += Num<T>::to(gy[o]);                        \
                }                                                                       \
            gx[i] = Num<T>::from(acc);                                                  \
        }                                                                               \
    }                                                                                   \
    /* Average pool with PyTorch's divisor rules (count_include_pad, ceil_mode). */   \
    extern "C" __global__ void avg_pool2d_fwd_##T(KILN_AVG_POOL_PARAMS(T, x, y)) {      \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.oh * g.ow) {                                       \
            i64 ox = i % g.ow, oy = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);          \
            i64 y0, y1, x0, x1;                                                         \
            i64 div = avg_window(oy, ox, g, count_include_pad, divisor_override, &y0, &y1, \
                                 &x0, &x1);                                             \
            A acc = window_sum<A>(x + pl * g.h * g.w, g.w, y0, y1, x0, x1);             \
            y[i] = Num<T>::from(acc / (A)div);                                          \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void avg_pool2d_bwd_##T(KILN_AVG_POOL_PARAMS(T, gy, gx)) {    \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.h * g.w) {                                         \
            i64 pos = i % (g.h * g.w), pl = i / (g.h * g.w);                            \
            i64 yy = pos / g.w, xx = pos % g.w;                                         \
            i64 oy0, oy1, ox0, ox1;                                                     \
            cover(yy, g.sh, g.ph, g.kh, g.oh, &oy0, &oy1);                              \
            cover(xx, g.sw, g.pw, g.kw, g.ow, &ox0, &ox1);                              \
            A acc = 0;                                                                  \
            for (i64 oy = oy0; oy <= oy1; ++oy)                                         \
                for (i64 ox = ox0; ox <= ox1; ++ox) {                                   \
                    i64 y0, y1, x0, x1;                                                 \
                    i64 div = avg_window(oy, ox, g, count_include_pad, divisor_override, \
                                         &y0, &y1, &x0, &x1);                           \
                    if (yy < y0 || yy >= y1 || xx < x0 || xx >= x1) continue;           \
                    acc += Num<T>::to(gy[(pl * g.oh + oy) * g.ow + ox]) / (A)div;       \
                }                                                                       \
            gx[i] = Num<T>::from(acc);                                                  \
        }                                                                               \
    }                                                                                   \
    /* Adaptive average pool: window [floor(o*in/out), ceil((o+1)*in/out)). */         \
    extern "C" __global__ void adaptive_avg_pool2d_fwd_##T(KILN_POOL_PARAMS(T, x, y)) { \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.oh * g.ow) {                                       \
            i64 ox = i % g.ow, oy = (i / g.ow) % g.oh, pl = i / (g.ow * g.oh);          \
            i64 y0 = oy * g.h / g.oh, y1 = ((oy + 1) * g.h + g.oh - 1) / g.oh;          \
            i64 x0 = ox * g.w / g.ow, x1 = ((ox + 1) * g.w + g.ow - 1) / g.ow;          \
            A acc = window_sum<A>(x + pl * g.h * g.w, g.w, y0, y1, x0, x1);             \
            y[i] = Num<T>::from(acc / (A)((y1 - y0) * (x1 - x0)));                      \
        }                                                                               \
    }                                                                                   \
    extern "C" __global__ void adaptive_avg_pool2d_bwd_##T(KILN_POOL_PARAMS(T, gy, gx)) { \
        typedef Num<T>::acc A;                                                          \
        KILN_GRID_LOOP(i, planes * g.h * g.w) {                                         \
            i64 pos = i % (g.h * g.w), pl = i / (g.h * g.w);                            \
            i64 yy = pos / g.w, xx = pos % g.w;                                         \
            i64 oy0 = yy * g.oh / g.h, oy1 = ((yy + 1) * g.oh + g.h - 1) / g.h;         \
            i64 ox0 = xx * g.ow / g.w, ox1 = ((xx + 1) * g.ow + g.w - 1) / g.w;         \
            A acc = 0;                                                                  \
            for (i64 oy = oy0; oy < oy1 && oy < g.oh; ++oy) {                           \
                i64 y0 = oy * g.h / g.oh, y1 = ((oy + 1) * g.h + g.oh - 1) / g.oh;      \
                if (yy < y0 || yy >= y1) continue;                                      \
                for (i64 ox = ox0; ox < ox1 && ox < g.ow; ++ox) {                       \
                    i64 x0 = ox * g.w / g.ow, x1 = ((ox + 1) * g.w + g.ow - 1) / g.ow;  \
                    if (xx < x0 || xx >= x1) continue;                                  \
                    acc += Num<T>::to(gy[(pl * g.oh + oy) * g.ow + ox]) /               \
                           (A)((y1 - y0) * (x1 - x0));                                  \
                }                                                                       \
            }                                                                           \
            gx[i] = Num<T>::from(acc);                                                  \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_POOL)
