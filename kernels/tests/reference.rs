//! Every CPU kernel against a naive, obviously-correct reference written
//! here, on random data from a deterministic xorshift generator.

use kiln_kernels::Float;
use kiln_kernels::cpu::conv::{
    Conv2dParams, conv2d_backward, conv2d_backward_bias, conv2d_backward_input,
    conv2d_backward_input_and_weight, conv2d_backward_reusing, conv2d_backward_weight,
    conv2d_forward, conv2d_forward_keeping, conv2d_output_size,
};
use kiln_kernels::cpu::matmul::{TRANSPOSE_MIN, batched_gemm, gemm, gemm_bf16, gemm_f16, gemm_new};
use kiln_kernels::cpu::pool::{
    adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, avg_pool2d_backward,
    avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward, pool_output_size,
    pool2d_output_size,
};
use kiln_kernels::cpu::softmax::{
    log_softmax_dim, log_softmax_dim_backward, log_softmax_rows, log_softmax_rows_backward,
    softmax_dim, softmax_dim_backward, softmax_rows, softmax_rows_backward,
};

/// One `#[test]` per `name = call`: the f32 and f64 runs of each check.
macro_rules! tests {
    ($($name:ident = $check:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            $check;
        }
    )*};
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn vec<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::cast_f64(self.next())).collect()
    }
}

fn to64<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.as_f64()).collect()
}

/// A rayon pool of one thread and one of three, to check that results do
/// not depend on the thread count.
fn one_and_three_threads() -> (rayon::ThreadPool, rayon::ThreadPool) {
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    (pool(1), pool(3))
}

#[track_caller]
fn assert_close<T: Float>(what: &str, got: &[T], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g.as_f64();
        let ok = g == w || (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan());
        assert!(ok, "{what}: index {i}: got {g}, want {w}");
    }
}

// -------------------------------------------------------------- matmul ---

/// `dst (m×n) (+)= lhs (m×k) @ rhs (k×n)` in f64, each matrix given with
/// its (row, column) strides.
#[allow(clippy::too_many_arguments)]
fn naive_gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f64],
    d: (isize, isize),
    acc: bool,
    lhs: &[f64],
    l: (isize, isize),
    rhs: &[f64],
    r: (isize, isize),
) {
    let at =
        |(rs, cs): (isize, isize), i: usize, j: usize| (i as isize * rs + j as isize * cs) as usize;
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| lhs[at(l, i, p)] * rhs[at(r, p, j)]).sum();
            let di = at(d, i, j);
            dst[di] = if acc { dst[di] + s } else { s };
        }
    }
}

/// Strides for a `rows×cols` matrix, row- or column-major.
fn strides(rows: usize, cols: usize, col_major: bool) -> (isize, isize) {
    if col_major {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// Products large enough for the transposed-weight route (the weight-sized
/// operand column-major on the right of a row-major destination, and the
/// mirrored column-major-destination case), every layout of the small
/// operand, with and without accumulation, with a padded destination row
/// stride: all equal the naive product.
#[test]
fn gemm_transposed_weight_route_matches_naive() {
    let mut rng = Rng::new(0x5eed_cafe);
    let (m, n, k) = (7, 520, 150);
    assert!(n * k >= TRANSPOSE_MIN && n * k >= 4 * m * (k + n));
    for lhs_col in [false, true] {
        for acc in [false, true] {
            let lhs: Vec<f32> = rng.vec(m * k);
            let rhs: Vec<f32> = rng.vec(k * n);
            let (l, r) = (strides(m, k, lhs_col), strides(k, n, true));
            let (lhs64, rhs64) = (to64(&lhs), to64(&rhs));
            // Row-major destination with padded rows.
            let d = (n as isize + 3, 1);
            let init: Vec<f32> = rng.vec(m * (n + 3));
            let mut got = init.clone();
            let mut want = to64(&init);
            gemm(
                m, n, k, &mut got, d.0, d.1, acc, &lhs, l.0, l.1, &rhs, r.0, r.1,
            );
            naive_gemm(m, n, k, &mut want, d, acc, &lhs64, l, &rhs64, r);
            assert_close("row-major destination", &got, &want, 1e-4);
            // The mirror image: dstᵀ column-major = rhsᵀ (row-major weight
            // on the left) · lhsᵀ.
            let mut got_t = init.clone();
            let mut want_t = to64(&init);
            let (dt, lt, rt) = ((1, n as isize + 3), (l.1, l.0), (r.1, r.0));
            gemm(
                n, m, k, &mut got_t, dt.0, dt.1, acc, &rhs, rt.0, rt.1, &lhs, lt.0, lt.1,
            );
            naive_gemm(n, m, k, &mut want_t, dt, acc, &rhs64, rt, &lhs64, lt);
            assert_close("column-major destination", &got_t, &want_t, 1e-4);
        }
    }
}

/// `gemm_new` (no zero fill) gives exactly what `gemm` into zeros gives,
/// for every operand layout, the transposed-weight route and `k == 0`.
#[test]
fn gemm_new_equals_gemm_into_zeros() {
    let mut rng = Rng::new(11);
    for (m, n, k) in [(7, 520, 150), (5, 3, 0), (33, 17, 9), (1, 1, 1)] {
        for (lhs_col, rhs_col) in [(false, false), (false, true), (true, false), (true, true)] {
            let lhs: Vec<f32> = rng.vec(m * k);
            let rhs: Vec<f32> = rng.vec(k * n);
            let (l, r) = (strides(m, k, lhs_col), strides(k, n, rhs_col));
            let mut want = vec![0f32; m * n];
            gemm(
                m, n, k, &mut want, n as isize, 1, false, &lhs, l.0, l.1, &rhs, r.0, r.1,
            );
            let got = gemm_new(m, n, k, &lhs, l.0, l.1, &rhs, r.0, r.1);
            assert_eq!(
                got, want,
                "{m}x{n}x{k}, lhs col-major {lhs_col}, rhs {rhs_col}"
            );
        }
    }
}

fn check_gemm<T: Float>(tol: f64) {
    let mut rng = Rng::new(7);
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 1, 9),
        (1, 13, 4),
        (33, 31, 29),
        (64, 70, 3),
        (100, 120, 110),
        (5, 4, 0),
        (0, 4, 5),
    ];
    for &(m, n, k) in &shapes {
        for mask in 0..8u32 {
            let acc = mask & 1 != 0;
            let lt = strides(m, k, mask & 2 != 0);
            let rt = strides(k, n, mask & 4 != 0);
            let dt = strides(m, n, mask & 6 == 6);
            let a: Vec<T> = rng.vec(m * k);
            let b: Vec<T> = rng.vec(k * n);
            let mut c: Vec<T> = rng.vec(m * n);
            let mut c64 = to64(&c);
            naive_gemm(m, n, k, &mut c64, dt, acc, &to64(&a), lt, &to64(&b), rt);
            gemm(
                m, n, k, &mut c, dt.0, dt.1, acc, &a, lt.0, lt.1, &b, rt.0, rt.1,
            );
            assert_close(&format!("gemm {m}x{n}x{k} mask {mask}"), &c, &c64, tol);
        }
    }
}

