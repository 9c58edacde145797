// im2col / col2im for 2-D convolution as a matrix product (cuBLAS does the
// products). Images are contiguous NCHW; `col` for `nb` images is
// [nb, C*kh*kw, OH*OW] (row (c, ki, kj), column (oh, ow)).

struct Conv2dGeom {
    i64 c, h, w;      // input channels and size
    i64 kh, kw;       // kernel size
    i64 sh, sw;       // stride
    i64 ph, pw;       // padding
    i64 dh, dw;       // dilation
    i64 oh, ow;       // output size
};

#define KILN_CONV(T)                                                                    \
    extern "C" __global__ void im2col_##T(i64 nb, const T* __restrict__ x,             \
                                          T* __restrict__ col, Conv2dGeom g) {          \
        i64 ohw = g.oh * g.ow, kk = g.kh * g.kw;                                        \
        i64 total = nb * g.c * kk * ohw;                                                \
        KILN_GRID_LOOP(i, total) {                                                      \
            i64 p = i % ohw, r = (i / ohw) % (g.c * kk), b = i / (ohw * g.c * kk);      \
            i64 c = r / kk, ki = (r % kk) / g.kw, kj = r % g.kw;                        \
            i64 y = (p / g.ow) * g.sh - g.ph + ki * g.dh;                               \
            i64 xx = (p % g.ow) * g.sw - g.pw + kj * g.dw;                              \
            T v = Num<T>::from((Num<T>::acc)0);                                         \
            if (y >= 0 && y < g.h && xx >= 0 && xx < g.w)                               \
                v = x[((b * g.c + c) * g.h + y) * g.w + xx];                            \
            col[i] = v;                                                                 \
        }                                                                               \
    }                                                                                   \
    /* Gathers, for every input pixel, the col entries that read it (no atomics). */  \
    extern "C" __global__ void col2im_##T(i64 nb, const T* __restrict__ col,           \
                                          T* __restrict__ dx, Conv2dGeom g) {           \
        typedef Num<T>::acc A;                                                          \
        i64 ohw = g.oh * g.ow, kk = g.kh * g.kw;                                        \
        i64 total = nb * g.c * g.h * g.w;                                               \
        KILN_GRID_LOOP(i, total) {                                                      \
            i64 xx = i % g.w, y = (i / g.w) % g.h, c = (i / (g.w * g.h)) % g.c;         \
            i64 b = i / (g.w * g.h * g.c);                                              \
            const T* cb = col + b * g.c * kk * ohw;                                     \
            A acc = 0;                                                                  \
            for (i64 ki = 0; ki < g.kh; ++ki) {                                         \
                i64 ty = y + g.ph - ki * g.dh;                                          \
                if (ty < 0 || ty % g.sh != 0) continue;                                 \
                i64 oy = ty / g.sh;                                                     \
                if (oy >= g.oh) continue;                                               \
                for (i64 kj = 0; kj < g.kw; ++kj) {                                     \
                    i64 tx = xx + g.pw - kj * g.dw;                                     \
                    if (tx < 0 || tx % g.sw != 0) continue;                             \
                    i64 ox = tx / g.sw;                                                 \
                    if (ox >= g.ow) continue;                                           \
                    acc += Num<T>::to(cb[((c * g.kh + ki) * g.kw + kj) * ohw + oy * g.ow + ox]); \
                }                                                                       \
            }                                                                           \
            dx[i] = Num<T>::from(acc);                                                  \
        }                                                                               \
    }
KILN_FLOAT_TYPES(KILN_CONV)
