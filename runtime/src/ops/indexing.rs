//! Python-style indexing in one call: [`Tensor::i`] reads `x[idx]`,
//! [`Tensor::i_set`] writes `x[idx] = v` in place and [`Tensor::i_put`] is
//! the differentiable out-of-place write. An index is a list of
//! [`TensorIndex`] items, written with the [`s!`](crate::s) macro
//! (`s![.., 1..;2, -1, None, ...]`) or as a tuple (`(.., 1..3, -1)`).
//!
//! The rules are PyTorch's: integers select (negative from the end),
//! slices clamp their bounds to the dimension and take positive steps
//! (PyTorch refuses negative steps; [`Tensor::flip`] reverses), `None`
//! inserts a dimension, `...` stands for the dimensions not named, and one
//! int64 tensor (advanced indexing, negative entries allowed) or bool mask
//! (covering as many dimensions as it has) may appear once. Without a
//! tensor the result is a strided view sharing storage, differentiable;
//! with one it is a copy, differentiable too.

use crate::autograd::{self, is_grad_enabled};
use crate::layout::{Layout, broadcast_shapes};
use crate::{DType, Tensor, backend};
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// A slice `start:stop:step` of one dimension, Python's `slice`: bounds
/// may be negative (counted from the end) or omitted, and are clamped to
/// the dimension; `step` must be positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slice {
    /// First index taken (`None`: the start).
    pub start: Option<i64>,
    /// One past the last index taken (`None`: the end).
    pub stop: Option<i64>,
    /// Distance between taken indices (PyTorch: greater than zero).
    pub step: i64,
}

impl Slice {
    /// `start:stop:step`.
    pub fn new(start: Option<i64>, stop: Option<i64>, step: i64) -> Slice {
        Slice { start, stop, step }
    }

    /// The same slice with another step (what `s![a..b;step]` builds).
    pub fn step(self, step: i64) -> Slice {
        Slice { step, ..self }
    }

    /// `(start, length)` of the slice of a dimension of `size`, with
    /// Python's clamping. Panics on a step that is not positive.
    fn resolve(&self, op: &str, size: usize) -> (usize, usize) {
        if self.step == 0 {
            panic!("{op}: slice step cannot be zero");
        }
        if self.step < 0 {
            panic!(
                "{op}: step must be greater than zero (got {}; use flip to reverse)",
                self.step
            );
        }
        let n = size as i64;
        let clamp = |b: i64| if b < 0 { (b + n).max(0) } else { b.min(n) };
        let start = self.start.map_or(0, clamp);
        let stop = self.stop.map_or(n, clamp);
        let len = if stop > start {
            (stop - start + self.step - 1) / self.step
        } else {
            0
        };
        (start as usize, len as usize)
    }
}

/// One item of an index, like one entry of the tuple inside Python's
/// `x[...]`.
#[derive(Debug)]
pub enum TensorIndex<'a> {
    /// An integer: selects one index and removes the dimension (negative
    /// counts from the end).
    Select(i64),
    /// A slice of one dimension.
    Slice(Slice),
    /// `None`: inserts a dimension of size 1.
    NewAxis,
    /// `...`: as many full slices as the dimensions not otherwise named.
    Ellipsis,
    /// An int64 tensor (advanced indexing along one dimension; its shape
    /// replaces that dimension) or a bool mask (selects the positions where
    /// it is true over as many dimensions as it has).
    Tensor(&'a Tensor),
}

impl From<Slice> for TensorIndex<'_> {
    fn from(s: Slice) -> Self {
        TensorIndex::Slice(s)
    }
}

impl<'a> From<&'a Tensor> for TensorIndex<'a> {
    fn from(t: &'a Tensor) -> Self {
        TensorIndex::Tensor(t)
    }
}

impl From<RangeFull> for TensorIndex<'_> {
    fn from(_: RangeFull) -> Self {
        TensorIndex::Slice(Slice::new(None, None, 1))
    }
}

/// The exclusive stop of an inclusive end `b` (`..=-1` runs to the end).
fn inclusive_stop(b: i64) -> Option<i64> {
    (b != -1).then_some(b + 1)
}

