//! Finite-difference gradient checks (float64) for `nn::functional` and
//! `loss`, plus their PyTorch-like argument checks.

use kiln::loss::{self, Reduction};
use kiln::nn::functional as F;
use kiln::prelude::*;

#[path = "common/devices.rs"]
mod devices;
use devices::{here, on};

/// Checks every float input that requires grad against central
/// differences with the shared `testing::gradcheck`.
/// Checks on the CPU, then on the test device (the device-generic path).
fn gradcheck(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    for device in [Device::Cpu, Device::Test(0)] {
        kiln::testing::gradcheck(&f, &on(inputs, device), 1e-6, 1e-5, 1e-4)
            .unwrap_or_else(|e| panic!("[{device}] {e}"));
    }
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn_opts(shape, DType::F64).requires_grad_(true)
}

fn leaf(t: Tensor) -> Tensor {
    t.to_dtype(DType::F64).requires_grad_(true)
}

// ----- linear -------------------------------------------------------------

#[test]
fn linear_2d_3d_and_no_bias() {
    manual_seed(1);
    let (x, w, b) = (randn(&[4, 3]), randn(&[5, 3]), randn(&[5]));
    gradcheck(|t| F::linear(&t[0], &t[1], Some(&t[2])), &[x, w, b]);
    let (x, w) = (randn(&[2, 3, 4]), randn(&[2, 4]));
    gradcheck(|t| F::linear(&t[0], &t[1], None), &[x, w]);
}

#[test]
fn linear_strided_operands() {
    manual_seed(2);
    // x is a transposed view and the weight a transposed view: no copies.
    let (x, w, b) = (randn(&[3, 4]), randn(&[3, 5]), randn(&[5]));
    gradcheck(
        |t| F::linear(&t[0].t(), &t[1].t(), Some(&t[2])),
        &[x.shallow_clone(), w.shallow_clone(), b.shallow_clone()],
    );
    let want = x.t().matmul(&w).add(&b);
    let got = F::linear(&x.t(), &w.t(), Some(&b));
    assert!(
        got.sub(&want)
            .to_vec::<f64>()
            .iter()
            .all(|d| d.abs() < 1e-12)
    );
}

#[test]
fn linear_vector_and_empty_batch() {
    manual_seed(19);
    let (x, w, b) = (randn(&[3]), randn(&[2, 3]), randn(&[2]));
    assert_eq!(F::linear(&x, &w, Some(&b)).shape(), &[2]);
    gradcheck(
        |t| F::linear(&t[0], &t[1], Some(&t[2])),
        &[x, w, b.shallow_clone()],
    );
    let empty = Tensor::zeros_opts([0, 3], DType::F64);
    let y = F::linear(&empty, &randn(&[2, 3]), Some(&b));
    assert_eq!(y.shape(), &[0, 2]);
}

#[test]
#[should_panic(expected = "linear: mat1 and mat2 shapes cannot be multiplied")]
fn linear_rejects_mismatched_features() {
    F::linear(&Tensor::ones([2, 3]), &Tensor::ones([4, 5]), None);
}

// ----- conv2d ---------------------------------------------------------------

fn check_conv(
    x: &[usize],
    w: &[usize],
    bias: bool,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
) {
    let mut inputs = vec![randn(x), randn(w)];
    if bias {
        inputs.push(randn(&[w[0]]));
    }
    gradcheck(
        |t| F::conv2d(&t[0], &t[1], t.get(2), stride, padding, dilation, groups),
        &inputs,
    );
}

