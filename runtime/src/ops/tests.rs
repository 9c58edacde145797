//! Forward semantics of the activation, math, indexing, joining, sorting
//! and einsum ops against PyTorch's behaviour.

use crate::{DType, Tensor};

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{a:?} vs {b:?}"
        );
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

// ----- elementwise -------------------------------------------------------------

#[test]
fn activations_values() {
    let x = Tensor::from([-1.0f32, 0.0, 2.0]);
    assert_eq!(x.relu().to_vec::<f32>(), vec![0.0, 0.0, 2.0]);
    close(&f64s(&x.sigmoid()), &[0.2689414, 0.5, 0.8807971], 1e-6);
    close(&f64s(&x.tanh()), &[-0.7615942, 0.0, 0.9640276], 1e-6);
    close(&f64s(&x.gelu()), &[-0.15865525, 0.0, 1.9544997], 1e-6);
    close(
        &f64s(&Tensor::from([1.0f32, -1.0]).gelu_tanh()),
        &[0.8411920, -0.1588080],
        1e-6,
    );
    close(&f64s(&x.leaky_relu(0.01)), &[-0.01, 0.0, 2.0], 1e-7);
    let t = Tensor::from([0.5f32, 1.0, 2.0]).threshold(1.0, -3.0);
    assert_eq!(t.to_vec::<f32>(), vec![-3.0, -3.0, 2.0]);
    // relu and abs keep integer dtypes; sigmoid of ints is float32.
    let i = Tensor::from([-3i64, 4]);
    assert_eq!(i.relu().dtype(), DType::I64);
    assert_eq!(i.relu().to_vec::<i64>(), vec![0, 4]);
    assert_eq!(i.abs().to_vec::<i64>(), vec![3, 4]);
    assert_eq!(i.sigmoid().dtype(), DType::F32);
    assert_eq!(i.sqrt().dtype(), DType::F32);
    // NaN passes through relu, clamp and sigmoid.
    let n = Tensor::from([f32::NAN]);
    assert!(n.relu().item().is_nan());
    assert!(n.clamp(Some(0.0), Some(1.0)).item().is_nan());
    assert!(n.sigmoid().item().is_nan());
}

#[test]
fn erf_is_accurate() {
    let x = Tensor::from([0.0f64, 0.5, 1.0, 2.0, 3.0, -0.3, 6.5, 1e-10]);
    close(
        &f64s(&x.erf()),
        &[
            0.0,
            0.5204998778130465,
            0.8427007929497149,
            0.9953222650189527,
            0.9999779095030014,
            -0.3286267594591274,
            1.0,
            1.1283791670955126e-10,
        ],
        1e-15,
    );
}

#[test]
fn half_precision_activations_compute_in_f32() {
    let x = Tensor::from([-1.0f32, 0.5, 2.0]).to_dtype(DType::F16);
    let y = x.sigmoid();
    assert_eq!(y.dtype(), DType::F16);
    close(&f64s(&y), &[0.2689, 0.6225, 0.8808], 1e-3);
    let s = x.to_dtype(DType::BF16).softmax(0);
    assert_eq!(s.dtype(), DType::BF16);
    close(&[s.sum().item()], &[1.0], 1e-2);
}

