//! int32 and int16 tensors against PyTorch: casts (wrapping between
//! integer types, truncating from floats), wrapping arithmetic, true
//! division, type promotion, sums, printing, and safetensors / `.pth`
//! files. Every expected value is PyTorch 2.15's, printed by
//! `tests/data/gen/int_dtypes.py` (which also wrote `tests/data/int_dtypes.pt`).
//! The elementwise cases also run on the test device.

use kiln::io::{load_pth_state_dict, load_safetensors, save_safetensors};
use kiln::{DType, Device, StateDict, Tensor};
use std::path::Path;

/// The devices every elementwise case runs on.
const DEVICES: [Device; 2] = [Device::Cpu, Device::Test(0)];

#[test]
fn casts_wrap_between_integers_and_truncate_from_floats() {
    for d in DEVICES {
        let i64s = Tensor::from(vec![
            (1i64 << 31) + 5,
            -(1i64 << 31) - 1,
            (1i64 << 40) + 7,
            -3,
            70000,
        ])
        .to(&d);
        let to32 = i64s.to_dtype(DType::I32);
        assert_eq!(to32.dtype(), DType::I32);
        assert_eq!(
            to32.to_vec::<i32>(),
            vec![-2147483643, 2147483647, 7, -3, 70000]
        );
        assert_eq!(
            i64s.to_dtype(DType::I16).to_vec::<i16>(),
            vec![5, -1, 7, -3, 4464]
        );
        let i32s = Tensor::from(vec![40000i32, -40000, 70000, -1, 300]).to(&d);
        assert_eq!(
            i32s.to_dtype(DType::I16).to_vec::<i16>(),
            vec![-25536, 25536, 4464, -1, 300]
        );
        assert_eq!(
            i32s.to_dtype(DType::U8).to_vec::<u8>(),
            vec![64, 192, 112, 255, 44]
        );
        assert_eq!(i32s.to_dtype(DType::Bool).to_vec::<bool>(), vec![true; 5]);
        assert_eq!(
            i32s.to_dtype(DType::F32).to_vec::<f32>(),
            vec![40000.0, -40000.0, 70000.0, -1.0, 300.0]
        );
        let f = Tensor::from(vec![-2.7f32, -0.5, 0.5, 2.7, 1000.9]).to(&d);
        assert_eq!(
            f.to_dtype(DType::I32).to_vec::<i32>(),
            vec![-2, 0, 0, 2, 1000]
        );
        assert_eq!(
            f.to_dtype(DType::I16).to_vec::<i16>(),
            vec![-2, 0, 0, 2, 1000]
        );
        let b = Tensor::from(vec![true, false, true]).to(&d);
        assert_eq!(b.to_dtype(DType::I16).to_vec::<i16>(), vec![1, 0, 1]);
    }
}

#[test]
fn int32_arithmetic_wraps_and_division_is_true_division() {
    for d in DEVICES {
        let a = Tensor::from(vec![2147483647i32, -2147483648, 7, -7]).to(&d);
        let c = Tensor::from(vec![1i32, 1, 2, 2]).to(&d);
        let sum = a.add(&c);
        assert_eq!(sum.dtype(), DType::I32);
        assert_eq!(sum.to_vec::<i32>(), vec![-2147483648, -2147483647, 9, -5]);
        assert_eq!(
            a.sub(&c).to_vec::<i32>(),
            vec![2147483646, 2147483647, 5, -9]
        );
        assert_eq!(
            a.mul(&c).to_vec::<i32>(),
            vec![2147483647, -2147483648, 14, -14]
        );
        let q = a.div(&c);
        assert_eq!(q.dtype(), DType::F32);
        assert_eq!(
            q.to_vec::<f32>(),
            vec![2147483648.0, -2147483648.0, 3.5, -3.5]
        );
        assert_eq!(a.maximum(&c).to_vec::<i32>(), vec![2147483647, 1, 7, 2]);
        assert_eq!(a.lt(&c).to_vec::<bool>(), vec![false, true, false, true]);
        assert_eq!(
            a.neg().to_vec::<i32>(),
            vec![-2147483647, -2147483648, -7, 7]
        );
        let s = a.sum();
        assert_eq!(s.dtype(), DType::I64);
        assert_eq!(s.to_vec::<i64>(), vec![-1]);
    }
}

