//! No silent wrong results: `clone()` copies, in-place ops bump version
//! counters that autograd checks, and in-place ops on tensors in a graph
//! are recorded as PyTorch records them.
//!
//! Every expected value, `grad_fn` name and error text here is what
//! PyTorch 2.15 (CPU) prints for the same program; the Python is in the
//! comment above each case (run with `/work/venv-torch/bin/python`).
//! PyTorch's hint ("enable anomaly detection ...") is replaced by kiln's,
//! which names the backward that needed the tensor.

use kiln::optim::SGD;
use kiln::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The panic message of `f`, which must panic.
fn panic_text(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `backward`, which must panic with PyTorch's error for a saved
/// tensor (`what`: its type and shape, and the op it is an output of) that
/// an in-place op moved to `version`; returns the whole message.
fn assert_modified(backward: impl FnOnce(), what: &str, version: u32) -> String {
    let msg = panic_text(backward);
    let want = format!(
        "one of the variables needed for gradient computation has been modified by an inplace \
         operation: {what} is at version {version}; expected version 0 instead."
    );
    assert!(msg.contains(&want), "{msg}");
    msg
}

// ----- clone --------------------------------------------------------------

// x = torch.ones(2); y = x.clone(); y.add_(1)  ->  x [1, 1], y [2, 2]
// torch.ones(2, requires_grad=True).clone().grad_fn  ->  CloneBackward0
#[test]
fn clone_copies_and_is_recorded() {
    let x = Tensor::ones([2]);
    let y = x.clone();
    y.add_scalar_(1.0);
    assert_eq!(x.to_vec::<f32>(), vec![1.0, 1.0]);
    assert_eq!(y.to_vec::<f32>(), vec![2.0, 2.0]);
    assert!(!y.shares_storage_with(&x));

    let a = Tensor::ones([2]).requires_grad_(true);
    let c = a.clone();
    assert_eq!(c.grad_fn().unwrap().name(), "CloneBackward0");
    assert!(c.requires_grad() && !c.is_leaf());
    c.mul_scalar(3.0).sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![3.0, 3.0]);
    // Under no_grad the copy is a plain leaf.
    assert!(!no_grad(|| a.clone()).requires_grad());
}

#[test]
fn shallow_clone_shares_everything() {
    let x = Tensor::ones([2]).requires_grad_(true);
    let h = x.shallow_clone();
    no_grad(|| h.add_scalar_(1.0));
    assert_eq!(x.to_vec::<f32>(), vec![2.0, 2.0]);
    (&h * 2.0).sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![2.0, 2.0]);
}