macro_rules! integer_indices {
    ($($t:ty),*) => {$(
        impl From<$t> for TensorIndex<'_> {
            fn from(i: $t) -> Self {
                TensorIndex::Select(i as i64)
            }
        }
        impl From<Range<$t>> for TensorIndex<'_> {
            fn from(r: Range<$t>) -> Self {
                TensorIndex::Slice(Slice::new(Some(r.start as i64), Some(r.end as i64), 1))
            }
        }
        impl From<RangeFrom<$t>> for TensorIndex<'_> {
            fn from(r: RangeFrom<$t>) -> Self {
                TensorIndex::Slice(Slice::new(Some(r.start as i64), None, 1))
            }
        }
        impl From<RangeTo<$t>> for TensorIndex<'_> {
            fn from(r: RangeTo<$t>) -> Self {
                TensorIndex::Slice(Slice::new(None, Some(r.end as i64), 1))
            }
        }
        impl From<RangeInclusive<$t>> for TensorIndex<'_> {
            fn from(r: RangeInclusive<$t>) -> Self {
                let (a, b) = r.into_inner();
                TensorIndex::Slice(Slice::new(Some(a as i64), inclusive_stop(b as i64), 1))
            }
        }
        impl From<RangeToInclusive<$t>> for TensorIndex<'_> {
            fn from(r: RangeToInclusive<$t>) -> Self {
                TensorIndex::Slice(Slice::new(None, inclusive_stop(r.end as i64), 1))
            }
        }
        single_index!($t, Range<$t>, RangeFrom<$t>, RangeTo<$t>, RangeInclusive<$t>, RangeToInclusive<$t>);
    )*};
}

/// Anything [`Tensor::i`] accepts: one item (an integer, a range, `..`, a
/// [`Slice`], a tensor), a tuple of items, or the list [`s!`](crate::s)
/// builds.
pub trait IntoIndex<'a> {
    /// The index as a list of items.
    fn into_index(self) -> Vec<TensorIndex<'a>>;
}

/// `IntoIndex` for types that are one index item.
macro_rules! single_index {
    ($($t:ty),*) => {$(
        impl<'a> IntoIndex<'a> for $t {
            fn into_index(self) -> Vec<TensorIndex<'a>> {
                vec![self.into()]
            }
        }
    )*};
}

integer_indices!(i32, i64, isize, usize, u32);
single_index!(Slice, RangeFull);

impl<'a> IntoIndex<'a> for Vec<TensorIndex<'a>> {
    fn into_index(self) -> Vec<TensorIndex<'a>> {
        self
    }
}

impl<'a> IntoIndex<'a> for TensorIndex<'a> {
    fn into_index(self) -> Vec<TensorIndex<'a>> {
        vec![self]
    }
}

impl<'a> IntoIndex<'a> for &'a Tensor {
    fn into_index(self) -> Vec<TensorIndex<'a>> {
        vec![self.into()]
    }
}

macro_rules! tuple_indices {
    ($(($($t:ident),+))*) => {$(
        impl<'a, $($t: Into<TensorIndex<'a>>),+> IntoIndex<'a> for ($($t,)+) {
            #[allow(non_snake_case)]
            fn into_index(self) -> Vec<TensorIndex<'a>> {
                let ($($t,)+) = self;
                vec![$($t.into()),+]
            }
        }
    )*};
}

tuple_indices! {
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
    (A, B, C, D, E, F, G, H)
}

