//! Kernel benchmarks, one JSON object per line.
//!
//! `cargo run --release -p kiln-kernels --example bench_kernels [quick|all]`
//!
//! * `cpu` (first line): the SIMD features found and the kernels they select;
//! * `matmul`: square f32 products (GFLOP/s) at 256, 1024, 2048;
//! * `conv`: LeNet's two convolutions at batch 64, forward / input gradient /
//!   weight gradient (ms), plus the pooling after each;
//! * with `all`: the sweeps used to tune `GEMM_PAR_THRESHOLD`
//!   (`gemm_par`) and `PAR_THRESHOLD` (`par_threshold`), and the eight
//!   row/column-major layouts of an MLP's products (`gemm_layout`), which
//!   motivate `gemm`'s transposed-weight route.

use std::hint::black_box;
use std::time::Instant;

use kiln_kernels::cpu::conv::{
    Conv2dParams, conv2d_backward_bias, conv2d_backward_input, conv2d_backward_weight,
    conv2d_forward,
};
use kiln_kernels::cpu::matmul::{gemm, gemm_serial};
use kiln_kernels::cpu::parallel::{num_threads, par_zip_map};
use kiln_kernels::cpu::pool::{max_pool2d_backward, max_pool2d_forward};
use kiln_kernels::cpu::softmax::{log_softmax_rows, log_softmax_rows_backward};

/// Best-of-7 seconds per call of `f`, timed in batches lasting ~`budget` s.
fn time<F: FnMut()>(budget: f64, mut f: F) -> f64 {
    f();
    let t = Instant::now();
    f();
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let iters = ((budget / 7.0) / one).clamp(1.0, 1e6) as usize;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .collect();
    // The minimum: the machine is shared, interference only adds time.
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[0]
}

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Two random `n×n` operands and a zeroed destination.
fn square_operands(n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (data(n * n, 1), data(n * n, 2), vec![0.0f32; n * n])
}

fn bench_matmul() {
    for &n in &[256usize, 1024, 2048] {
        let (a, b, mut c) = square_operands(n);
        let ni = n as isize;
        let s = time(1.5, || {
            gemm(n, n, n, &mut c, ni, 1, false, &a, ni, 1, &b, ni, 1);
            black_box(&c);
        });
        let gflops = 2.0 * (n as f64).powi(3) / s / 1e9;
        println!(
            "{{\"bench\":\"matmul\",\"dtype\":\"f32\",\"n\":{n},\"ms\":{:.3},\"gflops\":{gflops:.1},\"threads\":{}}}",
            s * 1e3,
            num_threads()
        );
    }
}