#[test]
fn clone_of_a_strided_view_is_contiguous() {
    let x = Tensor::from([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let t = x.t().clone();
    assert!(t.is_contiguous());
    assert_eq!(t.to_vec::<f32>(), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
}

// ----- version counters ---------------------------------------------------

// x = torch.ones(2, 3); v = x[0]
// (x._version, v._version) -> (0, 0); v.add_(1) -> (1, 1); x.mul_(2) -> (2, 2)
// x.detach().add_(1); x._version -> 3
#[test]
fn views_share_the_version_counter() {
    let x = Tensor::ones([2, 3]);
    let v = x.select(0, 0);
    assert_eq!((x.version(), v.version()), (0, 0));
    v.add_scalar_(1.0);
    assert_eq!((x.version(), v.version()), (1, 1));
    x.mul_scalar_(2.0);
    assert_eq!((x.version(), v.version()), (2, 2));
    x.detach().add_scalar_(1.0);
    assert_eq!(x.version(), 3);
    // A copy has its own counter.
    assert_eq!(x.clone().version(), 0);
}

// a = torch.ones(2, 3, requires_grad=True); b = a * 2; c = b * b
// b.add_(1); c.sum().backward()
#[test]
fn modified_saved_non_leaf_is_an_error() {
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let b = &a * 2.0;
    let c = &b * &b;
    b.add_scalar_(1.0);
    let msg = assert_modified(
        || c.sum().backward(),
        "[torch.FloatTensor [2, 3]], which is output 0 of Add,",
        1,
    );
    assert!(msg.contains("MulBackward0"), "names the backward: {msg}");
}

// ... b.add_(1); b.mul_(3); c.sum().backward()
#[test]
fn error_reports_the_current_version_and_history() {
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let b = &a * 2.0;
    let c = &b * &b;
    b.add_scalar_(1.0);
    b.mul_scalar_(3.0);
    assert_modified(
        || c.sum().backward(),
        "[torch.FloatTensor [2, 3]], which is output 0 of Mul,",
        2,
    );
}

// a = torch.ones(2, 3, requires_grad=True); w = torch.ones(2, 3); c = a * w
// w.add_(1); c.sum().backward()
#[test]
fn modified_saved_leaf_is_an_error() {
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let w = Tensor::ones([2, 3]);
    let c = &a * &w;
    w.add_scalar_(1.0);
    assert_modified(|| c.sum().backward(), "[torch.FloatTensor [2, 3]]", 1);
}

// a = torch.ones(3, requires_grad=True); y = a.exp(); y.add_(1); y.sum().backward()
// a = torch.ones(2, 3, dtype=torch.float64, requires_grad=True); y = a.exp(); y.mul_(2)
#[test]
fn modified_saved_output_names_its_op() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let y = a.exp();
    y.add_scalar_(1.0);
    assert_modified(
        || y.sum().backward(),
        "[torch.FloatTensor [3]], which is output 0 of Exp,",
        1,
    );

    let a = Tensor::ones_opts([2, 3], DType::F64).requires_grad_(true);
    let y = a.exp();
    y.mul_scalar_(2.0);
    assert_modified(
        || y.sum().backward(),
        "[torch.DoubleTensor [2, 3]], which is output 0 of Exp,",
        1,
    );
}

// w = torch.tensor([1., 2., 3.], requires_grad=True); x = torch.tensor([4., 5., 6.], requires_grad=True)
// opt = torch.optim.SGD([w], lr=0.1); y = (w * x).sum(); y.backward(retain_graph=True)
// opt.step(); w._version -> 1; y.backward() -> error
#[test]
fn optimizer_steps_bump_versions() {
    let w = Tensor::from([1.0f32, 2.0, 3.0]).requires_grad_(true);
    let x = Tensor::from([4.0f32, 5.0, 6.0]).requires_grad_(true);
    let mut opt = SGD::new(vec![w.shallow_clone()], 0.1);
    let y = (&w * &x).sum();
    y.backward_opts(&y.ones_like(), true, false);
    opt.step();
    assert_eq!(w.version(), 1);
    assert_modified(|| y.backward(), "[torch.FloatTensor [3]]", 1);
}

#[test]
fn unchanged_saved_tensors_pass_the_check() {
    // Changing a tensor that no backward reads is fine, as in PyTorch
    // (`x * 2` saves nothing of x).
    let a = Tensor::ones([3]).requires_grad_(true);
    let x = &a * 1.0;
    let y = &x * 2.0;
    no_grad(|| x.add_scalar_(5.0));
    y.sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![2.0; 3]);
}

// ----- in-place ops in a graph ---------------------------------------------

// a = torch.ones(3, requires_grad=True); b = a * 2; b.add_(2)
// b.grad_fn -> AddBackward0, next_functions ((MulBackward0, 0), (None, 0))
// b.sum().backward(); a.grad -> [2., 2., 2.]
#[test]
fn inplace_on_a_non_leaf_rebases_its_history() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let b = &a * 2.0;
    b.add_scalar_(2.0);
    let f = b.grad_fn().unwrap();
    assert_eq!(f.name(), "AddBackward0");
    let next: Vec<_> = f.next_functions().into_iter().flatten().collect();
    assert_eq!(next.len(), 1);
    assert!(next[0].name().starts_with("MulBackward"));
    assert_eq!(b.to_vec::<f32>(), vec![4.0; 3]);
    b.sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![2.0; 3]);
}

// a = torch.ones(3, requires_grad=True); w = torch.tensor([2., 3., 4.], requires_grad=True)
// b = a * 1.5; b.mul_(w); b.sum().backward() -> a.grad [3., 4.5, 6.], w.grad [1.5, 1.5, 1.5]
// b = a * 1.5; b.div_(w) with w = [2., 4., 8.]
//   -> a.grad [0.75, 0.375, 0.1875], w.grad [-0.375, -0.09375, -0.0234375]
#[test]
fn inplace_mul_and_div_differentiate_both_operands() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let w = Tensor::from([2.0f32, 3.0, 4.0]).requires_grad_(true);
    let b = &a * 1.5;
    b.mul_(&w);
    assert_eq!(b.grad_fn().unwrap().name(), "MulBackward0");
    b.sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![3.0, 4.5, 6.0]);
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![1.5; 3]);

    let a = Tensor::ones([3]).requires_grad_(true);
    let w = Tensor::from([2.0f32, 4.0, 8.0]).requires_grad_(true);
    let b = &a * 1.5;
    b.div_(&w);
    assert_eq!(b.grad_fn().unwrap().name(), "DivBackward0");
    b.sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![0.75, 0.375, 0.1875]);
    assert_eq!(
        w.grad().unwrap().to_vec::<f32>(),
        vec![-0.375, -0.09375, -0.0234375]
    );
}