tests! {
    gemm_f32_matches_naive = check_gemm::<f32>(1e-4),
    gemm_f64_matches_naive = check_gemm::<f64>(1e-12),
}

#[test]
fn gemm_strided_views_and_broadcast() {
    // lhs is every other row of a bigger matrix; rhs a broadcast row (row
    // stride 0); dst has padding between rows.
    let mut rng = Rng::new(8);
    let (m, n, k) = (6, 5, 4);
    let a: Vec<f64> = rng.vec(2 * m * k);
    let b: Vec<f64> = rng.vec(n);
    let mut c = vec![0.0f64; m * (n + 3)];
    let mut want = c.clone();
    let (d, l) = (((n + 3) as isize, 1), (2 * k as isize, 1));
    naive_gemm(m, n, k, &mut want, d, false, &a, l, &b, (0, 1));
    gemm(m, n, k, &mut c, d.0, d.1, false, &a, l.0, l.1, &b, 0, 1);
    assert_close("strided gemm", &c, &want, 1e-12);
}

#[test]
#[should_panic(expected = "outside its slice")]
fn gemm_rejects_short_slices() {
    let mut c = vec![0.0f32; 4];
    gemm(
        2, 2, 2, &mut c, 2, 1, false, &[0.0; 3], 2, 1, &[0.0; 4], 2, 1,
    );
}

#[test]
#[should_panic(expected = "twice")]
fn gemm_rejects_overlapping_dst() {
    let mut c = vec![0.0f32; 4];
    gemm(
        2, 2, 2, &mut c, 1, 1, false, &[0.0; 4], 2, 1, &[0.0; 4], 2, 1,
    );
}

#[test]
fn batched_gemm_matches_naive() {
    let mut rng = Rng::new(99);
    // (batch, m, n, k, broadcast lhs, broadcast rhs)
    let cases = [
        (1, 3, 4, 5, false, false),
        (7, 9, 8, 10, false, true),
        (64, 16, 12, 20, true, false),
        (3, 120, 130, 100, false, false),
        (0, 3, 3, 3, false, false),
    ];
    for &(batch, m, n, k, bl, br) in &cases {
        for acc in [false, true] {
            let a: Vec<f64> = rng.vec(if bl { m * k } else { batch * m * k });
            let b: Vec<f64> = rng.vec(if br { k * n } else { batch * k * n });
            let mut c: Vec<f64> = rng.vec(batch * m * n);
            let mut want = c.clone();
            let abs = if bl { 0 } else { m * k };
            let bbs = if br { 0 } else { k * n };
            // lhs stored transposed (k×m col-major view), rhs row-major.
            let (l, r) = ((1, m as isize), (n as isize, 1));
            for (i, w) in want.chunks_exact_mut(m * n).enumerate() {
                let (a, b) = (&a[i * abs..], &b[i * bbs..]);
                naive_gemm(m, n, k, w, (n as isize, 1), acc, a, l, b, r);
            }
            let (abs, bbs) = (abs as isize, bbs as isize);
            batched_gemm(
                batch,
                m,
                n,
                k,
                &mut c,
                (m * n) as isize,
                n as isize,
                1,
                &a,
                abs,
                l.0,
                l.1,
                &b,
                bbs,
                r.0,
                r.1,
                acc,
            );
            assert_close(&format!("batched {batch}x{m}x{n}x{k}"), &c, &want, 1e-12);
        }
    }
}

#[test]
fn gemm_does_not_depend_on_thread_count() {
    let mut rng = Rng::new(11);
    let (m, n, k) = (200, 190, 300);
    let a: Vec<f32> = rng.vec(m * k);
    let b: Vec<f32> = rng.vec(k * n);
    let run = || {
        let mut c = vec![0.0f32; m * n];
        gemm(
            m, n, k, &mut c, n as isize, 1, false, &a, 1, m as isize, &b, n as isize, 1,
        );
        c
    };
    let (one, three) = one_and_three_threads();
    assert!(one.install(run) == three.install(run));
}

