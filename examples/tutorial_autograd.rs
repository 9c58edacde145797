//! PyTorch's "Automatic Differentiation with `torch.autograd`" tutorial
//! (`beginner/basics/autogradqs_tutorial`) in kiln: a one-layer network
//! `z = x·w + b` with a binary cross-entropy loss, its `grad_fn`s,
//! `backward()`, the gradients of `w` and `b`, turning tracking off with
//! `no_grad` and `detach`, and (the tutorial's "optional reading") vector-
//! Jacobian products, gradients accumulating across two `backward` calls
//! and zeroing them.
//!
//! ```text
//! cargo run --example tutorial_autograd
//! ```
//!
//! It prints what the original prints (kiln names the same backward
//! functions; its `grad_fn` prints as `<AddBackward0>` where PyTorch adds
//! ` object at 0x…`), plus one line per step saying which flag it shows:
//!
//! ```text
//! Gradient function for z = <AddBackward0>
//! Gradient function for loss = <BinaryCrossEntropyWithLogitsBackward0>
//! tensor([[0.0265, 0.2842, 0.3235],
//!         ...
//! tensor([0.0265, 0.2842, 0.3235])
//! z.requires_grad: true
//! with no_grad: z.requires_grad: false
//! z_det.requires_grad: false
//! First call
//! tensor([[4., 2., 2., 2., 2.],
//!         ...
//! Second call
//! tensor([[8., 4., 4., 4., 4.],
//!         ...
//! Call after zeroing gradients
//! tensor([[4., 2., 2., 2., 2.],
//!         ...
//! ```

use kiln::loss::{Reduction, binary_cross_entropy_with_logits};
use kiln::prelude::*;
use std::io::Write;

/// What a run produced, for the tests.
pub struct Outcome {
    /// `w` (5×3), row-major.
    pub w: Vec<f32>,
    /// `b` (3).
    pub b: Vec<f32>,
    /// `w.grad` after `loss.backward()`, row-major.
    pub w_grad: Vec<f32>,
    /// `b.grad` after `loss.backward()`.
    pub b_grad: Vec<f32>,
    /// `grad_fn` names of `z` and `loss`.
    pub grad_fns: [String; 2],
    /// `z.requires_grad` normally, under `no_grad`, and after `detach`.
    pub requires_grad: [bool; 3],
    /// `w` and `z` are leaves?
    pub is_leaf: [bool; 2],
    /// `inp.grad` after the first call, the second call, and the call
    /// after zeroing (4×5 each, row-major).
    pub inp_grads: [Vec<f32>; 3],
}

/// `torch.eye(n, m)`: ones on the main diagonal of an `n`×`m` matrix.
fn eye(n: usize, m: usize) -> Tensor {
    let data = (0..n * m)
        .map(|k| if k / m == k % m { 1.0f32 } else { 0.0 })
        .collect();
    Tensor::from_vec(data, [n, m])
}

/// The tutorial, printing to `out`.
pub fn run(out: &mut dyn Write) -> std::io::Result<Outcome> {
    manual_seed(0);

    // Tensors, functions and computational graph.
    let x = Tensor::ones([5]); // input tensor
    let y = Tensor::zeros([3]); // expected output
    let w = Tensor::randn([5, 3]).requires_grad_(true);
    let b = Tensor::randn([3]).requires_grad_(true);
    let z = x.matmul(&w) + &b;
    let loss = binary_cross_entropy_with_logits(&z, &y, Reduction::Mean);

    let name = |t: &Tensor| t.grad_fn().map_or("None".to_string(), |g| g.to_string());
    let grad_fns = [name(&z), name(&loss)];
    writeln!(out, "Gradient function for z = {}", grad_fns[0])?;
    writeln!(out, "Gradient function for loss = {}", grad_fns[1])?;
    let is_leaf = [w.is_leaf(), z.is_leaf()];

    // Computing gradients.
    loss.backward();
    let (w_grad, b_grad) = (w.grad().expect("w.grad"), b.grad().expect("b.grad"));
    writeln!(out, "{w_grad}")?;
    writeln!(out, "{b_grad}")?;

    // Disabling gradient tracking.
    let z = x.matmul(&w) + &b;
    writeln!(out, "z.requires_grad: {}", z.requires_grad())?;
    let z_no_grad = no_grad(|| x.matmul(&w) + &b);
    writeln!(
        out,
        "with no_grad: z.requires_grad: {}",
        z_no_grad.requires_grad()
    )?;
    let z = x.matmul(&w) + &b;
    let z_det = z.detach();
    writeln!(out, "z_det.requires_grad: {}", z_det.requires_grad())?;

    // Optional reading: tensor gradients and Jacobian products.
    let inp = eye(4, 5).requires_grad_(true);
    let out_t = (&inp + 1.0).pow_scalar(2.0).t();
    let ones = out_t.ones_like();
    out_t.backward_opts(&ones, true, false);
    let first = inp.grad().expect("inp.grad");
    writeln!(out, "First call\n{first}")?;
    let first = first.to_vec::<f32>(); // a copy: the gradient accumulates in place
    out_t.backward_opts(&ones, true, false);
    let second = inp.grad().expect("inp.grad");
    writeln!(out, "\nSecond call\n{second}")?;
    let second = second.to_vec::<f32>();
    inp.grad().expect("inp.grad").zero_();
    out_t.backward_opts(&ones, true, false);
    let after_zero = inp.grad().expect("inp.grad");
    writeln!(out, "\nCall after zeroing gradients\n{after_zero}")?;

    Ok(Outcome {
        w: w.to_vec(),
        b: b.to_vec(),
        w_grad: w_grad.to_vec(),
        b_grad: b_grad.to_vec(),
        grad_fns,
        requires_grad: [
            z.requires_grad(),
            z_no_grad.requires_grad(),
            z_det.requires_grad(),
        ],
        is_leaf,
        inp_grads: [first, second, after_zero.to_vec()],
    })
}

