//! Finite-difference gradient checks (f64) for every differentiable op:
//! the core's (arithmetic, reductions, views, matmul) and the activation,
//! math, indexing, joining, sorting and einsum ops. Inputs keep clear of
//! kinks (0 for relu/abs, the bounds of clamp, ties for max/sort).
//! `gradgradcheck` covers the backward rules' own graphs (create_graph).

// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in a list of checks.
#![allow(clippy::cloned_ref_to_slice_refs)]

use kiln::prelude::*;
use kiln::testing::{gradcheck, gradgradcheck};

#[path = "common/devices.rs"]
mod devices;
use devices::{here, on};

const EPS: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-4;

/// Uniform values in `[lo, hi)` (f64) at least 0.05 away from every point
/// in `avoid`, requiring grad.
fn input(shape: &[usize], lo: f64, hi: f64, avoid: &[f64], seed: u64) -> Tensor {
    manual_seed(seed);
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        for v in Tensor::rand_opts([n], DType::F64).to_vec::<f64>() {
            let v = lo + (hi - lo) * v;
            if out.len() < n && avoid.iter().all(|a| (v - a).abs() > 0.05) {
                out.push(v);
            }
        }
    }
    Tensor::from_vec(out, shape).requires_grad_(true)
}

/// Standard values in `[-2, 2)` away from 0.
fn x(shape: &[usize]) -> Tensor {
    input(
        shape,
        -2.0,
        2.0,
        &[0.0],
        shape.iter().product::<usize>() as u64 + 7,
    )
}

/// Distinct values (no ties anywhere), for max/min/sort.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    manual_seed(seed);
    let n: usize = shape.iter().product();
    let p = Tensor::randperm(n).to_vec::<i64>();
    let v: Vec<f64> = p
        .iter()
        .map(|&i| i as f64 * 0.25 - n as f64 * 0.1)
        .collect();
    Tensor::from_vec(v, shape).requires_grad_(true)
}

/// The devices every check runs on: the CPU and the test device (the
/// device-generic path a GPU takes).
const DEVICES: [Device; 2] = [Device::Cpu, Device::Test(0)];

fn check(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    for device in DEVICES {
        if let Err(e) = gradcheck(&f, &on(inputs, device), EPS, ATOL, RTOL) {
            panic!("[{device}] {e}");
        }
    }
}

fn check2(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor]) {
    for device in DEVICES {
        if let Err(e) = gradgradcheck(&f, &on(inputs, device), EPS, 1e-5, 1e-3) {
            panic!("[{device}] {e}");
        }
    }
}

// ----- core: arithmetic ---------------------------------------------------

#[test]
fn binary_arithmetic_with_broadcasting() {
    let a = x(&[3, 4]);
    let b = input(&[4], 0.5, 2.0, &[], 11);
    let c = input(&[3, 1], 0.5, 2.0, &[], 12);
    check(|t| t[0].add(&t[1]), &[a.shallow_clone(), b.shallow_clone()]);
    check(|t| t[0].sub(&t[1]), &[a.shallow_clone(), c.shallow_clone()]);
    check(|t| t[0].mul(&t[1]), &[a.shallow_clone(), b.shallow_clone()]);
    check(|t| t[0].div(&t[1]), &[a.shallow_clone(), c.shallow_clone()]);
    check(
        |t| &t[0] * &t[0] + &t[1],
        &[a.shallow_clone(), b.shallow_clone()],
    );
    check2(|t| t[0].mul(&t[1]).div(&t[2]), &[a, b, c]);
}

#[test]
fn maximum_minimum() {
    let a = distinct(&[3, 4], 1);
    let b = input(&[4], -0.9, 0.9, &[], 2)
        .mul_scalar(0.33)
        .detach()
        .requires_grad_(true);
    check(
        |t| t[0].maximum(&t[1]),
        &[a.shallow_clone(), b.shallow_clone()],
    );
    check(|t| t[0].minimum(&t[1]), &[a, b]);
}