/// Batched products that fold into one tall or wide product.
#[test]
fn batched_gemm_folds_shared_operand() {
    let mut rng = Rng::new(42);
    let (batch, m, n, k) = (5, 7, 6, 9);
    // [batch, m, k] @ shared [k, n] -> [batch, m, n]
    let a: Vec<f64> = rng.vec(batch * m * k);
    let b: Vec<f64> = rng.vec(k * n);
    let mut c = vec![0.0; batch * m * n];
    let mut want = c.clone();
    let (rows_k, rows_n) = ((k as isize, 1), (n as isize, 1));
    naive_gemm(
        batch * m,
        n,
        k,
        &mut want,
        rows_n,
        false,
        &a,
        rows_k,
        &b,
        rows_n,
    );
    batched_gemm(
        batch,
        m,
        n,
        k,
        &mut c,
        (m * n) as isize,
        n as isize,
        1,
        &a,
        (m * k) as isize,
        k as isize,
        1,
        &b,
        0,
        n as isize,
        1,
        false,
    );
    assert_close("tall fold", &c, &want, 1e-12);
    // shared [m, k] @ rhs laid out [k, batch, n] -> dst [m, batch, n]
    let a: Vec<f64> = rng.vec(m * k);
    let b: Vec<f64> = rng.vec(k * batch * n);
    let mut c: Vec<f64> = rng.vec(m * batch * n);
    let mut want = c.clone();
    let bn = (batch * n) as isize;
    naive_gemm(
        m,
        batch * n,
        k,
        &mut want,
        (bn, 1),
        true,
        &a,
        rows_k,
        &b,
        (bn, 1),
    );
    batched_gemm(
        batch, m, n, k, &mut c, n as isize, bn, 1, &a, 0, k as isize, 1, &b, n as isize, bn, 1,
        true,
    );
    assert_close("wide fold", &c, &want, 1e-12);
}

#[test]
fn gemm_half_precision() {
    let mut rng = Rng::new(3);
    for &(m, n, k) in &[(3, 4, 5), (40, 33, 70)] {
        let a64: Vec<f64> = rng.vec(m * k);
        let b64: Vec<f64> = rng.vec(k * n);
        let mut want = vec![0.0f64; m * n];
        // rhs transposed via strides
        let (l, r) = ((k as isize, 1), (1, k as isize));
        naive_gemm(m, n, k, &mut want, (n as isize, 1), false, &a64, l, &b64, r);
        let tol = 0.02 * (k as f64).sqrt();
        let a: Vec<half::f16> = a64.iter().map(|&x| half::f16::from_f64(x)).collect();
        let b: Vec<half::f16> = b64.iter().map(|&x| half::f16::from_f64(x)).collect();
        let mut c = vec![half::f16::ZERO; m * n];
        gemm_f16(
            m, n, k, &mut c, n as isize, 1, false, &a, l.0, l.1, &b, r.0, r.1,
        );
        for (g, w) in c.iter().zip(&want) {
            assert!((g.to_f64() - w).abs() < tol, "{g} vs {w}");
        }
        let a: Vec<half::bf16> = a64.iter().map(|&x| half::bf16::from_f64(x)).collect();
        let b: Vec<half::bf16> = b64.iter().map(|&x| half::bf16::from_f64(x)).collect();
        let mut c = vec![half::bf16::ONE; m * n];
        gemm_bf16(
            m, n, k, &mut c, n as isize, 1, true, &a, l.0, l.1, &b, r.0, r.1,
        );
        for (g, w) in c.iter().zip(&want) {
            assert!((g.to_f64() - (w + 1.0)).abs() < 4.0 * tol, "{g} vs {w}+1");
        }
    }
}

// ---------------------------------------------------------------- conv ---

struct ConvCase {
    in_shape: [usize; 4],
    o: usize,
    k: [usize; 2],
    p: Conv2dParams,
}

fn case(
    in_shape: [usize; 4],
    o: usize,
    k: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) -> ConvCase {
    ConvCase {
        in_shape,
        o,
        k,
        p: Conv2dParams {
            stride,
            padding,
            dilation,
            groups,
        },
    }
}

