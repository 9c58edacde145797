//! `Sequential`: a chain of layers with PyTorch's numeric child names.

use crate::Tensor;
use crate::nn::{Forward, Layer, Module, TensorKind, format_module};
use std::fmt;

/// Layers applied in order, like `nn.Sequential`. Children are named
/// `0`, `1`, ... when pushed, so a `features` field gives keys like
/// `features.0.weight`; [`Sequential::add_module`] chooses a name.
///
/// ```
/// use kiln_runtime::{Device, Tensor};
/// use kiln_runtime::nn::{Forward, Linear, Module, ReLU, Sequential};
/// let net = Sequential::new()
///     .push(Linear::new(4, 8, &Device::Cpu))
///     .push(ReLU::new())
///     .push(Linear::new(8, 2, &Device::Cpu));
/// assert_eq!(net.forward(&Tensor::ones([3, 4])).shape(), &[3, 2]);
/// let keys: Vec<String> = net.state_dict().keys().map(String::from).collect();
/// assert_eq!(keys, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// ```
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
    training: bool,
}

impl Sequential {
    /// An empty chain.
    pub fn new() -> Sequential {
        Sequential {
            layers: Vec::new(),
            training: true,
        }
    }

    /// Appends `layer` under the next index, like `nn.Sequential(a, b, c)`.
    pub fn push(mut self, layer: impl Layer + 'static) -> Sequential {
        let name = self.layers.len().to_string();
        self.layers.push((name, Box::new(layer)));
        self
    }

    /// Appends an already boxed layer under the next index.
    pub fn push_boxed(mut self, layer: Box<dyn Layer>) -> Sequential {
        let name = self.layers.len().to_string();
        self.layers.push((name, layer));
        self
    }

    /// Appends `layer` named `name`, like `seq.add_module(name, layer)`;
    /// panics if the name is taken or contains a dot.
    pub fn add_module(&mut self, name: &str, layer: impl Layer + 'static) -> &mut Sequential {
        assert!(
            !name.is_empty() && !name.contains('.'),
            "add_module: module name can't be empty or contain \".\", got {name:?}"
        );
        assert!(
            self.layers.iter().all(|(n, _)| n != name),
            "add_module: attribute '{name}' already exists"
        );
        self.layers.push((name.to_string(), Box::new(layer)));
        self
    }

    /// The `i`-th layer, like `seq[i]`.
    pub fn get(&self, i: usize) -> Option<&dyn Layer> {
        self.layers.get(i).map(|(_, l)| &**l)
    }

    /// The `i`-th layer, mutably.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut (dyn Layer + 'static)> {
        self.layers.get_mut(i).map(|(_, l)| &mut **l)
    }

    /// Number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no layers.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// `(name, layer)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &dyn Layer)> {
        self.layers.iter().map(|(n, l)| (n.as_str(), &**l))
    }
}

/// Taking layers out, as PyTorch's `seq[a:b]`, `del seq[i]` and
/// `seq.pop(i)` do. A slice keeps the layers' names (`features[5:8]` has
/// children `5`, `6`, `7`); removing renumbers the layers that stay.
/// Layers are moved, not shared: slice the model you no longer need whole,
/// as in the VGG feature-extractor pattern:
///
/// ```
/// use kiln_runtime::Device;
/// use kiln_runtime::nn::{Conv2d, Conv2dOptions, MaxPool2d, Module, ReLU, Sequential};
/// let d = Device::Cpu;
/// let features = Sequential::new()
///     .push(Conv2d::new(3, 8, Conv2dOptions::new([3, 3]).padding([1, 1]), &d))
///     .push(ReLU::new())
///     .push(MaxPool2d::new([2, 2], [2, 2], [0, 0]))
///     .push(Conv2d::new(8, 8, Conv2dOptions::new([3, 3]).padding([1, 1]), &d))
///     .push(ReLU::new());
/// let head = features.into_slice(..2); // `vgg.features[:2]`
/// assert_eq!(head.len(), 2);
/// let keys: Vec<String> = head.state_dict().keys().map(String::from).collect();
/// assert_eq!(keys, ["0.weight", "0.bias"]);
/// ```
impl Sequential {
    /// The layers in `range` as a new `Sequential` with their names, like
    /// `seq[a:b]`; the other layers are dropped. Panics if the range is out
    /// of bounds.
    pub fn into_slice(mut self, range: impl std::ops::RangeBounds<usize>) -> Sequential {
        let training = self.training;
        let (a, b) = self.bounds("into_slice", &range);
        Sequential {
            layers: self.layers.drain(a..b).collect(),
            training,
        }
    }

