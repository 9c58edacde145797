//! The same ops on a CUDA device as on the CPU. Every test returns early
//! (printing "CUDA not available: skipping") on machines without a GPU.
#![cfg(feature = "cuda")]

use kiln::backend::cuda as kc;
use kiln::prelude::*;

fn gpu() -> Option<Device> {
    if Device::cuda_is_available() {
        Some(Device::Cuda(0))
    } else {
        println!("CUDA not available: skipping");
        None
    }
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
            self.clone()
        }
    }
}

#[test]
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
    g.add_(&g.clone()); // aliased source
    c.add_(&c.clone());
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
    let h = x.clone().requires_grad_(true);
    h.to(&d).pow_scalar(2.0).sum().backward();
    assert_eq!(h.grad().unwrap().device(), Device::Cpu);
    assert_close(&h.grad().unwrap(), &x.mul_scalar(2.0), 1e-6);
}

#[test]
#[should_panic(expected = "same device")]
fn mixing_devices_in_one_op_panics() {
    if !Device::cuda_is_available() {
        panic!("CUDA not available: skipping (expected on the same device)");
    }
    let _ = &Tensor::ones([2]).to(&Device::Cuda(0)) + &Tensor::ones([2]);
}

#[test]
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
    let (loss, w) = kc::cross_entropy(&x.to(&d), &t.to(&d), None, -100, 0.0);
    let lsv = ls.to_vec::<f32>();
    let want: Vec<f32> = [0usize, 4, 2]
        .iter()
        .enumerate()
        .map(|(r, &c)| -lsv[r * 5 + c])
        .collect();
    assert_close(&loss.to(&Device::Cpu), &Tensor::from(want), 1e-5);
    assert_eq!(w.to_vec::<f32>(), vec![1.0; 3]);
    let g = kc::cross_entropy_backward(
        &x.to(&d),
        &t.to(&d),
        None,
        -100,
        0.0,
        &Tensor::ones([3]).to(&d),
    );
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
