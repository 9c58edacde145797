//! The [`Module`] trait: parameters and buffers with PyTorch's dotted
//! names, train/eval, device moves, `apply`, state dicts, and the module
//! tree printout of `print(model)`.

use crate::state_dict::StateDict;
use crate::{DType, Device, Tensor};
use std::any::Any;
use std::fmt;

/// What a tensor registered in a module is, like PyTorch's `_parameters`
/// versus `_buffers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TensorKind {
    /// A learnable tensor (requires grad, returned by `parameters()`).
    Parameter,
    /// State that is saved but not learned (batch-norm running statistics).
    Buffer,
}

/// Upcasts a concrete module to `dyn Module` and `dyn Any`. Implemented
/// for every sized [`Module`]; you never implement it yourself.
pub trait AsModule {
    /// `self` as a module trait object.
    fn as_dyn_module(&self) -> &dyn Module;
    /// `self` as a mutable module trait object.
    fn as_dyn_module_mut(&mut self) -> &mut dyn Module;
    /// `self` as `Any`, for downcasting.
    fn as_dyn_any(&self) -> &dyn Any;
    /// `self` as mutable `Any`, for downcasting.
    fn as_dyn_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Module> AsModule for T {
    fn as_dyn_module(&self) -> &dyn Module {
        self
    }
    fn as_dyn_module_mut(&mut self) -> &mut dyn Module {
        self
    }
    fn as_dyn_any(&self) -> &dyn Any {
        self
    }
    fn as_dyn_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// A neural-network module, like `torch.nn.Module`: a tree of submodules
/// owning parameters and buffers.
///
/// Your own structs get it from `#[derive(Module)]`, as kiln's layers do
/// (with `#[module(crate = "crate")]`); containers such as
/// [`Sequential`](super::Sequential) implement it by hand. The forward pass is a separate trait, [`Forward`],
/// or an inherent method when it takes or returns something other than
/// one tensor.
///
/// ```
/// use kiln_runtime::Device;
/// use kiln_runtime::nn::{Linear, Module};
/// let fc = Linear::new(4, 2, &Device::Cpu);
/// let names: Vec<String> = fc.named_parameters().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight", "bias"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a kiln module",
    label = "this field's type does not implement `kiln::nn::Module`",
    note = "fields of a `#[derive(Module)]` struct must be layers, modules, `Vec`s or `Option`s of modules, or tensors; mark plain data with `#[module(skip)]`"
)]
pub trait Module: AsModule + Send + Sync + 'static {
    /// Visits own parameters and buffers as `prefix + name`, then recurses
    /// into children with `prefix + child + "."`, in PyTorch's order.
    fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind));

    /// Calls `f` with each direct child and its name.
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        let _ = f;
    }

    /// Calls `f` with each direct child, mutably.
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        let _ = f;
    }

    /// Calls `f` with each of this module's own tensors (not its
    /// children's), mutably, so that they can be replaced (device moves).
    fn visit_tensors_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor, TensorKind)) {
        let _ = f;
    }

    /// Sets this module's train/eval flag and its children's.
    fn set_training(&mut self, training: bool) {
        self.visit_children_mut(&mut |_, c| c.set_training(training));
    }

    /// True in training mode, like `module.training`.
    fn is_training(&self) -> bool;

    /// The class name printed by `print(model)`, e.g. `"Conv2d"`.
    fn type_name(&self) -> &str;

    /// The arguments printed inside the parentheses, e.g.
    /// `"1, 6, kernel_size=(5, 5), stride=(1, 1)"`, like PyTorch's
    /// `extra_repr`.
    fn extra_repr(&self) -> String {
        String::new()
    }

    // ----- provided ------------------------------------------------------------

    /// `self` as `Any`, for downcasting to a concrete layer.
    fn as_any(&self) -> &dyn Any {
        self.as_dyn_any()
    }

    /// `self` as mutable `Any`, for downcasting inside [`Module::apply`]:
    /// `m.as_any_mut().downcast_mut::<Linear>()`.
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.as_dyn_any_mut()
    }

    /// Every parameter in registration order, like `module.parameters()`.
    fn parameters(&self) -> Vec<Tensor> {
        self.named_parameters()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    /// Every parameter with its dotted name, like `named_parameters()`.
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        named_of_kind(self, TensorKind::Parameter)
    }

    /// Every buffer, like `module.buffers()`.
    fn buffers(&self) -> Vec<Tensor> {
        self.named_buffers().into_iter().map(|(_, t)| t).collect()
    }

    /// Every buffer with its dotted name, like `named_buffers()`.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        named_of_kind(self, TensorKind::Buffer)
    }

    /// Parameters and buffers by dotted name, in PyTorch's order, like
    /// `module.state_dict()`. The tensors are detached handles on the
    /// module's own storage (as in PyTorch).
    fn state_dict(&self) -> StateDict {
        let mut d = StateDict::new();
        self.visit("", &mut |n, t, _| d.insert(n, t.detach()));
        d
    }

    /// Copies `state`'s tensors into this module's parameters and buffers
    /// in place (converting dtype and device), like
    /// `module.load_state_dict(state, strict)`.
    ///
    /// Everything is validated first: on error nothing is changed. A shape
    /// mismatch is an error in both modes (as in PyTorch); with `strict`,
    /// missing and unexpected keys are errors too. Otherwise the keys that
    /// match are loaded and the report lists the others.
    fn load_state_dict(
        &mut self,
        state: &StateDict,
        strict: bool,
    ) -> Result<LoadReport, LoadStateDictError> {
        load_state_dict_impl(self.as_dyn_module(), state, strict)
    }

    /// Switches to training mode (dropout active, batch-norm batch
    /// statistics), like `module.train()`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Switches to evaluation mode, like `module.eval()`.
    fn eval(&mut self) {
        self.set_training(false);
    }

    /// Moves every parameter and buffer (and existing gradients) to
    /// `device` in place, like `module.to(device)`: each tensor keeps its
    /// identity (PyTorch replaces `param.data`), so handles held elsewhere,
    /// such as an optimizer built before the move, see the moved tensors
    /// and keep training them. Parameters stay leaves and keep their
    /// `requires_grad` flag.
    fn to(&mut self, device: &Device) {
        let device = *device;
        move_tensors(self.as_dyn_module_mut(), &mut |t| {
            (t.device() != device).then_some((device, t.dtype()))
        });
    }

    /// Converts every floating-point parameter and buffer (and existing
    /// gradients) to `dtype` in place, like `module.to(torch.float64)`
    /// (`module.double()`); integer buffers such as batch norm's
    /// `num_batches_tracked` keep their type. As with [`Module::to`],
    /// tensors keep their identity, so an optimizer built earlier keeps
    /// training them. Panics when `dtype` is not a floating-point type.
    ///
    /// ```
    /// use kiln_runtime::{DType, Device};
    /// use kiln_runtime::nn::{Linear, Module};
    /// let mut fc = Linear::new(4, 2, &Device::Cpu);
    /// let weight = fc.weight.shallow_clone();
    /// fc.to_dtype(DType::F64);
    /// assert_eq!(weight.dtype(), DType::F64);
    /// ```
    fn to_dtype(&mut self, dtype: DType) {
        assert!(
            dtype.is_float(),
            "Module::to_dtype: nn.Module.to only accepts floating point dtypes, but got {dtype}"
        );
        move_tensors(self.as_dyn_module_mut(), &mut |t| {
            (t.dtype().is_float() && t.dtype() != dtype).then_some((t.device(), dtype))
        });
    }

    /// Calls `f` on every submodule, children first and then `self`, like
    /// `module.apply(fn)`:
    ///
    /// ```
    /// use kiln_runtime::Device;
    /// use kiln_runtime::nn::{Linear, Module, ReLU, Sequential, init};
    /// let mut net = Sequential::new()
    ///     .push(Linear::new(4, 8, &Device::Cpu))
    ///     .push(ReLU::new())
    ///     .push(Linear::new(8, 2, &Device::Cpu));
    /// net.apply(&mut |m| {
    ///     if let Some(l) = m.as_any_mut().downcast_mut::<Linear>() {
    ///         init::xavier_uniform_(&l.weight, 1.0);
    ///         if let Some(b) = &l.bias {
    ///             init::zeros_(b);
    ///         }
    ///     }
    /// });
    /// assert_eq!(net.get(2).unwrap().parameters()[1].to_vec::<f32>(), vec![0.0, 0.0]);
    /// ```
    fn apply(&mut self, f: &mut dyn FnMut(&mut dyn Module)) {
        for_each_module_mut(self.as_dyn_module_mut(), f);
    }

    /// Clears every parameter's gradient (PyTorch's default
    /// `set_to_none=True`), like `module.zero_grad()`.
    fn zero_grad(&self) {
        for p in self.parameters() {
            p.set_grad(None);
        }
    }

    /// Sets `requires_grad` on every parameter, like
    /// `module.requires_grad_(flag)`; `false` freezes the module.
    fn requires_grad_(&self, requires_grad: bool) {
        for p in self.parameters() {
            p.set_requires_grad(requires_grad);
        }
    }

    /// Total number of parameter elements.
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(Tensor::numel).sum()
    }

    // ----- tree access, like `children()` / `named_modules()` ------------------
    //
    // Children are visited rather than stored as references, so these take
    // a callback where PyTorch returns an iterator; the `*_names` methods
    // return the names.

    /// Calls `f` with each direct child, like `for m in module.children()`.
    fn children(&self, f: &mut dyn FnMut(&dyn Module)) {
        self.visit_children(&mut |_, c| f(c));
    }

    /// Calls `f` with each direct child and its name, like
    /// `for name, m in module.named_children()`.
    fn named_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        self.visit_children(f);
    }

    /// Calls `f` with every module of the tree, `self` first, then each
    /// child's subtree in order, like `for m in module.modules()`.
    fn modules(&self, f: &mut dyn FnMut(&dyn Module)) {
        self.named_modules(&mut |_, m| f(m));
    }

    /// Calls `f` with every module of the tree and its dotted name (`""`
    /// for `self`, then `features`, `features.0`, ...), in the order of
    /// PyTorch's `named_modules()`:
    ///
    /// ```
    /// use kiln_runtime::Device;
    /// use kiln_runtime::nn::{Linear, Module, ReLU, Sequential};
    /// let net = Sequential::new()
    ///     .push(Linear::new(4, 8, &Device::Cpu))
    ///     .push(ReLU::new());
    /// let mut seen = vec![];
    /// net.named_modules(&mut |name, m| seen.push(format!("{name}:{}", m.type_name())));
    /// assert_eq!(seen, [":Sequential", "0:Linear", "1:ReLU"]);
    /// ```
    fn named_modules(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        fn walk(prefix: &str, m: &dyn Module, f: &mut dyn FnMut(&str, &dyn Module)) {
            f(prefix, m);
            m.visit_children(&mut |name, c| {
                walk(&child_name(prefix, name), c, f);
            });
        }
        walk("", self.as_dyn_module(), f);
    }

    /// [`named_modules`](Module::named_modules) with mutable access (to
    /// freeze, re-initialise or switch one part of the tree), `self` first.
    fn named_modules_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        fn walk(prefix: &str, m: &mut dyn Module, f: &mut dyn FnMut(&str, &mut dyn Module)) {
            f(prefix, m);
            m.visit_children_mut(&mut |name, c| {
                walk(&child_name(prefix, name), c, f);
            });
        }
        walk("", self.as_dyn_module_mut(), f);
    }

    /// The direct children's names, like `[n for n, _ in named_children()]`.
    fn child_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit_children(&mut |n, _| out.push(n.to_string()));
        out
    }

    /// Every module's dotted name, like `[n for n, _ in named_modules()]`.
    fn module_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.named_modules(&mut |n, _| out.push(n.to_string()));
        out
    }
}