/// What the classic "Autograd: Automatic Differentiation" tutorial (the
/// 60-minute blitz) shows, for the tests.
pub struct Blitz {
    /// `grad_fn` names of `y = x + 2`, `z = y * y * 3`, `out = z.mean()`
    /// and `b = (a * a).sum()`.
    pub grad_fns: [String; 4],
    /// `out` (27) and `b`.
    pub values: [f64; 2],
    /// `a.requires_grad` before and after `a.requires_grad_(true)`.
    pub a_requires_grad: [bool; 2],
    /// `x.grad` after `out.backward()` (4.5 everywhere).
    pub x_grad: Vec<f32>,
    /// How many doublings `y = x * 2` took until its norm passed 1000, `y`,
    /// and the vector-Jacobian product `x.grad` for `v = [0.1, 1, 0.0001]`.
    pub doublings: usize,
    /// `y` after the doublings.
    pub y: Vec<f32>,
    /// `x.grad` after `y.backward(v)`.
    pub vjp: Vec<f32>,
    /// `x.requires_grad`, `(x ** 2).requires_grad`, and the latter under
    /// `no_grad`.
    pub tracking: [bool; 3],
    /// A leaf updated in place inside `no_grad` (`w -= 0.1 * w.grad`):
    /// its values, whether it is still a leaf that requires grad, and its
    /// version counter.
    pub sgd_w: Vec<f32>,
    /// `(w.is_leaf, w.requires_grad)` after the update.
    pub sgd_flags: [bool; 2],
    /// `w._version` after the update (1).
    pub sgd_version: u64,
}

/// The blitz tutorial's autograd section, with fixed inputs instead of
/// `torch.randn` (so the numbers can be checked against PyTorch's).
pub fn run_blitz(out: &mut dyn Write) -> std::io::Result<Blitz> {
    let name = |t: &Tensor| {
        t.grad_fn()
            .map_or("None".to_string(), |g| g.name().to_string())
    };

    let x = Tensor::ones([2, 2]).requires_grad_(true);
    let y = &x + 2.0;
    let z = &y * &y * 3.0;
    let o = z.mean();
    writeln!(out, "y.grad_fn = {}\nz = {z}\nout = {o}", name(&y))?;

    // requires_grad_ flips a leaf's flag in place.
    let a = Tensor::from([[0.5f32, -1.0], [2.0, 3.0]]);
    let a = (&a * 3.0) / (&a - 1.0);
    let before = a.requires_grad();
    let a = a.requires_grad_(true);
    let b = (&a * &a).sum();
    writeln!(out, "{before}\n{}\n{}", a.requires_grad(), name(&b))?;

    o.backward();
    let x_grad = x.grad().expect("x.grad").to_vec::<f32>();
    writeln!(out, "{}", x.grad().expect("x.grad"))?;

    // A vector-Jacobian product: y is not a scalar, so backward takes v.
    let x2 = Tensor::from([0.5f32, -1.0, 2.0]).requires_grad_(true);
    let mut y2 = &x2 * 2.0;
    let mut doublings = 1;
    while no_grad(|| y2.pow_scalar(2.0).sum().item().sqrt()) < 1000.0 {
        y2 = &y2 * 2.0;
        doublings += 1;
    }
    let v = Tensor::from([0.1f32, 1.0, 0.0001]);
    y2.backward_with(&v);
    let vjp = x2.grad().expect("x.grad").to_vec::<f32>();
    writeln!(out, "{y2}\n{}", x2.grad().expect("x.grad"))?;

    let tracking = [
        x2.requires_grad(),
        x2.pow_scalar(2.0).requires_grad(),
        no_grad(|| x2.pow_scalar(2.0).requires_grad()),
    ];
    writeln!(out, "{}\n{}\n{}", tracking[0], tracking[1], tracking[2])?;

    // An SGD step by hand: the in-place update runs inside no_grad, so
    // the leaf stays a leaf (outside no_grad it would be an error).
    let w = Tensor::from([1.0f32, 2.0, 3.0]).requires_grad_(true);
    (&w * &w).sum().backward();
    no_grad(|| w.add_scaled_(&w.grad().expect("w.grad"), -0.1));
    writeln!(out, "{w} (version {})", w.version())?;

    Ok(Blitz {
        grad_fns: [name(&y), name(&z), name(&o), name(&b)],
        values: [o.item(), b.item()],
        a_requires_grad: [before, a.requires_grad()],
        x_grad,
        doublings,
        y: y2.to_vec(),
        vjp,
        tracking,
        sgd_w: w.to_vec(),
        sgd_flags: [w.is_leaf(), w.requires_grad()],
        sgd_version: w.version(),
    })
}

