//! `Display`/`Debug` for tensors, printed like PyTorch's `repr`:
//! `tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]])`, whole-valued
//! floats as `1.`, scientific notation when the magnitudes call for it,
//! `...` summaries above 1000 elements, and the `dtype=`, `device=`,
//! `requires_grad=` and `grad_fn=` suffixes. This follows
//! `torch/_tensor_str.py` with the default print options (precision 4,
//! line width 80, threshold 1000, 3 edge items).

use super::Tensor;
use crate::device::Device;
use crate::dtype::DType;
use std::fmt;

const PRECISION: usize = 4;
const LINEWIDTH: usize = 80;
const THRESHOLD: usize = 1000;
const EDGEITEMS: usize = 3;

/// The elements, row-major, in the form they are printed from.
enum Values {
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

/// Python's `"{:.{p}e}".format(v)`: a signed two-digit (at least) exponent.
fn python_sci(v: f64, precision: usize) -> String {
    if !v.is_finite() {
        return python_nonfinite(v);
    }
    let s = format!("{v:.precision$e}");
    let (mant, exp) = s.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("integer exponent");
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

fn python_nonfinite(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

/// Python's `"{:.{p}f}".format(v)`.
fn python_fixed(v: f64, precision: usize) -> String {
    if !v.is_finite() {
        return python_nonfinite(v);
    }
    format!("{v:.precision$}")
}

/// PyTorch's `_Formatter`: decides int mode / scientific mode and the
/// common width from the (summarised) values.
struct Formatter {
    floating: bool,
    int_mode: bool,
    sci_mode: bool,
    max_width: usize,
}

impl Formatter {
    fn new(values: &Values, shown: &[usize]) -> Formatter {
        let mut f = Formatter {
            floating: matches!(values, Values::Float(_)),
            int_mode: true,
            sci_mode: false,
            max_width: 1,
        };
        match values {
            Values::Int(v) => {
                for &i in shown {
                    f.max_width = f.max_width.max(v[i].to_string().len());
                }
            }
            Values::Bool(v) => {
                for &i in shown {
                    f.max_width = f.max_width.max(if v[i] { 4 } else { 5 });
                }
            }
            Values::Float(v) => {
                let nz: Vec<f64> = shown
                    .iter()
                    .map(|&i| v[i])
                    .filter(|x| x.is_finite() && *x != 0.0)
                    .collect();
                if nz.is_empty() {
                    return f;
                }
                let abs_min = nz.iter().fold(f64::INFINITY, |m, x| m.min(x.abs()));
                let abs_max = nz.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                f.int_mode = nz.iter().all(|x| *x == x.ceil());
                let width = |s: String| s.len();
                if f.int_mode {
                    if abs_max / abs_min > 1000.0 || abs_max > 1.0e8 {
                        f.sci_mode = true;
                        for &x in &nz {
                            f.max_width = f.max_width.max(width(python_sci(x, PRECISION)));
                        }
                    } else {
                        for &x in &nz {
                            f.max_width = f.max_width.max(width(python_fixed(x, 0)) + 1);
                        }
                    }
                } else if abs_max / abs_min > 1000.0 || abs_max > 1.0e8 || abs_min < 1.0e-4 {
                    f.sci_mode = true;
                    for &x in &nz {
                        f.max_width = f.max_width.max(width(python_sci(x, PRECISION)));
                    }
                } else {
                    for &x in &nz {
                        f.max_width = f.max_width.max(width(python_fixed(x, PRECISION)));
                    }
                }
            }
        }
        f
    }

    fn format(&self, values: &Values, i: usize) -> String {
        let s = match values {
            Values::Int(v) => v[i].to_string(),
            Values::Bool(v) => (if v[i] { "True" } else { "False" }).to_string(),
            Values::Float(v) => {
                let x = v[i];
                debug_assert!(self.floating);
                if self.sci_mode {
                    python_sci(x, PRECISION)
                } else if self.int_mode {
                    let mut s = python_fixed(x, 0);
                    if x.is_finite() {
                        s.push('.');
                    }
                    s
                } else {
                    python_fixed(x, PRECISION)
                }
            }
        };
        format!("{s:>w$}", w = self.max_width)
    }
}

/// Flat indices (row-major, contiguous) of the elements a summarised print
/// shows: the first and last `EDGEITEMS` of every dimension longer than
/// twice that.
fn shown_indices(shape: &[usize], summarize: bool) -> Vec<usize> {
    fn walk(shape: &[usize], base: usize, summarize: bool, out: &mut Vec<usize>) {
        let Some((&n, rest)) = shape.split_first() else {
            out.push(base);
            return;
        };
        let stride: usize = rest.iter().product();
        let mut visit = |i: usize| walk(rest, base + i * stride, summarize, out);
        if summarize && n > 2 * EDGEITEMS {
            (0..EDGEITEMS).for_each(&mut visit);
            (n - EDGEITEMS..n).for_each(&mut visit);
        } else {
            (0..n).for_each(&mut visit);
        }
    }
    let mut out = Vec::new();
    walk(shape, 0, summarize, &mut out);
    out
}

struct Printer<'a> {
    values: &'a Values,
    fmt: Formatter,
    summarize: bool,
}

impl Printer<'_> {
    fn vector(&self, n: usize, base: usize, indent: usize) -> String {
        let element_length = self.fmt.max_width + 2;
        let per_line = ((LINEWIDTH.saturating_sub(indent)) / element_length).max(1);
        let data: Vec<String> = if self.summarize && n > 2 * EDGEITEMS {
            (0..EDGEITEMS)
                .map(|i| self.fmt.format(self.values, base + i))
                .chain(std::iter::once(" ...".to_string()))
                .chain((n - EDGEITEMS..n).map(|i| self.fmt.format(self.values, base + i)))
                .collect()
        } else {
            (0..n)
                .map(|i| self.fmt.format(self.values, base + i))
                .collect()
        };
        let lines: Vec<String> = data.chunks(per_line).map(|c| c.join(", ")).collect();
        let sep = format!(",\n{}", " ".repeat(indent + 1));
        format!("[{}]", lines.join(&sep))
    }

    fn tensor(&self, shape: &[usize], base: usize, indent: usize) -> String {
        match shape.len() {
            0 => self.fmt.format(self.values, base),
            1 => self.vector(shape[0], base, indent),
            dim => {
                let n = shape[0];
                let stride: usize = shape[1..].iter().product();
                let sub = |i: usize| self.tensor(&shape[1..], base + i * stride, indent + 1);
                let slices: Vec<String> = if self.summarize && n > 2 * EDGEITEMS {
                    (0..EDGEITEMS)
                        .map(sub)
                        .chain(std::iter::once("...".to_string()))
                        .chain((n - EDGEITEMS..n).map(sub))
                        .collect()
                } else {
                    (0..n).map(sub).collect()
                };
                let sep = format!(",{}{}", "\n".repeat(dim - 1), " ".repeat(indent + 1));
                format!("[{}]", slices.join(&sep))
            }
        }
    }
}

/// PyTorch's `_add_suffixes`: `, suffix` on the same line while it fits in
/// the line width, else on a new line indented under the opening bracket.
fn add_suffixes(body: String, suffixes: &[String], indent: usize) -> String {
    let mut out = body;
    let mut last_line_len = match out.rfind('\n') {
        Some(p) => out.len() - p + 1,
        None => out.len() + 2,
    };
    for s in suffixes {
        if last_line_len + s.len() + 2 > LINEWIDTH {
            out.push_str(",\n");
            out.push_str(&" ".repeat(indent));
            out.push_str(s);
            last_line_len = indent + s.len();
        } else {
            out.push_str(", ");
            out.push_str(s);
            last_line_len += s.len() + 2;
        }
    }
    out.push(')');
    out
}

impl Tensor {
    /// The PyTorch-style `repr` string.
    fn repr_string(&self) -> String {
        let prefix = "tensor(";
        let indent = prefix.len();
        let mut suffixes = Vec::new();
        if self.device() != Device::Cpu {
            suffixes.push(format!("device='{}'", self.device()));
        }
        let body = if self.numel() == 0 {
            if self.dim() != 1 {
                let dims: Vec<String> = self.shape().iter().map(|d| d.to_string()).collect();
                let tuple = if dims.len() == 1 {
                    format!("({},)", dims[0])
                } else {
                    format!("({})", dims.join(", "))
                };
                suffixes.push(format!("size={tuple}"));
            }
            if self.dtype() != DType::F32 {
                suffixes.push(format!("dtype=torch.{}", self.dtype()));
            }
            "[]".to_string()
        } else {
            if !matches!(self.dtype(), DType::F32 | DType::I64 | DType::Bool) {
                suffixes.push(format!("dtype=torch.{}", self.dtype()));
            }
            let values = match self.dtype() {
                DType::Bool => Values::Bool(self.to_vec::<bool>()),
                DType::I64 | DType::I32 | DType::I16 | DType::U8 => {
                    Values::Int(self.to_vec::<i64>())
                }
                _ => Values::Float(self.to_vec::<f64>()),
            };
            let summarize = self.numel() > THRESHOLD;
            let shown = shown_indices(self.shape(), summarize);
            let printer = Printer {
                fmt: Formatter::new(&values, &shown),
                values: &values,
                summarize,
            };
            printer.tensor(self.shape(), 0, indent)
        };
        if let Some(g) = self.grad_fn() {
            suffixes.push(format!("grad_fn=<{}>", g.name()));
        } else if self.requires_grad() {
            suffixes.push("requires_grad=True".to_string());
        }
        add_suffixes(format!("{prefix}{body}"), &suffixes, indent)
    }
}

impl fmt::Display for Tensor {
    /// Prints like PyTorch's `print(tensor)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr_string())
    }
}