#[test]
fn math_values() {
    let x = Tensor::from([4.0f32, -2.0, 0.5]);
    close(
        &f64s(&x.abs().sqrt()),
        &[
            2.0,
            std::f64::consts::SQRT_2,
            std::f64::consts::FRAC_1_SQRT_2,
        ],
        1e-6,
    );
    assert_eq!(x.sign().to_vec::<f32>(), vec![1.0, -1.0, 1.0]);
    assert_eq!(Tensor::from([0.0f32]).sign().item(), 0.0);
    assert_eq!(x.square().to_vec::<f32>(), vec![16.0, 4.0, 0.25]);
    assert_eq!(x.reciprocal().to_vec::<f32>(), vec![0.25, -0.5, 2.0]);
    close(
        &f64s(&Tensor::from([0.0f64, std::f64::consts::FRAC_PI_2]).sin()),
        &[0.0, 1.0],
        1e-15,
    );
    close(
        &f64s(&Tensor::from([0.0f64, std::f64::consts::PI]).cos()),
        &[1.0, -1.0],
        1e-15,
    );
    let p = Tensor::from([2.0f32, 3.0]).pow(&Tensor::from([[2.0f32], [0.5]]));
    assert_eq!(p.shape(), &[2, 2]);
    close(
        &f64s(&p),
        &[4.0, 9.0, std::f64::consts::SQRT_2, 1.7320508],
        1e-6,
    );
    let ip = Tensor::from([2i64, 3]).pow(&Tensor::from([3i64, 2]));
    assert_eq!(ip.to_vec::<i64>(), vec![8, 9]);
}

#[test]
fn clamp_semantics() {
    let x = Tensor::from([-2.0f32, 0.5, 3.0]);
    assert_eq!(
        x.clamp(Some(-1.0), Some(1.0)).to_vec::<f32>(),
        vec![-1.0, 0.5, 1.0]
    );
    assert_eq!(x.clamp_min(0.0).to_vec::<f32>(), vec![0.0, 0.5, 3.0]);
    assert_eq!(x.clamp_max(0.0).to_vec::<f32>(), vec![-2.0, 0.0, 0.0]);
    // min > max: everything becomes max, like PyTorch.
    assert_eq!(
        x.clamp(Some(2.0), Some(1.0)).to_vec::<f32>(),
        vec![1.0, 1.0, 1.0]
    );
    let i = Tensor::from([-5i64, 5]).clamp(Some(-1.0), Some(2.0));
    assert_eq!(i.to_vec::<i64>(), vec![-1, 2]);
}

#[test]
#[should_panic(expected = "clamp: at least one of 'min' or 'max' must not be None")]
fn clamp_needs_a_bound() {
    Tensor::from([1.0f32]).clamp(None, None);
}

#[test]
fn derivatives_at_kinks_match_pytorch() {
    let x = Tensor::from([0.0f32, 1.0, -1.0, 2.0]).requires_grad_(true);
    x.relu().sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 1.0, 0.0, 1.0]);
    x.set_grad(None);
    x.abs().sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 1.0, -1.0, 1.0]);
    x.set_grad(None);
    // clamp passes the gradient at the bounds themselves.
    x.clamp(Some(-1.0), Some(1.0)).sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![1.0, 1.0, 1.0, 0.0]);
    x.set_grad(None);
    // threshold: only where x > threshold.
    x.threshold(1.0, 5.0).sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![0.0, 0.0, 0.0, 1.0]);
    x.set_grad(None);
    x.leaky_relu(0.1).sum().backward();
    close(&f64s(&x.grad().unwrap()), &[0.1, 1.0, 0.1, 1.0], 1e-7);
}

#[test]
fn grad_fn_names() {
    let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]).requires_grad_(true);
    let name = |t: Tensor| t.grad_fn().unwrap().name();
    assert_eq!(name(x.relu()), "ReluBackward0");
    assert_eq!(name(x.sigmoid()), "SigmoidBackward0");
    assert_eq!(name(x.tanh()), "TanhBackward0");
    assert_eq!(name(x.gelu()), "GeluBackward0");
    assert_eq!(name(x.softmax(1)), "SoftmaxBackward0");
    assert_eq!(name(x.log_softmax(1)), "LogSoftmaxBackward0");
    assert_eq!(name(x.sqrt()), "SqrtBackward0");
    assert_eq!(name(x.abs()), "AbsBackward0");
    assert_eq!(name(x.max_dim(1, false).0), "MaxBackward0");
    assert_eq!(name(x.max()), "MaxBackward1");
    assert_eq!(name(x.sort(0, false).0), "SortBackward0");
    assert_eq!(name(Tensor::cat(&[&x, &x], 0)), "CatBackward0");
    assert_eq!(name(Tensor::stack(&[&x, &x], 0)), "StackBackward0");
    let idx = Tensor::from([1i64, 0]);
    assert_eq!(name(x.index_select(0, &idx)), "IndexSelectBackward0");
    assert_eq!(
        name(x.gather(1, &Tensor::from([[0i64], [1]]))),
        "GatherBackward0"
    );
    let c = Tensor::from([true, false]);
    assert_eq!(name(Tensor::where_cond(&c, &x, &x)), "WhereBackward0");
    assert_eq!(name(x.masked_fill(&c, 0.0)), "MaskedFillBackward0");
}