// b = a * 1.5 then: mul_(2) MulBackward0, add_(2) AddBackward0, fill_(2) FillBackward2,
// zero_() ZeroBackward0, copy_(w) CopyBackwards, sub_(w) SubBackward0,
// div_(w) DivBackward0, add_(w, alpha=2.0) AddBackward0
#[test]
fn inplace_grad_fn_names_match_pytorch() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let w = Tensor::from([2.0f32, 3.0, 4.0]).requires_grad_(true);
    type Op<'a> = Box<dyn Fn(&Tensor) + 'a>;
    let cases: Vec<(&str, Op)> = vec![
        ("MulBackward0", Box::new(|b| b.mul_scalar_(2.0))),
        ("AddBackward0", Box::new(|b| b.add_scalar_(2.0))),
        ("FillBackward2", Box::new(|b| b.fill_(2.0))),
        ("ZeroBackward0", Box::new(|b| b.zero_())),
        ("CopyBackwards", Box::new(|b| b.copy_(&w))),
        ("SubBackward0", Box::new(|b| b.sub_(&w))),
        ("DivBackward0", Box::new(|b| b.div_(&w))),
        ("AddBackward0", Box::new(|b| b.add_scaled_(&w, 2.0))),
    ];
    for (name, op) in cases {
        let b = &a * 1.5;
        op(&b);
        assert_eq!(b.grad_fn().unwrap().name(), name);
    }
}

// a = torch.ones(3, requires_grad=True); b = a * 2; b.copy_(torch.tensor([5., 6., 7.]))
// b.sum().backward(); a.grad -> [0., 0., 0.]
// b = a * 2; w = torch.tensor([1., 2., 3.], requires_grad=True); b.copy_(w * 3)
// (b * b).sum().backward() -> a.grad [0., 0., 0.], w.grad [18., 36., 54.]
#[test]
fn copy_into_a_non_leaf_routes_the_gradient_to_the_source() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let b = &a * 2.0;
    b.copy_(&Tensor::from([5.0f32, 6.0, 7.0]));
    b.sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![0.0; 3]);

    let a = Tensor::ones([3]).requires_grad_(true);
    let b = &a * 2.0;
    let w = Tensor::from([1.0f32, 2.0, 3.0]).requires_grad_(true);
    b.copy_(&(&w * 3.0));
    (&b * &b).sum().backward();
    assert_eq!(a.grad().unwrap().to_vec::<f32>(), vec![0.0; 3]);
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![18.0, 36.0, 54.0]);
}

// w = torch.tensor([2., 3., 4.], requires_grad=True); z = torch.zeros(3); z.add_(w)
// z.grad_fn -> AddBackward0, z.requires_grad True, z.is_leaf False
#[test]
fn inplace_with_a_grad_operand_makes_a_non_leaf() {
    let w = Tensor::from([2.0f32, 3.0, 4.0]).requires_grad_(true);
    let z = Tensor::zeros([3]);
    z.add_(&w);
    assert_eq!(z.grad_fn().unwrap().name(), "AddBackward0");
    assert!(z.requires_grad() && !z.is_leaf());
    z.mul_scalar(2.0).sum().backward();
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![2.0; 3]);
}

// a = torch.ones(3, requires_grad=True); a.add_(1)
//   -> "a leaf Variable that requires grad is being used in an in-place operation."
// with torch.no_grad(): a.add_(1)  -> a [2., 2., 2.], a._version 1, still a leaf
// a[0:2].add_(1) -> "a view of a leaf Variable that requires grad is being used in an in-place operation."
#[test]
fn leaves_that_require_grad_refuse_inplace_outside_no_grad() {
    let a = Tensor::ones([3]).requires_grad_(true);
    let msg = panic_text(|| a.add_scalar_(1.0));
    assert!(
        msg.contains("a leaf Variable that requires grad is being used in an in-place operation"),
        "{msg}"
    );
    let msg = panic_text(|| a.narrow(0, 0, 2).add_scalar_(1.0));
    assert!(
        msg.contains(
            "a view of a leaf Variable that requires grad is being used in an in-place operation"
        ),
        "{msg}"
    );
    no_grad(|| a.add_scalar_(1.0));
    assert_eq!(a.to_vec::<f32>(), vec![2.0; 3]);
    assert_eq!(a.version(), 1);
    assert!(a.is_leaf() && a.requires_grad());
}