fn bench_conv() {
    let p1 = Conv2dParams {
        padding: [2, 2],
        ..Conv2dParams::default()
    };
    let p2 = Conv2dParams::default();
    // LeNet's two layers at the batch sizes of `lenet_sgd_b64` and
    // `lenet_adam_b256`; the step total is for batch 64.
    let layers = [
        ("conv1", [64, 1, 28, 28], [6, 1, 5, 5], p1),
        ("conv2", [64, 6, 14, 14], [16, 6, 5, 5], p2),
        ("conv1", [256, 1, 28, 28], [6, 1, 5, 5], p1),
        ("conv2", [256, 6, 14, 14], [16, 6, 5, 5], p2),
    ];
    let mut total = 0.0;
    for (name, in_shape, w_shape, p) in layers {
        let x = data(in_shape.iter().product(), 3);
        let w = data(w_shape.iter().product(), 4);
        let b = data(w_shape[0], 5);
        let y = conv2d_forward(&x, in_shape, &w, w_shape, Some(&b), &p);
        let out_shape = [
            in_shape[0],
            w_shape[0],
            (in_shape[2] + 2 * p.padding[0] - w_shape[2]) + 1,
            (in_shape[3] + 2 * p.padding[1] - w_shape[3]) + 1,
        ];
        assert_eq!(y.len(), out_shape.iter().product::<usize>());
        let g = data(y.len(), 6);
        let fwd = time(1.0, || {
            black_box(conv2d_forward(&x, in_shape, &w, w_shape, Some(&b), &p));
        });
        let bin = time(1.0, || {
            black_box(conv2d_backward_input(
                &g, out_shape, &w, w_shape, in_shape, &p,
            ));
        });
        let bw = time(1.0, || {
            black_box(conv2d_backward_weight(
                &g, out_shape, &x, in_shape, w_shape, &p,
            ));
        });
        let bb = time(0.5, || {
            black_box(conv2d_backward_bias(&g, out_shape));
        });
        let (_, idx, pshape) =
            max_pool2d_forward(&y, out_shape, [2, 2], [2, 2], [0, 0], [1, 1], false);
        let pf = time(0.5, || {
            black_box(max_pool2d_forward(
                &y,
                out_shape,
                [2, 2],
                [2, 2],
                [0, 0],
                [1, 1],
                false,
            ));
        });
        let gp = data(pshape.iter().product(), 7);
        let pb = time(0.5, || {
            black_box(max_pool2d_backward(&gp, pshape, &idx, out_shape));
        });
        let macs = w_shape.iter().product::<usize>() * out_shape[0] * out_shape[2] * out_shape[3];
        let gf = |s: f64| 2.0 * macs as f64 / s / 1e9;
        println!(
            "{{\"bench\":\"conv\",\"layer\":\"{name}\",\"batch\":{},\"forward_ms\":{:.4},\"backward_input_ms\":{:.4},\"backward_weight_ms\":{:.4},\"backward_bias_ms\":{:.4},\"forward_gflops\":{:.1},\"backward_input_gflops\":{:.1},\"backward_weight_gflops\":{:.1},\"maxpool2x2_forward_ms\":{:.4},\"maxpool2x2_backward_ms\":{:.4}}}",
            in_shape[0],
            fwd * 1e3,
            bin * 1e3,
            bw * 1e3,
            bb * 1e3,
            gf(fwd),
            gf(bin),
            gf(bw),
            pf * 1e3,
            pb * 1e3
        );
        // A training step needs no input gradient for conv1 (its input is data).
        if in_shape[0] == 64 {
            total += fwd + bw + bb + pf + pb + if name == "conv1" { 0.0 } else { bin };
        }
    }
    let x = data(64 * 10, 8);
    let ls = time(0.3, || {
        black_box(log_softmax_rows(&x, 64, 10));
    });
    let lsb = time(0.3, || {
        black_box(log_softmax_rows_backward(&x, &x, 64, 10));
    });
    println!(
        "{{\"bench\":\"lenet_conv_pool_step\",\"batch\":64,\"ms\":{:.4},\"log_softmax_64x10_us\":{:.2},\"log_softmax_backward_64x10_us\":{:.2}}}",
        total * 1e3,
        ls * 1e6,
        lsb * 1e6
    );
}

fn bench_gemm_par() {
    for &n in &[32usize, 48, 64, 80, 96, 112, 128, 160, 192, 256] {
        let (a, b, mut c) = square_operands(n);
        let ni = n as isize;
        let serial = time(0.3, || {
            gemm_serial(n, n, n, &mut c, ni, 1, false, &a, ni, 1, &b, ni, 1);
            black_box(&c);
        });
        // Force the threaded path whatever the threshold says.
        let threaded = time(0.3, || {
            rayon::scope(|_| {
                unsafe_free_threaded(n, &mut c, &a, &b);
            });
            black_box(&c);
        });
        println!(
            "{{\"bench\":\"gemm_par\",\"n\":{n},\"serial_us\":{:.2},\"threaded_us\":{:.2},\"speedup\":{:.2}}}",
            serial * 1e6,
            threaded * 1e6,
            serial / threaded
        );
    }
}