/// Moves, in place, every tensor of the tree for which `target` gives a
/// `(device, dtype)`, with its gradient.
fn move_tensors(m: &mut dyn Module, target: &mut dyn FnMut(&Tensor) -> Option<(Device, DType)>) {
    for_each_module_mut(m, &mut |m| {
        m.visit_tensors_mut(&mut |_, t, _| {
            let Some((device, dtype)) = target(t) else {
                return;
            };
            let grad = t.grad();
            t.move_storage_(device, dtype);
            if let Some(g) = grad {
                let moved = crate::autograd::no_grad(|| g.to_device(device).to_dtype(dtype));
                t.set_grad(Some(moved));
            }
        })
    });
}

/// Calls `f` on every module of the tree, children first.
fn for_each_module_mut(m: &mut dyn Module, f: &mut dyn FnMut(&mut dyn Module)) {
    m.visit_children_mut(&mut |_, c| for_each_module_mut(c, f));
    f(m);
}

/// A forward pass from one tensor to one tensor, like `module(x)`.
///
/// Modules with several inputs or outputs write an inherent `forward`
/// instead.
pub trait Forward {
    /// Runs the module on `x`.
    fn forward(&self, x: &Tensor) -> Tensor;
}

/// A module with a one-tensor forward: what [`Sequential`](super::Sequential)
/// holds.
pub trait Layer: Module + Forward {}
impl<T: Module + Forward> Layer for T {}

