//! The [`Tensor`] type: a handle on shared storage, a layout, and autograd
//! bookkeeping.

mod clone;
mod create;
mod display;
mod list;

pub use create::{IntoDims, TensorOptions};
pub use list::TensorList;
pub(crate) use list::python_float_repr;

use crate::autograd::{self, BackwardFn, Edge, GradFn, Hook, Node, PostAccumulateHook};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::layout::Layout;
use crate::storage::{CpuStorage, Storage};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An n-dimensional array with autograd, like `torch.Tensor`.
///
/// A `Tensor` value is a handle, like a Python reference to a
/// `torch.Tensor`. Views (`transpose`, `narrow`, `reshape` of contiguous
/// data, `detach`, ...) share storage.
///
/// **Copying vs. sharing.** [`Tensor::clone`] copies the data, exactly as
/// PyTorch's `clone()` does (recorded by autograd as `CloneBackward0`), so
/// the PyTorch habit `let y = x.clone(); y.add_(...)` leaves `x` alone.
/// Another handle on the *same* tensor (the same data, `grad` and history,
/// what assigning a Python variable gives) is [`Tensor::shallow_clone`],
/// the name tch-rs uses. `Tensor` therefore does not implement Rust's
/// `Clone` trait: a trait `clone` that shared storage would silently break
/// that PyTorch habit, and one that copied would make every
/// `Vec<Tensor>::clone` copy data. Containers of tensors that implement
/// `Clone` ([`StateDict`](crate::StateDict), parameter groups, ...) share
/// the tensors, like Python's shallow `copy()`.
///
/// **In-place ops and autograd.** Every in-place write bumps the storage's
/// version counter ([`Tensor::version`], shared by views). Autograd records
/// the version of each tensor it saves for backward and checks it before
/// using it, so backward through a saved tensor changed in place fails
/// with PyTorch's message instead of a wrong gradient. In-place ops on
/// tensors in a graph are recorded like PyTorch's (on a leaf that requires
/// grad they are an error outside `no_grad`).
///
/// ```
/// use kiln_runtime::Tensor;
/// let x = Tensor::from([[1.0f32, 2.0], [3.0, 4.0]]).requires_grad_(true);
/// let y = (&x * &x).sum();
/// y.backward();
/// assert_eq!(x.grad().unwrap().to_vec::<f32>(), vec![2.0, 4.0, 6.0, 8.0]);
///
/// let a = Tensor::ones([2]);
/// let same = a.shallow_clone();
/// let copy = a.clone();
/// a.add_scalar_(1.0);
/// assert_eq!(same.to_vec::<f32>(), vec![2.0, 2.0]);
/// assert_eq!(copy.to_vec::<f32>(), vec![1.0, 1.0]);
/// ```
pub struct Tensor(pub(crate) Arc<TensorImpl>);

pub(crate) struct TensorImpl {
    pub(crate) storage: Arc<StorageCell>,
    pub(crate) layout: Layout,
    pub(crate) requires_grad: AtomicBool,
    /// The op that produced this tensor. In-place ops on a tensor in a
    /// graph replace it (PyTorch's `rebase_history`), hence the lock.
    pub(crate) grad_fn: RwLock<Option<Arc<Node>>>,
    /// For a view made by a recorded view op (`narrow`, `transpose`, ...):
    /// the tensor it views (never itself a view). In-place ops on the view
    /// rewrite the base's history (PyTorch's `_base`, `CopySlices`).
    pub(crate) base: Option<Tensor>,
    pub(crate) grad: Mutex<Option<Tensor>>,
    pub(crate) hooks: Mutex<Vec<Hook>>,
    pub(crate) post_accumulate_hooks: Mutex<Vec<PostAccumulateHook>>,
}