#[test]
fn large_elementwise_ops_use_the_parallel_path_correctly() {
    // Past the parallel threshold, and long enough for the softmax rows.
    let n = crate::ops::kernel::PAR_MIN.max(100_000) + 3;
    let v: Vec<f32> = (0..n)
        .map(|i| (i as f32 - (n / 2) as f32) * 0.001)
        .collect();
    let x = Tensor::from_vec(v.clone(), [n]);
    let y = x.relu().to_vec::<f32>();
    assert!(y.iter().zip(&v).all(|(a, b)| *a == b.max(0.0)));
    let s = x.sigmoid().to_vec::<f32>();
    assert!(
        s.iter()
            .zip(&v)
            .all(|(a, b)| (a - 1.0 / (1.0 + (-b).exp())).abs() < 1e-6)
    );
    let rows = Tensor::from_vec(v[..100_000].to_vec(), [1000, 100])
        .softmax(-1)
        .sum_dim(1, false);
    assert!(rows.to_vec::<f32>().iter().all(|r| (r - 1.0).abs() < 1e-5));
}

// ----- softmax -----------------------------------------------------------------

#[test]
fn softmax_is_stable_and_works_on_any_dim() {
    let x = Tensor::from([1000.0f32, 1001.0]);
    close(&f64s(&x.softmax(0)), &[0.26894142, 0.7310586], 1e-6);
    close(&f64s(&x.log_softmax(0)), &[-1.3132616, -0.3132617], 1e-4);
    let x64 = Tensor::from([1000.0f64, 1001.0]);
    close(
        &f64s(&x64.log_softmax(0)),
        &[-1.3132616875182228, -0.3132616875182228],
        1e-12,
    );
    let m = Tensor::from([[1.0f64, 2.0, 3.0], [1.0, 1.0, 1.0]]);
    let s0 = m.softmax(0);
    close(&f64s(&s0.sum_dim(0, false)), &[1.0, 1.0, 1.0], 1e-12);
    close(
        &f64s(&s0.select(0, 0)),
        &[0.5, 0.7310585786300049, 0.8807970779778823],
        1e-12,
    );
    let s1 = m.softmax(-1);
    close(
        &f64s(&s1.select(0, 0)),
        &[0.09003057317038046, 0.24472847105479767, 0.6652409557748219],
        1e-12,
    );
    close(&f64s(&m.log_softmax(1).exp()), &f64s(&s1), 1e-12);
    // A transposed (non-contiguous) input gives the transposed result.
    close(&f64s(&m.t().softmax(0).t()), &f64s(&s1), 1e-12);
    assert_eq!(Tensor::scalar(3.0f32).softmax(0).item(), 1.0);
}

// ----- max / min / sort / var ---------------------------------------------------