/// Splits the product into two row halves run with `rayon::join` (what a
/// threaded gemm does at these sizes).
fn unsafe_free_threaded(n: usize, c: &mut [f32], a: &[f32], b: &[f32]) {
    let half = n / 2;
    let ni = n as isize;
    let (c0, c1) = c.split_at_mut(half * n);
    let (a0, a1) = a.split_at(half * n);
    rayon::join(
        || gemm_serial(half, n, n, c0, ni, 1, false, a0, ni, 1, b, ni, 1),
        || gemm_serial(n - half, n, n, c1, ni, 1, false, a1, ni, 1, b, ni, 1),
    );
}

fn bench_par_threshold() {
    for &n in &[
        4096usize,
        16384,
        32768,
        65536,
        98304,
        131072,
        196608,
        262144,
        524288,
        1 << 20,
        1 << 22,
    ] {
        let a = data(n, 1);
        let b = data(n, 2);
        let mut c = vec![0.0f32; n];
        let serial = time(0.2, || {
            for ((c, &a), &b) in c.iter_mut().zip(&a).zip(&b) {
                *c = a + b;
            }
            black_box(&c);
        });
        let par2 = time(0.2, || {
            let (c0, c1) = c.split_at_mut(n / 2);
            rayon::join(
                || {
                    for ((c, &a), &b) in c0.iter_mut().zip(&a).zip(&b) {
                        *c = a + b;
                    }
                },
                || {
                    for ((c, &a), &b) in c1.iter_mut().zip(&a[n / 2..]).zip(&b[n / 2..]) {
                        *c = a + b;
                    }
                },
            );
            black_box(&c);
        });
        let helper = time(0.2, || {
            par_zip_map(&a, &b, &mut c, |x, y| x + y);
            black_box(&c);
        });
        println!(
            "{{\"bench\":\"par_threshold\",\"elements\":{n},\"serial_us\":{:.2},\"two_threads_us\":{:.2},\"par_zip_map_us\":{:.2},\"speedup\":{:.2}}}",
            serial * 1e6,
            par2 * 1e6,
            helper * 1e6,
            serial / par2
        );
    }
}

/// Every row-major (R) / column-major (C) combination of destination,
/// lhs and rhs (in that order) for the products of a 784-512-512 MLP at
/// batch 64, through the public `gemm` (so with its layout handling).
fn bench_gemm_layout() {
    for (m, n, k) in [
        (64usize, 512usize, 512usize),
        (64, 512, 784),
        (512, 64, 512),
        (512, 512, 64),
    ] {
        let l: Vec<f32> = (0..m * k).map(|v| (v % 7) as f32 * 0.1).collect();
        let r: Vec<f32> = (0..k * n).map(|v| (v % 5) as f32 * 0.1).collect();
        let mut d = vec![0f32; m * n];
        for code in 0..8 {
            let (drow, lrow, rrow) = (code & 4 != 0, code & 2 != 0, code & 1 != 0);
            let (drs, dcs) = if drow {
                (n as isize, 1)
            } else {
                (1, m as isize)
            };
            let (lrs, lcs) = if lrow {
                (k as isize, 1)
            } else {
                (1, m as isize)
            };
            let (rrs, rcs) = if rrow {
                (n as isize, 1)
            } else {
                (1, k as isize)
            };
            let t = time(0.1, || {
                gemm(m, n, k, &mut d, drs, dcs, false, &l, lrs, lcs, &r, rrs, rcs);
                black_box(&d);
            });
            let layout: String = [drow, lrow, rrow]
                .iter()
                .map(|&row| if row { 'R' } else { 'C' })
                .collect();
            println!(
                "{{\"bench\":\"gemm_layout\",\"m\":{m},\"n\":{n},\"k\":{k},\"layout\":\"{layout}\",\"us\":{:.1}}}",
                t * 1e6
            );
        }
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    // First line: the CPU's SIMD features and the kernels they select.
    println!(
        "{{\"bench\":\"cpu\",\"features\":{},\"threads\":{}}}",
        kiln_kernels::cpu::isa::cpu_features().to_json(),
        num_threads()
    );
    if mode != "conv" {
        bench_matmul();
    }
    bench_conv();
    if mode == "all" {
        bench_gemm_par();
        bench_par_threshold();
        bench_gemm_layout();
    }
}