impl TensorImpl {
    /// A tensor over `storage` with `layout` and no autograd state: no
    /// grad, history, base or hooks.
    fn plain(storage: Arc<StorageCell>, layout: Layout) -> TensorImpl {
        TensorImpl {
            storage,
            layout,
            requires_grad: AtomicBool::new(false),
            grad_fn: RwLock::new(None),
            base: None,
            grad: Mutex::new(None),
            hooks: Mutex::new(Vec::new()),
            post_accumulate_hooks: Mutex::new(Vec::new()),
        }
    }
}

/// A tensor's data, shared by all its views: the storage behind its lock,
/// and the storage's dtype and device, readable without that lock.
///
/// The dtype and device live here rather than in each [`TensorImpl`] so
/// that [`Tensor::move_storage_`] can move the data in place (what
/// `Module::to` does, like PyTorch's `param.data = ...`) and every handle
/// and view of it sees the new device at once.
pub(crate) struct StorageCell {
    data: RwLock<Storage>,
    /// The dtype and device, packed (see [`StorageCell::meta`]).
    meta: AtomicU64,
    /// PyTorch's version counter (`tensor._version`): bumped by every
    /// in-place write, shared by all views of the storage. Autograd records
    /// it when it saves a tensor for backward and checks it before using the
    /// tensor, so a saved tensor changed in place is an error, not a wrong
    /// gradient.
    pub(crate) version: AtomicU64,
}

impl StorageCell {
    fn new(storage: Storage) -> StorageCell {
        StorageCell {
            meta: AtomicU64::new(StorageCell::meta(&storage)),
            data: RwLock::new(storage),
            version: AtomicU64::new(0),
        }
    }

    /// Packs `storage`'s dtype and device into one word: the dtype's index
    /// in [`DType::ALL`] (bits 0..8), the device kind (bits 8..16: 0 CPU,
    /// 1 CUDA, 2 the test device) and the device ordinal (bits 16..). A new device kind adds
    /// one arm here and one in [`StorageCell::device`].
    fn meta(storage: &Storage) -> u64 {
        let dtype = DType::ALL
            .iter()
            .position(|d| *d == storage.dtype())
            .expect("every dtype is in DType::ALL") as u64;
        let (kind, ordinal): (u64, usize) = match storage {
            Storage::Cpu(_) => (0, 0),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => (1, s.ordinal()),
            Storage::Test(s) => (2, s.ordinal()),
        };
        dtype | kind << 8 | (ordinal as u64) << 16
    }

    fn dtype(&self) -> DType {
        DType::ALL[(self.meta.load(Ordering::Acquire) & 0xff) as usize]
    }

    fn device(&self) -> Device {
        let meta = self.meta.load(Ordering::Acquire);
        let ordinal = (meta >> 16) as usize;
        match (meta >> 8) & 0xff {
            0 => Device::Cpu,
            1 => Device::Cuda(ordinal),
            2 => Device::Test(ordinal),
            kind => unreachable!("unknown device kind {kind} in a tensor's storage"),
        }
    }
}

impl Tensor {
    // ----- construction from raw parts -------------------------------------

    /// Wraps storage and a layout as a tensor that does not require grad.
    pub(crate) fn from_storage(storage: Storage, layout: Layout) -> Tensor {
        // The first tensor made on the main thread makes it a member of
        // the thread pool, so that parallel kernels need no hand-off to
        // start (see `join_pool`); afterwards one relaxed load.
        kiln_kernels::cpu::parallel::join_pool();
        Tensor(Arc::new(TensorImpl::plain(
            Arc::new(StorageCell::new(storage)),
            layout,
        )))
    }

    /// A contiguous CPU tensor over `data` with `shape`.
    pub(crate) fn from_cpu(data: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor::from_storage(Storage::Cpu(data), Layout::contiguous(shape))
    }

    /// Another tensor over the same storage with a different layout and no
    /// autograd history (callers attach one with [`Tensor::from_op`]).
    pub(crate) fn view_with_layout(&self, layout: Layout) -> Tensor {
        Tensor(Arc::new(TensorImpl::plain(self.0.storage.clone(), layout)))
    }