impl fmt::Debug for Tensor {
    /// The same as `Display`, like PyTorch's `repr`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr_string())
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    fn s(t: &Tensor) -> String {
        format!("{t}")
    }

    #[test]
    fn floats_fixed_and_integer_valued() {
        assert_eq!(
            s(&Tensor::from([[1.0f32, 2.0], [3.0, 4.0]])),
            "tensor([[1., 2.],\n        [3., 4.]])"
        );
        assert_eq!(
            s(&Tensor::from([[1.0f32, 2.5], [3.0, 4.0]])),
            "tensor([[1.0000, 2.5000],\n        [3.0000, 4.0000]])"
        );
        assert_eq!(s(&Tensor::from([1.5f32, 2.25])), "tensor([1.5000, 2.2500])");
        assert_eq!(
            s(&Tensor::from([-1.5f32, 2.0])),
            "tensor([-1.5000,  2.0000])"
        );
        assert_eq!(s(&Tensor::from([0.1f32, 0.2])), "tensor([0.1000, 0.2000])");
        assert_eq!(s(&Tensor::zeros([2])), "tensor([0., 0.])");
        assert_eq!(s(&Tensor::from([-1.0f32, 10.0])), "tensor([-1., 10.])");
        assert_eq!(s(&Tensor::scalar(3.5f32)), "tensor(3.5000)");
        assert_eq!(s(&Tensor::scalar(3.0f32)), "tensor(3.)");
        assert_eq!(
            s(&Tensor::ones([2, 2, 2])),
            "tensor([[[1., 1.],\n         [1., 1.]],\n\n        [[1., 1.],\n         [1., 1.]]])"
        );
    }