fn conv_cases() -> Vec<ConvCase> {
    vec![
        // LeNet-like layers (small batch to keep the naive loops fast).
        case([3, 1, 28, 28], 6, [5, 5], [1, 1], [2, 2], [1, 1], 1),
        case([2, 6, 14, 14], 16, [5, 5], [1, 1], [0, 0], [1, 1], 1),
        // batch 1, odd sizes, rectangular kernel, asymmetric stride/padding.
        case([1, 3, 11, 9], 4, [3, 2], [2, 1], [1, 0], [1, 1], 1),
        case([2, 4, 13, 10], 6, [2, 3], [1, 3], [0, 2], [2, 1], 2),
        // dilation both ways and groups = channels (depthwise).
        case([3, 4, 12, 12], 8, [3, 3], [1, 1], [2, 2], [2, 2], 4),
        // 1x1 pointwise fast path, with and without groups.
        case([2, 6, 7, 5], 9, [1, 1], [1, 1], [0, 0], [1, 1], 3),
        case([1, 5, 4, 6], 3, [1, 1], [1, 1], [0, 0], [1, 1], 1),
        // 1x1 with stride (not pointwise) and padding bigger than the kernel.
        case([2, 3, 8, 7], 2, [1, 1], [2, 2], [1, 1], [1, 1], 1),
        // kernel the size of the padded input; stride > kernel.
        case([2, 2, 5, 5], 3, [7, 7], [1, 1], [1, 1], [1, 1], 1),
        case([4, 3, 17, 15], 5, [2, 2], [3, 4], [1, 0], [1, 1], 1),
        // batch large enough to take the batch-parallel paths.
        case([16, 8, 12, 12], 12, [3, 3], [1, 1], [1, 1], [1, 1], 2),
        case([9, 2, 1, 1], 3, [1, 1], [1, 1], [0, 0], [1, 1], 1),
        // one image per product (>= 384 output pixels): pointwise with
        // groups, and the "same width" stride-1 path.
        case([2, 4, 20, 20], 6, [1, 1], [1, 1], [0, 0], [1, 1], 2),
        case([3, 2, 24, 20], 3, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        // the direct route (f32, output channels a multiple of 16 or 8):
        // VGG's first layer; a taller kernel with vertical stride and
        // asymmetric padding; rows wider than one register tile; three
        // blocks of output channels and more kernel rows than one
        // weight-gradient tile holds.
        case([2, 3, 32, 32], 32, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        case([3, 2, 11, 13], 16, [5, 3], [2, 1], [2, 1], [1, 1], 1),
        case([2, 2, 9, 39], 16, [3, 3], [1, 1], [0, 1], [1, 1], 1),
        case([2, 3, 10, 12], 48, [7, 5], [1, 1], [3, 2], [1, 1], 1),
        // weights large enough for the whole-batch weight gradient (VGG's
        // deep layers: >= 2^17 weights per group), also with groups.
        case([2, 128, 3, 3], 128, [3, 3], [1, 1], [1, 1], [1, 1], 1),
        case([3, 256, 2, 2], 256, [3, 3], [1, 1], [1, 1], [1, 1], 2),
    ]
}

/// Naive 7-nested-loop convolution (plus the group loop) and its two
/// gradients, all in f64.
struct NaiveConv {
    out: Vec<f64>,
    gin: Vec<f64>,
    gw: Vec<f64>,
    gb: Vec<f64>,
}

fn naive_conv(
    c: &ConvCase,
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    gout: &[f64],
) -> (NaiveConv, [usize; 4]) {
    let [n, ch, h, wd] = c.in_shape;
    let [kh, kw] = c.k;
    let p = &c.p;
    let [oh, ow] = conv2d_output_size([h, wd], c.k, p).unwrap();
    let (g, o) = (p.groups, c.o);
    let (cg, og) = (ch / g, o / g);
    let mut out = vec![0.0; n * o * oh * ow];
    let mut gin = vec![0.0; x.len()];
    let mut gw = vec![0.0; w.len()];
    let mut gb = vec![0.0; o];
    for bi in 0..n {
        for oc in 0..o {
            let grp = oc / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let oi = ((bi * o + oc) * oh + oy) * ow + ox;
                    let mut s = b.map_or(0.0, |b| b[oc]);
                    gb[oc] += gout[oi];
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((bi * ch + grp * cg + ci) * h + iy as usize) * wd
                                    + ix as usize;
                                let wi = ((oc * cg + ci) * kh + ki) * kw + kj;
                                s += x[xi] * w[wi];
                                gin[xi] += gout[oi] * w[wi];
                                gw[wi] += gout[oi] * x[xi];
                            }
                        }
                    }
                    out[oi] = s;
                }
            }
        }
    }
    (NaiveConv { out, gin, gw, gb }, [n, o, oh, ow])
}

fn check_conv<T: Float>(tol: f64) {
    let mut rng = Rng::new(1);
    for (ci, c) in conv_cases().iter().enumerate() {
        let w_shape = [c.o, c.in_shape[1] / c.p.groups, c.k[0], c.k[1]];
        let x: Vec<T> = rng.vec(c.in_shape.iter().product());
        let w: Vec<T> = rng.vec(w_shape.iter().product());
        let b: Vec<T> = rng.vec(c.o);
        let [oh, ow] = conv2d_output_size([c.in_shape[2], c.in_shape[3]], c.k, &c.p).unwrap();
        let gout: Vec<T> = rng.vec(c.in_shape[0] * c.o * oh * ow);
        let (want, out_shape) = naive_conv(c, &to64(&x), &to64(&w), Some(&to64(&b)), &to64(&gout));
        let what = format!("case {ci} {:?} o={} k={:?} {:?}", c.in_shape, c.o, c.k, c.p);

        let out = conv2d_forward(&x, c.in_shape, &w, w_shape, Some(&b), &c.p);
        assert_close(&format!("forward {what}"), &out, &want.out, tol);
        let out_nb = conv2d_forward(&x, c.in_shape, &w, w_shape, None, &c.p);
        let want_nb: Vec<f64> = want
            .out
            .iter()
            .enumerate()
            .map(|(i, v)| v - b[(i / (oh * ow)) % c.o].as_f64())
            .collect();
        assert_close(&format!("forward no bias {what}"), &out_nb, &want_nb, tol);

        let gin = conv2d_backward_input(&gout, out_shape, &w, w_shape, c.in_shape, &c.p);
        assert_close(&format!("backward_input {what}"), &gin, &want.gin, tol);
        let gw = conv2d_backward_weight(&gout, out_shape, &x, c.in_shape, w_shape, &c.p);
        assert_close(&format!("backward_weight {what}"), &gw, &want.gw, tol);
        let gb = conv2d_backward_bias(&gout, out_shape);
        assert_close(&format!("backward_bias {what}"), &gb, &want.gb, tol);
        // All three at once, as a training step asks for them.
        let all = conv2d_backward(
            &gout, out_shape, &x, c.in_shape, &w, w_shape, &c.p, [true; 3],
        );
        assert_close(
            &format!("all: input {what}"),
            &all.input.unwrap(),
            &want.gin,
            tol,
        );
        assert_close(
            &format!("all: weight {what}"),
            &all.weight.unwrap(),
            &want.gw,
            tol,
        );
        assert_close(
            &format!("all: bias {what}"),
            &all.bias.unwrap(),
            &want.gb,
            tol,
        );
        let wb = conv2d_backward(
            &gout,
            out_shape,
            &x,
            c.in_shape,
            &w,
            w_shape,
            &c.p,
            [false, true, true],
        );
        assert!(wb.input.is_none());
        assert_close(
            &format!("weight and bias {what}"),
            &wb.weight.unwrap(),
            &want.gw,
            tol,
        );
        assert_close(
            &format!("bias with weight {what}"),
            &wb.bias.unwrap(),
            &want.gb,
            tol,
        );
    }
}