    /// Attaches autograd history to `out`, the plain result of op `name`
    /// applied to `inputs`, when grad mode is on and some input requires
    /// grad. `backward` maps the output's gradient to the inputs' gradients.
    ///
    /// The closure must not hold tensors whose values it reads (those go
    /// through [`Tensor::from_op_saved`], which checks their versions).
    pub(crate) fn from_op(
        out: Tensor,
        name: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        Tensor::from_op_saved(out, name, inputs, &[], backward)
    }

    /// [`Tensor::from_op`] for a backward that reads tensors' values: the
    /// one way autograd saves tensors. `saved` lists every tensor (an input,
    /// the output, or a view or handle of one) whose data the closure
    /// captures; their versions are recorded now and checked before the
    /// closure runs, so that backward through a saved tensor changed in
    /// place since fails like PyTorch's ("... is at version 1; expected
    /// version 0 instead") instead of giving a wrong gradient.
    pub(crate) fn from_op_saved(
        out: Tensor,
        name: &'static str,
        inputs: &[&Tensor],
        saved: &[Tensor],
        backward: impl Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>> + Send + Sync + 'static,
    ) -> Tensor {
        let base = match inputs.first() {
            Some(i) if autograd::is_grad_enabled() && out.shares_storage_with(i) => {
                Some(i.base_or_self())
            }
            _ => None,
        };
        if !autograd::is_grad_enabled() || !inputs.iter().any(|t| t.requires_grad()) {
            return match base {
                Some(b) if out.0.base.is_none() => out.with_base(b),
                _ => out,
            };
        }
        let edges = inputs.iter().map(|t| t.edge()).collect();
        let saved = saved
            .iter()
            .map(|t| {
                let is_output =
                    out.shares_storage_with(t) && !inputs.iter().any(|i| i.shares_storage_with(t));
                autograd::SavedVersion::new(t, is_output)
            })
            .collect();
        let backward: BackwardFn = Box::new(backward);
        let node = Arc::new(Node::new(name, edges, backward).with_saved(saved));
        let inner = Arc::try_unwrap(out.0).unwrap_or_else(|shared| {
            TensorImpl::plain(shared.storage.clone(), shared.layout.clone())
        });
        Tensor(Arc::new(TensorImpl {
            grad_fn: RwLock::new(Some(node)),
            base: base.or(inner.base),
            ..inner
        }))
    }

    /// [`Tensor::from_op_saved`] for `out = op(input)` whose gradient reads
    /// one tensor, `saved` (often `input` itself): `grad(g, saved)` is the
    /// input's gradient given the output's `g`.
    pub(crate) fn from_unary_saved(
        out: Tensor,
        name: &'static str,
        input: &Tensor,
        saved: &Tensor,
        grad: impl Fn(&Tensor, &Tensor) -> Tensor + Send + Sync + 'static,
    ) -> Tensor {
        let s = saved.shallow_clone();
        Tensor::from_op_saved(
            out,
            name,
            &[input],
            &[saved.shallow_clone()],
            move |g, _| vec![Some(grad(g, &s))],
        )
    }

    /// [`Tensor::from_op_saved`] for `out = op(a, b)` whose backward reads
    /// both inputs: `backward(g, need, a, b)` gives their gradients.
    pub(crate) fn from_binary_saved(
        out: Tensor,
        name: &'static str,
        a: &Tensor,
        b: &Tensor,
        backward: impl Fn(&Tensor, &[bool], &Tensor, &Tensor) -> Vec<Option<Tensor>>
        + Send
        + Sync
        + 'static,
    ) -> Tensor {
        let (sa, sb) = (a.shallow_clone(), b.shallow_clone());
        Tensor::from_op_saved(
            out,
            name,
            &[a, b],
            &[a.shallow_clone(), b.shallow_clone()],
            move |g, need| backward(g, need, &sa, &sb),
        )
    }