    #[test]
    fn scientific_notation() {
        assert_eq!(
            s(&Tensor::from([1e-5f64, 1.0]).to_dtype(DType::F32)),
            "tensor([1.0000e-05, 1.0000e+00])"
        );
        assert_eq!(
            s(&Tensor::from([1e10f32, 1.0])),
            "tensor([1.0000e+10, 1.0000e+00])"
        );
        assert_eq!(
            s(&Tensor::from([123456.0f32, 1.5])),
            "tensor([1.2346e+05, 1.5000e+00])"
        );
    }

    #[test]
    fn non_finite_values() {
        assert_eq!(
            s(&Tensor::from([f32::NAN, 1.5])),
            "tensor([   nan, 1.5000])"
        );
        assert_eq!(
            s(&Tensor::from([f32::INFINITY, 1.0, f32::NEG_INFINITY])),
            "tensor([inf, 1., -inf])"
        );
    }

    #[test]
    fn ints_and_bools() {
        assert_eq!(s(&Tensor::from([1i64, 2, 3])), "tensor([1, 2, 3])");
        assert_eq!(s(&Tensor::from([-10i64, 2])), "tensor([-10,   2])");
        assert_eq!(s(&Tensor::from([true, false])), "tensor([ True, False])");
        assert_eq!(
            s(&Tensor::from([1u8, 2])),
            "tensor([1, 2], dtype=torch.uint8)"
        );
        assert_eq!(s(&Tensor::scalar(7i64)), "tensor(7)");
    }

    #[test]
    fn suffixes() {
        assert_eq!(
            s(&Tensor::from([1.0f64, 2.0])),
            "tensor([1., 2.], dtype=torch.float64)"
        );
        let x = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
        assert_eq!(s(&x), "tensor([1., 2.], requires_grad=True)");
        assert_eq!(s(&x.relu()), "tensor([1., 2.], grad_fn=<ReluBackward0>)");
        let y = Tensor::from([1.0f64]).requires_grad_(true);
        assert_eq!(
            s(&y),
            "tensor([1.], dtype=torch.float64, requires_grad=True)"
        );
        assert_eq!(format!("{:?}", x.detach()), "tensor([1., 2.])");
    }

    #[test]
    fn empty_tensors() {
        assert_eq!(s(&Tensor::zeros([0])), "tensor([])");
        assert_eq!(s(&Tensor::zeros([0, 3])), "tensor([], size=(0, 3))");
        assert_eq!(
            s(&Tensor::from(Vec::<i64>::new())),
            "tensor([], dtype=torch.int64)"
        );
    }

    #[test]
    fn line_wrapping() {
        let t = Tensor::arange(0.0, 30.0, 1.0);
        assert_eq!(
            s(&t),
            "tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29])"
        );
    }

    #[test]
    fn summarised_above_1000_elements() {
        assert_eq!(
            s(&Tensor::arange(0.0, 2000.0, 1.0)),
            "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])"
        );
        assert_eq!(
            s(&Tensor::arange_opts(0.0, 2000.0, 1.0, DType::F32)),
            "tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])"
        );
        let z = Tensor::zeros([100, 100]);
        let row = "[0., 0., 0.,  ..., 0., 0., 0.]";
        let expect = format!(
            "tensor([{row},\n        {row},\n        {row},\n        ...,\n        {row},\n        {row},\n        {row}])"
        );
        assert_eq!(s(&z), expect);
        // Exactly 1000 elements are printed in full.
        assert!(!s(&Tensor::zeros([1000])).contains("..."));
    }
}
