//! Tensor creation: from data, constant fills, ranges and random samples.

use super::Tensor;
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::rng::{self, Generator, with_generator};
use crate::storage::CpuStorage;

/// Anything that names a shape: `[2, 3]`, `&[2, 3][..]`, `vec![2, 3]`.
pub trait IntoDims {
    /// The dimensions.
    fn into_dims(self) -> Vec<usize>;
}

impl<const N: usize> IntoDims for [usize; N] {
    fn into_dims(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl IntoDims for &[usize] {
    fn into_dims(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl IntoDims for Vec<usize> {
    fn into_dims(self) -> Vec<usize> {
        self
    }
}
impl IntoDims for &Vec<usize> {
    fn into_dims(self) -> Vec<usize> {
        self.clone()
    }
}

/// dtype and device for a new tensor, like PyTorch's `dtype=`/`device=`
/// keyword arguments. Defaults to `float32` on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TensorOptions {
    /// Element type.
    pub dtype: Option<DType>,
    /// Device.
    pub device: Device,
}

impl TensorOptions {
    /// Sets the dtype.
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Sets the device.
    pub fn device(mut self, device: &Device) -> Self {
        self.device = *device;
        self
    }

    fn dtype_or_f32(&self) -> DType {
        self.dtype.unwrap_or(DType::F32)
    }
}

impl From<DType> for TensorOptions {
    fn from(dtype: DType) -> Self {
        TensorOptions::default().dtype(dtype)
    }
}
impl From<&Device> for TensorOptions {
    fn from(d: &Device) -> Self {
        TensorOptions::default().device(d)
    }
}
impl From<Device> for TensorOptions {
    fn from(d: Device) -> Self {
        TensorOptions::default().device(&d)
    }
}
impl From<(DType, &Device)> for TensorOptions {
    fn from((t, d): (DType, &Device)) -> Self {
        TensorOptions::default().dtype(t).device(d)
    }
}

fn place(t: Tensor, device: Device) -> Tensor {
    t.to_device(device)
}

impl Tensor {
    /// A tensor owning `data` with `shape`; panics if the sizes differ.
    ///
    /// ```
    /// let t = kiln_runtime::Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]);
    /// assert_eq!(t.shape(), &[2, 2]);
    /// ```
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl IntoDims) -> Tensor {
        let shape = shape.into_dims();
        let n: usize = shape.iter().product();
        if n != data.len() {
            panic!(
                "from_vec: shape {shape:?} needs {n} elements but {} were given",
                data.len()
            );
        }
        Tensor::from_cpu(T::into_storage(data), &shape)
    }

    /// A tensor copying `data` with `shape`.
    pub fn from_slice<T: Element>(data: &[T], shape: impl IntoDims) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape)
    }