/// Builds an index for [`Tensor::i`], [`Tensor::i_set`] and
/// [`Tensor::i_put`] with Python's slice syntax: items separated by
/// commas, each an integer (`-1` is the last), a range (`1..3`, `2..`,
/// `..4`, `..=-2`, `..`), a range with a step after `;` (`..;2`, `1..;3`,
/// like Python's `1::3`), `None` (a new axis), `...` (Ellipsis) or a
/// tensor (`&idx`, int64 or a bool mask). Negative range ends work as in
/// Python (`1..-1` is `1:-1`).
///
/// ```
/// use kiln_runtime::{Tensor, s};
/// let x = Tensor::arange(0.0, 24.0, 1.0).reshape(&[2, 3, 4]);
/// // x[:, 1:, ::2]
/// assert_eq!(x.i(s![.., 1.., ..;2]).to_vec::<f32>(), [4.0, 6.0, 8.0, 10.0, 16.0, 18.0, 20.0, 22.0]);
/// // x[..., -1, None]
/// assert_eq!(x.i(s![..., -1, None]).shape(), [2, 3, 1]);
/// ```
#[macro_export]
macro_rules! s {
    (@acc [$($acc:expr,)*]) => {{
        let index: ::std::vec::Vec<$crate::TensorIndex<'_>> = ::std::vec![$($acc),*];
        index
    }};
    (@acc [$($acc:expr,)*] ... $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($acc,)* $crate::TensorIndex::Ellipsis,] $($($rest)*)?)
    };
    (@acc [$($acc:expr,)*] None $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($acc,)* $crate::TensorIndex::NewAxis,] $($($rest)*)?)
    };
    // Python's `1:-1` is `1..-1`, which clippy's `reversed_empty_ranges`
    // would reject as an empty Rust range.
    (@acc [$($acc:expr,)*] $e:expr ; $step:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($acc,)* {
            #[allow(clippy::reversed_empty_ranges)]
            let item = $crate::__stepped($e, $step);
            item
        },] $($($rest)*)?)
    };
    (@acc [$($acc:expr,)*] $e:expr $(, $($rest:tt)*)?) => {
        $crate::s!(@acc [$($acc,)* {
            #[allow(clippy::reversed_empty_ranges)]
            let item = $crate::TensorIndex::from($e);
            item
        },] $($($rest)*)?)
    };
    ($($t:tt)*) => {
        $crate::s!(@acc [] $($t)*)
    };
}

/// `range;step` in [`s!`]: the range as a slice with that step.
#[doc(hidden)]
pub fn __stepped<'a>(range: impl Into<TensorIndex<'a>>, step: i64) -> TensorIndex<'a> {
    match range.into() {
        TensorIndex::Slice(s) => TensorIndex::Slice(s.step(step)),
        other => panic!("s!: a step (`;{step}`) needs a range before it, got {other:?}"),
    }
}

/// The one advanced (tensor) item of an index, at dimension `pos` of the
/// basic view (an int64 index covers one dimension there, a mask as many
/// as it has).
struct Advanced {
    pos: usize,
    kind: AdvancedKind,
}

enum AdvancedKind {
    /// Int64 entries, normalised into `0..size`, with the index's shape.
    Ints { values: Vec<i64>, shape: Vec<usize> },
    /// A bool mask over `mask.dim()` dimensions (a handle of its own on
    /// the mask's storage, or a converted copy).
    Mask(Tensor),
}

/// What an index does to a tensor: the basic (view) part as a layout
/// rewrite, and the advanced part if any.
struct Plan {
    items: Vec<Item>,
    advanced: Option<Advanced>,
    /// The PyTorch name of the last view op (for `grad_fn`).
    name: &'static str,
}

/// A basic index item resolved against the shape.
#[derive(Clone, Copy)]
enum Item {
    Select(usize),
    Slice {
        start: usize,
        len: usize,
        step: usize,
    },
    NewAxis,
    Skip(usize),
}

fn is_mask(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::Bool | DType::U8)
}