#[test]
fn max_min_argmax() {
    let x = Tensor::from([[1.0f32, 5.0, 5.0], [7.0, 0.0, -1.0]]);
    let (v, i) = x.max_dim(1, false);
    assert_eq!(v.to_vec::<f32>(), vec![5.0, 7.0]);
    assert_eq!(i.to_vec::<i64>(), vec![1, 0]);
    assert_eq!(i.dtype(), DType::I64);
    let (v, i) = x.min_dim(0, true);
    assert_eq!(v.shape(), &[1, 3]);
    assert_eq!(v.to_vec::<f32>(), vec![1.0, 0.0, -1.0]);
    assert_eq!(i.to_vec::<i64>(), vec![0, 1, 1]);
    assert_eq!(x.argmax(-1, false).to_vec::<i64>(), vec![1, 0]);
    assert_eq!(x.argmax(0, true).shape(), &[1, 3]);
    assert_eq!(x.argmin(1, false).to_vec::<i64>(), vec![0, 2]);
    assert_eq!(x.max().item(), 7.0);
    assert_eq!(x.min().item(), -1.0);
    assert_eq!(x.max().dim(), 0);
    // NaN wins max and min, like PyTorch.
    let n = Tensor::from([1.0f32, f32::NAN, 3.0]);
    assert_eq!(n.argmax(0, false).item(), 1.0);
    assert!(n.max_dim(0, false).0.item().is_nan());
    assert!(n.min().item().is_nan());
    // Integer tensors work too.
    let (v, i) = Tensor::from([3i64, 9, 2]).max_dim(0, false);
    assert_eq!((v.to_vec::<i64>(), i.item()), (vec![9], 1.0));
}

#[test]
fn max_gradients() {
    let x = Tensor::from([[1.0f32, 3.0, 2.0], [4.0, 0.0, 4.0]]).requires_grad_(true);
    x.max_dim(1, false).0.sum().backward();
    assert_eq!(
        x.grad().unwrap().to_vec::<f32>(),
        vec![0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    );
    x.set_grad(None);
    // Full max: ties share the gradient evenly.
    x.max().backward();
    assert_eq!(
        x.grad().unwrap().to_vec::<f32>(),
        vec![0.0, 0.0, 0.0, 0.5, 0.0, 0.5]
    );
}

#[test]
#[should_panic(expected = "max: expected reduction dim 1 to have non-zero size")]
fn max_over_an_empty_dim_panics() {
    Tensor::zeros([2, 0]).max_dim(1, false);
}

#[test]
fn sort_is_stable() {
    let x = Tensor::from([2.0f32, 1.0, 2.0, 0.0, 1.0]);
    let (v, i) = x.sort(0, false);
    assert_eq!(v.to_vec::<f32>(), vec![0.0, 1.0, 1.0, 2.0, 2.0]);
    assert_eq!(i.to_vec::<i64>(), vec![3, 1, 4, 0, 2]);
    let (v, i) = x.sort(0, true);
    assert_eq!(v.to_vec::<f32>(), vec![2.0, 2.0, 1.0, 1.0, 0.0]);
    assert_eq!(i.to_vec::<i64>(), vec![0, 2, 1, 4, 3]);
    let m = Tensor::from([[3.0f32, 1.0], [2.0, 5.0], [1.0, 4.0]]);
    let (v, i) = m.sort(0, false);
    assert_eq!(v.to_vec::<f32>(), vec![1.0, 1.0, 2.0, 4.0, 3.0, 5.0]);
    assert_eq!(i.to_vec::<i64>(), vec![2, 0, 1, 2, 0, 1]);
    assert_eq!(m.argsort(1, true).to_vec::<i64>(), vec![0, 1, 1, 0, 1, 0]);
    // NaN sorts last ascending, first descending.
    let n = Tensor::from([1.0f32, f32::NAN, 0.0]);
    assert_eq!(n.sort(0, false).1.to_vec::<i64>(), vec![2, 0, 1]);
    assert_eq!(n.sort(0, true).1.to_vec::<i64>(), vec![1, 0, 2]);
    // Sort's gradient routes back through the permutation.
    let x = Tensor::from([3.0f32, 1.0, 2.0]).requires_grad_(true);
    let (v, _) = x.sort(0, false);
    v.mul(&Tensor::from([1.0f32, 10.0, 100.0])).sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![100.0, 1.0, 10.0]);
}

