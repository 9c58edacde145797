//! The backward pass: topological walk, gradient summation, leaf
//! accumulation, hooks, graph freeing, and `autograd::grad`.

use super::{Edge, Node, set_grad_enabled};
use crate::Tensor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type Key = usize;

fn node_key(n: &Arc<Node>) -> Key {
    Arc::as_ptr(n) as *const u8 as usize
}

/// What to do with the gradients that reach leaves.
enum Sink<'a> {
    /// Accumulate into each leaf's `.grad` (`Tensor::backward`).
    Accumulate,
    /// Capture the gradients of these tensors only (`autograd::grad`).
    Capture {
        targets: &'a [Tensor],
        grads: Vec<Option<Tensor>>,
    },
}

impl Sink<'_> {
    fn capture_index(&self, key: Key, is_leaf: bool) -> Option<usize> {
        match self {
            Sink::Accumulate => None,
            Sink::Capture { targets, .. } => targets.iter().position(|t| {
                if is_leaf {
                    t.grad_fn_node().is_none() && t.impl_key() == key
                } else {
                    t.grad_fn_node().is_some_and(|n| node_key(&n) == key)
                }
            }),
        }
    }

    fn capture(&mut self, i: usize, g: &Tensor) {
        if let Sink::Capture { grads, .. } = self {
            grads[i] = Some(match grads[i].take() {
                None => g.shallow_clone(),
                Some(old) => &old + g,
            });
        }
    }
}

