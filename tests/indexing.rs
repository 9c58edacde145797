//! Python-slice indexing (`Tensor::i`, `i_set`, `i_put`) against PyTorch:
//! tests/data/indexing.json, written by tests/data/gen/indexing.py with
//! PyTorch 2.15. Each reading case checks the values, the shape, whether
//! the result is a view, and the gradient of `(x[idx] * w).sum()`; each
//! assignment case the whole tensor after `x[idx] = value`; rejected
//! cases PyTorch's error text. Every case also runs on the test device.

use kiln::{Device, Slice, Tensor, TensorIndex, s};
use serde_json::Value;
use std::panic::{AssertUnwindSafe, catch_unwind};

fn goldens() -> Value {
    serde_json::from_str(include_str!("data/indexing.json")).expect("indexing.json parses")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn arange(shape: &[usize], device: Device) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|i| i as f64).collect::<Vec<_>>(), shape).to(&device)
}

/// The tensors of a case's index items (kept alive while the index borrows them).
fn index_tensors(items: &Value, device: Device) -> Vec<Option<Tensor>> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|it| {
            let shape = || usizes(&it["shape"]);
            if let Some(v) = it.get("index") {
                let vals: Vec<i64> = match v.as_array() {
                    Some(a) => flatten(a).iter().map(|x| x.as_i64().unwrap()).collect(),
                    None => vec![v.as_i64().unwrap()],
                };
                Some(Tensor::from_vec(vals, shape()).to(&device))
            } else {
                it.get("mask").map(|m| {
                    let vals: Vec<bool> = m
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_bool().unwrap())
                        .collect();
                    Tensor::from_vec(vals, shape()).to(&device)
                })
            }
        })
        .collect()
}

fn flatten(a: &[Value]) -> Vec<&Value> {
    a.iter()
        .flat_map(|v| match v.as_array() {
            Some(inner) => flatten(inner),
            None => vec![v],
        })
        .collect()
}

fn build<'a>(items: &Value, tensors: &'a [Option<Tensor>]) -> Vec<TensorIndex<'a>> {
    items
        .as_array()
        .unwrap()
        .iter()
        .zip(tensors)
        .map(|(it, t)| {
            if let Some(t) = t {
                return TensorIndex::Tensor(t);
            }
            match it.as_str() {
                Some("none") => return TensorIndex::NewAxis,
                Some("ellipsis") => return TensorIndex::Ellipsis,
                _ => {}
            }
            if let Some(i) = it.get("int") {
                return TensorIndex::Select(i.as_i64().unwrap());
            }
            let s = it["slice"].as_array().unwrap();
            TensorIndex::Slice(Slice::new(
                s[0].as_i64(),
                s[1].as_i64(),
                s[2].as_i64().unwrap_or(1),
            ))
        })
        .collect()
}

