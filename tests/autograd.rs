//! PyTorch's autograd semantics, as its beginner tutorials teach them.

use kiln::prelude::*;

#[test]
fn tutorial_mean_of_squares() {
    let x = Tensor::ones([2, 2]).requires_grad_(true);
    // PyTorch 2.15 records a Python scalar operand as a wrapped tensor:
    // `x + 2` is AddBackward0 and `y * y * 3` MulBackward0.
    let y = &x + 2.0;
    assert_eq!(y.grad_fn().unwrap().name(), "AddBackward0");
    let z = &y * &y * 3.0;
    assert_eq!(z.grad_fn().unwrap().name(), "MulBackward0");
    let out = z.mean();
    assert!((out.item() - 27.0).abs() < 1e-6);
    out.backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![4.5; 4]);
}

#[test]
fn tutorial_backward_with_accumulates_until_zeroed() {
    let inp = Tensor::eye(5).requires_grad_(true);
    let out = (&inp + 1.0).pow_scalar(2.0);
    let ones = out.ones_like();
    out.backward_opts(&ones, true, false);
    let g = inp.grad().unwrap().to_vec2::<f32>();
    assert_eq!((g[0][0], g[0][1]), (4.0, 2.0));
    out.backward_opts(&ones, true, false);
    let g = inp.grad().unwrap().to_vec2::<f32>();
    assert_eq!((g[0][0], g[0][1]), (8.0, 4.0));
    inp.grad().unwrap().zero_();
    out.backward_opts(&ones, true, false);
    let g = inp.grad().unwrap().to_vec2::<f32>();
    assert_eq!((g[0][0], g[0][1]), (4.0, 2.0));
}

#[test]
#[should_panic(expected = "backward through the graph a second time")]
fn freed_graph_is_a_clear_error() {
    let x = Tensor::ones([3]).requires_grad_(true);
    let y = (&x * &x).sum();
    y.backward();
    y.backward();
}

#[test]
fn no_grad_and_detach() {
    let x = Tensor::ones([3]).requires_grad_(true);
    let y = no_grad(|| &x * 2.0);
    assert!(!y.requires_grad());
    assert!(y.grad_fn().is_none());
    let d = (&x * 2.0).detach();
    assert!(!d.requires_grad());
    let z = &x * 2.0;
    assert!(z.requires_grad() && !z.is_leaf() && x.is_leaf());
    let zd = z.detach();
    assert!(zd.shares_storage_with(&z));
}

#[test]
fn hooks_and_retain_grad_on_non_leaves() {
    let x = Tensor::from([1.0f32, 2.0, 3.0]).requires_grad_(true);
    let y = &x * 2.0;
    y.retain_grad();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    y.register_hook(move |g| {
        s2.lock().unwrap().extend(g.to_vec::<f32>());
        None
    });
    let out = (&y * &y).sum();
    out.backward();
    assert_eq!(*seen.lock().unwrap(), vec![4.0, 8.0, 12.0]);
    assert_eq!(y.grad().unwrap().to_vec::<f32>(), vec![4.0, 8.0, 12.0]);
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![8.0, 16.0, 24.0]);
}

#[test]
fn hook_can_replace_gradient() {
    let x = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
    let y = &x * 3.0;
    y.register_hook(|g| Some(g * 0.0));
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 0.0]);
}

#[test]
fn autograd_grad_does_not_touch_dot_grad() {
    let x = Tensor::from([1.0f64, 2.0]).requires_grad_(true);
    let w = Tensor::from([3.0f64, 4.0]).requires_grad_(true);
    let y = (&x * &w).sum();
    let g = autograd::grad(&[y], std::slice::from_ref(&x), false);
    assert_eq!(g[0].as_ref().unwrap().to_vec::<f64>(), vec![3.0, 4.0]);
    assert!(x.grad().is_none() && w.grad().is_none());
}

#[test]
fn broadcast_gradients_sum_back_to_input_shape() {
    let a = Tensor::ones([2, 3]).requires_grad_(true);
    let b = Tensor::ones([3]).requires_grad_(true);
    (&a + &b).sum().backward();
    assert_eq!(b.grad().unwrap().shape(), &[3]);
    assert_eq!(b.grad().unwrap().to_vec::<f32>(), vec![2.0; 3]);
}

#[test]
fn diamond_graph_sums_both_paths() {
    let x = Tensor::from([2.0f32]).requires_grad_(true);
    let y = &x * &x; // dy/dx = 2x
    let z = &y + &y * 3.0; // dz/dy = 4
    z.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![16.0]);
}

/// Reductions carry PyTorch 2.15's node names (`x.sum()`, `x.sum(0)`,
/// `x.mean()`, `x.mean(0)` print SumBackward0, SumBackward1, MeanBackward0,
/// MeanBackward1), and a mean's gradient is the incoming one over the count.
#[test]
fn reductions_are_named_as_in_pytorch() {
    let x = Tensor::ones([2, 3]).requires_grad_(true);
    let name = |t: Tensor| t.grad_fn().unwrap().name().to_string();
    assert_eq!(name(x.sum()), "SumBackward0");
    assert_eq!(name(x.sum_dim(0, false)), "SumBackward1");
    assert_eq!(name(x.mean()), "MeanBackward0");
    assert_eq!(name(x.mean_dim(0, false)), "MeanBackward1");
    x.mean_dim(1, true).sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![1.0 / 3.0; 6]);
}
