//! Operator benchmark: square f32 matmul (GFLOP/s) and LeNet's two
//! convolutions forward + backward at batch 64 (ms), measured through the
//! public Tensor API (allocation and autograd included). Prints one JSON
//! line per workload. `bench/torch_ops.py` measures the same in PyTorch.
//!
//! Run: `cargo run --release --example bench_ops`

use kiln::nn::functional::conv2d;
use kiln::prelude::*;
use std::time::Instant;

/// Median seconds per call of `f` over `iters` timed calls after warm-up.
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut samples: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[iters / 2]
}

fn main() {
    manual_seed(0);
    let threads = rayon::current_num_threads();
    for n in [256usize, 1024, 2048] {
        let a = Tensor::randn([n, n]);
        let b = Tensor::randn([n, n]);
        let iters = if n >= 2048 { 10 } else { 30 };
        let s = time(iters, || {
            std::hint::black_box(a.matmul(&b));
        });
        let gflops = 2.0 * (n as f64).powi(3) / s / 1e9;
        println!(
            "{{\"workload\": \"matmul_f32_{n}\", \"gflop_per_s\": {gflops:.1}, \"ms\": {:.3}, \"threads\": {threads}}}",
            s * 1e3
        );
    }
    // LeNet-5's convolutions at batch 64: conv1 1->6 k5 pad2 on 28x28,
    // conv2 6->16 k5 on 14x14; forward, then backward to input and weights.
    for (name, c_in, c_out, hw, pad, input_grad) in [
        ("lenet_conv1_fwd_bwd_b64", 1, 6, 28, 2, false),
        ("lenet_conv2_fwd_bwd_b64", 6, 16, 14, 0, true),
    ] {
        let x = Tensor::randn([64, c_in, hw, hw]).requires_grad_(input_grad);
        let w = Tensor::randn([c_out, c_in, 5, 5]).requires_grad_(true);
        let bias = Tensor::randn([c_out]).requires_grad_(true);
        let s = time(50, || {
            let y = conv2d(&x, &w, Some(&bias), [1, 1], [pad, pad], [1, 1], 1);
            y.backward_with(&y.ones_like());
            w.set_grad(None);
            bias.set_grad(None);
            x.set_grad(None);
        });
        println!(
            "{{\"workload\": \"{name}\", \"ms\": {:.3}, \"threads\": {threads}}}",
            s * 1e3
        );
    }
}
