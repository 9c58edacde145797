//! The same ops on a CUDA device as on the CPU. Every test is
//! `#[ignore = "needs a CUDA GPU"]`, so that a machine without one counts
//! them as ignored, never as passed; run them with `cargo test --features
//! cuda --test cuda -- --include-ignored` (with `KILN_REQUIRE_GPU=1`, a
//! missing GPU then fails each test instead of printing `skipped: ...`).
//! The tests take the GPU one at a time (see [`gpu`]), so that the
//! allocator counters one of them reads are not moved by the others.
#![cfg(feature = "cuda")]

use kiln::backend::ClassLoss;
use kiln::backend::cuda as kc;
use kiln::models::LeNet5;
use kiln::prelude::*;
use std::sync::{Mutex, MutexGuard};

#[path = "common/nets.rs"]
mod nets;
use nets::VggTiny;

/// Serialises the tests' use of the GPU.
static GPU: Mutex<()> = Mutex::new(());

thread_local! {
    /// The calling test's hold on [`GPU`], released when its thread ends.
    static HELD: std::cell::RefCell<Option<MutexGuard<'static, ()>>> =
        const { std::cell::RefCell::new(None) };
}

/// `cuda:0` when a GPU is present (held by this test's thread until it
/// ends), else `None` after printing `skipped: ...` (a failure under
/// `KILN_REQUIRE_GPU=1`).
fn gpu() -> Option<Device> {
    kiln::testing::cuda_or_skip()?;
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_none() {
            *h = Some(GPU.lock().unwrap_or_else(|e| e.into_inner()));
        }
    });
    Some(Device::Cuda(0))
}

fn assert_close(got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "shapes differ");
    assert_eq!(got.device(), Device::Cpu, "compare on the CPU");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()),
            "element {i}: got {a}, want {b}"
        );
    }
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(shape.to_vec())
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn transfer_round_trip_every_dtype() {
    let Some(d) = gpu() else { return };
    let x = Tensor::from([[1.5f32, -2.0, 3.25], [0.0, 7.0, -8.5]]);
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::U8,
        DType::Bool,
    ] {
        let h = x.abs_for_u8(dt).to_dtype(dt);
        let g = h.to(&d);
        assert_eq!(g.device(), d);
        assert_eq!(g.dtype(), dt);
        assert_close(&g.to(&Device::Cpu), &h, 0.0);
        // Casts on the device match the CPU's.
        assert_close(
            &g.to_dtype(DType::F64).to(&Device::Cpu),
            &h.to_dtype(DType::F64),
            0.0,
        );
    }
    // A non-contiguous view travels as its logical elements.
    let t = x.t();
    assert_close(&t.to(&d).to(&Device::Cpu), &t.contiguous(), 0.0);
}