// a = torch.ones(2, 3, requires_grad=True); w = torch.full((3,), 3.0, requires_grad=True)
// b = a * 2; v = b[1]; v.mul_(w)
// b.grad_fn -> CopySlices, v.grad_fn -> AsStridedBackward0, b -> [[2, 2, 2], [6, 6, 6]]
// (b * torch.arange(6.).reshape(2, 3)).sum().backward()
//   -> a.grad [[0, 2, 4], [18, 24, 30]], w.grad [6, 8, 10]
#[test]
fn inplace_on_a_view_rewrites_the_base_history() {
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let w = Tensor::full([3], 3.0).requires_grad_(true);
    let b = &a * 2.0;
    let v = b.select(0, 1);
    v.mul_(&w);
    assert_eq!(b.grad_fn().unwrap().name(), "CopySlices");
    assert_eq!(v.grad_fn().unwrap().name(), "AsStridedBackward0");
    assert_eq!(b.to_vec::<f32>(), vec![2.0, 2.0, 2.0, 6.0, 6.0, 6.0]);
    let k = Tensor::from_vec((0..6).map(|i| i as f32).collect(), [2, 3]);
    (&b * &k).sum().backward();
    assert_eq!(
        a.grad().unwrap().to_vec::<f32>(),
        vec![0.0, 2.0, 4.0, 18.0, 24.0, 30.0]
    );
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![6.0, 8.0, 10.0]);
}

#[test]
fn gradient_through_the_modified_view_itself() {
    // b = a * 2; v = b[:, 1:]; v.add_(w); (v * v).sum().backward()
    // d/da = 2 * 2 * (2a + w) on the view's columns, 0 elsewhere; d/dw = sum over rows of 2 (2a + w).
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let w = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
    let b = &a * 2.0;
    let v = b.narrow(1, 1, 2);
    v.add_(&w);
    (&v * &v).sum().backward();
    assert_eq!(
        a.grad().unwrap().to_vec::<f32>(),
        vec![0.0, 12.0, 16.0, 0.0, 12.0, 16.0]
    );
    assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![12.0, 16.0]);
}

// ----- integer matrix products ---------------------------------------------

// torch.tensor([[200, 100], [3, 4]], dtype=torch.uint8) @ torch.tensor([[2, 3], [1, 5]], dtype=torch.uint8)
//   -> [[244, 76], [10, 29]]
// torch.tensor([[2**62, 3]]) @ torch.tensor([[4], [5]]) -> [[15]]
// torch.bmm(torch.arange(24).reshape(2, 3, 4), torch.arange(8).reshape(2, 4, 1) * -3)
//   -> [[[-42], [-114], [-186]], [[-906], [-1170], [-1434]]]
// torch.matmul(torch.arange(3), torch.arange(3)) -> 5
#[test]
fn integer_matmul_is_exact_and_wraps() {
    let a = Tensor::from_vec(vec![200u8, 100, 3, 4], [2, 2]);
    let b = Tensor::from_vec(vec![2u8, 3, 1, 5], [2, 2]);
    assert_eq!(a.matmul(&b).to_vec::<u8>(), vec![244, 76, 10, 29]);
    assert_eq!(a.mm(&b).dtype(), DType::U8);

    let big = Tensor::from_vec(vec![1i64 << 62, 3], [1, 2]);
    let c = Tensor::from_vec(vec![4i64, 5], [2, 1]);
    assert_eq!(big.mm(&c).to_vec::<i64>(), vec![15]);

    let x = Tensor::from_vec((0..24).collect::<Vec<i64>>(), [2, 3, 4]);
    let y = Tensor::from_vec((0..8).map(|i| -3 * i).collect::<Vec<i64>>(), [2, 4, 1]);
    let r = x.bmm(&y);
    assert_eq!(r.dtype(), DType::I64);
    assert_eq!(r.to_vec::<i64>(), vec![-42, -114, -186, -906, -1170, -1434]);
    // Transposed (strided) operands and the 1-D dot product.
    let v = Tensor::from_vec(vec![0i64, 1, 2], [3]);
    assert_eq!(v.matmul(&v).to_vec::<i64>(), vec![5]);
    let m = Tensor::from_vec((0..6).collect::<Vec<i64>>(), [2, 3]);
    assert_eq!(
        m.t().matmul(&m).to_vec::<i64>(),
        vec![9, 12, 15, 12, 17, 22, 15, 22, 29]
    );
}

// torch.ones(2, 2, dtype=torch.bool) @ torch.ones(2, 2, dtype=torch.bool)
//   -> RuntimeError: "addmm_impl_cpu_" not implemented for 'Bool'
#[test]
fn bool_matmul_is_refused_like_pytorch() {
    let t = Tensor::ones_opts([2, 2], DType::Bool);
    let msg = panic_text(|| {
        t.matmul(&t);
    });
    assert!(msg.contains("\"addmm_impl_cpu_\" not implemented"), "{msg}");
}