#[test]
fn int16_arithmetic_wraps() {
    for d in DEVICES {
        let s = Tensor::from(vec![32767i16, -32768, 300, -300]).to(&d);
        let t = Tensor::from(vec![1i16, 1, 300, 300]).to(&d);
        let sum = s.add(&t);
        assert_eq!(sum.dtype(), DType::I16);
        assert_eq!(sum.to_vec::<i16>(), vec![-32768, -32767, 600, 0]);
        assert_eq!(
            s.mul(&t).to_vec::<i16>(),
            vec![32767, -32768, 24464, -24464]
        );
        assert_eq!(s.sub(&t).to_vec::<i16>(), vec![32766, 32767, 0, -600]);
    }
}

#[test]
fn promotion_follows_pytorch() {
    let i16s = Tensor::from(vec![1i16]);
    let i32s = Tensor::from(vec![1i32]);
    let i64s = Tensor::from(vec![1i64]);
    let u8s = Tensor::from(vec![1u8]);
    assert_eq!(i32s.add(&i64s).dtype(), DType::I64);
    assert_eq!(i16s.add(&i32s).dtype(), DType::I32);
    assert_eq!(u8s.add(&i16s).dtype(), DType::I16);
    assert_eq!(i32s.add(&Tensor::from(vec![0.5f32])).dtype(), DType::F32);
}

#[test]
fn prints_like_pytorch() {
    let a = Tensor::from(vec![1i32, -2, 3]);
    assert_eq!(format!("{a}"), "tensor([ 1, -2,  3], dtype=torch.int32)");
    let b = Tensor::from([[1i16, 2], [30, -4]]);
    assert_eq!(
        format!("{b}"),
        "tensor([[ 1,  2],\n        [30, -4]], dtype=torch.int16)"
    );
    assert_eq!(DType::I32.size_in_bytes(), 4);
    assert_eq!(DType::I16.size_in_bytes(), 2);
}

#[test]
fn safetensors_round_trip_keeps_the_dtypes() {
    let mut sd = StateDict::new();
    sd.insert("a", Tensor::from(vec![i32::MIN, -1, i32::MAX]));
    sd.insert("b", Tensor::from([[i16::MIN, 0], [7, i16::MAX]]));
    let path = std::env::temp_dir().join(format!(
        "kiln_int_dtypes_{}.safetensors",
        std::process::id()
    ));
    save_safetensors(&sd, &path, &[]).unwrap();
    let back = load_safetensors(&path).unwrap();
    std::fs::remove_file(&path).ok();
    let (a, b) = (back.get("a").unwrap(), back.get("b").unwrap());
    assert_eq!((a.dtype(), b.dtype()), (DType::I32, DType::I16));
    assert_eq!(a.to_vec::<i32>(), vec![i32::MIN, -1, i32::MAX]);
    assert_eq!(b.shape(), &[2, 2]);
    assert_eq!(b.to_vec::<i16>(), vec![i16::MIN, 0, 7, i16::MAX]);
}

#[test]
fn pth_int_and_short_storages_load() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/int_dtypes.pt");
    let sd = load_pth_state_dict(&path).unwrap();
    let (a, b) = (sd.get("i32").unwrap(), sd.get("i16").unwrap());
    assert_eq!((a.dtype(), b.dtype()), (DType::I32, DType::I16));
    assert_eq!(a.shape(), &[1, 3]);
    assert_eq!(a.to_vec::<i32>(), vec![1, -2, 2147483647]);
    assert_eq!(b.to_vec::<i16>(), vec![-32768, 5, 32767]);
}
