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
        let mut y = x.clone();
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