#[test]
fn scalar_ops_and_neg() {
    let a = x(&[2, 3]);
    check(|t| t[0].add_scalar(1.5), &[a.shallow_clone()]);
    check(|t| t[0].sub_scalar(1.5), &[a.shallow_clone()]);
    check(|t| t[0].mul_scalar(-2.5), &[a.shallow_clone()]);
    check(|t| t[0].div_scalar(4.0), &[a.shallow_clone()]);
    check(|t| t[0].rsub_scalar(3.0), &[a.shallow_clone()]);
    check(|t| -&t[0], &[a.shallow_clone()]);
    check(|t| 2.0 / &t[0], &[a]);
}

#[test]
fn exp_log_pow_scalar() {
    let a = x(&[2, 3]);
    let p = input(&[2, 3], 0.2, 3.0, &[], 3);
    check(|t| t[0].exp(), &[a.shallow_clone()]);
    check(|t| t[0].log(), &[p.shallow_clone()]);
    check(|t| t[0].pow_scalar(2.0), &[a.shallow_clone()]);
    check(|t| t[0].pow_scalar(1.5), &[p.shallow_clone()]);
    check(|t| t[0].pow_scalar(-0.5), &[p.shallow_clone()]);
    check2(|t| t[0].exp(), &[a]);
    check2(|t| t[0].log().pow_scalar(3.0), &[p]);
}

// ----- core: reductions and views -------------------------------------------

#[test]
fn sum_and_mean() {
    let a = x(&[2, 3, 4]);
    check(|t| t[0].sum(), &[a.shallow_clone()]);
    check(|t| t[0].sum_dim(1, false), &[a.shallow_clone()]);
    check(|t| t[0].sum_dim(-1, true), &[a.shallow_clone()]);
    check(
        |t| t[0].sum_dims(Some(&[0, 2]), false),
        &[a.shallow_clone()],
    );
    check(|t| t[0].mean(), &[a.shallow_clone()]);
    check(|t| t[0].mean_dim(0, true), &[a.shallow_clone()]);
    check(
        |t| t[0].mean_dims(Some(&[1, 2]), false),
        &[a.shallow_clone()],
    );
    check(|t| t[0].sum_to(&[3, 1]), &[a]);
}

#[test]
fn view_ops() {
    let a = x(&[2, 3, 4]);
    check(|t| t[0].reshape(&[6, -1]), &[a.shallow_clone()]);
    check(|t| t[0].view(&[4, 6]), &[a.shallow_clone()]);
    check(|t| t[0].flatten(1, 2), &[a.shallow_clone()]);
    check(|t| t[0].permute(&[2, 0, 1]), &[a.shallow_clone()]);
    check(|t| t[0].transpose(0, 2).contiguous(), &[a.shallow_clone()]);
    check(
        |t| t[0].transpose(0, 2).reshape(&[-1]),
        &[a.shallow_clone()],
    );
    check(|t| t[0].narrow(2, 1, 2), &[a.shallow_clone()]);
    check(|t| t[0].select(1, 2), &[a.shallow_clone()]);
    check(|t| t[0].unsqueeze(1), &[a.shallow_clone()]);
    check(|t| t[0].unsqueeze(1).squeeze(), &[a.shallow_clone()]);
    check(|t| t[0].unsqueeze(-1).squeeze_dim(-1), &[a.shallow_clone()]);
    let b = x(&[3, 1]);
    check(|t| t[0].expand(&[2, 3, 5]), &[b.shallow_clone()]);
    check(|t| t[0].expand_as(&Tensor::zeros([4, 3, 2])), &[b]);
    let m = x(&[3, 4]);
    check(|t| t[0].t(), &[m]);
}