impl<M: Module + ?Sized> Module for Box<M> {
    fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        (**self).visit(prefix, v)
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        (**self).visit_children(f)
    }
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        (**self).visit_children_mut(f)
    }
    fn visit_tensors_mut(&mut self, f: &mut dyn FnMut(&str, &mut Tensor, TensorKind)) {
        (**self).visit_tensors_mut(f)
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
    fn is_training(&self) -> bool {
        (**self).is_training()
    }
    fn type_name(&self) -> &str {
        (**self).type_name()
    }
    fn extra_repr(&self) -> String {
        (**self).extra_repr()
    }
    fn as_any(&self) -> &dyn Any {
        (**self).as_any()
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        (**self).as_any_mut()
    }
    fn apply(&mut self, f: &mut dyn FnMut(&mut dyn Module)) {
        (**self).apply(f)
    }
}

impl<M: Forward + ?Sized> Forward for Box<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        (**self).forward(x)
    }
}

/// A list of modules whose children are named `0`, `1`, ..., like
/// `nn.ModuleList`: a `Vec<Block>` field gives keys `blocks.2.bn.weight`.
impl<M: Module> Module for Vec<M> {
    fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        for (i, m) in self.iter().enumerate() {
            m.visit(&format!("{prefix}{i}."), v);
        }
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (i, m) in self.iter().enumerate() {
            f(&i.to_string(), m);
        }
    }
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (i, m) in self.iter_mut().enumerate() {
            f(&i.to_string(), m);
        }
    }
    fn is_training(&self) -> bool {
        self.first().is_none_or(|m| m.is_training())
    }
    fn type_name(&self) -> &str {
        "ModuleList"
    }
}