tests! {
    conv_f32_matches_naive = check_conv::<f32>(2e-4),
    conv_f64_matches_naive = check_conv::<f64>(1e-11),
}

#[test]
fn conv_output_size_rules() {
    let p = Conv2dParams::default();
    assert_eq!(conv2d_output_size([28, 28], [5, 5], &p), Some([24, 24]));
    assert_eq!(conv2d_output_size([4, 4], [5, 5], &p), None);
    let p = Conv2dParams {
        stride: [2, 3],
        padding: [1, 0],
        dilation: [2, 1],
        groups: 1,
    };
    // h: (9 + 2 - 2*2 - 1)/2 + 1 = 4; w: (10 - 3)/3 + 1 = 3
    assert_eq!(conv2d_output_size([9, 10], [3, 3], &p), Some([4, 3]));
    let p = Conv2dParams {
        stride: [0, 1],
        ..Conv2dParams::default()
    };
    assert_eq!(conv2d_output_size([9, 10], [3, 3], &p), None);
}

#[test]
#[should_panic(expected = "conv2d_forward")]
fn conv_rejects_bad_channels() {
    let x = vec![0.0f32; 2 * 3 * 5 * 5];
    let w = vec![0.0f32; 4 * 2 * 3 * 3];
    conv2d_forward(
        &x,
        [2, 3, 5, 5],
        &w,
        [4, 2, 3, 3],
        None,
        &Conv2dParams::default(),
    );
}

#[test]
fn conv_does_not_depend_on_thread_count() {
    let mut rng = Rng::new(8);
    let p = Conv2dParams {
        padding: [1, 1],
        ..Conv2dParams::default()
    };
    let (one, three) = one_and_three_threads();
    // The chunked paths, then VGG's 256 -> 256 on 4x4 maps (whole-batch
    // weight gradient, gemm on the pool).
    for (in_shape, w_shape, out_shape) in [
        ([20, 6, 12, 12], [16, 6, 3, 3], [20, 16, 12, 12]),
        ([8, 256, 4, 4], [256, 256, 3, 3], [8, 256, 4, 4]),
    ] {
        let x: Vec<f32> = rng.vec(in_shape.iter().product());
        let w: Vec<f32> = rng.vec(w_shape.iter().product());
        let g: Vec<f32> = rng.vec(out_shape.iter().product());
        let run = || {
            (
                conv2d_forward(&x, in_shape, &w, w_shape, None, &p),
                conv2d_backward_input(&g, out_shape, &w, w_shape, in_shape, &p),
                conv2d_backward_weight(&g, out_shape, &x, in_shape, w_shape, &p),
            )
        };
        assert!(one.install(run) == three.install(run), "{in_shape:?}");
    }
}

/// A Winograd layer's backward reusing the forward's transforms gives the
/// bits of the one that transforms again; another layer's kept state is
/// refused, and a layer off the Winograd route keeps nothing.
#[test]
fn conv_backward_reusing_the_forward_matches() {
    let mut rng = Rng::new(12);
    let p = Conv2dParams {
        padding: [1, 1],
        ..Conv2dParams::default()
    };
    let (in_shape, w_shape, out_shape) = ([4, 16, 6, 6], [20, 16, 3, 3], [4, 20, 6, 6]);
    let x: Vec<f32> = rng.vec(in_shape.iter().product());
    let w: Vec<f32> = rng.vec(w_shape.iter().product());
    let b: Vec<f32> = rng.vec(20);
    let g: Vec<f32> = rng.vec(out_shape.iter().product());
    let (y, kept) = conv2d_forward_keeping(&x, in_shape, &w, w_shape, Some(&b), &p);
    assert_eq!(y, conv2d_forward(&x, in_shape, &w, w_shape, Some(&b), &p));
    let kept = kept.expect("a 3x3 layer with 16 channels takes the Winograd route");
    let want = conv2d_backward_input_and_weight(&g, out_shape, &x, in_shape, &w, w_shape, &p);
    let got = conv2d_backward_reusing(&kept, &g, out_shape, in_shape, w_shape, &p);
    assert!(got == want);
    let other = std::panic::catch_unwind(|| {
        conv2d_backward_reusing(&kept, &g, out_shape, in_shape, [20, 16, 3, 3], &{
            let mut q = p;
            q.padding = [2, 2];
            q
        })
    });
    assert!(
        other.is_err(),
        "kept transforms of another geometry were accepted"
    );
    let (_, none) = conv2d_forward_keeping(
        &x,
        in_shape,
        &w,
        w_shape,
        None,
        &Conv2dParams {
            stride: [2, 2],
            ..p
        },
    );
    assert!(none.is_none());
}