#[test]
fn matmul_forms() {
    let v = x(&[4]);
    let w = input(&[4], -1.0, 1.0, &[], 21);
    let m = x(&[3, 4]);
    let n = input(&[4, 5], -1.0, 1.0, &[], 22);
    let b3 = input(&[2, 3, 4], -1.0, 1.0, &[], 23);
    let b4 = input(&[2, 4, 5], -1.0, 1.0, &[], 24);
    // vector·vector, matrix·vector, vector·matrix, matrix·matrix, and a
    // batch times a broadcast matrix.
    for (a, b) in [(&v, &w), (&m, &v), (&v, &n), (&m, &n), (&b3, &n)] {
        check(
            |t| t[0].matmul(&t[1]),
            &[a.shallow_clone(), b.shallow_clone()],
        );
    }
    check(|t| t[0].mm(&t[1]), &[m.shallow_clone(), n.shallow_clone()]);
    check(
        |t| t[0].bmm(&t[1]),
        &[b3.shallow_clone(), b4.shallow_clone()],
    );
    check(
        |t| t[0].t().matmul(&t[1]),
        &[m.shallow_clone(), input(&[3, 2], -1.0, 1.0, &[], 25)],
    );
    check2(|t| t[0].matmul(&t[1]).sin(), &[m, n]);
}

// ----- elementwise math -------------------------------------------------------

#[test]
fn elementwise_math() {
    let a = x(&[3, 4]);
    let p = input(&[3, 4], 0.2, 3.0, &[], 31);
    check(|t| t[0].sqrt(), &[p.shallow_clone()]);
    check(|t| t[0].abs(), &[a.shallow_clone()]);
    check(|t| t[0].sin(), &[a.shallow_clone()]);
    check(|t| t[0].cos(), &[a.shallow_clone()]);
    check(|t| t[0].reciprocal(), &[a.shallow_clone()]);
    check(|t| t[0].square(), &[a.shallow_clone()]);
    check(|t| t[0].erf(), &[a.shallow_clone()]);
    check(|t| t[0].sign().add(&t[0]), &[a.shallow_clone()]);
    check(|t| t[0].transpose(0, 1).sqrt(), &[p.shallow_clone()]);
    for f in [
        Tensor::sqrt as fn(&Tensor) -> Tensor,
        Tensor::sin,
        Tensor::cos,
        Tensor::reciprocal,
        Tensor::square,
        Tensor::erf,
        Tensor::abs,
    ] {
        check2(|t| f(&t[0]), &[p.shallow_clone()]);
    }
}

#[test]
fn clamp_variants() {
    let a = input(&[4, 5], -2.0, 2.0, &[-0.5, 0.7], 41);
    check(|t| t[0].clamp(Some(-0.5), Some(0.7)), &[a.shallow_clone()]);
    check(|t| t[0].clamp(Some(-0.5), None), &[a.shallow_clone()]);
    check(|t| t[0].clamp(None, Some(0.7)), &[a.shallow_clone()]);
    check(|t| t[0].clamp_min(-0.5), &[a.shallow_clone()]);
    check(|t| t[0].clamp_max(0.7), &[a.shallow_clone()]);
    check2(|t| t[0].clamp(Some(-0.5), Some(0.7)).square(), &[a]);
}

#[test]
fn pow_tensor_exponent() {
    let base = input(&[3, 4], 0.3, 2.0, &[], 51);
    let e = input(&[4], -1.5, 2.5, &[], 52);
    check(
        |t| t[0].pow(&t[1]),
        &[base.shallow_clone(), e.shallow_clone()],
    );
    check(|t| t[0].pow(&t[0]), &[base.shallow_clone()]);
    check2(|t| t[0].pow(&t[1]), &[base, e]);
}

// ----- activations ---------------------------------------------------------------

#[test]
fn activations() {
    let a = x(&[4, 5]);
    check(|t| t[0].relu(), &[a.shallow_clone()]);
    check(|t| t[0].sigmoid(), &[a.shallow_clone()]);
    check(|t| t[0].tanh(), &[a.shallow_clone()]);
    check(|t| t[0].gelu(), &[a.shallow_clone()]);
    check(|t| t[0].gelu_tanh(), &[a.shallow_clone()]);
    check(|t| t[0].leaky_relu(0.01), &[a.shallow_clone()]);
    check(|t| t[0].leaky_relu(0.2), &[a.shallow_clone()]);
    let b = input(&[4, 5], -2.0, 2.0, &[0.3], 61);
    check(|t| t[0].threshold(0.3, -1.0), &[b.shallow_clone()]);
    for f in [
        Tensor::relu as fn(&Tensor) -> Tensor,
        Tensor::sigmoid,
        Tensor::tanh,
        Tensor::gelu,
        Tensor::gelu_tanh,
    ] {
        check2(|t| f(&t[0]).mul(&t[0]), &[a.shallow_clone()]);
    }
    check2(|t| t[0].leaky_relu(0.1).square(), &[a]);
}