// ----- printing ----------------------------------------------------------------

/// The module tree as PyTorch's `print(model)` shows it:
///
/// ```text
/// LeNet(
///   (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
///   (fc1): Linear(in_features=400, out_features=120, bias=True)
/// )
/// ```
pub fn format_module(m: &dyn Module) -> String {
    let extra = m.extra_repr();
    let extra_lines: Vec<&str> = if extra.is_empty() {
        Vec::new()
    } else {
        extra.split('\n').collect()
    };
    let mut child_lines = Vec::new();
    m.visit_children(&mut |name, c| {
        let s = format_module(c).replace('\n', "\n  ");
        child_lines.push(format!("({name}): {s}"));
    });
    let mut out = format!("{}(", m.type_name());
    if extra_lines.len() == 1 && child_lines.is_empty() {
        out.push_str(extra_lines[0]);
    } else if !extra_lines.is_empty() || !child_lines.is_empty() {
        let lines: Vec<String> = extra_lines
            .iter()
            .map(|s| s.to_string())
            .chain(child_lines)
            .collect();
        out.push_str("\n  ");
        out.push_str(&lines.join("\n  "));
        out.push('\n');
    }
    out.push(')');
    out
}

/// Every tensor of `kind` in `m` with its dotted name, in visit order.
fn named_of_kind<M: Module + ?Sized>(m: &M, kind: TensorKind) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    m.visit("", &mut |n, t, k| {
        if k == kind {
            out.push((n.to_string(), t.shallow_clone()));
        }
    });
    out
}

/// The dotted name of child `name` of the module at `prefix` (the root's
/// prefix is empty).
fn child_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Formats a float as Python's `repr` does (`0.1`, `1e-05`, `20.0`), for
/// `extra_repr` strings.
pub fn py_float(x: f64) -> String {
    crate::tensor::python_float_repr(x)
}

/// Formats a pair as PyTorch prints `_pair` arguments: `(5, 5)`.
pub(crate) fn pair(p: [usize; 2]) -> String {
    format!("({}, {})", p[0], p[1])
}

/// Formats a pair as an int when both entries are equal (`2`), else `(2, 3)`.
pub(crate) fn int_or_pair(p: [usize; 2]) -> String {
    if p[0] == p[1] {
        p[0].to_string()
    } else {
        pair(p)
    }
}