    /// `self` marked as a view of `base` (same storage, no history change).
    fn with_base(self, base: Tensor) -> Tensor {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| TensorImpl {
            requires_grad: AtomicBool::new(shared.requires_grad.load(Ordering::Relaxed)),
            grad_fn: RwLock::new(Tensor(shared.clone()).grad_fn_node()),
            ..TensorImpl::plain(shared.storage.clone(), shared.layout.clone())
        });
        Tensor(Arc::new(TensorImpl {
            base: Some(base),
            ..inner
        }))
    }

    /// The tensor this one is a view of, or itself when it is no view.
    pub(crate) fn base_or_self(&self) -> Tensor {
        match &self.0.base {
            Some(b) => b.shallow_clone(),
            None => self.shallow_clone(),
        }
    }

    /// The base of a view made by a recorded view op (PyTorch's `_base`).
    pub(crate) fn view_base(&self) -> Option<&Tensor> {
        self.0.base.as_ref()
    }

    /// Where a gradient for this tensor goes in a new node: its grad_fn,
    /// itself when it is a leaf that requires grad, else nowhere.
    pub(crate) fn edge(&self) -> Edge {
        if let Some(n) = self.grad_fn_node() {
            Edge::Node(n)
        } else if self.requires_grad() {
            Edge::Leaf(self.shallow_clone())
        } else {
            Edge::None
        }
    }

    /// Replaces this tensor's history (an in-place op's `rebase_history`).
    pub(crate) fn set_grad_fn(&self, node: Option<Arc<Node>>) {
        *self.0.grad_fn.write().unwrap_or_else(|e| e.into_inner()) = node;
    }

    /// Another handle on this same tensor: the same data, `grad`, history
    /// and identity, like a second Python reference to one `torch.Tensor`
    /// (what Rust's `Clone` of a handle would be; tch-rs names it the
    /// same). [`Tensor::clone`] copies instead.
    pub fn shallow_clone(&self) -> Tensor {
        Tensor(Arc::clone(&self.0))
    }

    /// The version counter, like `tensor._version`: how many in-place
    /// writes its storage has seen (shared by all views of it).
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// let x = Tensor::ones([2, 3]);
    /// let row = x.narrow(0, 0, 1);
    /// row.add_scalar_(1.0);
    /// assert_eq!((x.version(), row.version()), (1, 1));
    /// ```
    pub fn version(&self) -> u64 {
        self.0.storage.version.load(Ordering::Acquire)
    }

    /// Records one in-place write to this tensor's storage.
    pub(crate) fn bump_version(&self) {
        self.0.storage.version.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn storage_cell(&self) -> &Arc<StorageCell> {
        &self.0.storage
    }

    // ----- metadata ------------------------------------------------------------

    /// The shape, like `tensor.shape`.
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }

    /// Size of one dimension (negative counts from the end), like `tensor.size(d)`.
    pub fn size(&self, dim: isize) -> usize {
        self.shape()[crate::layout::normalize_dim("size", dim, self.dim())]
    }

    /// Number of dimensions, like `tensor.dim()`.
    pub fn dim(&self) -> usize {
        self.0.layout.rank()
    }

    /// Number of elements, like `tensor.numel()`.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }

    /// Strides in elements, like `tensor.stride()`.
    pub fn stride(&self) -> &[usize] {
        self.0.layout.strides()
    }

    /// The layout (shape, strides, offset).
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }

    /// True when elements are row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }

    /// True when both handles refer to the same storage (views of each other).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    pub(crate) fn impl_key(&self) -> usize {
        Arc::as_ptr(&self.0) as *const u8 as usize
    }

    pub(crate) fn read_storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0
            .storage
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write_storage(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0
            .storage
            .data
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Moves this tensor's whole storage to `device` and `dtype` in place,
    /// keeping its identity (autograd flags, `grad`, hooks) and its layout:
    /// every handle and view of the storage sees the moved data, like
    /// PyTorch's `param.data = param.to(...)` as `module.to()` does it, so
    /// an optimizer built before [`Module::to`](crate::nn::Module::to)
    /// keeps training the moved parameters. No autograd history is
    /// recorded; do not call it while another thread uses the tensor.
    pub(crate) fn move_storage_(&self, device: Device, dtype: DType) {
        if device == self.device() && dtype == self.dtype() {
            return;
        }
        let len = match &*self.read_storage() {
            Storage::Cpu(s) => s.len(),
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => s.len(),
            Storage::Test(s) => s.len(),
        };
        // The whole buffer as one contiguous row, so that the old layout
        // (offset, strides) stays valid over the moved copy.
        let whole = self.view_with_layout(Layout::contiguous(&[len]));
        let moved = autograd::no_grad(|| whole.to_device(device).to_dtype(dtype));
        debug_assert!(!moved.shares_storage_with(self) && moved.is_contiguous());
        let mut dst = self.write_storage();
        std::mem::swap(&mut *dst, &mut *moved.write_storage());
        self.0
            .storage
            .meta
            .store(StorageCell::meta(&dst), Ordering::Release);
    }

    /// Runs `f` on this tensor's elements as a contiguous `&[T]`, copying
    /// only when the layout is not contiguous. Panics naming `op` when the
    /// dtype is not `T` or the tensor is not on the CPU.
    pub(crate) fn with_slice<T: Element, R>(&self, op: &str, f: impl FnOnce(&[T]) -> R) -> R {
        let guard = self.read_storage();
        let cpu = guard.cpu(op);
        let data = T::slice(cpu).unwrap_or_else(|| {
            panic!(
                "{op}: expected a tensor of dtype {} but got {}",
                T::DTYPE,
                self.dtype()
            )
        });
        match self.0.layout.contiguous_range() {
            Some(r) => f(&data[r]),
            None => f(&crate::storage::gather_vec(data, &self.0.layout)),
        }
    }

    /// A contiguous tensor with the same data: `self` when already
    /// contiguous, else a copy (differentiable), like `tensor.contiguous()`.
    pub fn contiguous(&self) -> Tensor {
        if self.is_contiguous() {
            return self.shallow_clone();
        }
        let out = crate::backend::of(self.device()).deep_copy(self);
        Tensor::from_op(out, "CloneBackward0", &[self], |g, _| {
            vec![Some(g.shallow_clone())]
        })
    }

    // ----- reading values ----------------------------------------------------

    /// The elements in row-major order, converted to `T`, like
    /// `tensor.flatten().tolist()`.
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        let t = self.to_device(Device::Cpu);
        let guard = t.read_storage();
        let cpu = guard.cpu("to_vec");
        match T::slice(cpu) {
            Some(data) => crate::storage::gather_vec(data, &t.0.layout),
            None => {
                let cast = cpu.cast(&t.0.layout, T::DTYPE);
                T::slice(&cast)
                    .expect("cast produced the asked dtype")
                    .to_vec()
            }
        }
    }

    /// The rows of a 2-D tensor, like `tensor.tolist()`.
    pub fn to_vec2<T: Element>(&self) -> Vec<Vec<T>> {
        assert_eq!(
            self.dim(),
            2,
            "to_vec2: expected a 2-D tensor, got shape {:?}",
            self.shape()
        );
        let cols = self.shape()[1];
        let flat = self.to_vec::<T>();
        if cols == 0 {
            return vec![Vec::new(); self.shape()[0]];
        }
        flat.chunks(cols).map(|c| c.to_vec()).collect()
    }

    /// The value of a one-element tensor as `f64`, like `tensor.item()`.
    pub fn item(&self) -> f64 {
        if self.numel() != 1 {
            panic!(
                "item: a Tensor with {} elements cannot be converted to a scalar (shape {:?})",
                self.numel(),
                self.shape()
            );
        }
        self.to_vec::<f64>()[0]
    }

    /// Moves (copies) the tensor to `device`; the result is differentiable
    /// with respect to `self`, like `tensor.to(device)`.
    pub fn to(&self, device: &Device) -> Tensor {
        let out = self.to_device(*device);
        if out.shares_storage_with(self) {
            return self.shallow_clone();
        }
        let src = self.device();
        Tensor::from_op(out, "ToCopyBackward0", &[self], move |g, _| {
            vec![Some(g.to_device(src))]
        })
    }

    /// Plain device copy without autograd.
    pub(crate) fn to_device(&self, device: Device) -> Tensor {
        if device == self.device() {
            return self.shallow_clone();
        }
        crate::backend::transfer(self, device)
    }

    // ----- autograd ------------------------------------------------------------

    /// True if gradients are recorded for this tensor: a leaf marked with
    /// `requires_grad_(true)` or the result of an op on such tensors.
    pub fn requires_grad(&self) -> bool {
        self.has_grad_fn() || self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks a leaf as requiring grad (or not) and returns it, like
    /// `tensor.requires_grad_()`. Panics on a non-leaf.
    pub fn requires_grad_(self, requires_grad: bool) -> Tensor {
        self.set_requires_grad(requires_grad);
        self
    }

    /// Sets the `requires_grad` flag of a leaf in place.
    pub fn set_requires_grad(&self, requires_grad: bool) {
        if let Some(node) = self.grad_fn_node() {
            panic!(
                "requires_grad_: you can only change requires_grad flags of leaf variables (this tensor has grad_fn {})",
                node.name()
            );
        }
        if requires_grad && !self.dtype().is_float() {
            panic!(
                "requires_grad_: only tensors of floating point dtype can require gradients, got {}",
                self.dtype()
            );
        }
        self.0.requires_grad.store(requires_grad, Ordering::Relaxed);
    }

    /// True for tensors created by the user rather than by a recorded op.
    pub fn is_leaf(&self) -> bool {
        !self.has_grad_fn()
    }

    fn has_grad_fn(&self) -> bool {
        self.0
            .grad_fn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The op that produced this tensor, if recorded, like `tensor.grad_fn`.
    pub fn grad_fn(&self) -> Option<GradFn> {
        self.grad_fn_node().map(GradFn)
    }

    pub(crate) fn grad_fn_node(&self) -> Option<Arc<Node>> {
        self.0
            .grad_fn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The accumulated gradient, like `tensor.grad`. For leaves it is
    /// filled by `backward()`; for non-leaves only after `retain_grad()`.
    pub fn grad(&self) -> Option<Tensor> {
        match self.grad_fn_node() {
            Some(node) => node
                .retained_grad
                .lock()
                .unwrap()
                .as_ref()
                .map(Tensor::shallow_clone),
            None => self
                .0
                .grad
                .lock()
                .unwrap()
                .as_ref()
                .map(Tensor::shallow_clone),
        }
    }

    /// Replaces the gradient (`None` clears it, like `tensor.grad = None`).
    pub fn set_grad(&self, grad: Option<Tensor>) {
        if let Some(g) = &grad {
            assert_eq!(
                g.shape(),
                self.shape(),
                "set_grad: assigned grad has shape {:?} but the tensor has shape {:?}",
                g.shape(),
                self.shape()
            );
        }
        match self.grad_fn_node() {
            Some(node) => *node.retained_grad.lock().unwrap() = grad,
            None => *self.0.grad.lock().unwrap() = grad,
        }
    }

    /// Keeps this non-leaf's gradient after backward, like `retain_grad()`.
    pub fn retain_grad(&self) {
        if let Some(n) = self.grad_fn_node() {
            n.set_retains_grad();
        }
    }

    /// Registers a hook called with this tensor's gradient during backward;
    /// returning `Some` replaces the gradient, like `register_hook`.
    pub fn register_hook(&self, hook: impl Fn(&Tensor) -> Option<Tensor> + Send + Sync + 'static) {
        if !self.requires_grad() {
            panic!(
                "register_hook: cannot register a hook on a tensor that doesn't require gradient"
            );
        }
        match self.grad_fn_node() {
            Some(n) => n.hooks.lock().unwrap().push(Box::new(hook)),
            None => self.0.hooks.lock().unwrap().push(Box::new(hook)),
        }
    }

    /// Registers a hook called with this leaf after `backward` has
    /// accumulated a gradient into its `.grad`, like PyTorch's
    /// `register_post_accumulate_grad_hook`. Data-parallel training uses it
    /// to start communicating a gradient as soon as it is ready. (A leaf
    /// used by several inputs of the graph gets its gradient, and the hook
    /// call, once per use.)
    ///
    /// ```
    /// use kiln_runtime::Tensor;
    /// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
    /// let w = Tensor::from([1.0f32, 2.0]).requires_grad_(true);
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = calls.clone();
    /// w.register_post_accumulate_grad_hook(move |p| {
    ///     assert!(p.grad().is_some());
    ///     c.fetch_add(1, Ordering::Relaxed);
    /// });
    /// w.mul_scalar(3.0).sum().backward();
    /// assert_eq!(calls.load(Ordering::Relaxed), 1);
    /// assert_eq!(w.grad().unwrap().to_vec::<f32>(), vec![3.0, 3.0]);
    /// ```
    pub fn register_post_accumulate_grad_hook(
        &self,
        hook: impl Fn(&Tensor) + Send + Sync + 'static,
    ) {
        if !self.is_leaf() || !self.requires_grad() {
            panic!(
                "register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered on non-leaf tensors or tensors that don't require grad"
            );
        }
        self.0
            .post_accumulate_hooks
            .lock()
            .unwrap()
            .push(Box::new(hook));
    }

    /// A new tensor sharing this one's storage, cut off from the graph,
    /// like `tensor.detach()`.
    pub fn detach(&self) -> Tensor {
        self.view_with_layout(self.0.layout.clone())
    }

    /// Backpropagates from this scalar, accumulating into the `.grad` of
    /// every leaf it depends on, like `tensor.backward()`. The graph is
    /// freed afterwards.
    pub fn backward(&self) {
        autograd::engine_check_scalar("backward", self);
        self.backward_opts(&self.ones_like(), false, false);
    }

    /// Backpropagates `grad` (the vector in a vector-Jacobian product) from
    /// a non-scalar tensor, like `tensor.backward(gradient)`.
    pub fn backward_with(&self, grad: &Tensor) {
        self.backward_opts(grad, false, false);
    }

    /// Backward with PyTorch's options: `retain_graph` keeps the graph for
    /// another backward; `create_graph` records the backward itself so that
    /// higher-order gradients can be taken.
    pub fn backward_opts(&self, grad: &Tensor, retain_graph: bool, create_graph: bool) {
        assert_eq!(
            grad.shape(),
            self.shape(),
            "backward: grad has shape {:?} but the output has shape {:?}",
            grad.shape(),
            self.shape()
        );
        autograd::run_backward(
            &[(self.shallow_clone(), grad.shallow_clone())],
            retain_graph,
            create_graph,
        );
    }

    /// Adds `g` into this leaf's `.grad`.
    pub(crate) fn accumulate_grad(&self, g: Tensor, create_graph: bool) {
        let mut slot = self.0.grad.lock().unwrap();
        *slot = Some(match slot.take() {
            None if create_graph => g,
            // The engine's gradient may share storage with other tensors
            // (e.g. both inputs of an add); own it before accumulating into
            // it in place later.
            None if g.is_exclusive() && g.is_contiguous() => g,
            None => g.deep_copy(),
            Some(old) if create_graph => &old + &g,
            Some(old) => {
                autograd::no_grad(|| old.add_(&g));
                old
            }
        });
    }

    /// True when no other handle or view shares this tensor's storage.
    pub(crate) fn is_exclusive(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1
    }

    /// A copy with its own contiguous storage and no history.
    pub(crate) fn deep_copy(&self) -> Tensor {
        crate::backend::of(self.device()).deep_copy(self)
    }
}