#[test]
fn softmax_and_log_softmax_any_dim() {
    let a = x(&[3, 4, 5]);
    for d in [0isize, 1, 2, -1] {
        check(|t| t[0].softmax(d), &[a.shallow_clone()]);
        check(|t| t[0].log_softmax(d), &[a.shallow_clone()]);
    }
    check(|t| t[0].transpose(0, 2).softmax(-1), &[a.shallow_clone()]);
    check2(|t| t[0].softmax(1), &[a.shallow_clone()]);
    check2(|t| t[0].log_softmax(-1), &[a]);
}

// ----- selecting reductions, sort, var/std -----------------------------------------

#[test]
fn max_min_and_sort() {
    let a = distinct(&[3, 4, 5], 71);
    for d in [0isize, 1, -1] {
        for keep in [false, true] {
            check(|t| t[0].max_dim(d, keep).0, &[a.shallow_clone()]);
            check(|t| t[0].min_dim(d, keep).0, &[a.shallow_clone()]);
        }
        check(|t| t[0].sort(d, false).0, &[a.shallow_clone()]);
        check(|t| t[0].sort(d, true).0, &[a.shallow_clone()]);
    }
    check(|t| t[0].max(), &[a.shallow_clone()]);
    check(|t| t[0].min(), &[a.shallow_clone()]);
    check2(|t| t[0].max_dim(1, false).0.square(), &[a.shallow_clone()]);
    check2(|t| t[0].sort(0, true).0.square(), &[a]);
}

#[test]
fn var_and_std() {
    let a = x(&[3, 4]);
    for unbiased in [false, true] {
        check(|t| t[0].var(unbiased), &[a.shallow_clone()]);
        check(|t| t[0].std(unbiased), &[a.shallow_clone()]);
        check(|t| t[0].var_dim(1, unbiased, true), &[a.shallow_clone()]);
        check(|t| t[0].std_dim(0, unbiased, false), &[a.shallow_clone()]);
        check(
            |t| t[0].var_dims(Some(&[0, 1]), unbiased, false),
            &[a.shallow_clone()],
        );
    }
}

// ----- joining and indexing -------------------------------------------------------

#[test]
fn cat_stack_split_chunk() {
    let a = x(&[2, 3]);
    let b = input(&[2, 5], -1.0, 1.0, &[], 81);
    let c = input(&[2, 3], -1.0, 1.0, &[], 82);
    check(
        |t| Tensor::cat(&[&t[0], &t[1]], 1),
        &[a.shallow_clone(), b.shallow_clone()],
    );
    check(
        |t| Tensor::cat(&[&t[0], &t[1], &t[0]], 0),
        &[a.shallow_clone(), c.shallow_clone()],
    );
    check(
        |t| Tensor::stack(&[&t[0], &t[1]], 0),
        &[a.shallow_clone(), c.shallow_clone()],
    );
    check(
        |t| Tensor::stack(&[&t[0], &t[1]], -1),
        &[a.shallow_clone(), c.shallow_clone()],
    );
    check(
        |t| {
            let p = t[0].split(&[1, 4], 1);
            Tensor::cat(&[&p[0].mul_scalar(3.0), &p[1].sin()], 1)
        },
        &[b.shallow_clone()],
    );
    check(
        |t| {
            let p = t[0].split_size(2, 1);
            Tensor::cat(&[&p[0].mul_scalar(3.0), &p[1], &p[2].cos()], 1)
        },
        &[b.shallow_clone()],
    );
    check(
        |t| {
            let p = t[0].chunk(2, 1);
            Tensor::cat(&[&p[1], &p[0].square()], 1)
        },
        &[b.shallow_clone()],
    );
    check(|t| t[0].repeat(&[2, 1, 3]), &[a.shallow_clone()]);
    check(|t| t[0].flip(&[0, 1]), &[a.shallow_clone()]);
    check2(|t| Tensor::cat(&[&t[0], &t[1]], 1).square(), &[a, b]);
}