fn panic_text(f: impl FnOnce()) -> Option<String> {
    let err = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

const DEVICES: [Device; 2] = [Device::Cpu, Device::Test(0)];

#[test]
fn reading_matches_pytorch() {
    let g = goldens();
    assert!(
        g["read"].as_array().unwrap().len() >= 50,
        "the table is there"
    );
    for case in g["read"].as_array().unwrap() {
        for device in DEVICES {
            let shape = usizes(&case["shape"]);
            let what = format!("x{:?}[{}] on {device}", shape, case["index"]);
            let tensors = index_tensors(&case["index"], device);
            let x = arange(&shape, device).requires_grad_(true);
            if let Some(want) = case["error"].as_str() {
                let got = panic_text(|| {
                    x.i(build(&case["index"], &tensors));
                })
                .unwrap_or_else(|| panic!("{what}: expected PyTorch's error {want:?}"));
                assert!(got.contains(want), "{what}: {got:?} lacks {want:?}");
                continue;
            }
            let y = x.i(build(&case["index"], &tensors));
            assert_eq!(y.shape(), usizes(&case["out_shape"]), "{what}: shape");
            assert_eq!(y.to_vec::<f64>(), floats(&case["out"]), "{what}: values");
            assert_eq!(
                y.shares_storage_with(&x),
                case["view"].as_bool().unwrap(),
                "{what}: view"
            );
            let n = y.numel();
            let w = Tensor::from_vec((1..=n).map(|i| i as f64).collect::<Vec<_>>(), y.shape())
                .to(&device);
            (&y * &w).sum().backward();
            assert_eq!(
                x.grad().unwrap().to_vec::<f64>(),
                floats(&case["grad"]),
                "{what}: grad"
            );
        }
    }
}

#[test]
fn assignment_matches_pytorch() {
    let g = goldens();
    assert!(
        g["set"].as_array().unwrap().len() >= 15,
        "the table is there"
    );
    for case in g["set"].as_array().unwrap() {
        for device in DEVICES {
            let shape = usizes(&case["shape"]);
            let what = format!(
                "x{:?}[{}] = {} on {device}",
                shape, case["index"], case["value"]
            );
            let tensors = index_tensors(&case["index"], device);
            let x = arange(&shape, device);
            let v = &case["value"];
            let value = v
                .get("tensor")
                .map(|t| Tensor::from_vec(floats(t), usizes(&v["shape"])).to(&device));
            let set = |x: &Tensor| match (&value, v.get("scalar")) {
                (Some(t), _) => x.i_set(build(&case["index"], &tensors), t),
                (None, Some(s)) => x.i_set(build(&case["index"], &tensors), s.as_f64().unwrap()),
                _ => unreachable!("a value is a tensor or a scalar"),
            };
            if let Some(want) = case["error"].as_str() {
                let got = panic_text(|| set(&x))
                    .unwrap_or_else(|| panic!("{what}: expected PyTorch's error {want:?}"));
                assert!(got.contains(want), "{what}: {got:?} lacks {want:?}");
                continue;
            }
            // Written through a view: another handle on the storage sees it.
            let alias = x.detach();
            set(&x);
            assert_eq!(alias.to_vec::<f64>(), floats(&case["result"]), "{what}");
            // The out-of-place form gives the same tensor and leaves x alone.
            let fresh = arange(&shape, device);
            let put = match (&value, v.get("scalar")) {
                (Some(t), _) => fresh.i_put(build(&case["index"], &tensors), t),
                (None, Some(s)) => {
                    fresh.i_put(build(&case["index"], &tensors), s.as_f64().unwrap())
                }
                _ => unreachable!(),
            };
            assert_eq!(
                put.to_vec::<f64>(),
                floats(&case["result"]),
                "{what}: i_put"
            );
            assert_eq!(
                fresh.to_vec::<f64>(),
                arange(&shape, device).to_vec::<f64>()
            );
        }
    }
}

/// The macro and tuple forms build the items the table spells out.
#[test]
fn macro_and_tuple_syntax() {
    let x = Tensor::arange(0.0, 60.0, 1.0).reshape(&[3, 4, 5]);
    let same = |a: &Tensor, b: &Tensor| {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    };
    // x[1:, ::2, -1]
    let want = x.i(vec![
        TensorIndex::Slice(Slice::new(Some(1), None, 1)),
        TensorIndex::Slice(Slice::new(None, None, 2)),
        TensorIndex::Select(-1),
    ]);
    same(&x.i(s![1.., ..;2, -1]), &want);
    same(&x.i((1.., Slice::new(None, None, 2), -1)), &want);
    // x[..., None, 1:-1:2] and x[0, ..=2] (inclusive: 0..3), x[:, -2:]
    same(
        &x.i(s![..., None, 1..-1;2]),
        &x.i(vec![
            TensorIndex::Ellipsis,
            TensorIndex::NewAxis,
            TensorIndex::Slice(Slice::new(Some(1), Some(-1), 2)),
        ]),
    );
    same(&x.i(s![0, ..=2]), &x.i((0, 0..3)));
    same(&x.i(s![.., -2..]), &x.i((.., 2..4)));
    same(&x.i(s![.., ..=-1]), &x);
    same(&x.i(2), &x.i(s![-1]));
    same(&x.i(..), &x);
    let n = 1usize;
    same(&x.i((n, n..n + 2)), &x.i(s![1, 1..3]));
    let idx = Tensor::from([2i64, 0]);
    same(&x.i(s![.., &idx]), &x.i((.., &idx)));
    same(&x.i(&idx), &x.index_select(0, &idx));
    assert_eq!(x.i(s![]).shape(), x.shape());
}

#[test]
fn views_write_through_and_keep_strides() {
    let x = Tensor::zeros([4, 6]);
    let v = x.i(s![1..;2, ..;3]); // x[1::2, ::3]
    assert_eq!(v.shape(), [2, 2]);
    assert_eq!(v.stride(), [12, 3]);
    v.fill_(1.0);
    assert_eq!(x.sum().item(), 4.0);
    assert_eq!(x.i((3, 3)).item(), 1.0);
    // Indexing a view again composes the strides.
    let w = x.i(s![.., 1..]).i(s![..;2, ..;2]);
    assert_eq!(w.shape(), [2, 3]);
    assert_eq!(w.stride(), [12, 2]);
    assert!(w.shares_storage_with(&x));
}

#[test]
fn grad_fn_names_follow_pytorch() {
    let x = Tensor::ones([3, 4]).requires_grad_(true);
    let name = |t: Tensor| t.grad_fn().unwrap().name().to_string();
    assert_eq!(name(x.i(1)), "SelectBackward0");
    assert_eq!(name(x.i((.., 1..3))), "SliceBackward0");
    assert_eq!(name(x.i(s![.., None])), "UnsqueezeBackward0");
    assert_eq!(name(x.i(s![...])), "AliasBackward0");
}

/// Second-order gradients flow through a strided view: for
/// `y = sum(x[::2] ** 3)`, `d²y/dx² = 6 x` on the taken entries.
#[test]
fn view_backward_is_differentiable() {
    let x = Tensor::from([1.0f64, 2.0, 3.0, 4.0]).requires_grad_(true);
    let v = x.i(s![..;2]);
    let y = (&(&v * &v) * &v).sum();
    let mut g = kiln::autograd::grad(std::slice::from_ref(&y), std::slice::from_ref(&x), true);
    let gx = g.remove(0).unwrap();
    assert_eq!(gx.to_vec::<f64>(), [3.0, 0.0, 27.0, 0.0]);
    gx.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f64>(), [6.0, 0.0, 18.0, 0.0]);
}