thread_local! {
    /// Callbacks to run when this thread's current (or next) backward ends.
    static CALLBACKS: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Queues `f` to run once the backward pass running on this thread has
/// accumulated every gradient (or, outside a backward, once the next one
/// on this thread has), like PyTorch's
/// `Variable._execution_engine.queue_callback`. Data-parallel training
/// uses it to wait for the gradient all-reduces before `backward` returns.
///
/// ```
/// use kiln_runtime::{Tensor, autograd};
/// use std::sync::{Arc, Mutex};
/// let w = Tensor::from([3.0f32]).requires_grad_(true);
/// let seen = Arc::new(Mutex::new(None));
/// let (s, w2) = (seen.clone(), w.shallow_clone());
/// autograd::queue_callback(move || *s.lock().unwrap() = w2.grad().map(|g| g.to_vec::<f32>()));
/// (&w * &w).sum().backward();
/// assert_eq!(seen.lock().unwrap().clone(), Some(vec![6.0]));
/// ```
pub fn queue_callback(f: impl FnOnce() + 'static) {
    CALLBACKS.with(|c| c.borrow_mut().push(Box::new(f)));
}

/// Runs backward from each `(output, grad_output)` pair.
pub(crate) fn run_backward(roots: &[(Tensor, Tensor)], retain_graph: bool, create_graph: bool) {
    run(roots, retain_graph, create_graph, &mut Sink::Accumulate);
    // Callbacks may queue more callbacks (for the next backward): take the
    // current list first.
    let callbacks = CALLBACKS.with(|c| std::mem::take(&mut *c.borrow_mut()));
    for f in callbacks {
        f();
    }
}

/// Computes and returns the gradients of `sum(outputs)` with respect to
/// `inputs` without touching any `.grad`, like `torch.autograd.grad`.
/// An input that the outputs do not depend on gets `None`.
///
/// ```
/// use kiln_runtime::{Tensor, autograd};
/// let x = Tensor::from([1.0f32, 2.0, 3.0]).requires_grad_(true);
/// let y = (&x * &x).sum();
/// let g = autograd::grad(&[y], &[x.shallow_clone()], false);
/// assert_eq!(g[0].as_ref().unwrap().to_vec::<f32>(), vec![2.0, 4.0, 6.0]);
/// assert!(x.grad().is_none());
/// ```
pub fn grad(outputs: &[Tensor], inputs: &[Tensor], create_graph: bool) -> Vec<Option<Tensor>> {
    let roots: Vec<(Tensor, Tensor)> = outputs
        .iter()
        .map(|o| {
            check_scalar("autograd::grad", o);
            (o.shallow_clone(), o.ones_like())
        })
        .collect();
    let mut sink = Sink::Capture {
        targets: inputs,
        grads: inputs.iter().map(|_| None).collect(),
    };
    run(&roots, create_graph, create_graph, &mut sink);
    match sink {
        Sink::Capture { grads, .. } => grads,
        Sink::Accumulate => unreachable!("sink kind does not change"),
    }
}

pub(crate) fn check_scalar(op: &str, t: &Tensor) {
    if t.numel() != 1 {
        panic!(
            "{op}: grad can be implicitly created only for scalar outputs, but the output has shape {:?}; use backward_with(grad)",
            t.shape()
        );
    }
}

fn run(roots: &[(Tensor, Tensor)], retain_graph: bool, create_graph: bool, sink: &mut Sink<'_>) {
    let _mode = set_grad_enabled(create_graph);

    // Collect the graph and count, for every node, how many edges lead to it.
    let mut deps: HashMap<Key, usize> = HashMap::new();
    let mut nodes: HashMap<Key, Arc<Node>> = HashMap::new();
    let mut stack: Vec<Arc<Node>> = Vec::new();
    for (t, _) in roots {
        if let Some(n) = t.grad_fn_node()
            && nodes.insert(node_key(&n), n.clone()).is_none()
        {
            stack.push(n);
        }
    }
    while let Some(n) = stack.pop() {
        for e in &n.edges {
            if let Edge::Node(next) = e {
                let k = node_key(next);
                *deps.entry(k).or_insert(0) += 1;
                if nodes.insert(k, next.clone()).is_none() {
                    stack.push(next.clone());
                }
            }
        }
    }

    // Seed the gradients of the roots.
    let mut grads: HashMap<Key, Tensor> = HashMap::new();
    for (t, g) in roots {
        match t.grad_fn_node() {
            Some(n) => add_into(&mut grads, node_key(&n), g.shallow_clone()),
            None if t.requires_grad() => deliver_to_leaf(t, g.shallow_clone(), create_graph, sink),
            None => panic!(
                "backward: element 0 of tensors does not require grad and does not have a grad_fn"
            ),
        }
    }

    let mut ready: Vec<Arc<Node>> = nodes
        .iter()
        .filter(|(k, _)| !deps.contains_key(k))
        .map(|(_, n)| n.clone())
        .collect();
    while let Some(node) = ready.pop() {
        let key = node_key(&node);
        let Some(mut g) = grads.remove(&key) else {
            // Reached by no gradient (e.g. a root whose seed was dropped).
            release_children(&node, &mut deps, &nodes, &mut ready);
            continue;
        };
        for hook in node.hooks.lock().unwrap().iter() {
            if let Some(new) = hook(&g) {
                g = new;
            }
        }
        if node.retains_grad.load(Ordering::Relaxed) {
            let mut slot = node.retained_grad.lock().unwrap();
            *slot = Some(match slot.take() {
                None => g.detach(),
                Some(old) => (&old + &g).detach(),
            });
        }
        if let Some(i) = sink.capture_index(key, false) {
            sink.capture(i, &g);
        }
        let input_grads = {
            let mut slot = node.backward.lock().unwrap();
            let Some(f) = slot.as_ref() else {
                panic!(
                    "backward: trying to backward through the graph a second time (or directly access saved tensors after they have already been freed) at {}. Saved intermediate values of the graph are freed when you call backward(); pass retain_graph = true if you need to backward through the graph a second time",
                    node.name()
                );
            };
            let needs: Vec<bool> = node
                .edges
                .iter()
                .map(|e| !matches!(e, Edge::None))
                .collect();
            let mut saved = node.saved.lock().unwrap_or_else(|e| e.into_inner());
            for s in saved.iter() {
                s.check(node.name());
            }
            let out = f(&g, &needs);
            if !retain_graph {
                *slot = None;
                saved.clear();
            }
            out
        };
        assert_eq!(
            input_grads.len(),
            node.edges.len(),
            "{}: backward returned {} gradients for {} inputs",
            node.name(),
            input_grads.len(),
            node.edges.len()
        );
        for (edge, ig) in node.edges.iter().zip(input_grads) {
            match (edge, ig) {
                (Edge::Node(next), Some(ig)) => add_into(&mut grads, node_key(next), ig),
                (Edge::Leaf(leaf), Some(ig)) => {
                    assert_eq!(
                        ig.shape(),
                        leaf.shape(),
                        "{}: gradient shape does not match its input",
                        node.name()
                    );
                    deliver_to_leaf(leaf, ig, create_graph, sink)
                }
                _ => {}
            }
        }
        release_children(&node, &mut deps, &nodes, &mut ready);
    }
}

fn release_children(
    node: &Arc<Node>,
    deps: &mut HashMap<Key, usize>,
    nodes: &HashMap<Key, Arc<Node>>,
    ready: &mut Vec<Arc<Node>>,
) {
    for e in &node.edges {
        if let Edge::Node(next) = e {
            let k = node_key(next);
            let d = deps.get_mut(&k).expect("edge target was collected");
            *d -= 1;
            if *d == 0 {
                deps.remove(&k);
                ready.push(nodes[&k].clone());
            }
        }
    }
}

fn add_into(grads: &mut HashMap<Key, Tensor>, key: Key, g: Tensor) {
    match grads.remove(&key) {
        None => {
            grads.insert(key, g);
        }
        Some(old) => {
            grads.insert(key, &old + &g);
        }
    }
}

fn deliver_to_leaf(leaf: &Tensor, mut g: Tensor, create_graph: bool, sink: &mut Sink<'_>) {
    for hook in leaf.0.hooks.lock().unwrap().iter() {
        if let Some(new) = hook(&g) {
            g = new;
        }
    }
    match sink {
        Sink::Accumulate => {
            leaf.accumulate_grad(g, create_graph);
            for hook in leaf.0.post_accumulate_hooks.lock().unwrap().iter() {
                hook(leaf);
            }
        }
        Sink::Capture { .. } => {
            if let Some(i) = sink.capture_index(leaf.impl_key(), true) {
                sink.capture(i, &g);
            }
        }
    }
}