trait AbsForU8 {
    fn abs_for_u8(&self, dt: DType) -> Tensor;
}
impl AbsForU8 for Tensor {
    fn abs_for_u8(&self, dt: DType) -> Tensor {
        if dt == DType::U8 {
            self.pow_scalar(2.0)
        } else {
            self.shallow_clone()
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn broadcast_binary_ops_match_cpu() {
    let Some(d) = gpu() else { return };
    let a = randn(&[4, 1, 5]);
    let b = randn(&[3, 5]).add_scalar(3.0);
    let at = randn(&[5, 4]).t();
    for (name, f) in [
        ("add", Tensor::add as fn(&Tensor, &Tensor) -> Tensor),
        ("sub", Tensor::sub),
        ("mul", Tensor::mul),
        ("div", Tensor::div),
        ("maximum", Tensor::maximum),
    ] {
        let want = f(&a, &b);
        let got = f(&a.to(&d), &b.to(&d)).to(&Device::Cpu);
        assert_eq!(got.shape(), &[4, 3, 5], "{name}");
        assert_close(&got, &want, 1e-6);
        assert_close(
            &f(&at.to(&d), &at.to(&d)).to(&Device::Cpu),
            &f(&at, &at),
            1e-6,
        );
    }
    let i = Tensor::from([1i64, -2, 3]);
    assert_eq!((&i.to(&d) + &i.to(&d)).to_vec::<i64>(), vec![2, -4, 6]);
    let h = a.to_dtype(DType::F16);
    assert_close(
        &(&h.to(&d) * &h.to(&d))
            .to(&Device::Cpu)
            .to_dtype(DType::F32),
        &(&h * &h).to_dtype(DType::F32),
        1e-3,
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn unary_and_scalar_ops_match_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[3, 7]).pow_scalar(2.0).add_scalar(0.1);
    let g = x.to(&d);
    assert_close(&g.neg().to(&Device::Cpu), &x.neg(), 0.0);
    assert_close(&g.exp().to(&Device::Cpu), &x.exp(), 1e-6);
    assert_close(&g.log().to(&Device::Cpu), &x.log(), 1e-6);
    assert_close(
        &g.pow_scalar(2.0).to(&Device::Cpu),
        &x.pow_scalar(2.0),
        1e-6,
    );
    assert_close(
        &g.pow_scalar(1.5).to(&Device::Cpu),
        &x.pow_scalar(1.5),
        1e-6,
    );
    assert_close(
        &g.add_scalar(2.5).to(&Device::Cpu),
        &x.add_scalar(2.5),
        1e-7,
    );
    assert_close(
        &g.mul_scalar(-3.0).to(&Device::Cpu),
        &x.mul_scalar(-3.0),
        1e-7,
    );
    assert_close(
        &(&g * 2.0).t().exp().to(&Device::Cpu),
        &(&x * 2.0).t().exp(),
        1e-6,
    );
    assert_close(
        &kc::unary(kiln::backend::UnaryOp::Relu, &g.sub_scalar(1.0)).to(&Device::Cpu),
        &x.sub_scalar(1.0).maximum(&Tensor::scalar(0f32)),
        0.0,
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn sums_and_means_match_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[4, 5, 6]);
    let g = x.to(&d);
    assert_close(&g.sum().to(&Device::Cpu), &x.sum(), 1e-6);
    assert_close(&g.mean().to(&Device::Cpu), &x.mean(), 1e-6);
    for dims in [&[0isize][..], &[1], &[2], &[0, 2], &[-1, 0]] {
        for keep in [false, true] {
            assert_close(
                &g.sum_dims(Some(dims), keep).to(&Device::Cpu),
                &x.sum_dims(Some(dims), keep),
                1e-6,
            );
        }
    }
    let big = randn(&[3, 1000]);
    assert_close(
        &big.to(&d).sum_dim(1, false).to(&Device::Cpu),
        &big.sum_dim(1, false),
        1e-6,
    );
    assert_close(
        &x.to(&d).transpose(0, 2).sum_dim(0, false).to(&Device::Cpu),
        &x.transpose(0, 2).sum_dim(0, false),
        1e-6,
    );
    let i = Tensor::from([[1i64, 2], [3, 4]]);
    assert_eq!(i.to(&d).sum().to_vec::<i64>(), vec![10]);
    let (v, idx) = kc::max_min_dim("max", &g, 1, false);
    let xs = x.to_vec::<f32>();
    for a in 0..4 {
        for c in 0..6 {
            let col: Vec<f32> = (0..5).map(|b| xs[a * 30 + b * 6 + c]).collect();
            let (bi, bv) = col
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |m, (i, &v)| if v > m.1 { (i, v) } else { m });
            assert_eq!(v.to_vec::<f32>()[a * 6 + c], bv);
            assert_eq!(idx.to_vec::<i64>()[a * 6 + c], bi as i64);
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn matmul_matches_cpu() {
    let Some(d) = gpu() else { return };
    let a = randn(&[5, 7]);
    let b = randn(&[7, 3]);
    assert_close(
        &a.to(&d).matmul(&b.to(&d)).to(&Device::Cpu),
        &a.matmul(&b),
        1e-5,
    );
    // Transposed operands, vectors, broadcast batches, f64.
    let at = randn(&[7, 5]).t();
    assert_close(
        &at.to(&d).matmul(&b.to(&d)).to(&Device::Cpu),
        &at.matmul(&b),
        1e-5,
    );
    let v = randn(&[7]);
    assert_close(
        &a.to(&d).matmul(&v.to(&d)).to(&Device::Cpu),
        &a.matmul(&v),
        1e-5,
    );
    let ba = randn(&[2, 1, 4, 6]);
    let bb = randn(&[3, 6, 2]);
    assert_close(
        &ba.to(&d).matmul(&bb.to(&d)).to(&Device::Cpu),
        &ba.matmul(&bb),
        1e-5,
    );
    let a64 = a.to_dtype(DType::F64);
    let b64 = b.to_dtype(DType::F64);
    assert_close(
        &a64.to(&d).matmul(&b64.to(&d)).to(&Device::Cpu),
        &a64.matmul(&b64),
        1e-12,
    );
    // f16 through tensor cores with f32 accumulation.
    let h = a
        .to_dtype(DType::F16)
        .to(&d)
        .matmul(&b.to_dtype(DType::F16).to(&d));
    assert_eq!(h.dtype(), DType::F16);
    assert_close(
        &h.to(&Device::Cpu).to_dtype(DType::F32),
        &a.matmul(&b),
        2e-2,
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn in_place_ops_match_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[3, 4]);
    let y = randn(&[4]);
    let g = x.to(&d).deep_clone_for_test();
    g.add_(&y.to(&d));
    g.mul_scalar_(2.0);
    let c = x.deep_clone_for_test();
    c.add_(&y);
    c.mul_scalar_(2.0);
    assert_close(&g.to(&Device::Cpu), &c, 1e-6);
    g.add_(&g.shallow_clone()); // aliased source
    c.add_(&c.shallow_clone());
    assert_close(&g.to(&Device::Cpu), &c, 1e-6);
    g.narrow(1, 1, 2).fill_(7.0);
    c.narrow(1, 1, 2).fill_(7.0);
    assert_close(&g.to(&Device::Cpu), &c, 0.0);
    g.t().copy_(&x.t().to(&d));
    assert_close(&g.to(&Device::Cpu), &x, 0.0);
    g.zero_();
    assert_eq!(g.to_vec::<f32>(), vec![0.0; 12]);
}

trait DeepClone {
    fn deep_clone_for_test(&self) -> Tensor;
}
impl DeepClone for Tensor {
    fn deep_clone_for_test(&self) -> Tensor {
        &self.detach() * 1.0
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn autograd_through_gpu_tensors_matches_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[4, 3]);
    let w = randn(&[3, 2]);
    let b = randn(&[2]);
    let run = |dev: &Device| {
        let (xg, wg, bg) = (
            x.to(dev).requires_grad_(true),
            w.to(dev).requires_grad_(true),
            b.to(dev).requires_grad_(true),
        );
        let y = (&xg.matmul(&wg) + &bg)
            .exp()
            .mul_scalar(0.5)
            .sum_dim(1, false)
            .mean();
        y.backward();
        (
            y,
            xg.grad().unwrap(),
            wg.grad().unwrap(),
            bg.grad().unwrap(),
        )
    };
    let (yc, gxc, gwc, gbc) = run(&Device::Cpu);
    let (yg, gxg, gwg, gbg) = run(&d);
    assert_eq!(gxg.device(), d);
    assert_close(&yg.to(&Device::Cpu), &yc, 1e-5);
    assert_close(&gxg.to(&Device::Cpu), &gxc, 1e-5);
    assert_close(&gwg.to(&Device::Cpu), &gwc, 1e-5);
    assert_close(&gbg.to(&Device::Cpu), &gbc, 1e-5);
    // Gradients flow back across a device move.
    let h = x.shallow_clone().requires_grad_(true);
    h.to(&d).pow_scalar(2.0).sum().backward();
    assert_eq!(h.grad().unwrap().device(), Device::Cpu);
    assert_close(&h.grad().unwrap(), &x.mul_scalar(2.0), 1e-6);
}

#[test]
#[ignore = "needs a CUDA GPU"]
#[should_panic(expected = "same device")]
fn mixing_devices_in_one_op_panics() {
    let Some(d) = gpu() else {
        // Keeps `should_panic` satisfied; the skip line was printed.
        panic!("skipped: needs a CUDA GPU (expected on the same device)");
    };
    let _ = &Tensor::ones([2]).to(&d) + &Tensor::ones([2]);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn nn_kernels_match_reference() {
    let Some(d) = gpu() else { return };
    // Softmax / log-softmax along the last dim.
    let x = randn(&[3, 5]);
    let s = kc::softmax(&x.to(&d), 1, false).to(&Device::Cpu);
    let e = x.exp();
    assert_close(&s, &e.div(&e.sum_dims(Some(&[1]), true)), 1e-6);
    let ls = kc::softmax(&x.to(&d), 1, true).to(&Device::Cpu);
    assert_close(&ls, &s.log(), 1e-5);
    // Cross-entropy = -log_softmax[target].
    let t = Tensor::from([0i64, 4, 2]);
    let l = ClassLoss {
        smoothing: Some(0.0),
        target: t.to(&d),
        weight: None,
        ignore: -100,
    };
    let (loss, w) = kc::class_loss(&x.to(&d), &l);
    let lsv = ls.to_vec::<f32>();
    let want: Vec<f32> = [0usize, 4, 2]
        .iter()
        .enumerate()
        .map(|(r, &c)| -lsv[r * 5 + c])
        .collect();
    assert_close(&loss.to(&Device::Cpu), &Tensor::from(want), 1e-5);
    assert_eq!(w.to_vec::<f32>(), vec![1.0; 3]);
    let g = kc::class_loss_backward(&x.to(&d), &l, &Tensor::ones([3]).to(&d));
    let mut want = s.to_vec::<f32>();
    for (r, c) in [(0usize, 0usize), (1, 4), (2, 2)] {
        want[r * 5 + c] -= 1.0;
    }
    assert_close(&g.to(&Device::Cpu), &Tensor::from_vec(want, [3, 5]), 1e-5);
    // conv2d against a direct loop.
    let (xi, wi) = (randn(&[2, 3, 6, 5]), randn(&[4, 3, 3, 3]));
    let p = kc::Conv2dParams {
        stride: [2, 1],
        padding: [1, 1],
        ..Default::default()
    };
    let y = kc::conv2d(&xi.to(&d), &wi.to(&d), None, &p).to(&Device::Cpu);
    assert_eq!(y.shape(), &[2, 4, 3, 5]);
    let (xv, wv, yv) = (xi.to_vec::<f32>(), wi.to_vec::<f32>(), y.to_vec::<f32>());
    for n in 0..2 {
        for o in 0..4 {
            for oy in 0..3 {
                for ox in 0..5 {
                    let mut acc = 0f32;
                    for c in 0..3 {
                        for ki in 0..3 {
                            for kj in 0..3 {
                                let (iy, ix) = ((oy * 2 + ki) as isize - 1, (ox + kj) as isize - 1);
                                if (0..6).contains(&iy) && (0..5).contains(&ix) {
                                    acc += xv[((n * 3 + c) * 6 + iy as usize) * 5 + ix as usize]
                                        * wv[((o * 3 + c) * 3 + ki) * 3 + kj];
                                }
                            }
                        }
                    }
                    let got = yv[((n * 4 + o) * 3 + oy) * 5 + ox];
                    assert!((got - acc).abs() < 1e-4, "conv2d mismatch {got} vs {acc}");
                }
            }
        }
    }
    // Max pool 2x2.
    let pi = Tensor::from_vec((0..16).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 4, 4]);
    let pp = kc::Pool2dParams {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        ceil_mode: false,
    };
    let (py, pidx) = kc::max_pool2d(&pi.to(&d), &pp);
    assert_eq!(py.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
    assert_eq!(pidx.to_vec::<i64>(), vec![5, 7, 13, 15]);
    let pg = kc::max_pool2d_backward(
        &Tensor::ones([1, 1, 2, 2]).to(&d),
        &pidx,
        &[1, 1, 4, 4],
        &pp,
    );
    assert_eq!(pg.to_vec::<f32>().iter().sum::<f32>(), 4.0);
    // Adam step against the formula.
    let (p0, g0) = (randn(&[10]), randn(&[10]));
    let (pd, m, v) = (
        p0.to(&d),
        Tensor::zeros([10]).to(&d),
        Tensor::zeros([10]).to(&d),
    );
    kc::adam_step(
        &pd,
        &g0.to(&d),
        &m,
        &v,
        None,
        0.1,
        (0.9, 0.999),
        1e-8,
        0.0,
        false,
        false,
        1,
    );
    let want: Vec<f32> = p0
        .to_vec::<f32>()
        .iter()
        .zip(g0.to_vec::<f32>())
        .map(|(p, g)| p - 0.1 * g.signum() * (g.abs() / (g.abs() + 1e-8)))
        .collect();
    assert_close(&pd.to(&Device::Cpu), &Tensor::from(want), 1e-5);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn caching_allocator_reuses_blocks() {
    let Some(d) = gpu() else { return };
    let x = randn(&[64, 64]).to(&d);
    let step = || {
        let y = x.matmul(&x).exp().sum();
        y.item()
    };
    step();
    let before = kc::memory_stats(0).unwrap().device_allocs;
    for _ in 0..5 {
        step();
    }
    assert_eq!(
        kc::memory_stats(0).unwrap().device_allocs,
        before,
        "steady state must not call cuMemAlloc"
    );
}

// ----- ops wired to the backend: every GPU result against the CPU's --------

/// Brings `got` back and compares it with the CPU's `want`, elementwise,
/// within `tol` relative to `1 + |want|`; the dtypes must agree.
fn check(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let got = got.detach().to(&Device::Cpu);
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_vec::<f64>(), want.to_vec::<f64>());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan()) || a == b,
            "{what}: element {i}: got {a}, want {b}"
        );
    }
}

/// Fixed weights in [-1, 1] shaped like `like`, so that the gradients of
/// `sum(out * w)` reach every output element differently.
fn weights_like(like: &Tensor, d: &Device) -> Tensor {
    let n = like.numel();
    let v: Vec<f64> = (0..n)
        .map(|i| ((i * 7 + 3) % 11) as f64 / 5.0 - 1.0)
        .collect();
    Tensor::from_vec(v, like.shape().to_vec())
        .to_dtype(like.dtype())
        .to(d)
}

/// Runs `f` on the CPU and on `d` over copies of `inputs` (float inputs as
/// leaves requiring grad), then compares every output and, through
/// `sum(out_i * w_i)`, every input's gradient.
fn fwd_bwd(
    what: &str,
    d: &Device,
    inputs: &[&Tensor],
    tol: f64,
    f: impl Fn(&[Tensor]) -> Vec<Tensor>,
) {
    let run = |dev: &Device| {
        let xs: Vec<Tensor> = inputs
            .iter()
            .map(|t| {
                let t = t.to(dev).detach();
                if t.dtype().is_float() {
                    t.requires_grad_(true)
                } else {
                    t
                }
            })
            .collect();
        let ys = f(&xs);
        let mut total: Option<Tensor> = None;
        for y in ys.iter().filter(|y| y.requires_grad()) {
            let term = y.mul(&weights_like(y, dev)).sum();
            total = Some(match total {
                None => term,
                Some(t) => t.add(&term),
            });
        }
        if let Some(t) = total {
            t.backward();
        }
        let grads: Vec<Option<Tensor>> = xs.iter().map(Tensor::grad).collect();
        (ys, grads)
    };
    let (yc, gc) = run(&Device::Cpu);
    let (yg, gg) = run(d);
    assert_eq!(yc.len(), yg.len(), "{what}: output count");
    for (i, (g, c)) in yg.iter().zip(&yc).enumerate() {
        assert_eq!(g.device(), *d, "{what}: output {i} left the device");
        check(&format!("{what}: output {i}"), g, c, tol);
    }
    for (i, (g, c)) in gg.iter().zip(&gc).enumerate() {
        match (g, c) {
            (Some(g), Some(c)) => {
                assert_eq!(g.device(), *d, "{what}: grad {i} left the device");
                check(&format!("{what}: grad {i}"), g, c, tol);
            }
            (None, None) => {}
            _ => panic!("{what}: grad {i} present on one device only"),
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn activations_and_math_match_cpu_forward_and_backward() {
    let Some(d) = gpu() else { return };
    let x = randn(&[4, 6]);
    let pos = x.abs().add_scalar(0.1);
    type F = fn(&Tensor) -> Tensor;
    let cases: &[(&str, F, bool)] = &[
        ("relu", |t| t.relu(), false),
        ("sigmoid", |t| t.sigmoid(), false),
        ("tanh", |t| t.tanh(), false),
        ("gelu", |t| t.gelu(), false),
        ("gelu_tanh", |t| t.gelu_tanh(), false),
        ("leaky_relu", |t| t.leaky_relu(0.1), false),
        ("threshold", |t| t.threshold(0.2, -3.0), false),
        ("clamp", |t| t.clamp(Some(-0.5), Some(0.7)), false),
        ("clamp_min", |t| t.clamp_min(-0.2), false),
        ("clamp_max", |t| t.clamp_max(0.3), false),
        ("clamp min > max", |t| t.clamp(Some(1.0), Some(-1.0)), false),
        ("abs", |t| t.abs(), false),
        ("sign", |t| t.sign(), false),
        ("square", |t| t.square(), false),
        ("sin", |t| t.sin(), false),
        ("cos", |t| t.cos(), false),
        ("erf", |t| t.erf(), false),
        ("sqrt", |t| t.sqrt(), true),
        ("reciprocal", |t| t.reciprocal(), true),
        ("pow", |t| t.pow(&t.mul_scalar(0.5)), true),
        ("minimum", |t| t.minimum(&t.t().t().mul_scalar(0.5)), false),
    ];
    for &(name, f, positive) in cases {
        let input = if positive { &pos } else { &x };
        fwd_bwd(name, &d, &[input], 1e-5, |xs| vec![f(&xs[0])]);
        // Transposed (strided) input.
        fwd_bwd(name, &d, &[&input.t()], 1e-5, |xs| vec![f(&xs[0])]);
    }
    // Integer inputs: relu/abs/square stay int64, float-only ops give f32.
    let i = Tensor::from([[-3i64, 0, 5], [7, -1, 2]]);
    for (name, f) in [
        ("relu", Tensor::relu as F),
        ("abs", Tensor::abs),
        ("square", Tensor::square),
        ("sign", Tensor::sign),
        ("sigmoid", Tensor::sigmoid),
        ("sqrt of abs", |t: &Tensor| t.abs().sqrt()),
    ] {
        check(name, &f(&i.to(&d)), &f(&i), 1e-6);
    }
    // Second derivatives go through the recorded (tensor-op) backwards.
    for (name, f) in [
        ("sigmoid", Tensor::sigmoid as F),
        ("tanh", Tensor::tanh),
        ("relu", Tensor::relu),
    ] {
        let run = |dev: &Device| {
            let xg = x.to(dev).detach().requires_grad_(true);
            let y = f(&xg).pow_scalar(3.0).sum();
            let g = autograd::grad(&[y], std::slice::from_ref(&xg), true);
            let g0 = g[0].as_ref().map(Tensor::shallow_clone).expect("grad");
            g0.sum().backward();
            (g0, xg.grad().expect("second derivative"))
        };
        let (gc, hc) = run(&Device::Cpu);
        let (gg, hg) = run(&d);
        check(&format!("{name}: grad"), &gg, &gc, 1e-5);
        check(&format!("{name}: second derivative"), &hg, &hc, 1e-5);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn softmax_matches_cpu_along_every_dim() {
    let Some(d) = gpu() else { return };
    let x = randn(&[3, 4, 5]);
    for dim in [0isize, 1, 2, -1] {
        fwd_bwd("softmax", &d, &[&x], 1e-5, |xs| vec![xs[0].softmax(dim)]);
        fwd_bwd("log_softmax", &d, &[&x], 1e-5, |xs| {
            vec![xs[0].log_softmax(dim)]
        });
    }
    fwd_bwd("softmax of a view", &d, &[&x], 1e-5, |xs| {
        vec![xs[0].transpose(0, 2).softmax(1)]
    });
    fwd_bwd(
        "softmax of a scalar",
        &d,
        &[&Tensor::scalar(2.0f32)],
        1e-6,
        |xs| vec![xs[0].softmax(0)],
    );
    let h = x.to_dtype(DType::F16);
    check("softmax f16", &h.to(&d).softmax(-1), &h.softmax(-1), 2e-3);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn comparisons_where_and_masks_match_cpu() {
    let Some(d) = gpu() else { return };
    let a = randn(&[3, 4]);
    let b = randn(&[4]);
    type C = fn(&Tensor, &Tensor) -> Tensor;
    for (name, f) in [
        ("eq", Tensor::eq as C),
        ("ne", Tensor::ne),
        ("lt", Tensor::lt),
        ("le", Tensor::le),
        ("gt", Tensor::gt),
        ("ge", Tensor::ge),
        ("logical_and", |x: &Tensor, y: &Tensor| {
            x.gt_scalar(0.0).logical_and(&y.lt_scalar(0.0))
        }),
    ] {
        check(name, &f(&a.to(&d), &b.to(&d)), &f(&a, &b), 0.0);
        check(name, &f(&a.to(&d), &a.to(&d)), &f(&a, &a), 0.0);
    }
    check(
        "eq_scalar",
        &a.round_for_test().to(&d).eq_scalar(0.0),
        &a.round_for_test().eq_scalar(0.0),
        0.0,
    );
    let i = Tensor::from([1i64, 5, -2]);
    check("int gt", &i.to(&d).gt_scalar(1.0), &i.gt_scalar(1.0), 0.0);
    let cond = a.gt_scalar(0.0);
    fwd_bwd("where", &d, &[&cond, &a, &b], 1e-6, |xs| {
        vec![Tensor::where_cond(&xs[0], &xs[1], &xs[2])]
    });
    fwd_bwd("where with a scalar", &d, &[&cond, &a], 1e-6, |xs| {
        let zero = Tensor::zeros_opts([], (DType::F32, &xs[1].device()));
        vec![xs[1].where_(&xs[0], &zero)]
    });
    let mask = b.gt_scalar(0.0);
    fwd_bwd("masked_fill", &d, &[&a, &mask], 1e-6, |xs| {
        vec![xs[0].masked_fill(&xs[1], -7.5)]
    });
    fwd_bwd("masked_select", &d, &[&a, &mask], 1e-6, |xs| {
        vec![xs[0].masked_select(&xs[1])]
    });
}

trait RoundForTest {
    fn round_for_test(&self) -> Tensor;
}
impl RoundForTest for Tensor {
    /// Values in {-1, 0, 1}, so that equality tests have hits.
    fn round_for_test(&self) -> Tensor {
        self.clamp(Some(-1.0), Some(1.0)).sign()
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn indexing_matches_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[4, 5, 3]);
    let idx = Tensor::from([3i64, 0, 3, 1]);
    for dim in [0isize, 1, 2] {
        let i = idx.clamp(None, Some(x.size(dim) as f64 - 1.0));
        fwd_bwd("index_select", &d, &[&x, &i], 1e-6, |xs| {
            vec![xs[0].index_select(dim, &xs[1])]
        });
    }
    fwd_bwd(
        "index_select 0-d index",
        &d,
        &[&x, &Tensor::scalar(2i64)],
        1e-6,
        |xs| vec![xs[0].index_select(1, &xs[1])],
    );
    let src = randn(&[4, 4, 3]);
    fwd_bwd(
        "index_add",
        &d,
        &[&x, &idx.clamp(None, Some(4.0)), &src],
        1e-6,
        |xs| vec![xs[0].index_add(1, &xs[1], &xs[2])],
    );
    // gather / scatter_add, with an index smaller than the input outside dim.
    let gi = Tensor::from_vec(vec![0i64, 4, 2, 2, 1, 3, 0, 0], [2, 4, 1]);
    fwd_bwd("gather", &d, &[&x, &gi], 1e-6, |xs| {
        vec![xs[0].gather(1, &xs[1])]
    });
    let s = randn(&[3, 4, 2]);
    fwd_bwd("scatter_add", &d, &[&x, &gi, &s], 1e-6, |xs| {
        vec![xs[0].scatter_add(1, &xs[1], &xs[2])]
    });
    let full = Tensor::from_vec(
        (0..60).map(|v| (v * 7 % 5) as i64).collect::<Vec<_>>(),
        [4, 5, 3],
    );
    fwd_bwd("scatter_add full index", &d, &[&x, &full, &x], 1e-6, |xs| {
        vec![xs[0].scatter_add(1, &xs[1], &xs[2])]
    });
    let classes = Tensor::from([[0i64, 3], [2, 2]]);
    check(
        "one_hot",
        &classes.to(&d).one_hot(4),
        &classes.one_hot(4),
        0.0,
    );
    check(
        "one_hot inferred",
        &classes.to(&d).one_hot(-1),
        &classes.one_hot(-1),
        0.0,
    );
    // cat / stack / split / flip / repeat.
    let y = randn(&[4, 2, 3]);
    fwd_bwd("cat", &d, &[&x, &y], 0.0, |xs| {
        vec![Tensor::cat(&[&xs[0], &xs[1]], 1)]
    });
    fwd_bwd("cat of views", &d, &[&x, &y], 0.0, |xs| {
        vec![Tensor::cat(
            &[&xs[0].transpose(0, 2), &xs[1].transpose(0, 2)],
            1,
        )]
    });
    fwd_bwd("stack", &d, &[&x, &x], 0.0, |xs| {
        vec![Tensor::stack(&[&xs[0], &xs[1]], 2)]
    });
    fwd_bwd("flip", &d, &[&x], 0.0, |xs| vec![xs[0].flip(&[0, 2])]);
    fwd_bwd("repeat", &d, &[&y], 0.0, |xs| {
        vec![xs[0].repeat(&[2, 1, 1, 2])]
    });
    fwd_bwd("split", &d, &[&x], 0.0, |xs| xs[0].split(&[2, 3], 1));
    fwd_bwd("einsum", &d, &[&x, &y], 1e-5, |xs| {
        vec![Tensor::einsum("ijk,ilk->ijl", &[&xs[0], &xs[1]])]
    });
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn reductions_match_cpu() {
    let Some(d) = gpu() else { return };
    let x = randn(&[3, 5, 4]);
    for dim in [0isize, 1, -1] {
        for keep in [false, true] {
            fwd_bwd("max_dim", &d, &[&x], 0.0, |xs| {
                let (v, i) = xs[0].max_dim(dim, keep);
                vec![v, i]
            });
            fwd_bwd("min_dim", &d, &[&x], 0.0, |xs| {
                let (v, i) = xs[0].min_dim(dim, keep);
                vec![v, i]
            });
            check(
                "argmax",
                &x.to(&d).argmax(dim, keep),
                &x.argmax(dim, keep),
                0.0,
            );
            check(
                "argmin",
                &x.to(&d).argmin(dim, keep),
                &x.argmin(dim, keep),
                0.0,
            );
        }
    }
    fwd_bwd("max", &d, &[&x], 0.0, |xs| vec![xs[0].max()]);
    fwd_bwd("min of a view", &d, &[&x], 0.0, |xs| {
        vec![xs[0].transpose(0, 1).min()]
    });
    let ties = Tensor::from([[1.0f32, 3.0, 3.0], [2.0, 2.0, 0.0]]);
    fwd_bwd("max with ties", &d, &[&ties], 0.0, |xs| {
        vec![xs[0].max(), xs[0].max_dim(1, false).0]
    });
    fwd_bwd("mean", &d, &[&x], 1e-6, |xs| {
        vec![xs[0].mean_dims(Some(&[0, 2]), true)]
    });
    fwd_bwd("var/std", &d, &[&x], 1e-5, |xs| {
        vec![xs[0].var_dim(1, true, false), xs[0].std(false)]
    });
    let i = Tensor::from([[4i64, -2, 9], [1, 1, 0]]);
    check(
        "int max_dim",
        &i.to(&d).max_dim(1, false).0,
        &i.max_dim(1, false).0,
        0.0,
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn nn_functional_matches_cpu() {
    use kiln::nn::functional as F;
    let Some(d) = gpu() else { return };
    // Convolutions: plain, strided + padded + biased, dilated, grouped.
    let x = randn(&[2, 4, 9, 8]);
    let w = randn(&[6, 4, 3, 3]);
    let wg = randn(&[6, 2, 3, 3]);
    let b = randn(&[6]);
    fwd_bwd("conv2d", &d, &[&x, &w], 1e-4, |t| {
        vec![F::conv2d(&t[0], &t[1], None, [1, 1], [0, 0], [1, 1], 1)]
    });
    fwd_bwd("conv2d stride/pad/bias", &d, &[&x, &w, &b], 1e-4, |t| {
        vec![F::conv2d(
            &t[0],
            &t[1],
            Some(&t[2]),
            [2, 1],
            [1, 2],
            [1, 1],
            1,
        )]
    });
    fwd_bwd("conv2d dilated", &d, &[&x, &w, &b], 1e-4, |t| {
        vec![F::conv2d(
            &t[0],
            &t[1],
            Some(&t[2]),
            [1, 1],
            [2, 2],
            [2, 2],
            1,
        )]
    });
    fwd_bwd("conv2d groups", &d, &[&x, &wg, &b], 1e-4, |t| {
        vec![F::conv2d(
            &t[0],
            &t[1],
            Some(&t[2]),
            [1, 1],
            [1, 1],
            [1, 1],
            2,
        )]
    });
    fwd_bwd("conv2d unbatched", &d, &[&x.select(0, 1), &w], 1e-4, |t| {
        vec![F::conv2d(&t[0], &t[1], None, [1, 1], [1, 1], [1, 1], 1)]
    });
    // Pooling.
    fwd_bwd("max_pool2d", &d, &[&x], 0.0, |t| {
        vec![F::max_pool2d(&t[0], [2, 2], [2, 2], [0, 0])]
    });
    fwd_bwd("max_pool2d ceil/pad/dilation", &d, &[&x], 0.0, |t| {
        vec![F::max_pool2d_with(
            &t[0],
            [3, 2],
            [2, 2],
            [1, 1],
            [1, 2],
            true,
        )]
    });
    fwd_bwd("avg_pool2d", &d, &[&x], 1e-6, |t| {
        vec![F::avg_pool2d_with(
            &t[0],
            [3, 3],
            [2, 2],
            [1, 1],
            true,
            false,
        )]
    });
    fwd_bwd("avg_pool2d include pad", &d, &[&x], 1e-6, |t| {
        vec![F::avg_pool2d(&t[0], [2, 3], [1, 2], [1, 1])]
    });
    fwd_bwd("adaptive_avg_pool2d", &d, &[&x], 1e-6, |t| {
        vec![
            F::adaptive_avg_pool2d(&t[0], [4, 3]),
            F::adaptive_avg_pool2d(&t[0], [1, 1]),
        ]
    });
    // Batch norm: training (running statistics updated in place) and eval.
    let (g4, b4) = (randn(&[4]).add_scalar(1.0), randn(&[4]));
    for training in [true, false] {
        let rm = randn(&[4]).mul_scalar(0.1);
        let rv = randn(&[4]).abs().add_scalar(0.5);
        let (rmg, rvg) = (rm.to(&d), rv.to(&d));
        let (rmc, rvc) = (&rm * 1.0, &rv * 1.0);
        let calls = std::cell::Cell::new(0);
        fwd_bwd("batch_norm", &d, &[&x, &g4, &b4], 1e-4, |t| {
            // fwd_bwd runs the CPU first, then the device.
            calls.set(calls.get() + 1);
            let (m, v) = if calls.get() == 1 {
                (&rmc, &rvc)
            } else {
                (&rmg, &rvg)
            };
            vec![F::batch_norm(
                &t[0],
                Some(m),
                Some(v),
                Some(&t[1]),
                Some(&t[2]),
                training,
                0.1,
                1e-5,
            )]
        });
        check("running_mean", &rmg, &rmc, 1e-5);
        check("running_var", &rvg, &rvc, 1e-5);
    }
    fwd_bwd(
        "batch_norm 2-D, no affine",
        &d,
        &[&randn(&[8, 5])],
        1e-4,
        |t| {
            vec![F::batch_norm(
                &t[0], None, None, None, None, true, 0.1, 1e-5,
            )]
        },
    );
    // Layer norm, linear, embedding, dropout.
    let (lw, lb) = (randn(&[9, 8]), randn(&[9, 8]));
    fwd_bwd("layer_norm", &d, &[&x, &lw, &lb], 1e-4, |t| {
        vec![F::layer_norm(
            &t[0],
            &[9, 8],
            Some(&t[1]),
            Some(&t[2]),
            1e-5,
        )]
    });
    let (fw, fb) = (randn(&[5, 8]), randn(&[5]));
    fwd_bwd("linear", &d, &[&x, &fw, &fb], 1e-4, |t| {
        vec![F::linear(&t[0], &t[1], Some(&t[2]))]
    });
    let table = randn(&[7, 3]);
    let ids = Tensor::from([[1i64, 6, 1], [0, 2, 6]]);
    fwd_bwd("embedding", &d, &[&ids, &table], 1e-6, |t| {
        vec![F::embedding(&t[0], &t[1])]
    });
    fwd_bwd("dropout eval", &d, &[&x], 0.0, |t| {
        vec![F::dropout(&t[0], 0.5, false)]
    });
    let drop = F::dropout(&x.to(&d), 0.5, true)
        .to(&Device::Cpu)
        .to_vec::<f32>();
    let xs = x.to_vec::<f32>();
    assert!(
        drop.iter()
            .zip(&xs)
            .all(|(o, i)| *o == 0.0 || (o - 2.0 * i).abs() < 1e-5)
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn losses_match_cpu() {
    use kiln::loss::{self, Reduction};
    let Some(d) = gpu() else { return };
    let reductions = [Reduction::Mean, Reduction::Sum, Reduction::None];
    let logits = randn(&[6, 5]);
    let target = Tensor::from([4i64, 0, -100, 2, 2, 1]);
    let w = randn(&[5]).abs().add_scalar(0.5);
    for red in reductions {
        for ls in [0.0, 0.2] {
            fwd_bwd("cross_entropy", &d, &[&logits, &target], 1e-5, |t| {
                vec![loss::cross_entropy(&t[0], &t[1], red, ls)]
            });
            fwd_bwd(
                "cross_entropy weighted",
                &d,
                &[&logits, &target, &w],
                1e-5,
                |t| {
                    vec![loss::cross_entropy_with(
                        &t[0],
                        &t[1],
                        red,
                        ls,
                        Some(&t[2]),
                        Some(-100),
                    )]
                },
            );
            fwd_bwd(
                "cross_entropy ignore 2",
                &d,
                &[&logits, &target.abs().clamp_max(4.0)],
                1e-5,
                |t| {
                    vec![loss::cross_entropy_with(
                        &t[0],
                        &t[1],
                        red,
                        ls,
                        None,
                        Some(2),
                    )]
                },
            );
        }
        fwd_bwd(
            "nll_loss",
            &d,
            &[&logits.log_softmax(1), &target],
            1e-5,
            |t| vec![loss::nll_loss(&t[0], &t[1], red)],
        );
        fwd_bwd(
            "nll_loss weighted",
            &d,
            &[&logits, &target, &w],
            1e-5,
            |t| {
                vec![loss::nll_loss_with(
                    &t[0],
                    &t[1],
                    red,
                    Some(&t[2]),
                    Some(-100),
                )]
            },
        );
    }
    // [N, C, d...] inputs, a [C] input, and class probabilities.
    let spatial = randn(&[2, 5, 3, 2]);
    let st = Tensor::from_vec(vec![0i64, 4, 1, 1, 3, 2, 0, 0, 4, 2, 1, 3], [2, 3, 2]);
    fwd_bwd("cross_entropy [N,C,d]", &d, &[&spatial, &st], 1e-5, |t| {
        vec![loss::cross_entropy(&t[0], &t[1], Reduction::None, 0.1)]
    });
    fwd_bwd("nll_loss [N,C,d]", &d, &[&spatial, &st], 1e-5, |t| {
        vec![loss::nll_loss(&t[0], &t[1], Reduction::Mean)]
    });
    fwd_bwd(
        "cross_entropy [C]",
        &d,
        &[&randn(&[5]), &Tensor::scalar(3i64)],
        1e-5,
        |t| vec![loss::cross_entropy(&t[0], &t[1], Reduction::Mean, 0.0)],
    );
    let probs = randn(&[6, 5]).softmax(1);
    for red in reductions {
        fwd_bwd(
            "cross_entropy probs",
            &d,
            &[&logits, &probs, &w],
            1e-5,
            |t| {
                vec![loss::cross_entropy_with(
                    &t[0],
                    &t[1],
                    red,
                    0.1,
                    Some(&t[2]),
                    None,
                )]
            },
        );
    }
    // Pointwise losses, with broadcasting.
    let (p, q) = (randn(&[4, 3]), randn(&[3]));
    let prob = randn(&[4, 3]).sigmoid();
    let labels = randn(&[4, 3]).gt_scalar(0.0).to_dtype(DType::F32);
    for red in reductions {
        fwd_bwd("mse_loss", &d, &[&p, &q], 1e-5, |t| {
            vec![loss::mse_loss(&t[0], &t[1], red)]
        });
        fwd_bwd("l1_loss", &d, &[&p, &q], 1e-5, |t| {
            vec![loss::l1_loss(&t[0], &t[1], red)]
        });
        for beta in [0.0, 0.5] {
            fwd_bwd("smooth_l1_loss", &d, &[&p, &q], 1e-5, |t| {
                vec![loss::smooth_l1_loss(&t[0], &t[1], red, beta)]
            });
        }
        fwd_bwd("bce_with_logits", &d, &[&p, &labels], 1e-5, |t| {
            vec![loss::binary_cross_entropy_with_logits(&t[0], &t[1], red)]
        });
        fwd_bwd("bce", &d, &[&prob, &labels], 1e-5, |t| {
            vec![loss::binary_cross_entropy(&t[0], &t[1], red)]
        });
    }
}

/// Runs `steps` updates of the optimizer `make` builds, from the same
/// parameters and gradients on the CPU and on `d`, and compares the
/// parameters after every step.
fn optimizer_matches(what: &str, d: &Device, make: fn(Vec<Tensor>) -> Box<dyn Optimizer>) {
    let p0 = randn(&[5, 3]);
    let grads: Vec<Tensor> = (0..4).map(|_| randn(&[5, 3])).collect();
    let run = |dev: &Device| {
        let p = p0.to(dev).detach().mul_scalar(1.0).requires_grad_(true);
        let mut opt = make(vec![p.shallow_clone()]);
        let mut after = Vec::new();
        for g in &grads {
            p.set_grad(Some(g.to(dev)));
            opt.step();
            after.push(p.detach().mul_scalar(1.0));
        }
        after
    };
    let (c, g) = (run(&Device::Cpu), run(d));
    for (i, (g, c)) in g.iter().zip(&c).enumerate() {
        check(&format!("{what}: step {}", i + 1), g, c, 1e-5);
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn optimizers_match_cpu() {
    use kiln::optim::{Adam, AdamW, RMSprop, SGD};
    let Some(d) = gpu() else { return };
    optimizer_matches("sgd", &d, |p| Box::new(SGD::new(p, 0.1)));
    optimizer_matches("sgd momentum", &d, |p| {
        Box::new(
            SGD::new(p, 0.1)
                .momentum(0.9)
                .dampening(0.1)
                .weight_decay(0.01),
        )
    });
    optimizer_matches("sgd nesterov", &d, |p| {
        Box::new(SGD::new(p, 0.1).momentum(0.9).nesterov(true))
    });
    optimizer_matches("adam", &d, |p| Box::new(Adam::new(p, 0.01)));
    optimizer_matches("adam amsgrad wd", &d, |p| {
        Box::new(Adam::new(p, 0.01).amsgrad(true).weight_decay(0.1))
    });
    optimizer_matches("adamw", &d, |p| {
        Box::new(AdamW::new(p, 0.01).betas(0.8, 0.99))
    });
    optimizer_matches("rmsprop", &d, |p| Box::new(RMSprop::new(p, 0.01)));
    optimizer_matches("rmsprop centered momentum", &d, |p| {
        Box::new(
            RMSprop::new(p, 0.01)
                .centered(true)
                .momentum(0.5)
                .weight_decay(0.1),
        )
    });
    // The state stays on the device.
    let p = randn(&[3]).to(&d).requires_grad_(true);
    let mut adam = Adam::new(vec![p.shallow_clone()], 0.1);
    p.set_grad(Some(randn(&[3]).to(&d)));
    adam.step();
    assert_eq!(adam.exp_avg(&p).unwrap().device(), d);
    // Gradient clipping.
    for norm in [2.0, 1.0, f64::INFINITY] {
        let gs = [randn(&[4, 2]), randn(&[3])];
        let clip = |dev: &Device| {
            let ps: Vec<Tensor> = gs
                .iter()
                .map(|g| {
                    let p = g.zeros_like().to(dev).requires_grad_(true);
                    // Own copies: clipping scales the gradients in place.
                    p.set_grad(Some(&g.to(dev) * 1.0));
                    p
                })
                .collect();
            let total = kiln::optim::clip_grad_norm_(&ps, 0.5, norm);
            kiln::optim::clip_grad_value_(&ps, 0.1);
            (
                total,
                ps.iter().map(|p| p.grad().unwrap()).collect::<Vec<_>>(),
            )
        };
        let ((tc, gc), (tg, gg)) = (clip(&Device::Cpu), clip(&d));
        assert!(
            (tc - tg).abs() <= 1e-5 * (1.0 + tc),
            "clip norm {norm}: {tg} vs {tc}"
        );
        for (g, c) in gg.iter().zip(&gc) {
            check("clipped grad", g, c, 1e-5);
        }
    }
}

/// Trains copies of one model on the CPU and on `d` for a few steps of
/// forward, cross-entropy, backward and `make`'s optimizer; compares the
/// logits, loss, every gradient, and every parameter and buffer after
/// each step.
fn training_matches<M: Module + Forward>(
    what: &str,
    d: &Device,
    new: fn(&Device) -> M,
    input: &[usize],
    make: fn(Vec<Tensor>) -> Box<dyn Optimizer>,
) {
    let cpu = new(&Device::Cpu);
    let mut gpu_model = new(&Device::Cpu);
    gpu_model.load_state_dict(&cpu.state_dict(), true).unwrap();
    gpu_model.to(d);
    for (_, t) in gpu_model.named_parameters() {
        assert_eq!(t.device(), *d, "{what}: parameter left on the CPU");
    }
    let mut shape = vec![8];
    shape.extend_from_slice(input);
    let batches: Vec<(Tensor, Tensor)> = (0..3)
        .map(|_| (randn(&shape), Tensor::randint(0, 10, [8])))
        .collect();
    let mut opt_c = make(cpu.parameters());
    let mut opt_g = make(gpu_model.parameters());
    for (step, (x, y)) in batches.iter().enumerate() {
        let mut results = Vec::new();
        for (model, opt, dev) in [
            (&cpu, &mut opt_c, Device::Cpu),
            (&gpu_model, &mut opt_g, *d),
        ] {
            opt.zero_grad();
            let logits = model.forward(&x.to(&dev));
            let loss =
                kiln::loss::cross_entropy(&logits, &y.to(&dev), kiln::loss::Reduction::Mean, 0.0);
            loss.backward();
            let grads: Vec<Tensor> = model
                .named_parameters()
                .iter()
                .map(|(_, p)| p.grad().expect("every parameter gets a gradient"))
                .collect();
            opt.step();
            results.push((logits.detach(), loss.detach(), grads));
        }
        let (c, g) = (&results[0], &results[1]);
        let at = |s: &str| format!("{what}: step {step}: {s}");
        check(&at("logits"), &g.0, &c.0, 1e-4);
        check(&at("loss"), &g.1, &c.1, 1e-4);
        for (i, (gg, gc)) in g.2.iter().zip(&c.2).enumerate() {
            assert_eq!(gg.device(), *d);
            check(&at(&format!("grad {i}")), gg, gc, 1e-3);
        }
        let (sc, sg) = (cpu.state_dict(), gpu_model.state_dict());
        for key in sc.keys() {
            check(&at(key), sg.get(key).unwrap(), sc.get(key).unwrap(), 1e-4);
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn lenet_training_steps_match_cpu() {
    use kiln::optim::{Adam, RMSprop, SGD};
    let Some(d) = gpu() else { return };
    training_matches("lenet sgd", &d, LeNet5::new, &[1, 28, 28], |p| {
        Box::new(SGD::new(p, 0.05).momentum(0.9))
    });
    training_matches("lenet adam", &d, LeNet5::new, &[1, 28, 28], |p| {
        Box::new(Adam::new(p, 1e-3))
    });
    training_matches("lenet rmsprop", &d, LeNet5::new, &[1, 28, 28], |p| {
        Box::new(RMSprop::new(p, 1e-3))
    });
    training_matches("vgg sgd", &d, VggTiny::new, &[3, 16, 16], |p| {
        Box::new(SGD::new(p, 0.05).momentum(0.9).weight_decay(5e-4))
    });
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let e =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("expected a panic");
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn mixed_devices_panic_naming_the_op_and_both_devices() {
    use kiln::nn::functional as F;
    let Some(d) = gpu() else { return };
    let c = randn(&[2, 3]);
    let g = c.to(&d);
    let idx = Tensor::from([0i64, 1]);
    let img = randn(&[1, 1, 4, 4]);
    type Case<'a> = (&'a str, Box<dyn FnOnce() + 'a>);
    let cases: Vec<Case> = vec![
        ("add", Box::new(|| drop(&g + &c))),
        ("lt", Box::new(|| drop(g.lt(&c)))),
        (
            "where",
            Box::new(|| drop(Tensor::where_cond(&c.gt_scalar(0.0), &g, &g))),
        ),
        ("index_select", Box::new(|| drop(g.index_select(0, &idx)))),
        (
            "gather",
            Box::new(|| drop(c.gather(0, &idx.to(&d).reshape(&[2, 1])))),
        ),
        ("cat", Box::new(|| drop(Tensor::cat(&[&g, &c], 0)))),
        ("matmul", Box::new(|| drop(g.matmul(&c.t())))),
        ("linear", Box::new(|| drop(F::linear(&g, &c, None)))),
        (
            "conv2d",
            Box::new(|| {
                drop(F::conv2d(
                    &img.to(&d),
                    &img,
                    None,
                    [1, 1],
                    [0, 0],
                    [1, 1],
                    1,
                ))
            }),
        ),
        (
            "cross_entropy",
            Box::new(|| {
                drop(kiln::loss::cross_entropy(
                    &g,
                    &idx,
                    kiln::loss::Reduction::Mean,
                    0.0,
                ))
            }),
        ),
        (
            "mse_loss",
            Box::new(|| drop(kiln::loss::mse_loss(&c, &g, kiln::loss::Reduction::Mean))),
        ),
        (
            "SGD.step",
            Box::new(|| {
                let p = randn(&[3]).to(&d).requires_grad_(true);
                p.set_grad(Some(randn(&[3])));
                kiln::optim::SGD::new(vec![p], 0.1).step();
            }),
        ),
    ];
    for (op, f) in cases {
        let msg = panic_message(f);
        assert!(
            msg.starts_with(op) && msg.contains("cpu") && msg.contains(&d.to_string()),
            "{op}: unexpected message: {msg}"
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn ops_without_a_device_kernel_say_so() {
    let Some(d) = gpu() else { return };
    let msg = panic_message(|| drop(randn(&[4]).to(&d).sort(0, false)));
    assert!(
        msg.starts_with(&format!("sort: not supported on {d}")),
        "{msg}"
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn bad_indices_panic_at_the_next_synchronisation() {
    let Some(d) = gpu() else { return };
    let logits = randn(&[3, 5]).to(&d);
    // The loss is queued without waiting for the GPU; reading it back
    // reports the bad target with the op's name.
    let loss = kiln::loss::cross_entropy(
        &logits,
        &Tensor::from([0i64, 7, 1]).to(&d),
        kiln::loss::Reduction::Mean,
        0.0,
    );
    let msg = panic_message(|| {
        loss.item();
    });
    assert!(
        msg.starts_with("cross_entropy: target out of bounds for 5 classes"),
        "{msg}"
    );
    let msg = panic_message(|| {
        drop(
            logits
                .index_select(1, &Tensor::from([9i64]).to(&d))
                .to_vec::<f32>(),
        )
    });
    assert!(msg.starts_with("index_select: index out of range"), "{msg}");
    // Nothing stale is left behind: the next read is clean.
    assert_eq!(logits.sum().to(&Device::Cpu).numel(), 1);
}