#[test]
fn i_put_is_differentiable_in_both_inputs() {
    let x = Tensor::arange_opts(0.0, 6.0, 1.0, kiln::DType::F64)
        .reshape(&[2, 3])
        .requires_grad_(true);
    let v = Tensor::from([10.0f64, 20.0]).requires_grad_(true);
    let mask = Tensor::from([[true, false, false], [false, false, true]]);
    let y = x.i_put(&mask, &v);
    assert_eq!(y.to_vec::<f64>(), [10.0, 1.0, 2.0, 3.0, 4.0, 20.0]);
    let w = Tensor::from([[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    (&y * &w).sum().backward();
    assert_eq!(
        x.grad().unwrap().to_vec::<f64>(),
        [0.0, 2.0, 3.0, 4.0, 5.0, 0.0]
    );
    assert_eq!(v.grad().unwrap().to_vec::<f64>(), [1.0, 6.0]);
    // A value broadcast over the region gets the region's gradient summed.
    let b = Tensor::from([7.0f64]).requires_grad_(true);
    let z = x.detach().i_put(s![.., 1..], &b);
    (&z * &w).sum().backward();
    assert_eq!(b.grad().unwrap().to_vec::<f64>(), [2.0 + 3.0 + 5.0 + 6.0]);
}

#[test]
fn in_place_assignment_refuses_autograd_tensors() {
    let x = Tensor::zeros([3]).requires_grad_(true);
    let msg = panic_text(|| x.i_set(0, 1.0)).unwrap();
    assert!(
        msg.contains(
            "i_set: a leaf Variable that requires grad is being used in an in-place operation"
        ),
        "{msg}"
    );
    let y = Tensor::zeros([3]);
    let v = Tensor::ones([1]).requires_grad_(true);
    let msg = panic_text(|| y.i_set(0, &v)).unwrap();
    assert!(msg.contains("use i_put"), "{msg}");
    // Inside no_grad (how optimizers and initialisers write) it works.
    kiln::autograd::no_grad(|| x.i_set(1.., 2.0));
    assert_eq!(x.to_vec::<f32>(), [0.0, 2.0, 2.0]);
}

#[test]
fn repeated_int_indices_write_in_order() {
    let x = Tensor::zeros([3]);
    x.i_set(
        &Tensor::from([1i64, 1, -1]),
        Tensor::from([5.0f32, 6.0, 7.0]),
    );
    assert_eq!(x.to_vec::<f32>(), [0.0, 6.0, 7.0]);
}

#[test]
fn masked_fill_in_place_and_mask_reading() {
    let x = Tensor::from([[1.0f32, -2.0], [-3.0, 4.0]]);
    let view = x.detach();
    x.masked_fill_(&Tensor::from([true, false]), 9.0); // broadcast over rows
    assert_eq!(view.to_vec::<f32>(), [9.0, -2.0, 9.0, 4.0]);
    let x = Tensor::from([[1.0f32, -2.0], [-3.0, 4.0]]).requires_grad_(true);
    let neg = x.lt_scalar(0.0);
    let y = x.i(&neg);
    assert_eq!(y.to_vec::<f32>(), [-2.0, -3.0]);
    y.sum().backward();
    assert_eq!(x.grad().unwrap().to_vec::<f32>(), [0.0, 1.0, 1.0, 0.0]);
    assert_eq!(
        x.masked_select(&neg).to_vec::<f32>(),
        y.to_vec::<f32>(),
        "x[mask] and masked_select agree"
    );
}

#[test]
fn dtype_shorthands() {
    use kiln::DType;
    let x = Tensor::from([1.5f32, -2.7, 0.0]);
    assert_eq!(x.double().dtype(), DType::F64);
    assert_eq!(x.half().dtype(), DType::F16);
    assert_eq!(x.bfloat16().dtype(), DType::BF16);
    assert_eq!(x.long().to_vec::<i64>(), [1, -2, 0]);
    assert_eq!(x.bool().to_vec::<bool>(), [true, true, false]);
    assert_eq!(x.abs().byte().to_vec::<u8>(), [1, 2, 0]);
    assert_eq!(x.int().to_vec::<i32>(), [1, -2, 0]);
    // torch.tensor([40000, -40000]).short() wraps: [-25536, 25536].
    let wide = Tensor::from([40000i64, -40000]);
    assert_eq!(wide.short().to_vec::<i16>(), [-25536, 25536]);
    assert_eq!(x.long().float().to_vec::<f32>(), [1.0, -2.0, 0.0]);
    // Differentiable between float types, as `to_dtype` is.
    let p = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
    p.double().sum().backward();
    assert_eq!(p.grad().unwrap().to_vec::<f32>(), [1.0, 1.0]);
}

#[test]
fn tolist_prints_like_pytorch() {
    // Strings are PyTorch's `str(x.tolist())`.
    let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]);
    assert_eq!(x.tolist().to_string(), "[[1.0, 2.0], [3.0, 4.0]]");
    let y = Tensor::from([0.1f64, 1e-5, 1e16]);
    assert_eq!(y.tolist().to_string(), "[0.1, 1e-05, 1e+16]");
    assert_eq!(
        Tensor::from([[[1i64, -2]]]).tolist().to_string(),
        "[[[1, -2]]]"
    );
    assert_eq!(
        Tensor::scalar(3.5f32).tolist(),
        kiln::TensorList::Float(3.5)
    );
    assert_eq!(x.i(s![.., 1]).tolist().to_string(), "[2.0, 4.0]");
}
