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

fn main() -> std::io::Result<()> {
    run(&mut std::io::stdout())?;
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