#[test]
fn index_ops() {
    let a = x(&[4, 3]);
    let idx = Tensor::from([2i64, 0, 2, 3]);
    check(
        |t| t[0].index_select(0, &here(&idx, &t[0])),
        &[a.shallow_clone()],
    );
    check(
        |t| t[0].index_select(1, &here(&Tensor::from([1i64, 1]), &t[0])),
        &[a.shallow_clone()],
    );
    let src = input(&[4, 3], -1.0, 1.0, &[], 91);
    check(
        |t| t[0].index_add(0, &here(&idx, &t[0]), &t[1]),
        &[a.shallow_clone(), src.shallow_clone()],
    );
    let gi = Tensor::from([[0i64, 2], [1, 1], [2, 0], [0, 0]]);
    check(|t| t[0].gather(1, &here(&gi, &t[0])), &[a.shallow_clone()]);
    let small = input(&[4, 2], -1.0, 1.0, &[], 92);
    check(
        |t| t[0].scatter_add(1, &here(&gi, &t[0]), &t[1]),
        &[a.shallow_clone(), small.shallow_clone()],
    );
    // src larger than index: only the indexed part of src gets gradient.
    let big = input(&[4, 3], -1.0, 1.0, &[], 93);
    check(
        |t| t[0].scatter_add(1, &here(&gi, &t[0]), &t[1]),
        &[a.shallow_clone(), big.shallow_clone()],
    );
    check2(
        |t| t[0].gather(1, &here(&gi, &t[0])).square(),
        &[a.shallow_clone()],
    );
    check2(|t| t[0].index_select(0, &here(&idx, &t[0])).square(), &[a]);
}

#[test]
fn where_and_masks() {
    let a = x(&[3, 4]);
    let b = input(&[4], -1.0, 1.0, &[], 101);
    let cond = a.detach().gt_scalar(0.0);
    check(
        |t| Tensor::where_cond(&here(&cond, &t[0]), &t[0], &t[1]),
        &[a.shallow_clone(), b.shallow_clone()],
    );
    check(
        |t| t[1].where_(&here(&cond, &t[0]), &t[0]),
        &[a.shallow_clone(), b.shallow_clone()],
    );
    check(
        |t| t[0].masked_fill(&here(&cond, &t[0]), 2.5),
        &[a.shallow_clone()],
    );
    check(
        |t| t[0].masked_select(&here(&cond, &t[0])),
        &[a.shallow_clone()],
    );
    let row = Tensor::from([true, false, true, true]);
    check(
        |t| t[0].masked_select(&here(&row, &t[0])),
        &[b.shallow_clone()],
    );
    check2(
        |t| Tensor::where_cond(&here(&cond, &t[0]), &t[0], &t[1]).square(),
        &[a.shallow_clone(), b],
    );
    check2(|t| t[0].masked_select(&here(&cond, &t[0])).square(), &[a]);
}

