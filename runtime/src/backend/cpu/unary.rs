//! Elementwise unary kernels on the CPU: one monomorphised, rayon-parallel
//! loop per [`UnaryOp`], f32/f64 natively, float16/bfloat16 through f32,
//! int64 for the ops with an integer form. Also the fused "gradient times
//! a piecewise-constant factor" backward of ReLU, abs, clamp, threshold and
//! leaky ReLU.

use crate::Tensor;
use crate::backend::UnaryOp;
use crate::layout::Layout;
use crate::ops::erf::erf;
use crate::ops::kernel::{par_map, zip2};
use crate::storage::CpuStorage;
use half::{bf16, f16};

/// `f` over the elements `l` selects, row-major; parallel when contiguous
/// and large.
fn map_par<T: Copy + Send + Sync, U: Send>(
    v: &[T],
    l: &Layout,
    f: impl Fn(T) -> U + Send + Sync,
) -> Vec<U> {
    match l.contiguous_range() {
        Some(r) => par_map(&v[r], f),
        None => l.offsets().map(|o| f(v[o])).collect(),
    }
}

/// Runs one op over `x` in its own dtype.
fn map<F32, F64, FI>(op: &str, x: &Tensor, f32f: F32, f64f: F64, fi: Option<FI>) -> Tensor
where
    F32: Fn(f32) -> f32 + Send + Sync,
    F64: Fn(f64) -> f64 + Send + Sync,
    FI: Fn(i64) -> i64 + Send + Sync,
{
    let g = x.read_storage();
    let l = x.layout();
    let out = match g.cpu(op) {
        CpuStorage::F32(v) => CpuStorage::F32(map_par(v, l, f32f)),
        CpuStorage::F64(v) => CpuStorage::F64(map_par(v, l, f64f)),
        CpuStorage::F16(v) => CpuStorage::F16(map_par(v, l, |h| f16::from_f32(f32f(h.to_f32())))),
        CpuStorage::BF16(v) => {
            CpuStorage::BF16(map_par(v, l, |h| bf16::from_f32(f32f(h.to_f32()))))
        }
        CpuStorage::I64(v) => match fi {
            Some(f) => CpuStorage::I64(map_par(v, l, f)),
            None => {
                panic!("{op}: not supported for int64 tensors; convert with to_dtype(DType::F32)")
            }
        },
        // The narrower integers compute in int64 and wrap back.
        CpuStorage::I32(v) if fi.is_some() => {
            let f = fi.expect("checked");
            CpuStorage::I32(map_par(v, l, |x| f(x as i64) as i32))
        }
        CpuStorage::I16(v) if fi.is_some() => {
            let f = fi.expect("checked");
            CpuStorage::I16(map_par(v, l, |x| f(x as i64) as i16))
        }
        s => panic!("{op}: not supported for {} tensors", s.dtype()),
    };
    Tensor::from_cpu(out, x.shape())
}

/// No integer form.
const NO_INT: Option<fn(i64) -> i64> = None;

fn sign<T: num_traits::Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x * T::zero() // keeps NaN, maps ±0 to 0
    }
}

fn clamp_val<T: PartialOrd + Copy>(x: T, lo: Option<T>, hi: Option<T>) -> T {
    let y = match lo {
        Some(l) if x < l => l,
        _ => x,
    };
    match hi {
        Some(h) if y > h => h,
        _ => y,
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044715;

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

fn gelu_tanh_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_C * x * x * x)).tanh())
}

fn gelu_tanh_f32(x: f32) -> f32 {
    let (k, c) = (SQRT_2_OVER_PI as f32, GELU_C as f32);
    0.5 * x * (1.0 + (k * (x + c * x * x * x)).tanh())
}

/// The bounds of a clamp op (`None`: unbounded on that side).
fn bounds(op: UnaryOp) -> (Option<f64>, Option<f64>) {
    match op {
        UnaryOp::Clamp(lo, hi) => (Some(lo), Some(hi)),
        UnaryOp::ClampMin(lo) => (Some(lo), None),
        UnaryOp::ClampMax(hi) => (None, Some(hi)),
        _ => (None, None),
    }
}

