//! Broadcast binary ops and comparisons on the CPU, over the operands'
//! strided layouts (no broadcast copies).

use crate::layout::Layout;
use crate::ops::binary::{BinaryFns, binary_map};
use crate::storage::CpuStorage;
use crate::{DType, Tensor};
use half::{bf16, f16};

pub(super) fn binary(
    op: &str,
    fns: &BinaryFns,
    (a, la): (&Tensor, &Layout),
    (b, lb): (&Tensor, &Layout),
    shape: &[usize],
) -> Tensor {
    let ga = a.read_storage();
    let gb = b.read_storage();
    let out = match (ga.cpu(op), gb.cpu(op)) {
        (CpuStorage::F32(x), CpuStorage::F32(y)) => {
            CpuStorage::F32(binary_map(x, la, y, lb, fns.f32))
        }
        (CpuStorage::F64(x), CpuStorage::F64(y)) => {
            CpuStorage::F64(binary_map(x, la, y, lb, fns.f64))
        }
        (CpuStorage::F16(x), CpuStorage::F16(y)) => {
            CpuStorage::F16(binary_map(x, la, y, lb, |p, q| {
                f16::from_f32((fns.f32)(p.to_f32(), q.to_f32()))
            }))
        }
        (CpuStorage::BF16(x), CpuStorage::BF16(y)) => {
            CpuStorage::BF16(binary_map(x, la, y, lb, |p, q| {
                bf16::from_f32((fns.f32)(p.to_f32(), q.to_f32()))
            }))
        }
        (CpuStorage::I64(x), CpuStorage::I64(y)) => match fns.i64 {
            Some(f) => CpuStorage::I64(binary_map(x, la, y, lb, f)),
            None => panic!("{op}: not supported for int64 tensors"),
        },
        // The narrower integers compute in int64 and wrap back, like
        // PyTorch's int32/int16/uint8 arithmetic.
        (CpuStorage::I32(x), CpuStorage::I32(y)) => match fns.i64 {
            Some(f) => CpuStorage::I32(binary_map(x, la, y, lb, |p, q| {
                f(p as i64, q as i64) as i32
            })),
            None => panic!("{op}: not supported for int32 tensors"),
        },
        (CpuStorage::I16(x), CpuStorage::I16(y)) => match fns.i64 {
            Some(f) => CpuStorage::I16(binary_map(x, la, y, lb, |p, q| {
                f(p as i64, q as i64) as i16
            })),
            None => panic!("{op}: not supported for int16 tensors"),
        },
        (CpuStorage::U8(x), CpuStorage::U8(y)) => match fns.i64 {
            Some(f) => CpuStorage::U8(binary_map(x, la, y, lb, |p, q| f(p as i64, q as i64) as u8)),
            None => panic!("{op}: not supported for uint8 tensors"),
        },
        (l, _) => panic!("{op}: not supported for {} tensors", l.dtype()),
    };
    Tensor::from_cpu(out, shape)
}

pub(super) fn compare(
    op: &str,
    f: fn(f64, f64) -> bool,
    (ga, la): (&Tensor, &Layout),
    (gb, lb): (&Tensor, &Layout),
    shape: &[usize],
) -> Tensor {
    let (a, b) = (ga, gb);
    let ga = a.read_storage();
    let gb = b.read_storage();
    let out: Vec<bool> = match (ga.cpu(op), gb.cpu(op)) {
        (CpuStorage::F32(x), CpuStorage::F32(y)) => {
            binary_map(x, la, y, lb, |p, q| f(p as f64, q as f64))
        }
        (CpuStorage::F64(x), CpuStorage::F64(y)) => binary_map(x, la, y, lb, f),
        (CpuStorage::I64(x), CpuStorage::I64(y)) => {
            binary_map(x, la, y, lb, |p, q| f(p as f64, q as f64))
        }
        (x, y) => {
            let (x, y) = (x.cast(la, DType::F64), y.cast(lb, DType::F64));
            let l = Layout::contiguous(shape);
            match (x, y) {
                (CpuStorage::F64(x), CpuStorage::F64(y)) => binary_map(&x, &l, &y, &l, f),
                _ => unreachable!("cast to f64 gives f64"),
            }
        }
    };
    Tensor::from_cpu(CpuStorage::Bool(out), shape)
}
