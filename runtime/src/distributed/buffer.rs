//! [`Buffer`]: a tensor's elements as a flat host vector, the unit the
//! communication backends send and receive.

use crate::{DType, Device, Tensor};

/// A flat host copy of a tensor's elements in one of the dtypes the
/// collectives reduce.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Buffer {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    /// Any other dtype, as raw bytes: only moved (broadcast, all_gather),
    /// never reduced.
    Bytes(Vec<u8>, DType),
}

impl Buffer {
    /// The elements of `t` (any device, any layout), copied to the host.
    pub(crate) fn from_tensor(t: &Tensor) -> Buffer {
        match t.dtype() {
            DType::F32 => Buffer::F32(t.to_vec()),
            DType::F64 => Buffer::F64(t.to_vec()),
            DType::I64 => Buffer::I64(t.to_vec()),
            DType::U8 => Buffer::Bytes(t.to_vec(), DType::U8),
            DType::I32 => Buffer::Bytes(
                t.to_vec::<i32>()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                DType::I32,
            ),
            DType::I16 => Buffer::Bytes(
                bits_to_bytes(t.to_vec::<i16>().iter().map(|&x| x as u16)),
                DType::I16,
            ),
            DType::Bool => Buffer::Bytes(
                t.to_vec::<bool>().into_iter().map(u8::from).collect(),
                DType::Bool,
            ),
            DType::F16 => Buffer::Bytes(
                bits_to_bytes(t.to_vec::<half::f16>().iter().map(|x| x.to_bits())),
                DType::F16,
            ),
            DType::BF16 => Buffer::Bytes(
                bits_to_bytes(t.to_vec::<half::bf16>().iter().map(|x| x.to_bits())),
                DType::BF16,
            ),
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
            Buffer::I64(v) => v.len(),
            Buffer::Bytes(v, d) => v.len() / d.size_in_bytes(),
        }
    }

    /// A tensor of `shape` on `device` holding these elements.
    pub(crate) fn to_tensor(&self, shape: &[usize], device: Device) -> Tensor {
        let t = match self {
            Buffer::F32(v) => Tensor::from_vec(v.clone(), shape),
            Buffer::F64(v) => Tensor::from_vec(v.clone(), shape),
            Buffer::I64(v) => Tensor::from_vec(v.clone(), shape),
            Buffer::Bytes(v, DType::U8) => Tensor::from_vec(v.clone(), shape),
            Buffer::Bytes(v, DType::Bool) => {
                Tensor::from_vec(v.iter().map(|&b| b != 0).collect::<Vec<bool>>(), shape)
            }
            Buffer::Bytes(v, DType::I32) => Tensor::from_vec(
                v.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect::<Vec<_>>(),
                shape,
            ),
            Buffer::Bytes(v, DType::I16) => Tensor::from_vec(
                bytes_to_bits(v).map(|b| b as i16).collect::<Vec<_>>(),
                shape,
            ),
            Buffer::Bytes(v, DType::F16) => Tensor::from_vec(
                bytes_to_bits(v)
                    .map(half::f16::from_bits)
                    .collect::<Vec<_>>(),
                shape,
            ),
            Buffer::Bytes(v, DType::BF16) => Tensor::from_vec(
                bytes_to_bits(v)
                    .map(half::bf16::from_bits)
                    .collect::<Vec<_>>(),
                shape,
            ),
            Buffer::Bytes(_, d) => unreachable!("{d} travels in its own variant"),
        };
        if device == Device::Cpu {
            t
        } else {
            t.to_device(device)
        }
    }

    /// A slice `[start, start + len)` of the elements.
    pub(crate) fn slice(&self, start: usize, len: usize) -> Buffer {
        match self {
            Buffer::F32(v) => Buffer::F32(v[start..start + len].to_vec()),
            Buffer::F64(v) => Buffer::F64(v[start..start + len].to_vec()),
            Buffer::I64(v) => Buffer::I64(v[start..start + len].to_vec()),
            Buffer::Bytes(v, d) => {
                let s = d.size_in_bytes();
                Buffer::Bytes(v[start * s..(start + len) * s].to_vec(), *d)
            }
        }
    }

    /// Divides every element by `n` (the `avg` reduction).
    pub(crate) fn divide(&mut self, n: usize) {
        match self {
            Buffer::F32(v) => v.iter_mut().for_each(|x| *x /= n as f32),
            Buffer::F64(v) => v.iter_mut().for_each(|x| *x /= n as f64),
            _ => unreachable!("avg is checked to be floating point before it runs"),
        }
    }
}

fn bits_to_bytes(bits: impl Iterator<Item = u16>) -> Vec<u8> {
    bits.flat_map(u16::to_ne_bytes).collect()
}

fn bytes_to_bits(v: &[u8]) -> impl Iterator<Item = u16> + '_ {
    v.chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}