// ----- loading -----------------------------------------------------------------

/// What a successful [`Module::load_state_dict`] did not load, like
/// PyTorch's `_IncompatibleKeys`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Keys the module has but the state dict lacks.
    pub missing: Vec<String>,
    /// Keys the state dict has but the module lacks.
    pub unexpected: Vec<String>,
}

/// Why a state dict could not be loaded: every problem at once. The module
/// is left unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadStateDictError {
    /// Name of the module type being loaded.
    pub module: String,
    /// Keys the module has but the state dict lacks.
    pub missing: Vec<String>,
    /// Keys the state dict has but the module lacks.
    pub unexpected: Vec<String>,
    /// `(key, shape in the module, shape in the state dict)`.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl fmt::Display for LoadStateDictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error(s) in loading state_dict for {}:", self.module)?;
        let list = |v: &[String]| {
            v.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.missing.is_empty() {
            write!(
                f,
                "\n\tMissing key(s) in state_dict: {}.",
                list(&self.missing)
            )?;
        }
        if !self.unexpected.is_empty() {
            write!(
                f,
                "\n\tUnexpected key(s) in state_dict: {}.",
                list(&self.unexpected)
            )?;
        }
        for (k, want, got) in &self.mismatched {
            write!(
                f,
                "\n\tsize mismatch for {k}: copying a param with shape {got:?} from checkpoint, the shape in current model is {want:?}."
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadStateDictError {}

fn load_state_dict_impl(
    m: &dyn Module,
    state: &StateDict,
    strict: bool,
) -> Result<LoadReport, LoadStateDictError> {
    let mut own: Vec<(String, Tensor)> = Vec::new();
    m.visit("", &mut |n, t, _| {
        own.push((n.to_string(), t.shallow_clone()))
    });
    let mut err = LoadStateDictError {
        module: m.type_name().to_string(),
        ..Default::default()
    };
    let mut pairs = Vec::new();
    for (k, t) in &own {
        match state.get(k) {
            None => err.missing.push(k.clone()),
            Some(src) if src.shape() != t.shape() => {
                err.mismatched
                    .push((k.clone(), t.shape().to_vec(), src.shape().to_vec()))
            }
            Some(src) => pairs.push((t.shallow_clone(), src.shallow_clone())),
        }
    }
    let known: std::collections::HashSet<&str> = own.iter().map(|(k, _)| k.as_str()).collect();
    err.unexpected = state
        .keys()
        .filter(|k| !known.contains(k))
        .map(str::to_string)
        .collect();
    let fatal = !err.mismatched.is_empty()
        || (strict && (!err.missing.is_empty() || !err.unexpected.is_empty()));
    if fatal {
        return Err(err);
    }
    crate::autograd::no_grad(|| {
        for (dst, src) in &pairs {
            dst.copy_(src);
        }
    });
    Ok(LoadReport {
        missing: err.missing,
        unexpected: err.unexpected,
    })
}

// ----- helpers for implementations -----------------------------------------------

/// Support code for `#[derive(Module)]`'s expansion; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::{Module, TensorKind};
    use crate::Tensor;

    /// The upcasts of a field of type `T` to a module, immutable and
    /// mutable. The trait bound is checked once per field here (both
    /// uses share this call's span, so a non-module field reports one
    /// error, pointing at the field's type).
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn casts<T: Module>() -> (fn(&T) -> &dyn Module, fn(&mut T) -> &mut dyn Module) {
        (|t| t, |t| t)
    }

    /// `prefix + name`.
    pub fn join(prefix: &str, name: &str) -> String {
        format!("{prefix}{name}")
    }

    /// `prefix + name + "."`.
    pub fn join_dot(prefix: &str, name: &str) -> String {
        format!("{prefix}{name}.")
    }

    /// Parameter kind.
    pub const PARAMETER: TensorKind = TensorKind::Parameter;
    /// Buffer kind.
    pub const BUFFER: TensorKind = TensorKind::Buffer;

    /// Visits an optional tensor.
    pub fn visit_opt(
        prefix: &str,
        name: &str,
        t: &Option<Tensor>,
        kind: TensorKind,
        v: &mut dyn FnMut(&str, &Tensor, TensorKind),
    ) {
        if let Some(t) = t {
            v(&join(prefix, name), t, kind);
        }
    }
}
