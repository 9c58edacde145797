//! Reverse-mode automatic differentiation over a dynamic graph, with
//! PyTorch's semantics.
//!
//! Every op that produces a tensor from inputs that require grad attaches a
//! [`Node`] to its result: the op's backward rule (a closure written next to
//! the op's forward) plus edges to the inputs' nodes, or to the input itself
//! when it is a leaf. [`Tensor::backward`] walks the graph in topological
//! order, sums the gradients that reach each node, and accumulates them into
//! the `grad` of leaves. Unless `retain_graph` is asked for, each node's
//! closure, and with it every tensor it saved, is dropped once run, so a
//! second backward through the same graph is a clear error.

mod engine;
mod grad_mode;
mod saved;

pub(crate) use engine::{check_scalar as engine_check_scalar, run_backward};
pub use engine::{grad, queue_callback};
pub use grad_mode::{NoGradGuard, is_grad_enabled, no_grad, set_grad_enabled};
pub(crate) use saved::SavedVersion;

use crate::Tensor;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A backward rule: given the gradient of the op's output and which inputs
/// need a gradient, returns one optional gradient per input, each already
/// reduced to that input's shape.
pub(crate) type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> Vec<Option<Tensor>> + Send + Sync>;

/// A gradient hook: sees a gradient and may replace it.
pub type Hook = Box<dyn Fn(&Tensor) -> Option<Tensor> + Send + Sync>;

/// A hook run on a leaf after its gradient was accumulated
/// ([`Tensor::register_post_accumulate_grad_hook`]).
pub type PostAccumulateHook = Box<dyn Fn(&Tensor) + Send + Sync>;

/// Where an input's gradient goes.
pub(crate) enum Edge {
    /// The input needs no gradient.
    None,
    /// The input was produced by another op.
    Node(Arc<Node>),
    /// The input is a leaf that requires grad.
    Leaf(Tensor),
}

/// One recorded op in the autograd graph (PyTorch's `grad_fn`).
pub struct Node {
    name: &'static str,
    pub(crate) edges: Vec<Edge>,
    pub(crate) backward: Mutex<Option<BackwardFn>>,
    pub(crate) hooks: Mutex<Vec<Hook>>,
    pub(crate) retains_grad: AtomicBool,
    pub(crate) retained_grad: Mutex<Option<Tensor>>,
    /// The versions of the tensors the backward reads, checked before it
    /// runs; dropped with the backward (they hold the tensors' storage).
    pub(crate) saved: Mutex<Vec<SavedVersion>>,
}

impl Node {
    pub(crate) fn new(name: &'static str, edges: Vec<Edge>, backward: BackwardFn) -> Self {
        Node {
            name,
            edges,
            backward: Mutex::new(Some(backward)),
            hooks: Mutex::new(Vec::new()),
            retains_grad: AtomicBool::new(false),
            retained_grad: Mutex::new(None),
            saved: Mutex::new(Vec::new()),
        }
    }

    /// This node with `saved` as the versions its backward relies on.
    pub(crate) fn with_saved(self, saved: Vec<SavedVersion>) -> Self {
        Node {
            saved: Mutex::new(saved),
            ..self
        }
    }

    /// PyTorch-style name of the backward function, e.g. `AddBackward0`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The nodes this node passes gradients to (PyTorch's `next_functions`),
    /// with `None` for inputs that are leaves or need no gradient.
    pub fn next_functions(&self) -> Vec<Option<GradFn>> {
        self.edges
            .iter()
            .map(|e| match e {
                Edge::Node(n) => Some(GradFn(n.clone())),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn set_retains_grad(&self) {
        self.retains_grad.store(true, Ordering::Relaxed);
    }
}

/// A handle on a tensor's `grad_fn`, printable like PyTorch's
/// `<AddBackward0 object>`.
#[derive(Clone)]
pub struct GradFn(pub(crate) Arc<Node>);

impl GradFn {
    /// The backward function's name, e.g. `MulBackward0`.
    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// The grad_fns of this op's inputs.
    pub fn next_functions(&self) -> Vec<Option<GradFn>> {
        self.0.next_functions()
    }
}

impl fmt::Debug for GradFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0.name)
    }
}

impl fmt::Display for GradFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0.name)
    }
}