    /// A 0-dimensional tensor holding `value`, like `torch.tensor(3.0)`.
    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor::from_vec(vec![value], [])
    }

    /// A tensor of `shape` filled with `value`, in `opts`' dtype and device.
    pub fn full_opts(shape: impl IntoDims, value: f64, opts: impl Into<TensorOptions>) -> Tensor {
        let opts = opts.into();
        let shape = shape.into_dims();
        if opts.device != Device::Cpu && cfg!(feature = "cuda") {
            // Filled on the device: no host buffer, no copy.
            let dtype = opts.dtype_or_f32();
            return crate::backend::of(opts.device).full(&shape, value, dtype, opts.device);
        }
        let n = shape.iter().product();
        place(
            Tensor::from_cpu(CpuStorage::full(opts.dtype_or_f32(), n, value), &shape),
            opts.device,
        )
    }

    /// A float32 CPU tensor of `shape` filled with `value`, like `torch.full`.
    pub fn full(shape: impl IntoDims, value: f64) -> Tensor {
        Tensor::full_opts(shape, value, TensorOptions::default())
    }

    /// Zeros (float32, CPU), like `torch.zeros`.
    pub fn zeros(shape: impl IntoDims) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    /// Zeros with a dtype and device.
    pub fn zeros_opts(shape: impl IntoDims, opts: impl Into<TensorOptions>) -> Tensor {
        Tensor::full_opts(shape, 0.0, opts)
    }

    /// Ones (float32, CPU), like `torch.ones`.
    pub fn ones(shape: impl IntoDims) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    /// Ones with a dtype and device.
    pub fn ones_opts(shape: impl IntoDims, opts: impl Into<TensorOptions>) -> Tensor {
        Tensor::full_opts(shape, 1.0, opts)
    }

    fn like_opts(&self) -> TensorOptions {
        TensorOptions::default()
            .dtype(self.dtype())
            .device(&self.device())
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Tensor {
        Tensor::full_opts(self.shape(), 0.0, self.like_opts())
    }

    /// A 0-d tensor holding `value` in this tensor's dtype, on its device:
    /// the scalar operand of ops like `mul_scalar_` and `f64 * tensor`.
    pub(crate) fn scalar_like(&self, value: f64) -> Tensor {
        if self.device() != Device::Cpu {
            return Tensor::full_opts([], value, self.like_opts());
        }
        Tensor::scalar(value).to_dtype(self.dtype())
    }

    /// A 0-d float64 tensor holding `value` on this tensor's device: the
    /// exact right-hand side of comparisons with a scalar.
    pub(crate) fn f64_scalar_like(&self, value: f64) -> Tensor {
        if self.device() != Device::Cpu {
            return Tensor::full_opts([], value, (DType::F64, &self.device()));
        }
        Tensor::scalar(value)
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Tensor {
        Tensor::full_opts(self.shape(), 1.0, self.like_opts())
    }

    /// `value` everywhere, with this tensor's shape, dtype and device.
    pub fn full_like(&self, value: f64) -> Tensor {
        Tensor::full_opts(self.shape(), value, self.like_opts())
    }

    /// Uniform `[0, 1)` samples with this tensor's shape, dtype and device.
    pub fn rand_like(&self) -> Tensor {
        Tensor::rand_opts(self.shape(), self.like_opts())
    }

    /// Standard normal samples with this tensor's shape, dtype and device.
    pub fn randn_like(&self) -> Tensor {
        Tensor::randn_opts(self.shape(), self.like_opts())
    }

    /// The `n × n` identity matrix (float32, CPU), like `torch.eye`.
    pub fn eye(n: usize) -> Tensor {
        Tensor::eye_opts(n, TensorOptions::default())
    }

    /// The identity matrix with a dtype and device.
    pub fn eye_opts(n: usize, opts: impl Into<TensorOptions>) -> Tensor {
        let opts = opts.into();
        let mut v = vec![0.0f64; n * n];
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
        place(
            Tensor::from_vec(v, [n, n]).to_dtype(opts.dtype_or_f32()),
            opts.device,
        )
    }

    /// `start, start+step, ...` below `end`, like `torch.arange`. The dtype
    /// is int64 when all three are whole numbers, else float32 (PyTorch's
    /// rule); use [`Tensor::arange_opts`] to choose.
    pub fn arange(start: f64, end: f64, step: f64) -> Tensor {
        let whole = [start, end, step].iter().all(|v| v.fract() == 0.0);
        let dtype = if whole { DType::I64 } else { DType::F32 };
        Tensor::arange_opts(start, end, step, dtype)
    }

    /// `arange` with an explicit dtype and device.
    pub fn arange_opts(start: f64, end: f64, step: f64, opts: impl Into<TensorOptions>) -> Tensor {
        let opts = opts.into();
        assert!(step != 0.0, "arange: step must be nonzero");
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        place(
            Tensor::from_vec(v, [n]).to_dtype(opts.dtype_or_f32()),
            opts.device,
        )
    }

    /// `steps` evenly spaced values from `start` to `end` inclusive
    /// (float32), like `torch.linspace`.
    pub fn linspace(start: f64, end: f64, steps: usize) -> Tensor {
        Tensor::linspace_opts(start, end, steps, TensorOptions::default())
    }

    /// `linspace` with a dtype and device.
    pub fn linspace_opts(
        start: f64,
        end: f64,
        steps: usize,
        opts: impl Into<TensorOptions>,
    ) -> Tensor {
        let opts = opts.into();
        let v: Vec<f64> = match steps {
            0 => vec![],
            1 => vec![start],
            _ => {
                let step = (end - start) / (steps - 1) as f64;
                // Fill from both ends like PyTorch, so the last value is exact.
                (0..steps)
                    .map(|i| {
                        if i < steps / 2 {
                            start + step * i as f64
                        } else {
                            end - step * (steps - 1 - i) as f64
                        }
                    })
                    .collect()
            }
        };
        place(
            Tensor::from_vec(v, [steps]).to_dtype(opts.dtype_or_f32()),
            opts.device,
        )
    }

    /// A tensor of `shape` filled by `draw` from `generator` (the default
    /// generator when `None`), in PyTorch's CPU order. float16/bfloat16 are
    /// drawn as float32 and rounded (not PyTorch's bits for those dtypes).
    fn random(
        shape: Vec<usize>,
        opts: TensorOptions,
        generator: Option<&mut Generator>,
        draw: RandomDraw,
    ) -> Tensor {
        let dtype = opts.dtype_or_f32();
        let n: usize = shape.iter().product();
        let t = with_generator(generator, |g| match dtype {
            DType::F64 => {
                let mut v = vec![0f64; n];
                draw.fill_f64(g, &mut v);
                Tensor::from_vec(v, &shape)
            }
            DType::F32 | DType::F16 | DType::BF16 => {
                let mut v = vec![0f32; n];
                draw.fill_f32(g, &mut v);
                Tensor::from_vec(v, &shape).to_dtype(dtype)
            }
            other => panic!(
                "{}: expected a floating-point dtype, got {other}",
                draw.op()
            ),
        });
        place(t, opts.device)
    }

    /// Uniform samples in `[0, 1)` (float32, CPU), like `torch.rand`; the
    /// same bits as PyTorch after the same [`manual_seed`](crate::manual_seed).
    pub fn rand(shape: impl IntoDims) -> Tensor {
        Tensor::rand_opts(shape, TensorOptions::default())
    }

    /// `rand` with a dtype and device.
    pub fn rand_opts(shape: impl IntoDims, opts: impl Into<TensorOptions>) -> Tensor {
        Tensor::uniform_with(0.0, 1.0, shape, opts, None)
    }

    /// `rand` drawing from `generator`, like `torch.rand(..., generator=g)`.
    pub fn rand_with(
        shape: impl IntoDims,
        opts: impl Into<TensorOptions>,
        generator: &mut Generator,
    ) -> Tensor {
        Tensor::uniform_with(0.0, 1.0, shape, opts, Some(generator))
    }

    /// Standard normal samples (float32, CPU), like `torch.randn`; the same
    /// bits as PyTorch after the same [`manual_seed`](crate::manual_seed).
    pub fn randn(shape: impl IntoDims) -> Tensor {
        Tensor::randn_opts(shape, TensorOptions::default())
    }

    /// `randn` with a dtype and device.
    pub fn randn_opts(shape: impl IntoDims, opts: impl Into<TensorOptions>) -> Tensor {
        Tensor::normal_with(0.0, 1.0, shape, opts, None)
    }

    /// `randn` drawing from `generator`, like `torch.randn(..., generator=g)`.
    pub fn randn_with(
        shape: impl IntoDims,
        opts: impl Into<TensorOptions>,
        generator: &mut Generator,
    ) -> Tensor {
        Tensor::normal_with(0.0, 1.0, shape, opts, Some(generator))
    }

    /// Normal samples with `mean` and `std` (float32), like
    /// `torch.normal(mean, std, shape)` / `torch.empty(shape).normal_(mean, std)`.
    pub fn normal(mean: f64, std: f64, shape: impl IntoDims) -> Tensor {
        Tensor::normal_with(mean, std, shape, TensorOptions::default(), None)
    }

    /// `normal` with options, drawing from `generator` (the default one when `None`).
    pub fn normal_with(
        mean: f64,
        std: f64,
        shape: impl IntoDims,
        opts: impl Into<TensorOptions>,
        generator: Option<&mut Generator>,
    ) -> Tensor {
        Tensor::random(
            shape.into_dims(),
            opts.into(),
            generator,
            RandomDraw::normal(mean, std),
        )
    }

    /// Uniform samples in `[low, high)` (float32), like
    /// `torch.empty(shape).uniform_(low, high)`.
    pub fn uniform(low: f64, high: f64, shape: impl IntoDims) -> Tensor {
        Tensor::uniform_with(low, high, shape, TensorOptions::default(), None)
    }

    /// `uniform` with options, drawing from `generator` (the default one when `None`).
    pub fn uniform_with(
        low: f64,
        high: f64,
        shape: impl IntoDims,
        opts: impl Into<TensorOptions>,
        generator: Option<&mut Generator>,
    ) -> Tensor {
        Tensor::random(
            shape.into_dims(),
            opts.into(),
            generator,
            RandomDraw::uniform(low, high),
        )
    }

    /// Uniform integers in `[low, high)` (int64), like `torch.randint`.
    pub fn randint(low: i64, high: i64, shape: impl IntoDims) -> Tensor {
        Tensor::randint_with(low, high, shape, None)
    }

    /// `randint` drawing from `generator` (the default one when `None`).
    pub fn randint_with(
        low: i64,
        high: i64,
        shape: impl IntoDims,
        generator: Option<&mut Generator>,
    ) -> Tensor {
        assert!(high > low, "randint: empty range [{low}, {high})");
        let shape = shape.into_dims();
        let mut v = vec![0i64; shape.iter().product()];
        with_generator(generator, |g| rng::randint(g, &mut v, low, high));
        Tensor::from_vec(v, shape)
    }

    /// A random permutation of `0..n` (int64), like `torch.randperm`.
    pub fn randperm(n: usize) -> Tensor {
        Tensor::randperm_with(n, None)
    }

    /// `randperm` drawing from `generator` (the default one when `None`).
    pub fn randperm_with(n: usize, generator: Option<&mut Generator>) -> Tensor {
        let p = with_generator(generator, |g| rng::randperm(g, n));
        Tensor::from_vec(p.into_iter().map(|i| i as i64).collect::<Vec<_>>(), [n])
    }

    /// Refills with normal samples in place, like `tensor.normal_(mean, std)`
    /// (no autograd history; `generator` `None` means the default one).
    pub fn normal_(&self, mean: f64, std: f64, generator: Option<&mut Generator>) {
        self.random_(generator, RandomDraw::normal(mean, std));
    }

    /// Refills with uniform samples in `[from, to)` in place, like
    /// `tensor.uniform_(from, to)`.
    pub fn uniform_(&self, from: f64, to: f64, generator: Option<&mut Generator>) {
        self.random_(generator, RandomDraw::uniform(from, to));
    }

    fn random_(&self, generator: Option<&mut Generator>, draw: RandomDraw) {
        let opts = TensorOptions::default()
            .dtype(self.dtype())
            .device(&self.device());
        let sample = Tensor::random(self.shape().to_vec(), opts, generator, draw);
        crate::autograd::no_grad(|| self.copy_(&sample));
    }
}

/// What a random fill draws.
#[derive(Clone, Copy, Debug)]
enum RandomDraw {
    Uniform { from: f64, to: f64 },
    Normal { mean: f64, std: f64 },
}

impl RandomDraw {
    fn uniform(from: f64, to: f64) -> RandomDraw {
        RandomDraw::Uniform { from, to }
    }

    fn normal(mean: f64, std: f64) -> RandomDraw {
        assert!(std >= 0.0, "normal: expected std >= 0.0, got {std}");
        RandomDraw::Normal { mean, std }
    }

    fn op(self) -> &'static str {
        match self {
            RandomDraw::Uniform { .. } => "uniform",
            RandomDraw::Normal { .. } => "normal",
        }
    }

    fn fill_f32(self, g: &mut Generator, out: &mut [f32]) {
        match self {
            RandomDraw::Uniform { from, to } => rng::uniform_f32(g, out, from, to),
            RandomDraw::Normal { mean, std } => rng::normal_f32(g, out, mean, std),
        }
    }

    fn fill_f64(self, g: &mut Generator, out: &mut [f64]) {
        match self {
            RandomDraw::Uniform { from, to } => rng::uniform_f64(g, out, from, to),
            RandomDraw::Normal { mean, std } => rng::normal_f64(g, out, mean, std),
        }
    }
}