impl Plan {
    fn new(op: &'static str, shape: &[usize], index: Vec<TensorIndex<'_>>) -> Plan {
        let rank = shape.len();
        let consumed: usize = index
            .iter()
            .map(|it| match it {
                TensorIndex::Select(_) | TensorIndex::Slice(_) => 1,
                TensorIndex::Tensor(t) if is_mask(t) => t.dim(),
                TensorIndex::Tensor(_) => 1,
                TensorIndex::NewAxis | TensorIndex::Ellipsis => 0,
            })
            .sum();
        if consumed > rank {
            panic!("{op}: too many indices for tensor of dimension {rank} (shape {shape:?})");
        }
        let mut items = Vec::new();
        let mut advanced = None;
        let mut name = "AliasBackward0";
        let mut seen_ellipsis = false;
        // `d`: the input dimension the next item indexes; `o`: the
        // dimension of the result so far it lands on (PyTorch's error
        // texts count those).
        let (mut d, mut o) = (0usize, 0usize);
        for it in index {
            match it {
                TensorIndex::Select(i) => {
                    items.push(Item::Select(normalize_index(op, i, shape[d], o)));
                    name = "SelectBackward0";
                    d += 1;
                }
                TensorIndex::Slice(s) => {
                    let (start, len) = s.resolve(op, shape[d]);
                    items.push(Item::Slice {
                        start,
                        len,
                        step: s.step as usize,
                    });
                    name = "SliceBackward0";
                    d += 1;
                    o += 1;
                }
                TensorIndex::NewAxis => {
                    items.push(Item::NewAxis);
                    name = "UnsqueezeBackward0";
                    o += 1;
                }
                TensorIndex::Ellipsis => {
                    // Only the first `...` expands, as in PyTorch.
                    if !seen_ellipsis {
                        let n = rank - consumed;
                        items.push(Item::Skip(n));
                        d += n;
                        o += n;
                        seen_ellipsis = true;
                    }
                }
                TensorIndex::Tensor(t) => {
                    if advanced.is_some() {
                        panic!(
                            "{op}: only one tensor index per call is supported (shape {shape:?}); index the result again, or use index_select / gather"
                        );
                    }
                    if is_mask(t) {
                        let k = t.dim();
                        if t.shape() != &shape[d..d + k] {
                            panic!(
                                "{op}: The shape of the mask {:?} at index {d} does not match the shape of the indexed tensor {:?} at index {d}",
                                t.shape(),
                                &shape[d..]
                            );
                        }
                        // `detach`: a handle of its own on the mask's storage.
                        let mask = if t.dtype() == DType::Bool {
                            t.detach()
                        } else {
                            t.to_dtype(DType::Bool)
                        };
                        let mask = if k == 0 {
                            // `x[True]`: a new axis of size 1, masked.
                            items.push(Item::NewAxis);
                            mask.reshape_to(&[1])
                        } else {
                            items.push(Item::Skip(k));
                            mask
                        };
                        advanced = Some(Advanced {
                            pos: o,
                            kind: AdvancedKind::Mask(mask),
                        });
                        d += k;
                        o += 1;
                    } else if t.dim() == 0 && t.dtype() == DType::I64 {
                        // A 0-d integer tensor selects, as an integer does.
                        let i = t.to_vec::<i64>()[0];
                        items.push(Item::Select(normalize_index(op, i, shape[d], o)));
                        name = "SelectBackward0";
                        d += 1;
                    } else {
                        if t.dtype() != DType::I64 {
                            panic!(
                                "{op}: tensors used as indices must be long or bool tensors, got {} (shape {:?})",
                                t.dtype(),
                                t.shape()
                            );
                        }
                        let size = shape[d] as i64;
                        let values = t
                            .to_vec::<i64>()
                            .into_iter()
                            .map(|v| {
                                if v < -size || v >= size {
                                    panic!(
                                        "{op}: index {v} is out of bounds for dimension 0 with size {size} (an index tensor into dimension {d} of shape {shape:?})"
                                    );
                                }
                                if v < 0 { v + size } else { v }
                            })
                            .collect();
                        items.push(Item::Skip(1));
                        advanced = Some(Advanced {
                            pos: o,
                            kind: AdvancedKind::Ints {
                                values,
                                shape: t.shape().to_vec(),
                            },
                        });
                        d += 1;
                        o += 1;
                    }
                }
            }
        }
        Plan {
            items,
            advanced,
            name,
        }
    }

    /// `base` with the basic items applied: the layout of the view.
    fn view_layout(&self, base: &Layout) -> Layout {
        let mut shape = base.shape().to_vec();
        let mut strides = base.strides().to_vec();
        let mut offset = base.offset();
        let mut o = 0;
        for item in &self.items {
            match *item {
                Item::Select(i) => {
                    offset += i * strides[o];
                    shape.remove(o);
                    strides.remove(o);
                }
                Item::Slice { start, len, step } => {
                    if len > 0 {
                        offset += start * strides[o];
                    }
                    shape[o] = len;
                    strides[o] *= step;
                    o += 1;
                }
                Item::NewAxis => {
                    let stride = if o < shape.len() {
                        strides[o] * shape[o]
                    } else {
                        1
                    };
                    shape.insert(o, 1);
                    strides.insert(o, stride);
                    o += 1;
                }
                Item::Skip(n) => o += n,
            }
        }
        Layout::new(shape, strides, offset)
    }
}

/// `i` (negative from the end) as an index into a dimension of `size`,
/// panicking with PyTorch's text (`dim`: the result dimension it lands on).
fn normalize_index(op: &str, i: i64, size: usize, dim: usize) -> usize {
    let n = size as i64;
    if i < -n || i >= n {
        panic!("{op}: index {i} is out of bounds for dimension {dim} with size {size}");
    }
    (if i < 0 { i + n } else { i }) as usize
}