#[test]
fn conv2d_plain_and_padded() {
    manual_seed(3);
    check_conv(
        &[2, 2, 5, 5],
        &[3, 2, 3, 3],
        true,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
    check_conv(
        &[1, 2, 4, 4],
        &[2, 2, 3, 3],
        true,
        [1, 1],
        [1, 1],
        [1, 1],
        1,
    );
}

#[test]
fn conv2d_stride_dilation_rect() {
    manual_seed(4);
    check_conv(
        &[2, 2, 6, 5],
        &[3, 2, 3, 2],
        true,
        [2, 1],
        [1, 0],
        [1, 1],
        1,
    );
    check_conv(
        &[1, 1, 7, 7],
        &[2, 1, 3, 3],
        false,
        [1, 2],
        [2, 2],
        [2, 2],
        1,
    );
}

#[test]
fn conv2d_groups_and_unbatched() {
    manual_seed(5);
    check_conv(
        &[2, 4, 5, 5],
        &[6, 2, 3, 3],
        true,
        [1, 1],
        [1, 1],
        [1, 1],
        2,
    );
    check_conv(
        &[1, 3, 4, 4],
        &[3, 1, 2, 2],
        false,
        [1, 1],
        [0, 0],
        [1, 1],
        3,
    );
    let (x, w) = (randn(&[2, 4, 4]), randn(&[3, 2, 3, 3]));
    let y = F::conv2d(&x, &w, None, [1, 1], [1, 1], [1, 1], 1);
    assert_eq!(y.shape(), &[3, 4, 4]);
    gradcheck(
        |t| F::conv2d(&t[0], &t[1], None, [1, 1], [1, 1], [1, 1], 1),
        &[x, w],
    );
}

#[test]
fn conv2d_f32_matches_f64() {
    manual_seed(6);
    let x = Tensor::randn([2, 3, 6, 6]);
    let w = Tensor::randn([4, 3, 3, 3]);
    let b = Tensor::randn([4]);
    let y32 = F::conv2d(&x, &w, Some(&b), [2, 2], [1, 1], [1, 1], 1);
    let y64 = F::conv2d(
        &x.to_dtype(DType::F64),
        &w.to_dtype(DType::F64),
        Some(&b.to_dtype(DType::F64)),
        [2, 2],
        [1, 1],
        [1, 1],
        1,
    );
    for (a, b) in y32.to_vec::<f64>().iter().zip(y64.to_vec::<f64>()) {
        assert!((a - b).abs() < 1e-4);
    }
    let h = F::conv2d(
        &x.to_dtype(DType::BF16),
        &w.to_dtype(DType::BF16),
        None,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
    assert_eq!(h.dtype(), DType::BF16);
    assert_eq!(h.shape(), &[2, 4, 4, 4]);
}

#[test]
#[should_panic(expected = "expected input [2, 3, 5, 5] to have 4 channels")]
fn conv2d_rejects_channel_mismatch() {
    F::conv2d(
        &Tensor::ones([2, 3, 5, 5]),
        &Tensor::ones([2, 4, 3, 3]),
        None,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
}

#[test]
#[should_panic(expected = "must both be divisible by groups")]
fn conv2d_rejects_bad_groups() {
    F::conv2d(
        &Tensor::ones([1, 3, 5, 5]),
        &Tensor::ones([2, 1, 3, 3]),
        None,
        [1, 1],
        [0, 0],
        [1, 1],
        2,
    );
}

#[test]
#[should_panic(expected = "output size is too small")]
fn conv2d_rejects_oversized_kernel() {
    F::conv2d(
        &Tensor::ones([1, 1, 2, 2]),
        &Tensor::ones([1, 1, 3, 3]),
        None,
        [1, 1],
        [0, 0],
        [1, 1],
        1,
    );
}

// ----- pooling ----------------------------------------------------------------

#[test]
fn max_pool2d_variants() {
    manual_seed(7);
    let x = randn(&[2, 2, 6, 6]);
    gradcheck(
        |t| F::max_pool2d(&t[0], [2, 2], [2, 2], [0, 0]),
        std::slice::from_ref(&x),
    );
    gradcheck(
        |t| F::max_pool2d(&t[0], [3, 3], [2, 2], [1, 1]),
        std::slice::from_ref(&x),
    );
    gradcheck(
        |t| F::max_pool2d_with(&t[0], [2, 3], [2, 1], [1, 1], [2, 1], true),
        &[x],
    );
    let y = F::max_pool2d(&randn(&[3, 5, 5]), [2, 2], [2, 2], [0, 0]);
    assert_eq!(y.shape(), &[3, 2, 2]);
}

#[test]
fn avg_pool2d_variants() {
    manual_seed(8);
    let x = randn(&[2, 2, 5, 5]);
    gradcheck(
        |t| F::avg_pool2d(&t[0], [2, 2], [2, 2], [0, 0]),
        std::slice::from_ref(&x),
    );
    gradcheck(
        |t| F::avg_pool2d(&t[0], [3, 3], [2, 2], [1, 1]),
        std::slice::from_ref(&x),
    );
    gradcheck(
        |t| F::avg_pool2d_with(&t[0], [3, 2], [2, 2], [1, 1], true, false),
        &[x],
    );
    let ones = Tensor::ones([1, 1, 2, 2]);
    let inc = F::avg_pool2d(&ones, [2, 2], [2, 2], [1, 1]).to_vec::<f32>();
    let exc = F::avg_pool2d_with(&ones, [2, 2], [2, 2], [1, 1], false, false).to_vec::<f32>();
    assert_eq!(inc, vec![0.25; 4]);
    assert_eq!(exc, vec![1.0; 4]);
}

#[test]
fn adaptive_avg_pool2d_uneven() {
    manual_seed(9);
    gradcheck(
        |t| F::adaptive_avg_pool2d(&t[0], [3, 2]),
        &[randn(&[2, 3, 7, 5])],
    );
    gradcheck(
        |t| F::adaptive_avg_pool2d(&t[0], [1, 1]),
        &[randn(&[2, 4, 4])],
    );
}

#[test]
#[should_panic(expected = "pad should be at most half of effective kernel size")]
fn max_pool2d_rejects_large_padding() {
    F::max_pool2d(&Tensor::ones([1, 1, 4, 4]), [2, 2], [2, 2], [2, 2]);
}

#[test]
#[should_panic(expected = "expected a 3-D (unbatched) or 4-D (batched) input")]
fn pool_rejects_2d_input() {
    F::avg_pool2d(&Tensor::ones([4, 4]), [2, 2], [2, 2], [0, 0]);
}

// ----- batch_norm ---------------------------------------------------------------

#[test]
fn batch_norm_train_shapes() {
    manual_seed(10);
    for shape in [vec![6, 3], vec![4, 3, 5], vec![2, 3, 3, 4]] {
        let (x, w, b) = (randn(&shape), randn(&[3]), randn(&[3]));
        gradcheck(
            |t| F::batch_norm(&t[0], None, None, Some(&t[1]), Some(&t[2]), true, 0.1, 1e-5),
            &[x.shallow_clone(), w, b],
        );
        gradcheck(
            |t| F::batch_norm(&t[0], None, None, None, None, true, 0.1, 1e-5),
            &[x],
        );
    }
}

#[test]
fn batch_norm_eval() {
    manual_seed(11);
    let rm = Tensor::randn_opts([3], DType::F64);
    let rv = Tensor::rand_opts([3], DType::F64).add_scalar(0.5);
    let (x, w, b) = (randn(&[2, 3, 2, 2]), randn(&[3]), randn(&[3]));
    gradcheck(
        |t| {
            F::batch_norm(
                &t[0],
                Some(&here(&rm, &t[0])),
                Some(&here(&rv, &t[0])),
                Some(&t[1]),
                Some(&t[2]),
                false,
                0.1,
                1e-5,
            )
        },
        &[x, w, b],
    );
}

#[test]
fn batch_norm_updates_running_stats_like_pytorch() {
    let x = Tensor::from([[1.0f64, 10.0], [3.0, 20.0], [8.0, 60.0]]);
    let rm = Tensor::zeros_opts([2], DType::F64);
    let rv = Tensor::ones_opts([2], DType::F64);
    let y = F::batch_norm(&x, Some(&rm), Some(&rv), None, None, true, 0.1, 1e-5);
    // Batch means 4 and 30; unbiased variances 13 and 700.
    let (m, v) = (rm.to_vec::<f64>(), rv.to_vec::<f64>());
    assert!((m[0] - 0.4).abs() < 1e-12 && (m[1] - 3.0).abs() < 1e-12);
    assert!((v[0] - (0.9 + 1.3)).abs() < 1e-12 && (v[1] - (0.9 + 70.0)).abs() < 1e-12);
    // Normalised with the biased variance (26/3).
    let y0 = y.to_vec::<f64>()[0];
    assert!((y0 - (1.0 - 4.0) / (26.0f64 / 3.0 + 1e-5).sqrt()).abs() < 1e-12);
    // Eval uses the running statistics.
    let e = F::batch_norm(&x, Some(&rm), Some(&rv), None, None, false, 0.1, 0.0);
    assert!((e.to_vec::<f64>()[0] - (1.0 - 0.4) / 2.2f64.sqrt()).abs() < 1e-12);
}

#[test]
#[should_panic(expected = "expected more than 1 value per channel when training")]
fn batch_norm_rejects_single_value_training() {
    F::batch_norm(
        &Tensor::ones([1, 3]),
        None,
        None,
        None,
        None,
        true,
        0.1,
        1e-5,
    );
}

#[test]
#[should_panic(expected = "expected weight of shape [3]")]
fn batch_norm_rejects_bad_weight() {
    F::batch_norm(
        &Tensor::ones([2, 3]),
        None,
        None,
        Some(&Tensor::ones([4])),
        None,
        true,
        0.1,
        1e-5,
    );
}

// ----- layer_norm -------------------------------------------------------------------

#[test]
fn layer_norm_grads() {
    manual_seed(12);
    let (x, w, b) = (randn(&[3, 2, 4]), randn(&[2, 4]), randn(&[2, 4]));
    gradcheck(
        |t| F::layer_norm(&t[0], &[2, 4], Some(&t[1]), Some(&t[2]), 1e-5),
        &[x.shallow_clone(), w, b],
    );
    gradcheck(|t| F::layer_norm(&t[0], &[4], None, None, 1e-5), &[x]);
}

#[test]
#[should_panic(expected = "expected input with shape [*, 5]")]
fn layer_norm_rejects_shape() {
    F::layer_norm(&Tensor::ones([2, 4]), &[5], None, None, 1e-5);
}

// ----- embedding and dropout ------------------------------------------------------

#[test]
fn embedding_grads_sum_repeated_rows() {
    manual_seed(13);
    let idx = Tensor::from([[0i64, 2, 2], [3, 0, 1]]);
    let w = randn(&[4, 3]);
    gradcheck(
        |t| F::embedding(&here(&idx, &t[0]), &t[0]),
        std::slice::from_ref(&w),
    );
    let out = F::embedding(&idx, &w);
    assert_eq!(out.shape(), &[2, 3, 3]);
    w.set_grad(None);
    out.sum().backward();
    assert_eq!(
        w.grad().unwrap().to_vec::<f64>(),
        vec![2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    );
}

#[test]
#[should_panic(expected = "embedding: index 4 is out of range")]
fn embedding_rejects_out_of_range() {
    F::embedding(&Tensor::from([4i64]), &Tensor::ones([4, 2]));
}

#[test]
fn dropout_scales_kept_and_masks_grad() {
    manual_seed(14);
    let x = Tensor::ones_opts([10_000], DType::F64).requires_grad_(true);
    let y = F::dropout(&x, 0.3, true);
    let v = y.to_vec::<f64>();
    let kept = v.iter().filter(|&&a| a != 0.0).count() as f64 / v.len() as f64;
    assert!((kept - 0.7).abs() < 0.03, "kept fraction {kept}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.7).abs() < 1e-12));
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), v);
    assert_eq!(
        F::dropout(&x, 0.3, false).to_vec::<f64>(),
        vec![1.0; 10_000]
    );
    assert!(
        F::dropout(&x, 1.0, true)
            .to_vec::<f64>()
            .iter()
            .all(|&a| a == 0.0)
    );
}

// ----- losses -------------------------------------------------------------------------

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::None];

#[test]
fn regression_losses() {
    manual_seed(15);
    for r in REDUCTIONS {
        let (x, t) = (randn(&[3, 4]), randn(&[3, 4]));
        gradcheck(
            |a| loss::mse_loss(&a[0], &a[1], r),
            &[x.shallow_clone(), t.shallow_clone()],
        );
        gradcheck(
            |a| loss::l1_loss(&a[0], &a[1], r),
            &[x.shallow_clone(), t.shallow_clone()],
        );
        gradcheck(
            |a| loss::smooth_l1_loss(&a[0], &a[1], r, 0.7),
            &[x.shallow_clone(), t.shallow_clone()],
        );
    }
    // Broadcast target, as PyTorch allows.
    gradcheck(
        |a| loss::mse_loss(&a[0], &a[1], Reduction::Mean),
        &[randn(&[3, 4]), randn(&[4])],
    );
}

#[test]
fn binary_losses() {
    manual_seed(16);
    for r in REDUCTIONS {
        let (x, t) = (randn(&[5, 2]), leaf(Tensor::rand([5, 2])));
        gradcheck(
            |a| loss::binary_cross_entropy_with_logits(&a[0], &a[1], r),
            &[x, t.shallow_clone()],
        );
        let p = leaf(Tensor::rand([5, 2]).mul_scalar(0.8).add_scalar(0.1));
        gradcheck(|a| loss::binary_cross_entropy(&a[0], &a[1], r), &[p, t]);
    }
}

#[test]
fn cross_entropy_variants() {
    manual_seed(17);
    let target = Tensor::from([1i64, 0, 3, 3, 2]);
    for r in REDUCTIONS {
        for eps in [0.0, 0.2] {
            gradcheck(
                |a| loss::cross_entropy(&a[0], &here(&target, &a[0]), r, eps),
                &[randn(&[5, 4])],
            );
        }
    }
    // Spatial input [N, C, d], class weights and an ignored target.
    let t2 = Tensor::from([[0i64, 2, -100], [1, 1, 0]]);
    let w = Tensor::from([0.5f64, 2.0, 1.0]);
    for r in REDUCTIONS {
        gradcheck(
            |a| {
                let (t2, w) = (here(&t2, &a[0]), here(&w, &a[0]));
                loss::cross_entropy_with(&a[0], &t2, r, 0.1, Some(&w), Some(-100))
            },
            &[randn(&[2, 3, 3])],
        );
    }
    // Class-probability targets.
    let probs = leaf(Tensor::rand([4, 3]));
    gradcheck(
        |a| loss::cross_entropy(&a[0], &a[1], Reduction::Mean, 0.1),
        &[randn(&[4, 3]), probs],
    );
}

#[test]
fn cross_entropy_matches_log_softmax_formula() {
    let x = Tensor::from([[1.0f64, 2.0, 0.5], [0.0, -1.0, 3.0]]);
    let t = Tensor::from([2i64, 0]);
    let eps = 0.1;
    let l = loss::cross_entropy(&x, &t, Reduction::Mean, eps).item();
    let rows = x.to_vec2::<f64>();
    let mut want = 0.0;
    for (row, y) in rows.iter().zip([2usize, 0]) {
        let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
        let nll = lse - row[y];
        let smooth = row.iter().map(|v| lse - v).sum::<f64>() / 3.0;
        want += (1.0 - eps) * nll + eps * smooth;
    }
    assert!((l - want / 2.0).abs() < 1e-12);
}

#[test]
fn nll_loss_variants() {
    manual_seed(18);
    let target = Tensor::from([1i64, 0, 2, -100]);
    for r in REDUCTIONS {
        gradcheck(
            |a| loss::nll_loss(&a[0], &here(&target, &a[0]), r),
            &[randn(&[4, 3])],
        );
    }
    let w = Tensor::from([0.5f64, 2.0, 1.0]);
    gradcheck(
        |a| {
            let (t, w) = (here(&target, &a[0]), here(&w, &a[0]));
            loss::nll_loss_with(&a[0], &t, Reduction::Mean, Some(&w), Some(-100))
        },
        &[randn(&[4, 3])],
    );
}

#[test]
#[should_panic(expected = "cross_entropy: target 5 is out of bounds for 4 classes")]
fn cross_entropy_rejects_bad_class() {
    loss::cross_entropy(
        &Tensor::zeros([2, 4]),
        &Tensor::from([0i64, 5]),
        Reduction::Mean,
        0.0,
    );
}

#[test]
#[should_panic(expected = "expected target of shape [2]")]
fn cross_entropy_rejects_bad_target_shape() {
    loss::cross_entropy(
        &Tensor::zeros([2, 4]),
        &Tensor::from([0i64, 1, 2]),
        Reduction::Mean,
        0.0,
    );
}