#[test]
fn conv_is_deterministic_across_calls() {
    let mut rng = Rng::new(5);
    let (in_shape, w_shape) = ([64, 6, 14, 14], [16, 6, 5, 5]);
    let x: Vec<f32> = rng.vec(in_shape.iter().product());
    let g: Vec<f32> = rng.vec(64 * 16 * 10 * 10);
    let p = Conv2dParams::default();
    let a = conv2d_backward_weight(&g, [64, 16, 10, 10], &x, in_shape, w_shape, &p);
    let b = conv2d_backward_weight(&g, [64, 16, 10, 10], &x, in_shape, w_shape, &p);
    assert_eq!(a, b);
}

// ---------------------------------------------------------------- pool ---

struct PoolCase {
    in_shape: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    d: [usize; 2],
    ceil: bool,
}

fn pool_cases() -> Vec<PoolCase> {
    let c = |in_shape, k, s, p, d, ceil| PoolCase {
        in_shape,
        k,
        s,
        p,
        d,
        ceil,
    };
    vec![
        // the 2x2 fast path, even and odd sizes, floor and ceil.
        c([2, 3, 8, 6], [2, 2], [2, 2], [0, 0], [1, 1], false),
        c([1, 2, 7, 9], [2, 2], [2, 2], [0, 0], [1, 1], false),
        c([1, 2, 7, 9], [2, 2], [2, 2], [0, 0], [1, 1], true),
        c([64, 6, 28, 28], [2, 2], [2, 2], [0, 0], [1, 1], false),
        // 2x2 rows of 16 windows and more (the SIMD path's full and partial
        // steps), an odd row length.
        c([2, 3, 6, 40], [2, 2], [2, 2], [0, 0], [1, 1], false),
        c([1, 2, 4, 65], [2, 2], [2, 2], [0, 0], [1, 1], false),
        // general windows.
        c([2, 2, 9, 11], [3, 3], [2, 2], [1, 1], [1, 1], false),
        c([2, 2, 9, 11], [3, 3], [2, 2], [1, 1], [1, 1], true),
        c([1, 3, 10, 7], [3, 2], [1, 2], [1, 1], [1, 1], true),
        c([3, 1, 12, 13], [3, 3], [3, 2], [0, 1], [2, 2], false),
        c([2, 2, 12, 13], [2, 4], [2, 3], [1, 2], [3, 1], true),
        c([1, 1, 5, 5], [5, 5], [1, 1], [2, 2], [1, 1], false),
        c([1, 1, 1, 1], [1, 1], [1, 1], [0, 0], [1, 1], false),
        c([16, 16, 20, 20], [3, 3], [2, 2], [1, 1], [1, 1], true),
    ]
}

fn out_hw(c: &PoolCase, d: [usize; 2]) -> [usize; 2] {
    let [_, _, h, w] = c.in_shape;
    pool2d_output_size([h, w], c.k, c.s, c.p, d, c.ceil).unwrap()
}

fn check_max_pool<T: Float>() {
    let mut rng = Rng::new(2);
    for (ci, c) in pool_cases().iter().enumerate() {
        let [n, ch, h, w] = c.in_shape;
        let mut x: Vec<T> = rng.vec(n * ch * h * w);
        // Ties, -inf and NaN in some planes.
        // Ties (a high value repeated over a 2x2 block, so the first must
        // win), -inf, NaN, and a plane entirely -inf (index defaults to the
        // window's first valid position).
        if h >= 2 && w >= 2 {
            for i in [0, 1, w, w + 1] {
                x[i] = T::cast_f64(0.99);
            }
        }
        if x.len() > 40 {
            x[7] = T::neg_infinity();
            x[h * w + 1] = T::nan();
        }
        if n * ch >= 3 {
            let last = (n * ch - 1) * h * w;
            x[last..].fill(T::neg_infinity());
        }
        let [oh, ow] = out_hw(c, c.d);
        let (out, idx, shape) = max_pool2d_forward(&x, c.in_shape, c.k, c.s, c.p, c.d, c.ceil);
        assert_eq!(shape, [n, ch, oh, ow], "case {ci}");
        let gout: Vec<T> = rng.vec(out.len());
        let mut want = vec![0.0; out.len()];
        let mut want_idx = vec![0u32; out.len()];
        let mut want_gin = vec![0.0; x.len()];
        for pl in 0..n * ch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut m, mut best) = (f64::NEG_INFINITY, None::<usize>);
                    for ki in 0..c.k[0] {
                        for kj in 0..c.k[1] {
                            let y = (oy * c.s[0] + ki * c.d[0]) as isize - c.p[0] as isize;
                            let xx = (ox * c.s[1] + kj * c.d[1]) as isize - c.p[1] as isize;
                            if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                continue;
                            }
                            let i = y as usize * w + xx as usize;
                            let v = x[pl * h * w + i].as_f64();
                            // PyTorch: the first valid position is the default,
                            // `v > max || isnan(v)` replaces it.
                            if best.is_none() {
                                best = Some(i);
                            }
                            if v > m || v.is_nan() {
                                m = v;
                                best = Some(i);
                            }
                        }
                    }
                    let o = (pl * oh + oy) * ow + ox;
                    want[o] = m;
                    want_idx[o] = best.unwrap() as u32;
                    want_gin[pl * h * w + best.unwrap()] += gout[o].as_f64();
                }
            }
        }
        assert_close(&format!("max_pool case {ci}"), &out, &want, 0.0);
        assert_eq!(idx, want_idx, "max_pool indices case {ci}");
        let gin = max_pool2d_backward(&gout, shape, &idx, c.in_shape);
        assert_close(
            &format!("max_pool backward case {ci}"),
            &gin,
            &want_gin,
            1e-6,
        );
    }
}