    /// Moves the layers in `range` out into a new `Sequential` (keeping
    /// their names, like `seq[a:b]`) and removes them from `self`, whose
    /// remaining layers are renumbered `0`, `1`, ... as after PyTorch's
    /// `del seq[a:b]`.
    pub fn drain(&mut self, range: impl std::ops::RangeBounds<usize>) -> Sequential {
        let (a, b) = self.bounds("drain", &range);
        let out = Sequential {
            layers: self.layers.drain(a..b).collect(),
            training: self.training,
        };
        self.renumber();
        out
    }

    /// Removes and returns the `i`-th layer, like `seq.pop(i)`; the others
    /// are renumbered. Panics if `i` is out of range.
    pub fn remove(&mut self, i: usize) -> Box<dyn Layer> {
        let n = self.layers.len();
        assert!(
            i < n,
            "Sequential::remove: index {i} is out of range for {n} layers"
        );
        let (_, l) = self.layers.remove(i);
        self.renumber();
        l
    }

    /// The layers and their names, in order (to rebuild another container).
    pub fn into_layers(self) -> Vec<(String, Box<dyn Layer>)> {
        self.layers
    }

    fn bounds(&self, op: &str, range: &impl std::ops::RangeBounds<usize>) -> (usize, usize) {
        use std::ops::Bound::*;
        let n = self.layers.len();
        let a = match range.start_bound() {
            Included(&a) => a,
            Excluded(&a) => a + 1,
            Unbounded => 0,
        };
        let b = match range.end_bound() {
            Included(&b) => b + 1,
            Excluded(&b) => b,
            Unbounded => n,
        };
        assert!(
            a <= b && b <= n,
            "Sequential::{op}: range {a}..{b} is out of bounds for {n} layers"
        );
        (a, b)
    }

    fn renumber(&mut self) {
        for (i, (name, _)) in self.layers.iter_mut().enumerate() {
            *name = i.to_string();
        }
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl std::ops::Index<usize> for Sequential {
    type Output = dyn Layer;
    fn index(&self, i: usize) -> &Self::Output {
        let n = self.layers.len();
        match self.layers.get(i) {
            Some((_, l)) => &**l,
            None => panic!("Sequential: index {i} is out of range for {n} layers"),
        }
    }
}

impl Forward for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        for (_, l) in &self.layers {
            y = l.forward(&y);
        }
        y
    }
}

impl Module for Sequential {
    fn visit(&self, prefix: &str, v: &mut dyn FnMut(&str, &Tensor, TensorKind)) {
        for (n, l) in &self.layers {
            l.visit(&format!("{prefix}{n}."), v);
        }
    }
    fn visit_children(&self, f: &mut dyn FnMut(&str, &dyn Module)) {
        for (n, l) in &self.layers {
            f(n, &**l);
        }
    }
    fn visit_children_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Module)) {
        for (n, l) in &mut self.layers {
            f(n, &mut **l);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
        for (_, l) in &mut self.layers {
            l.set_training(training);
        }
    }
    fn is_training(&self) -> bool {
        self.training
    }
    fn type_name(&self) -> &str {
        "Sequential"
    }
}

impl fmt::Display for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_module(self))
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_module(self))
    }
}