/// `view`'s advanced step with the dims it leaves: the shape of
/// `view.shape[..pos] ++ middle ++ view.shape[pos + k..]`.
fn splice(shape: &[usize], pos: usize, k: usize, middle: &[usize]) -> Vec<usize> {
    let mut out = shape[..pos].to_vec();
    out.extend_from_slice(middle);
    out.extend_from_slice(&shape[pos + k..]);
    out
}

/// `mask` (over dims `pos..pos + mask.dim()` of `shape`) reshaped with
/// size-1 dims around it, broadcastable to `shape`.
fn mask_for(mask: &Tensor, shape: &[usize], pos: usize) -> Tensor {
    let k = mask.dim();
    let mut s = vec![1; pos];
    s.extend_from_slice(mask.shape());
    s.extend(std::iter::repeat_n(1, shape.len() - pos - k));
    mask.reshape_to(&s)
}

/// A value written by [`Tensor::i_set`] / [`Tensor::i_put`]: a tensor
/// (broadcast to the indexed result) or a scalar.
pub trait IndexValue {
    /// The value as a tensor or a number.
    fn index_value(&self) -> SetValue<'_>;
}

/// What an [`IndexValue`] is.
#[derive(Debug)]
pub enum SetValue<'v> {
    /// A tensor, broadcast to the indexed result and converted to the
    /// written tensor's dtype.
    Tensor(&'v Tensor),
    /// A number, converted to the written tensor's dtype.
    Scalar(f64),
}

impl IndexValue for &Tensor {
    fn index_value(&self) -> SetValue<'_> {
        SetValue::Tensor(self)
    }
}

impl IndexValue for Tensor {
    fn index_value(&self) -> SetValue<'_> {
        SetValue::Tensor(self)
    }
}

macro_rules! scalar_values {
    ($($t:ty),*) => {$(
        impl IndexValue for $t {
            fn index_value(&self) -> SetValue<'_> {
                SetValue::Scalar(*self as f64)
            }
        }
    )*};
}

scalar_values!(f64, f32, i64, i32);

impl IndexValue for bool {
    fn index_value(&self) -> SetValue<'_> {
        SetValue::Scalar(*self as u8 as f64)
    }
}

/// `value` shaped to be written into a region of `shape`: leading size-1
/// dims beyond `shape`'s rank dropped (PyTorch allows `x[0] = v[None]`),
/// then checked to broadcast. Panics with PyTorch's texts.
fn fit_value(op: &str, value: &Tensor, shape: &[usize], advanced: bool) -> Tensor {
    let mut v = value.detach();
    while v.dim() > shape.len() && v.shape()[0] == 1 {
        v = v.squeeze_dim(0);
    }
    if let Some(b) = broadcast_shapes(v.shape(), shape)
        && b == shape
    {
        return v;
    }
    if advanced || v.dim() > shape.len() {
        panic!(
            "{op}: shape mismatch: value tensor of shape {:?} cannot be broadcast to indexing result of shape {shape:?}",
            value.shape()
        );
    }
    // Expand's text names the right-most clashing dimension.
    let extra = shape.len() - v.dim();
    let k = (0..v.dim())
        .rev()
        .find(|&k| v.shape()[k] != 1 && v.shape()[k] != shape[extra + k])
        .expect("a clash exists");
    panic!(
        "{op}: The expanded size of the tensor ({}) must match the existing size ({}) at non-singleton dimension {}.  Target sizes: {shape:?}.  Tensor sizes: {:?}",
        shape[extra + k],
        v.shape()[k],
        extra + k,
        value.shape()
    );
}

/// The view of `x` through `rel`, a strided layout relative to a
/// contiguous tensor of `x`'s shape (`x` is made contiguous first): the
/// backward of [`strided_scatter`], so that gradients through a basic
/// index can be differentiated again.
fn strided_view(x: &Tensor, rel: &Layout, name: &'static str) -> Tensor {
    let c = x.contiguous();
    let l = Layout::new(
        rel.shape().to_vec(),
        rel.strides().to_vec(),
        rel.offset() + c.layout().offset(),
    );
    let out = c.view_with_layout(l);
    let in_shape = c.shape().to_vec();
    let rel = rel.clone();
    Tensor::from_op(out, name, &[&c], move |g, _| {
        vec![Some(strided_scatter(g, &in_shape, &rel, name))]
    })
}

