//! `tolist()`: a tensor's values as a nested list, like PyTorch's
//! `tensor.tolist()`, and the typed `to_vec3`.

use crate::dtype::Element;
use crate::{DType, Tensor};
use std::fmt;

/// A tensor's values as nested lists, what [`Tensor::tolist`] returns:
/// a rank-0 tensor gives a scalar, a rank-`n` tensor `n` levels of
/// [`List`](TensorList::List). It prints like the Python list PyTorch's
/// `tolist()` returns (`[[1.0, 2.0], [3.0, 4.0]]`, `True`, `[1, 2]`).
///
/// Floating-point tensors give [`Float`](TensorList::Float) (widened to
/// `f64`, as Python floats are), integer tensors
/// [`Int`](TensorList::Int), bool tensors [`Bool`](TensorList::Bool).
#[derive(Clone, Debug, PartialEq)]
pub enum TensorList {
    /// A value of a floating-point tensor.
    Float(f64),
    /// A value of an integer tensor.
    Int(i64),
    /// A value of a bool tensor.
    Bool(bool),
    /// One level of nesting: the sub-lists (or values) along a dimension.
    List(Vec<TensorList>),
}

impl TensorList {
    /// The elements of this level, or `None` for a scalar.
    pub fn as_list(&self) -> Option<&[TensorList]> {
        match self {
            TensorList::List(v) => Some(v),
            _ => None,
        }
    }

    /// A scalar's value as `f64` (bools as 0 or 1), or `None` for a list.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            TensorList::Float(x) => Some(x),
            TensorList::Int(i) => Some(i as f64),
            TensorList::Bool(b) => Some(b as u8 as f64),
            TensorList::List(_) => None,
        }
    }
}

/// Python's `repr` of a float: the shortest digits that read back to the
/// same `f64`, positional for exponents in `-4..16`, else scientific with a
/// signed two-digit-minimum exponent (`1e-05`, `1e+16`), and always a
/// decimal point or exponent (`1.0`).
pub(crate) fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}`'s exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if exp + 1 >= n {
            format!("{digits}{}.0", "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exp.abs())
    }
}

impl fmt::Display for TensorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorList::Float(x) => f.write_str(&python_float_repr(*x)),
            TensorList::Int(i) => write!(f, "{i}"),
            TensorList::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            TensorList::List(items) => {
                f.write_str("[")?;
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Nests `values` (row-major) into `shape`'s levels.
fn nest<T: Copy>(values: &[T], shape: &[usize], leaf: &impl Fn(T) -> TensorList) -> TensorList {
    match shape.split_first() {
        None => leaf(values[0]),
        Some((&n, rest)) => {
            let block: usize = rest.iter().product();
            TensorList::List(
                (0..n)
                    .map(|k| nest(&values[k * block..(k + 1) * block], rest, leaf))
                    .collect(),
            )
        }
    }
}

impl Tensor {
    /// The values as nested lists, like `tensor.tolist()`: a scalar for a
    /// rank-0 tensor, else one level of [`TensorList::List`] per dimension.
    /// Prints like Python's list.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.5]]);
    /// assert_eq!(x.tolist().to_string(), "[[1.0, 2.0], [3.0, 4.5]]");
    /// assert_eq!(Tensor::scalar(true).tolist().to_string(), "True");
    /// ```
    pub fn tolist(&self) -> TensorList {
        let shape = self.shape();
        match self.dtype() {
            DType::Bool => nest(&self.to_vec::<bool>(), shape, &TensorList::Bool),
            DType::I64 | DType::U8 => nest(&self.to_vec::<i64>(), shape, &TensorList::Int),
            _ => nest(&self.to_vec::<f64>(), shape, &TensorList::Float),
        }
    }

    /// The values of a 3-D tensor as nested `Vec`s, converted to `T`, like
    /// `tensor.tolist()` (candle's `to_vec3`).
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::arange(0.0, 6.0, 1.0).reshape(&[1, 2, 3]);
    /// assert_eq!(x.to_vec3::<f32>(), vec![vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]]);
    /// ```
    pub fn to_vec3<T: Element>(&self) -> Vec<Vec<Vec<T>>> {
        assert_eq!(
            self.dim(),
            3,
            "to_vec3: expected a 3-D tensor, got shape {:?}",
            self.shape()
        );
        let (n1, n2) = (self.shape()[1], self.shape()[2]);
        let flat = self.to_vec::<T>();
        (0..self.shape()[0])
            .map(|i| {
                (0..n1)
                    .map(|j| flat[(i * n1 + j) * n2..(i * n1 + j + 1) * n2].to_vec())
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_python_repr() {
        // Expected strings are Python 3's `repr(float(x))`.
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1234.5678, "1234.5678"),
            (1e-4, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (123456789012345.0, "123456789012345.0"),
            (0.1f32 as f64, "0.10000000149011612"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
            (1e-300, "1e-300"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(x), want, "repr of {x:e}");
        }
    }

    #[test]
    fn tolist_nests_every_rank() {
        assert_eq!(Tensor::scalar(2.5f64).tolist(), TensorList::Float(2.5));
        assert_eq!(Tensor::scalar(7i64).tolist().to_string(), "7");
        let x = Tensor::from([[true, false], [false, true]]);
        assert_eq!(x.tolist().to_string(), "[[True, False], [False, True]]");
        let y = Tensor::from([[[1u8, 2], [3, 4]]]).transpose(1, 2);
        assert_eq!(y.tolist().to_string(), "[[[1, 3], [2, 4]]]");
        assert_eq!(Tensor::zeros([2, 0]).tolist().to_string(), "[[], []]");
        assert_eq!(Tensor::zeros([0]).tolist().to_string(), "[]");
        let l = Tensor::from([0.5f32, 1.0]).tolist();
        assert_eq!(l.as_list().unwrap()[1].as_f64(), Some(1.0));
    }

    #[test]
    fn to_vec3_of_a_view() {
        let x = Tensor::arange(0.0, 8.0, 1.0)
            .reshape(&[2, 2, 2])
            .transpose(0, 2);
        assert_eq!(
            x.to_vec3::<i64>(),
            vec![vec![vec![0, 4], vec![2, 6]], vec![vec![1, 5], vec![3, 7]]]
        );
    }
}