#[test]
fn einsum_contractions() {
    let bij = x(&[2, 3, 4]);
    let bjk = input(&[2, 4, 5], -1.0, 1.0, &[], 111);
    check(
        |t| Tensor::einsum("bij,bjk->bik", &[&t[0], &t[1]]),
        &[bij.shallow_clone(), bjk.shallow_clone()],
    );
    let ij = x(&[3, 4]);
    let jk = input(&[4, 2], -1.0, 1.0, &[], 112);
    check(
        |t| Tensor::einsum("ij,jk->ik", &[&t[0], &t[1]]),
        &[ij.shallow_clone(), jk.shallow_clone()],
    );
    check(
        |t| Tensor::einsum("ij,jk", &[&t[0], &t[1]]),
        &[ij.shallow_clone(), jk.shallow_clone()],
    );
    let bi = input(&[3, 4], -1.0, 1.0, &[], 113);
    check(
        |t| Tensor::einsum("bi,bi->b", &[&t[0], &t[1]]),
        &[ij.shallow_clone(), bi.shallow_clone()],
    );
    check(
        |t| Tensor::einsum("ij->ji", &[&t[0]]),
        &[ij.shallow_clone()],
    );
    check(|t| Tensor::einsum("ij->", &[&t[0]]), &[ij.shallow_clone()]);
    check(|t| Tensor::einsum("ij->j", &[&t[0]]), &[ij.shallow_clone()]);
    let sq = x(&[3, 3]);
    check(|t| Tensor::einsum("ii->i", &[&t[0]]), &[sq.shallow_clone()]);
    check(|t| Tensor::einsum("ii", &[&t[0]]), &[sq]);
    let q = x(&[2, 2, 3, 4]);
    let k = input(&[2, 2, 5, 4], -1.0, 1.0, &[], 114);
    check(
        |t| Tensor::einsum("bhqd,bhkd->bhqk", &[&t[0], &t[1]]),
        &[q, k],
    );
    // Outer product and a three-operand chain.
    check(
        |t| Tensor::einsum("i,j->ij", &[&t[0], &t[1]]),
        &[x(&[3]), input(&[2], -1.0, 1.0, &[], 115)],
    );
    let c = input(&[2, 3], -1.0, 1.0, &[], 116);
    check(
        |t| Tensor::einsum("ij,jk,kl->il", &[&t[0], &t[1], &t[2]]),
        &[ij, jk, c],
    );
}

#[test]
fn dtype_cast_and_non_contiguous_inputs() {
    let a = x(&[3, 4]);
    check(
        |t| t[0].to_dtype(DType::F64).mul_scalar(2.0),
        &[a.shallow_clone()],
    );
    check(
        |t| t[0].t().relu().sigmoid().softmax(0),
        &[a.shallow_clone()],
    );
    check(
        |t| t[0].narrow(1, 1, 2).log_softmax(1),
        &[a.shallow_clone()],
    );
    check(|t| t[0].expand(&[2, 3, 4]).gelu(), &[a]);
}

#[test]
fn gradcheck_reports_a_wrong_gradient() {
    // `detach` in the middle hides part of the dependence: the check must fail.
    let a = x(&[3]);
    let r = gradcheck(|t| t[0].mul(&t[0].detach()), &[a], EPS, ATOL, RTOL);
    assert!(r.is_err());
}

#[test]
fn python_slice_indexing() {
    use kiln::s;
    let a = x(&[3, 4]);
    let v = input(&[2], -1.0, 1.0, &[], 131);
    let w = input(&[3, 2], -1.0, 1.0, &[], 137);
    let rows = Tensor::from([2i64, 0, -1]);
    let cols = Tensor::from([3i64, 0]);
    let cond = a.detach().gt_scalar(0.0);
    check(|t| t[0].i(s![.., 1..;2]), &[a.shallow_clone()]);
    check(|t| t[0].i(s![-1, None, ..3]), &[a.shallow_clone()]);
    check(|t| t[0].i((&here(&rows, &t[0]), 1..)), &[a.shallow_clone()]);
    check(|t| t[0].i(&here(&cond, &t[0])), &[a.shallow_clone()]);
    check(
        |t| t[0].i_put(s![1.., ..;3], &t[1]),
        &[a.shallow_clone(), v.shallow_clone()],
    );
    check(
        |t| t[0].i_put((.., &here(&cols, &t[0])), &t[1]),
        &[a.shallow_clone(), w],
    );
    check(
        |t| t[0].i_put(&here(&cond, &t[0]), 0.5),
        &[a.shallow_clone()],
    );
    check2(|t| t[0].i(s![..;2, 1..]).square(), &[a.shallow_clone()]);
    check2(|t| t[0].i_put(s![1.., ..;3], &t[1]).square(), &[a, v]);
}