/// Zeros of `in_shape` with `g` written through `rel`: the gradient of a
/// strided view, itself differentiable (its backward is the view).
fn strided_scatter(g: &Tensor, in_shape: &[usize], rel: &Layout, name: &'static str) -> Tensor {
    let z = Tensor::zeros_opts(in_shape, (g.dtype(), &g.device()));
    autograd::no_grad(|| z.view_with_layout(rel.clone()).copy_(g));
    let rel = rel.clone();
    Tensor::from_op(z, "AsStridedScatterBackward0", &[g], move |gg, _| {
        vec![Some(strided_view(gg, &rel, name))]
    })
}

impl Tensor {
    /// `x[index]` with Python's rules (see [`s!`](crate::s)): a strided
    /// view sharing storage for integers, slices, `None` and `...`; a copy
    /// when the index holds a tensor (int64 entries along one dimension,
    /// or a bool mask). Differentiable either way; out-of-range indices
    /// panic with PyTorch's `IndexError` texts.
    ///
    /// ```
    /// use kiln_runtime::{Tensor, s};
    /// let x = Tensor::arange(0.0, 12.0, 1.0).reshape(&[3, 4]);
    /// assert_eq!(x.i((1, 1..3)).to_vec::<f32>(), [5.0, 6.0]); // x[1, 1:3]
    /// assert_eq!(x.i(s![-1, ..;2]).to_vec::<f32>(), [8.0, 10.0]); // x[-1, ::2]
    /// assert!(x.i((.., 1..)).shares_storage_with(&x));
    /// let rows = Tensor::from([2i64, 0]);
    /// assert_eq!(x.i((&rows, 0)).to_vec::<f32>(), [8.0, 0.0]); // x[[2, 0], 0]
    /// let mask = x.gt_scalar(9.0);
    /// assert_eq!(x.i(&mask).to_vec::<f32>(), [10.0, 11.0]); // x[x > 9]
    /// ```
    pub fn i<'a>(&self, index: impl IntoIndex<'a>) -> Tensor {
        let op = "i";
        let plan = Plan::new(op, self.shape(), index.into_index());
        let rel = plan.view_layout(&Layout::contiguous(self.shape()));
        let out = self.view_with_layout(plan.view_layout(self.layout()));
        let in_shape = self.shape().to_vec();
        let name = plan.name;
        let view = Tensor::from_op(out, name, &[self], move |g, _| {
            vec![Some(strided_scatter(g, &in_shape, &rel, name))]
        });
        match &plan.advanced {
            None => view,
            Some(adv) => advanced_read(&view, adv),
        }
    }

    /// `x[index] = value` in place: writes `value` (a tensor broadcast to
    /// the indexed region, or a scalar) through the view into this tensor's
    /// storage, so every view sees it, like PyTorch's `__setitem__`. As
    /// kiln's other in-place ops, it records no autograd history and
    /// refuses, while grad mode is on, a tensor that requires grad or a
    /// value that does; [`Tensor::i_put`] is the differentiable form.
    /// Repeated entries of an int64 index write in order (the last wins).
    ///
    /// ```
    /// use kiln_runtime::{Tensor, s};
    /// let x = Tensor::zeros([3, 4]);
    /// x.i_set(s![1.., ..;2], 5.0); // x[1:, ::2] = 5
    /// x.i_set((0, ..), &Tensor::from([1.0f32, 2.0, 3.0, 4.0])); // x[0, :] = v
    /// assert_eq!(x.to_vec::<f32>(), [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 5.0, 0.0, 5.0, 0.0, 5.0, 0.0]);
    /// let mask = x.gt_scalar(4.0);
    /// x.i_set(&mask, -1.0); // x[x > 4] = -1
    /// assert_eq!(x.i(0).to_vec::<f32>(), [1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(x.i(1).to_vec::<f32>(), [-1.0, 0.0, -1.0, 0.0]);
    /// ```
    pub fn i_set<'a>(&self, index: impl IntoIndex<'a>, value: impl IndexValue) {
        let op = "i_set";
        super::inplace::check_inplace(op, self);
        let value = value.index_value();
        if let SetValue::Tensor(v) = &value
            && is_grad_enabled()
            && v.requires_grad()
        {
            panic!(
                "{op}: the value (shape {:?}) requires grad, but in-place assignment records no autograd history; use i_put for a differentiable write",
                v.shape()
            );
        }
        let plan = Plan::new(op, self.shape(), index.into_index());
        let view = self.view_with_layout(plan.view_layout(self.layout()));
        autograd::no_grad(|| write(op, &view, plan.advanced.as_ref(), &value));
    }

    /// `x[index] = value` out of place and differentiable: a copy of this
    /// tensor with `value` written where [`Tensor::i_set`] would write it.
    /// The gradient reaches `self` everywhere but the written region and
    /// `value` from the written region, like PyTorch's autograd through
    /// `__setitem__` (`CopySlices`) and `index_put`.
    ///
    /// ```
    /// use kiln_runtime::{Tensor, s};
    /// let x = Tensor::ones([2, 3]).requires_grad_(true);
    /// let v = Tensor::from([2.0f32, 3.0]).requires_grad_(true);
    /// let y = x.i_put(s![.., 1], &v); // y = x.clone(); y[:, 1] = v
    /// (&y * &y).sum().backward();
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>(), [2.0, 0.0, 2.0, 2.0, 0.0, 2.0]);
    /// assert_eq!(v.grad().unwrap().to_vec::<f32>(), [4.0, 6.0]);
    /// ```
    pub fn i_put<'a>(&self, index: impl IntoIndex<'a>, value: impl IndexValue) -> Tensor {
        let op = "i_put";
        let value = value.index_value();
        let plan = Plan::new(op, self.shape(), index.into_index());
        let out = self.deep_copy();
        let view = out.view_with_layout(plan.view_layout(out.layout()));
        autograd::no_grad(|| write(op, &view, plan.advanced.as_ref(), &value));
        let rel = plan.view_layout(&Layout::contiguous(self.shape()));
        let adv = plan.advanced;
        let (inputs, value_shape, value_dtype): (Vec<&Tensor>, _, _) = match &value {
            SetValue::Tensor(v) => (vec![self, *v], v.shape().to_vec(), v.dtype()),
            SetValue::Scalar(_) => (vec![self], Vec::new(), self.dtype()),
        };
        let has_value = inputs.len() == 2;
        Tensor::from_op(out, "IndexPutBackward0", &inputs, move |g, need| {
            let gs = need[0].then(|| zero_written(g, &rel, adv.as_ref()));
            let gv = need.get(1).copied().unwrap_or(false).then(|| {
                let region = strided_view(g, &rel, "AsStridedBackward0");
                let region = match &adv {
                    None => region,
                    Some(a) => advanced_read(&region, a),
                };
                reduce_to(&region, &value_shape).to_dtype(value_dtype)
            });
            if has_value { vec![gs, gv] } else { vec![gs] }
        })
    }

    /// Fills the positions where `mask` (bool, broadcastable to this
    /// tensor) is true with `value`, in place, like `tensor.masked_fill_`.
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::from([1.0f32, -2.0, 3.0]);
    /// x.masked_fill_(&x.lt_scalar(0.0), 0.0);
    /// assert_eq!(x.to_vec::<f32>(), [1.0, 0.0, 3.0]);
    /// ```
    pub fn masked_fill_(&self, mask: &Tensor, value: f64) {
        let op = "masked_fill_";
        let record = super::inplace::begin_inplace(op, self, &[]);
        let filled = autograd::no_grad(|| self.masked_fill(mask, value));
        autograd::no_grad(|| self.copy_(&filled));
        if record {
            // MaskedFillBackward0: the filled positions get no gradient.
            let mask = mask.detach();
            super::inplace::rebase_history(
                self,
                "MaskedFillBackward0",
                &[],
                &[],
                move |g, need| {
                    let zero = Tensor::zeros_opts([], (g.dtype(), &g.device()));
                    vec![need[0].then(|| Tensor::where_cond(&mask, &zero, g))]
                },
            );
        }
    }
}