#[test]
fn var_std() {
    let x = Tensor::from([1.0f32, 2.0, 3.0, 4.0]);
    close(&[x.var(true).item()], &[1.6666667], 1e-6);
    close(&[x.var(false).item()], &[1.25], 1e-6);
    close(&[x.std(true).item()], &[1.2909944], 1e-6);
    let m = Tensor::from([[1.0f32, 3.0], [2.0, 6.0]]);
    close(&f64s(&m.var_dim(0, true, false)), &[0.5, 4.5], 1e-6);
    assert_eq!(m.var_dim(1, true, true).shape(), &[2, 1]);
    close(&f64s(&m.std_dim(1, false, false)), &[1.0, 2.0], 1e-6);
}

// ----- joining -------------------------------------------------------------------

#[test]
fn cat_and_stack() {
    let a = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    let b = Tensor::from([[5.0f32, 6.0]]);
    let c = Tensor::cat(&[&a, &b], 0);
    assert_eq!(c.shape(), &[3, 2]);
    assert_eq!(c.to_vec::<f32>(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let d = Tensor::cat(&[&a, &a.t()], -1);
    assert_eq!(
        d.to_vec::<f32>(),
        vec![1.0, 2.0, 1.0, 3.0, 3.0, 4.0, 2.0, 4.0]
    );
    // dtypes are promoted.
    let e = Tensor::cat(&[&b, &b.to_dtype(DType::F64)], 0);
    assert_eq!(e.dtype(), DType::F64);
    // Empty pieces are fine.
    let z = Tensor::zeros([0, 2]);
    assert_eq!(Tensor::cat(&[&z, &b, &z], 0).shape(), &[1, 2]);
    let s = Tensor::stack(&[&a, &a, &a], 1);
    assert_eq!(s.shape(), &[2, 3, 2]);
    assert_eq!(
        s.select(1, 2).to_vec::<f32>(),
        a.to_vec::<f32>(),
        "stack along 1 keeps each input at index i of dim 1"
    );
    let il = Tensor::stack(&[&Tensor::from([1i64, 2]), &Tensor::from([3i64, 4])], -1);
    assert_eq!(il.shape(), &[2, 2]);
    assert_eq!(il.to_vec::<i64>(), vec![1, 3, 2, 4]);
}

#[test]
#[should_panic(expected = "cat: sizes of tensors must match except in dimension 0")]
fn cat_shape_mismatch_panics() {
    Tensor::cat(&[&Tensor::zeros([2, 3]), &Tensor::zeros([2, 4])], 0);
}

#[test]
#[should_panic(expected = "stack: expects each tensor to be equal size")]
fn stack_shape_mismatch_panics() {
    Tensor::stack(&[&Tensor::zeros([2]), &Tensor::zeros([3])], 0);
}

#[test]
#[should_panic(expected = "cat: dimension out of range")]
fn cat_bad_dim_panics() {
    Tensor::cat(&[&Tensor::zeros([2])], 1);
}

#[test]
fn split_chunk_are_views() {
    let x = Tensor::arange(0.0, 10.0, 1.0).reshape(&[2, 5]);
    let parts = x.split(&[2, 3], 1);
    assert_eq!(parts[0].shape(), &[2, 2]);
    assert_eq!(parts[1].to_vec::<i64>(), vec![2, 3, 4, 7, 8, 9]);
    assert!(parts[1].shares_storage_with(&x));
    let sizes = |v: Vec<Tensor>| v.iter().map(|t| t.shape()[1]).collect::<Vec<_>>();
    assert_eq!(sizes(x.split_size(2, 1)), vec![2, 2, 1]);
    assert_eq!(sizes(x.chunk(3, -1)), vec![2, 2, 1]);
    let six = Tensor::arange(0.0, 6.0, 1.0);
    assert_eq!(six.chunk(4, 0).len(), 3);
    assert_eq!(six.chunk(6, 0).len(), 6);
}

#[test]
#[should_panic(expected = "split: split sizes [2, 2] must sum exactly to the size 5")]
fn split_sizes_must_add_up() {
    Tensor::zeros([5]).split(&[2, 2], 0);
}

#[test]
fn repeat_and_flip() {
    let x = Tensor::from([[1i64, 2], [3, 4]]);
    let r = x.repeat(&[1, 2]);
    assert_eq!(r.to_vec::<i64>(), vec![1, 2, 1, 2, 3, 4, 3, 4]);
    assert_eq!(x.repeat(&[2, 1, 1]).shape(), &[2, 2, 2]);
    assert_eq!(x.flip(&[0]).to_vec::<i64>(), vec![3, 4, 1, 2]);
    assert_eq!(x.flip(&[0, 1]).to_vec::<i64>(), vec![4, 3, 2, 1]);
}

// ----- indexing --------------------------------------------------------------------

#[test]
fn index_select_gather_scatter() {
    let x = Tensor::from([[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let s = x.index_select(1, &Tensor::from([2i64, 0, 2]));
    assert_eq!(s.to_vec::<f32>(), vec![3.0, 1.0, 3.0, 6.0, 4.0, 6.0]);
    let g = x.gather(1, &Tensor::from([[2i64, 2], [0, 1]]));
    assert_eq!(g.to_vec::<f32>(), vec![3.0, 3.0, 4.0, 5.0]);
    // gather on a transposed view reads through its strides.
    let gt = x.t().gather(0, &Tensor::from([[1i64, 0]]));
    assert_eq!(gt.to_vec::<f32>(), vec![2.0, 4.0]);
    let z = Tensor::zeros([2, 3]);
    let sa = z.scatter_add(
        1,
        &Tensor::from([[0i64, 0], [2, 1]]),
        &Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]),
    );
    assert_eq!(sa.to_vec::<f32>(), vec![3.0, 0.0, 0.0, 0.0, 4.0, 3.0]);
    let ia = z.index_add(0, &Tensor::from([1i64, 1]), &Tensor::ones([2, 3]));
    assert_eq!(ia.to_vec::<f32>(), vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
    // The input of scatter_add/index_add is not modified.
    assert_eq!(z.sum().item(), 0.0);
}

#[test]
#[should_panic(expected = "index_select: index 5 is out of bounds for dimension 0 with size 2")]
fn index_select_out_of_range() {
    Tensor::zeros([2, 3]).index_select(0, &Tensor::from([0i64, 5]));
}

#[test]
#[should_panic(expected = "gather: index -1 is out of bounds for dimension 1 with size 3")]
fn gather_negative_index() {
    Tensor::zeros([2, 3]).gather(1, &Tensor::from([[0i64], [-1]]));
}

#[test]
#[should_panic(expected = "index_select: expected index to have dtype int64")]
fn float_index_panics() {
    Tensor::zeros([2, 3]).index_select(0, &Tensor::from([0.0f32]));
}

#[test]
fn where_and_masks() {
    let c = Tensor::from([[true, false], [false, true]]);
    let w = Tensor::where_cond(&c, &Tensor::from([1.0f32, 2.0]), &Tensor::scalar(-1.0f32));
    assert_eq!(w.to_vec::<f32>(), vec![1.0, -1.0, -1.0, 2.0]);
    let w2 = Tensor::from([5.0f64, 6.0]).where_(&Tensor::from([false, true]), &Tensor::zeros([2]));
    assert_eq!(w2.dtype(), DType::F64);
    assert_eq!(w2.to_vec::<f64>(), vec![0.0, 6.0]);
    let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    let m = x.gt_scalar(1.5);
    assert_eq!(x.masked_select(&m).to_vec::<f32>(), vec![2.0, 3.0, 4.0]);
    assert_eq!(
        x.masked_fill(&Tensor::from([true, false]), 0.0)
            .to_vec::<f32>(),
        vec![0.0, 2.0, 0.0, 4.0]
    );
    // masked_select broadcasts the tensor against the mask.
    let b = Tensor::from([1.0f32, 2.0]).masked_select(&c);
    assert_eq!(b.to_vec::<f32>(), vec![1.0, 2.0]);
}

#[test]
fn one_hot_encoding() {
    let y = Tensor::from([0i64, 2, 1]).one_hot(3);
    assert_eq!(y.shape(), &[3, 3]);
    assert_eq!(y.dtype(), DType::I64);
    assert_eq!(y.to_vec::<i64>(), vec![1, 0, 0, 0, 0, 1, 0, 1, 0]);
    assert_eq!(Tensor::from([[1i64], [3]]).one_hot(-1).shape(), &[2, 1, 4]);
}

#[test]
#[should_panic(expected = "one_hot: class values must be smaller than num_classes (3), got 3")]
fn one_hot_out_of_range() {
    Tensor::from([3i64]).one_hot(3);
}

// ----- einsum -------------------------------------------------------------------------

#[test]
fn einsum_forms() {
    let a = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    let b = Tensor::from([[5.0f32, 6.0], [7.0, 8.0]]);
    let mm = a.matmul(&b).to_vec::<f32>();
    assert_eq!(Tensor::einsum("ij,jk->ik", &[&a, &b]).to_vec::<f32>(), mm);
    assert_eq!(Tensor::einsum("ij,jk", &[&a, &b]).to_vec::<f32>(), mm);
    assert_eq!(
        Tensor::einsum("ij->ji", &[&a]).to_vec::<f32>(),
        vec![1.0, 3.0, 2.0, 4.0]
    );
    assert_eq!(
        Tensor::einsum("ii->i", &[&a]).to_vec::<f32>(),
        vec![1.0, 4.0]
    );
    assert_eq!(Tensor::einsum("ii", &[&a]).item(), 5.0);
    assert_eq!(
        Tensor::einsum("bi,bi->b", &[&a, &b]).to_vec::<f32>(),
        vec![17.0, 53.0]
    );
    assert_eq!(
        Tensor::einsum(
            "i,j->ij",
            &[
                &Tensor::from([1.0f32, 2.0]),
                &Tensor::from([3.0f32, 4.0, 5.0])
            ]
        )
        .shape(),
        &[2, 3]
    );
    assert_eq!(
        Tensor::einsum("ij->j", &[&a]).to_vec::<f32>(),
        vec![4.0, 6.0]
    );
    let q = Tensor::randn([2, 3, 4, 5]);
    let k = Tensor::randn([2, 3, 6, 5]);
    let s = Tensor::einsum("bhqd,bhkd->bhqk", &[&q, &k]);
    assert_eq!(s.shape(), &[2, 3, 4, 6]);
    let r = q.matmul(&k.transpose(-1, -2));
    close(&f64s(&s), &f64s(&r), 1e-5);
    let bb = Tensor::einsum(
        "bij,bjk->bik",
        &[&q.select(0, 0), &k.select(0, 0).transpose(1, 2)],
    );
    assert_eq!(bb.shape(), &[3, 4, 6]);
}

#[test]
#[should_panic(
    expected = "einsum: subscript 'j' has size 3 for operand 1 which does not match the size 2"
)]
fn einsum_size_mismatch() {
    Tensor::einsum(
        "ij,jk->ik",
        &[&Tensor::zeros([2, 2]), &Tensor::zeros([3, 2])],
    );
}

#[test]
#[should_panic(expected = "einsum: output subscript 'z' does not appear")]
fn einsum_unknown_output() {
    Tensor::einsum("ij->z", &[&Tensor::zeros([2, 2])]);
}
