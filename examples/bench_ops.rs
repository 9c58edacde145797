//! Operator benchmark: square f32 matmul (GFLOP/s), LeNet's two
//! convolutions forward + backward at batch 64, the eight 3×3 convolutions
//! of the VGG-11 (half width) workload at batch 32 and its batch norm +
//! ReLU + max-pool block (ms, and GFLOP/s for the convolutions), measured
//! through the public Tensor API (allocation and autograd included).
//! Prints one JSON line per workload, with the CPU's SIMD features and the
//! kernels they select (`"cpu"`). `bench/torch_ops.py` measures the same in
//! PyTorch.
//!
//! Run: `cargo run --release --example bench_ops`

use kiln::nn::functional::{batch_norm, conv2d, max_pool2d};
use kiln::prelude::*;
use kiln_kernels::cpu::isa::cpu_features;
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
    let cpu = cpu_features().to_json();
    for n in [256usize, 1024, 2048] {
        let a = Tensor::randn([n, n]);
        let b = Tensor::randn([n, n]);
        let iters = if n >= 2048 { 10 } else { 30 };
        let s = time(iters, || {
            std::hint::black_box(a.matmul(&b));
        });
        let gflops = 2.0 * (n as f64).powi(3) / s / 1e9;
        println!(
            "{{\"workload\": \"matmul_f32_{n}\", \"gflop_per_s\": {gflops:.1}, \"ms\": {:.3}, \"threads\": {threads}, \"cpu\": {cpu}}}",
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
            "{{\"workload\": \"{name}\", \"ms\": {:.3}, \"threads\": {threads}, \"cpu\": {cpu}}}",
            s * 1e3
        );
    }
    // VGG-11 (half width) at batch 32: each 3x3 pad-1 convolution forward,
    // then backward to weights, bias and (but the first) input.
    for (c_in, c_out, hw) in [
        (3usize, 32usize, 32usize),
        (32, 64, 16),
        (64, 128, 8),
        (128, 128, 8),
        (128, 256, 4),
        (256, 256, 4),
        (256, 256, 2),
    ] {
        let x = Tensor::randn([32, c_in, hw, hw]).requires_grad_(c_in > 3);
        let w = Tensor::randn([c_out, c_in, 3, 3]).requires_grad_(true);
        let bias = Tensor::randn([c_out]).requires_grad_(true);
        let s = time(20, || {
            let y = conv2d(&x, &w, Some(&bias), [1, 1], [1, 1], [1, 1], 1);
            y.backward_with(&y.ones_like());
            w.set_grad(None);
            bias.set_grad(None);
            x.set_grad(None);
        });
        // Forward, weight gradient and (but the first) input gradient.
        let passes = if c_in > 3 { 3.0 } else { 2.0 };
        let flops = passes * 2.0 * (32 * c_out * c_in * 9 * hw * hw) as f64;
        println!(
            "{{\"workload\": \"vgg_conv3x3_{c_in}_{c_out}_{hw}x{hw}_fwd_bwd_b32\", \"ms\": {:.3}, \"gflop_per_s\": {:.1}, \"threads\": {threads}, \"cpu\": {cpu}}}",
            s * 1e3,
            flops / s / 1e9
        );
    }
    // The block after VGG's first convolution: batch norm (training) +
    // ReLU + 2x2 max pool on [32, 32, 32, 32], forward and backward.
    let x = Tensor::randn([32, 32, 32, 32]).requires_grad_(true);
    let gamma = Tensor::ones([32]).requires_grad_(true);
    let beta = Tensor::zeros([32]).requires_grad_(true);
    let (rm, rv) = (Tensor::zeros([32]), Tensor::ones([32]));
    let s = time(20, || {
        let y = batch_norm(
            &x,
            Some(&rm),
            Some(&rv),
            Some(&gamma),
            Some(&beta),
            true,
            0.1,
            1e-5,
        );
        let y = max_pool2d(&y.relu(), [2, 2], [2, 2], [0, 0]);
        y.backward_with(&y.ones_like());
        x.set_grad(None);
        gamma.set_grad(None);
        beta.set_grad(None);
    });
    println!(
        "{{\"workload\": \"vgg_bn_relu_pool_32x32x32_fwd_bwd_b32\", \"ms\": {:.3}, \"threads\": {threads}, \"cpu\": {cpu}}}",
        s * 1e3
    );
}