/// The zero gradient of the overwritten region: `g` (the gradient of the
/// written tensor) with the region `i_put` wrote set to zero,
/// differentiable in `g`.
fn zero_written(g: &Tensor, rel: &Layout, adv: Option<&Advanced>) -> Tensor {
    let written = autograd::no_grad(|| {
        let z = Tensor::zeros_opts(g.shape(), (g.dtype(), &g.device()));
        let view = z.view_with_layout(rel_on(rel, z.layout()));
        write("i_put", &view, adv, &SetValue::Scalar(1.0));
        z.to_dtype(DType::Bool)
    });
    let zero = Tensor::zeros_opts([], (g.dtype(), &g.device()));
    Tensor::where_cond(&written, &zero, g)
}

/// `rel` (a layout relative to a contiguous tensor) over `base`, a
/// contiguous layout with an offset.
fn rel_on(rel: &Layout, base: &Layout) -> Layout {
    Layout::new(
        rel.shape().to_vec(),
        rel.strides().to_vec(),
        rel.offset() + base.offset(),
    )
}

/// Sums `g` (the indexed region's gradient) back to the value's shape.
fn reduce_to(g: &Tensor, shape: &[usize]) -> Tensor {
    if shape.len() >= g.dim() {
        // Leading size-1 dims were dropped when the value was written.
        let lead = shape.len() - g.dim();
        let inner = g.sum_to(&shape[lead..]);
        return inner.reshape_to(shape);
    }
    g.sum_to(shape)
}