// ----- from nested arrays ----------------------------------------------------

impl<T: Element, const N: usize> From<[T; N]> for Tensor {
    fn from(a: [T; N]) -> Tensor {
        Tensor::from_vec(a.to_vec(), [N])
    }
}

impl<T: Element, const M: usize, const N: usize> From<[[T; N]; M]> for Tensor {
    fn from(a: [[T; N]; M]) -> Tensor {
        Tensor::from_vec(a.iter().flatten().copied().collect(), [M, N])
    }
}

impl<T: Element, const K: usize, const M: usize, const N: usize> From<[[[T; N]; M]; K]> for Tensor {
    fn from(a: [[[T; N]; M]; K]) -> Tensor {
        Tensor::from_vec(a.iter().flatten().flatten().copied().collect(), [K, M, N])
    }
}

impl<T: Element> From<Vec<T>> for Tensor {
    fn from(v: Vec<T>) -> Tensor {
        let n = v.len();
        Tensor::from_vec(v, [n])
    }
}

impl<T: Element> From<&[T]> for Tensor {
    fn from(v: &[T]) -> Tensor {
        Tensor::from_slice(v, [v.len()])
    }
}

/// Builds a tensor from a nested array literal, like `torch.tensor`:
/// `tensor!([[1.0, 2.0], [3.0, 4.0]])`.
#[macro_export]
macro_rules! tensor {
    ($e:expr) => {
        $crate::Tensor::from($e)
    };
}