tests! {
    max_pool_f32_matches_naive = check_max_pool::<f32>(),
    max_pool_f64_matches_naive = check_max_pool::<f64>(),
}

fn check_avg_pool<T: Float>(tol: f64) {
    let mut rng = Rng::new(3);
    for (ci, c) in pool_cases().iter().enumerate() {
        let [n, ch, h, w] = c.in_shape;
        // avg pool has no dilation; its padding limit is k/2.
        if c.p[0] > c.k[0] / 2 || c.p[1] > c.k[1] / 2 {
            continue;
        }
        let x: Vec<T> = rng.vec(n * ch * h * w);
        let [oh, ow] = out_hw(c, [1, 1]);
        for (include, over) in [(true, None), (false, None), (true, Some(3usize))] {
            let (out, shape) =
                avg_pool2d_forward(&x, c.in_shape, c.k, c.s, c.p, c.ceil, include, over);
            assert_eq!(shape, [n, ch, oh, ow], "case {ci}");
            let gout: Vec<T> = rng.vec(out.len());
            let mut want = vec![0.0; out.len()];
            let mut want_gin = vec![0.0; x.len()];
            for pl in 0..n * ch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (mut s, mut valid, mut padded) = (0.0, 0usize, 0usize);
                        let mut cells = vec![];
                        for ki in 0..c.k[0] {
                            for kj in 0..c.k[1] {
                                let y = (oy * c.s[0] + ki) as isize - c.p[0] as isize;
                                let xx = (ox * c.s[1] + kj) as isize - c.p[1] as isize;
                                // positions inside input + padding count
                                // for count_include_pad
                                if y < (h + c.p[0]) as isize && xx < (w + c.p[1]) as isize {
                                    padded += 1;
                                }
                                if y < 0 || xx < 0 || y >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                let i = pl * h * w + y as usize * w + xx as usize;
                                s += x[i].as_f64();
                                valid += 1;
                                cells.push(i);
                            }
                        }
                        let div = over.unwrap_or(if include { padded } else { valid });
                        let o = (pl * oh + oy) * ow + ox;
                        if valid > 0 {
                            want[o] = s / div as f64;
                            for i in cells {
                                want_gin[i] += gout[o].as_f64() / div as f64;
                            }
                        }
                    }
                }
            }
            let what = format!("avg_pool case {ci} include={include} over={over:?}");
            assert_close(&what, &out, &want, tol);
            let gin = avg_pool2d_backward(
                &gout, shape, c.in_shape, c.k, c.s, c.p, c.ceil, include, over,
            );
            assert_close(&format!("{what} backward"), &gin, &want_gin, tol);
        }
    }
}

tests! {
    avg_pool_f32_matches_naive = check_avg_pool::<f32>(1e-5),
    avg_pool_f64_matches_naive = check_avg_pool::<f64>(1e-12),
}

fn check_adaptive<T: Float>(tol: f64) {
    let mut rng = Rng::new(4);
    let cases = [
        ([2, 3, 7, 9], [3, 4]),
        ([1, 2, 5, 5], [5, 5]),
        ([1, 1, 4, 6], [7, 8]),
        ([3, 2, 13, 11], [1, 1]),
        ([32, 32, 16, 16], [7, 7]),
    ];
    for (ci, &(in_shape, out)) in cases.iter().enumerate() {
        let [n, c, h, w] = in_shape;
        let [oh, ow] = out;
        let x: Vec<T> = rng.vec(n * c * h * w);
        let got = adaptive_avg_pool2d_forward(&x, in_shape, out);
        let gout: Vec<T> = rng.vec(got.len());
        let mut want = vec![0.0; got.len()];
        let mut want_gin = vec![0.0; x.len()];
        for pl in 0..n * c {
            for oy in 0..oh {
                let y0 = (oy as f64 * h as f64 / oh as f64).floor() as usize;
                let y1 = ((oy + 1) as f64 * h as f64 / oh as f64).ceil() as usize;
                for ox in 0..ow {
                    let x0 = (ox as f64 * w as f64 / ow as f64).floor() as usize;
                    let x1 = ((ox + 1) as f64 * w as f64 / ow as f64).ceil() as usize;
                    let cnt = ((y1 - y0) * (x1 - x0)) as f64;
                    let o = (pl * oh + oy) * ow + ox;
                    for y in y0..y1 {
                        for xx in x0..x1 {
                            want[o] += x[pl * h * w + y * w + xx].as_f64() / cnt;
                            want_gin[pl * h * w + y * w + xx] += gout[o].as_f64() / cnt;
                        }
                    }
                }
            }
        }
        assert_close(&format!("adaptive case {ci}"), &got, &want, tol);
        let gin = adaptive_avg_pool2d_backward(&gout, in_shape, out);
        assert_close(
            &format!("adaptive backward case {ci}"),
            &gin,
            &want_gin,
            tol,
        );
    }
}