/// The advanced step of [`Tensor::i`] on the basic view.
fn advanced_read(view: &Tensor, adv: &Advanced) -> Tensor {
    let pos = adv.pos;
    match &adv.kind {
        AdvancedKind::Ints { values, shape } => {
            let idx = Tensor::from_vec(values.clone(), [values.len()]).to_device(view.device());
            let out = view.index_select(pos as isize, &idx);
            out.reshape_to(&splice(view.shape(), pos, 1, shape))
        }
        AdvancedKind::Mask(mask) => {
            let k = mask.dim();
            let m = mask_for(mask, view.shape(), pos).to_device(view.device());
            let out = view.masked_select(&m);
            let outer: usize = view.shape()[..pos].iter().product::<usize>()
                * view.shape()[pos + k..].iter().product::<usize>();
            let n = out
                .numel()
                .checked_div(outer)
                .unwrap_or_else(|| count_true(mask));
            out.reshape_to(&splice(view.shape(), pos, k, &[n]))
        }
    }
}

fn count_true(mask: &Tensor) -> usize {
    mask.to_vec::<bool>().into_iter().filter(|b| *b).count()
}

/// Writes `value` into `view` (a view of the written tensor, already
/// narrowed by the basic items) at the advanced item, if any.
fn write(op: &str, view: &Tensor, adv: Option<&Advanced>, value: &SetValue<'_>) {
    let Some(adv) = adv else {
        match value {
            SetValue::Scalar(v) => view.fill_(*v),
            SetValue::Tensor(t) => view.copy_(&fit_value(op, t, view.shape(), false)),
        }
        return;
    };
    let pos = adv.pos;
    match &adv.kind {
        AdvancedKind::Ints { values, shape } => {
            let region = splice(view.shape(), pos, 1, shape);
            let src = match value {
                SetValue::Tensor(t) => {
                    let v = fit_value(op, t, &region, true).expand(&region);
                    Some(v.reshape_to(&splice(view.shape(), pos, 1, &[values.len()])))
                }
                SetValue::Scalar(_) => None,
            };
            for (j, &i) in values.iter().enumerate() {
                let dst = view.view_with_layout(view.layout().select(pos, i as usize));
                match (&src, value) {
                    (Some(s), _) => dst.copy_(&s.view_with_layout(s.layout().select(pos, j))),
                    (None, SetValue::Scalar(v)) => dst.fill_(*v),
                    (None, SetValue::Tensor(_)) => unreachable!("tensor values have a source"),
                }
            }
        }
        AdvancedKind::Mask(mask) => {
            let k = mask.dim();
            let m = mask_for(mask, view.shape(), pos).to_device(view.device());
            let filled = match value {
                SetValue::Scalar(v) => view.masked_fill(&m, *v),
                SetValue::Tensor(t) => {
                    let region = splice(view.shape(), pos, k, &[count_true(mask)]);
                    let flat = fit_value(op, t, &region, true)
                        .to_dtype(view.dtype())
                        .expand(&region)
                        .contiguous();
                    let full = m.expand(view.shape()).contiguous();
                    let scattered = backend::of(view.device()).masked_scatter(&flat, &full);
                    Tensor::where_cond(&full, &scattered, view)
                }
            };
            view.copy_(&filled);
        }
    }
}