fn main() -> std::io::Result<()> {
    run(&mut std::io::stdout())?;
    run_blitz(&mut std::io::stdout())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Serialises the tests: they share kiln's global generator, which
    /// `run` seeds.
    static RNG: Mutex<()> = Mutex::new(());

    fn seeded_run() -> Outcome {
        let _guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
        run(&mut std::io::sink()).unwrap()
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() < 1e-6
    }

    #[test]
    fn gradients_equal_the_analytic_values() {
        let o = seeded_run();
        // z_j = Σ_i x_i w_ij + b_j with x = 1; loss = mean_j BCE(z_j, 0),
        // so ∂loss/∂z_j = σ(z_j) / 3, ∂loss/∂b_j = σ(z_j) / 3 and
        // ∂loss/∂w_ij = x_i σ(z_j) / 3 = σ(z_j) / 3 for every row i.
        for j in 0..3 {
            let z: f64 = (0..5).map(|i| f64::from(o.w[i * 3 + j])).sum::<f64>() + f64::from(o.b[j]);
            let dz = 1.0 / (1.0 + (-z).exp()) / 3.0;
            assert!(
                close(o.b_grad[j], dz),
                "b.grad[{j}] = {} vs {dz}",
                o.b_grad[j]
            );
            for i in 0..5 {
                assert!(close(o.w_grad[i * 3 + j], dz), "w.grad[{i},{j}]");
            }
        }
    }

    #[test]
    fn grad_fns_flags_and_leaves() {
        let o = seeded_run();
        assert_eq!(
            o.grad_fns,
            ["<AddBackward0>", "<BinaryCrossEntropyWithLogitsBackward0>"]
        );
        assert_eq!(o.requires_grad, [true, false, false]);
        assert_eq!(o.is_leaf, [true, false]);
    }

    /// Expected values: PyTorch 2.15 running the same program
    /// (`x = torch.ones(2, 2, requires_grad=True); y = x + 2; ...`, with
    /// `a = torch.tensor([[0.5, -1.0], [2.0, 3.0]])` and
    /// `x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)` for the
    /// blitz's `randn` inputs).
    #[test]
    fn blitz_tutorial_matches_pytorch() {
        let o = run_blitz(&mut std::io::sink()).unwrap();
        assert_eq!(
            o.grad_fns,
            [
                "AddBackward0",
                "MulBackward0",
                "MeanBackward0",
                "SumBackward0"
            ]
        );
        assert_eq!(o.values, [27.0, 67.5]);
        assert_eq!(o.a_requires_grad, [false, true]);
        assert_eq!(o.x_grad, vec![4.5; 4]);
        // y = x * 2**9 = [256, -512, 1024]; x.grad = v * 2**9.
        assert_eq!(o.doublings, 9);
        assert_eq!(o.y, vec![256.0, -512.0, 1024.0]);
        assert_eq!(o.vjp, vec![51.2, 512.0, 0.0512]);
        assert_eq!(o.tracking, [true, true, false]);
        // w.grad = 2w; w - 0.1 * 2w = 0.8w, still a leaf, version 1.
        assert_eq!(o.sgd_w, vec![0.8, 1.6, 2.4]);
        assert_eq!(o.sgd_flags, [true, true]);
        assert_eq!(o.sgd_version, 1);
    }

    #[test]
    fn gradients_accumulate_until_zeroed() {
        let o = seeded_run();
        // out = (inp + 1)²ᵀ, v = 1: d/d inp = 2 (inp + 1) = 4 on the
        // diagonal of eye(4, 5), 2 elsewhere; twice that after two calls.
        let once: Vec<f32> = (0..20)
            .map(|k| if k / 5 == k % 5 { 4.0 } else { 2.0 })
            .collect();
        let twice: Vec<f32> = once.iter().map(|v| 2.0 * v).collect();
        assert_eq!(o.inp_grads[0], once);
        assert_eq!(o.inp_grads[1], twice);
        assert_eq!(o.inp_grads[2], once);
    }
}