pub(super) fn unary(op: UnaryOp, x: &Tensor) -> Tensor {
    use UnaryOp::*;
    let name = op.name();
    let (p, q) = op.params();
    let (p32, q32) = (p as f32, q as f32);
    match op {
        Neg => map(name, x, |v| -v, |v| -v, Some(|v: i64| v.wrapping_neg())),
        Exp => map(name, x, f32::exp, f64::exp, NO_INT),
        Log => map(name, x, f32::ln, f64::ln, NO_INT),
        Sqrt => map(name, x, f32::sqrt, f64::sqrt, NO_INT),
        Abs => map(name, x, f32::abs, f64::abs, Some(i64::wrapping_abs)),
        Sign => map(name, x, sign::<f32>, sign::<f64>, Some(i64::signum)),
        Sin => map(name, x, f32::sin, f64::sin, NO_INT),
        Cos => map(name, x, f32::cos, f64::cos, NO_INT),
        Reciprocal => map(name, x, |v| 1.0 / v, |v| 1.0 / v, NO_INT),
        Square => map(
            name,
            x,
            |v| v * v,
            |v| v * v,
            Some(|v: i64| v.wrapping_mul(v)),
        ),
        Erf => map(name, x, |v| erf(v as f64) as f32, erf, NO_INT),
        Relu => {
            let r32 = |v: f32| if v < 0.0 { 0.0 } else { v };
            let r64 = |v: f64| if v < 0.0 { 0.0 } else { v };
            map(name, x, r32, r64, Some(|v: i64| v.max(0)))
        }
        Sigmoid => {
            let s32 = |v: f32| 1.0 / (1.0 + (-v).exp());
            map(name, x, s32, |v| 1.0 / (1.0 + (-v).exp()), NO_INT)
        }
        Tanh => map(name, x, f32::tanh, f64::tanh, NO_INT),
        Gelu => map(name, x, |v| gelu_f64(v as f64) as f32, gelu_f64, NO_INT),
        GeluTanh => map(name, x, gelu_tanh_f32, gelu_tanh_f64, NO_INT),
        AddScalar(s) => map(name, x, |v| v + p32, |v| v + s, Some(|v| v + s as i64)),
        MulScalar(s) => map(name, x, |v| v * p32, |v| v * s, Some(|v| v * s as i64)),
        Pow(2.0) => map(name, x, |v| v * v, |v| v * v, Some(|v: i64| v * v)),
        Pow(e) => map(name, x, |v| v.powf(p32), |v| v.powf(e), NO_INT),
        LeakyRelu(s) => {
            let l32 = |v: f32| if v > 0.0 { v } else { v * p32 };
            map(name, x, l32, |v| if v > 0.0 { v } else { v * s }, NO_INT)
        }
        Threshold { threshold, value } => {
            let (t32, v32) = (p32, q32);
            let vi = value as i64;
            map(
                name,
                x,
                |v| if v <= t32 { v32 } else { v },
                |v| if v <= threshold { value } else { v },
                Some(|v: i64| if (v as f64) <= threshold { vi } else { v }),
            )
        }
        Clamp(..) | ClampMin(_) | ClampMax(_) => {
            let (lo, hi) = bounds(op);
            let (lo32, hi32) = (lo.map(|v| v as f32), hi.map(|v| v as f32));
            let (loi, hii) = (lo.map(|v| v as i64), hi.map(|v| v as i64));
            map(
                name,
                x,
                |v| clamp_val(v, lo32, hi32),
                |v| clamp_val(v, lo, hi),
                Some(|v| clamp_val(v, loi, hii)),
            )
        }
        _ => panic!("{name}: not supported for {} tensors on the CPU", x.dtype()),
    }
}

/// `g * s(x)` for the piecewise-constant derivative `s` of `op` (for
/// ReLU, `x` is its output).
pub(super) fn scaled_grad(op: UnaryOp, g: &Tensor, x: &Tensor) -> Tensor {
    use UnaryOp::*;
    let name = op.name();
    let (p, q) = op.params();
    let (p32, q32) = (p as f32, q as f32);
    match op {
        Relu => zip2(
            name,
            g,
            x,
            |g, y| g * (y > 0.0) as u8 as f32,
            |g, y| g * (y > 0.0) as u8 as f64,
        ),
        Abs => zip2(name, g, x, |g, x| g * sign(x), |g, x| g * sign(x)),
        LeakyRelu(s) => zip2(
            name,
            g,
            x,
            |g, x| if x > 0.0 { g } else { g * p32 },
            |g, x| if x > 0.0 { g } else { g * s },
        ),
        Threshold { threshold, .. } => zip2(
            name,
            g,
            x,
            |g, x| if x <= p32 { 0.0 } else { g },
            |g, x| if x <= threshold { 0.0 } else { g },
        ),
        Clamp(lo, hi) => zip2(
            name,
            g,
            x,
            |g, x| g * ((x >= p32 && x <= q32) as u8) as f32,
            |g, x| g * ((x >= lo && x <= hi) as u8) as f64,
        ),
        _ => panic!("{name}: no piecewise-constant gradient"),
    }
}