tests! {
    adaptive_avg_pool_f32_matches_naive = check_adaptive::<f32>(1e-5),
    adaptive_avg_pool_f64_matches_naive = check_adaptive::<f64>(1e-12),
}

#[test]
fn pool_output_size_matches_pytorch() {
    // Values from torch.nn.functional.max_pool2d output shapes.
    assert_eq!(pool_output_size(28, 2, 2, 0, 1, false), Some(14));
    assert_eq!(pool_output_size(7, 2, 2, 0, 1, false), Some(3));
    assert_eq!(pool_output_size(7, 2, 2, 0, 1, true), Some(4));
    assert_eq!(pool_output_size(6, 3, 2, 1, 1, true), Some(4));
    // ceil mode drops a last window that would start in the right padding
    assert_eq!(pool_output_size(5, 2, 2, 1, 1, true), Some(3));
    assert_eq!(pool_output_size(5, 3, 2, 1, 1, true), Some(3));
    assert_eq!(pool_output_size(10, 3, 3, 0, 2, true), Some(3));
    assert_eq!(pool_output_size(1, 2, 2, 0, 1, false), None);
    assert_eq!(pool_output_size(5, 2, 2, 2, 1, false), None); // pad > k/2
}

// ------------------------------------------------------------- softmax ---

fn naive_softmax(x: &[f64], outer: usize, dim: usize, inner: usize, log: bool) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |d: usize| (o * dim + d) * inner + i;
            let m = (0..dim).map(|d| x[at(d)]).fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..dim).map(|d| (x[at(d)] - m).exp()).sum();
            for d in 0..dim {
                y[at(d)] = if log {
                    x[at(d)] - m - s.ln()
                } else {
                    (x[at(d)] - m).exp() / s
                };
            }
        }
    }
    y
}

fn naive_softmax_backward(
    y: &[f64],
    gy: &[f64],
    outer: usize,
    dim: usize,
    inner: usize,
    log: bool,
) -> Vec<f64> {
    let mut gx = vec![0.0; y.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |d: usize| (o * dim + d) * inner + i;
            if log {
                let s: f64 = (0..dim).map(|d| gy[at(d)]).sum();
                for d in 0..dim {
                    gx[at(d)] = gy[at(d)] - y[at(d)].exp() * s;
                }
            } else {
                let s: f64 = (0..dim).map(|d| gy[at(d)] * y[at(d)]).sum();
                for d in 0..dim {
                    gx[at(d)] = y[at(d)] * (gy[at(d)] - s);
                }
            }
        }
    }
    gx
}

fn check_softmax<T: Float>(tol: f64) {
    let mut rng = Rng::new(6);
    let cases = [
        (1, 1, 1),
        (4, 10, 1),
        (64, 10, 1),
        (3, 7, 5),
        (2, 1, 9),
        (5, 33, 17),
        (2000, 40, 1),
        (3, 300, 64),
    ];
    for &(outer, dim, inner) in &cases {
        // Large magnitudes check the max subtraction.
        let x: Vec<T> = (0..outer * dim * inner)
            .map(|_| T::cast_f64(rng.next() * 40.0))
            .collect();
        let gy: Vec<T> = rng.vec(x.len());
        let x64 = to64(&x);
        for log in [false, true] {
            let what = format!("softmax log={log} [{outer}, {dim}, {inner}]");
            let want = naive_softmax(&x64, outer, dim, inner, log);
            let got = match (log, inner) {
                (false, 1) => softmax_rows(&x, outer, dim),
                (true, 1) => log_softmax_rows(&x, outer, dim),
                (false, _) => softmax_dim(&x, outer, dim, inner),
                (true, _) => log_softmax_dim(&x, outer, dim, inner),
            };
            assert_close(&what, &got, &want, tol);
            let got_dim = if log {
                log_softmax_dim(&x, outer, dim, inner)
            } else {
                softmax_dim(&x, outer, dim, inner)
            };
            assert_close(&what, &got_dim, &want, tol);
            let y: Vec<T> = want.iter().map(|&v| T::cast_f64(v)).collect();
            let want_g = naive_softmax_backward(&to64(&y), &to64(&gy), outer, dim, inner, log);
            let got_g = match (log, inner) {
                (false, 1) => softmax_rows_backward(&y, &gy, outer, dim),
                (true, 1) => log_softmax_rows_backward(&y, &gy, outer, dim),
                (false, _) => softmax_dim_backward(&y, &gy, outer, dim, inner),
                (true, _) => log_softmax_dim_backward(&y, &gy, outer, dim, inner),
            };
            assert_close(&format!("{what} backward"), &got_g, &want_g, tol * 10.0);
        }
    }
}

tests! {
    softmax_f32_matches_naive = check_softmax::<f32>(1e-5),
    softmax_f64_matches_naive = check_softmax::<f64>(1e-12),
}

#[test]
fn softmax_special_values() {
    let x = [1.0f32, f32::NAN, 0.0, 0.0, f32::NEG_INFINITY, 0.0];
    let y = softmax_rows(&x, 2, 3);
    assert!(y[..3].iter().all(|v| v.is_nan()));
    assert_eq!(&y[3..], &[0.5, 0.0, 0.5]);
    let l = log_softmax_rows(&x, 2, 3);
    assert_eq!(l[4], f32::NEG_INFINITY);
}
