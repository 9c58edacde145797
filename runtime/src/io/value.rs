//! [`Value`] and [`Dict`]: the nested Python-like values a checkpoint holds
//! (what `torch.save` pickles and `torch.load` returns): dicts, lists,
//! ints, floats, strings, bools, `None` and tensors.

use crate::{StateDict, Tensor};
use std::fmt;

/// One value of a checkpoint, like an object in the dict PyTorch's tutorial
/// passes to `torch.save`.
pub enum Value {
    /// Python's `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` (that fits 64 bits).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` object.
    Bytes(Vec<u8>),
    /// A `list` or `tuple`.
    List(Vec<Value>),
    /// A `dict` (or `OrderedDict`).
    Dict(Dict),
    /// A tensor.
    Tensor(Tensor),
}

impl Clone for Value {
    /// A copy of the value in which tensors are shared, not copied (like
    /// Python's `copy.copy` of a checkpoint dict).
    fn clone(&self) -> Self {
        match self {
            Value::None => Value::None,
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(i) => Value::Int(*i),
            Value::Float(f) => Value::Float(*f),
            Value::Str(s) => Value::Str(s.clone()),
            Value::Bytes(b) => Value::Bytes(b.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Dict(d) => Value::Dict(d.clone()),
            Value::Tensor(t) => Value::Tensor(t.shallow_clone()),
        }
    }
}

/// A dict key: a string or an int (optimizer state is keyed by parameter
/// index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// An `int` key.
    Int(i64),
    /// A `str` key.
    Str(String),
}

impl Key {
    /// The key as an index: an `Int`, or a `Str` that spells one (the
    /// `.pth` reader hands every key back as a string).
    pub fn as_index(&self) -> Option<i64> {
        match self {
            Key::Int(i) => Some(*i),
            Key::Str(s) => s.parse().ok(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Int(i) => write!(f, "{i}"),
            Key::Str(s) => write!(f, "{s}"),
        }
    }
}

/// `impl From<$from> for $to` for each line: the conversion written as a
/// one-argument closure.
macro_rules! conversions {
    ($($to:ident from $from:ty: |$x:ident| $body:expr;)*) => {
        $(impl From<$from> for $to {
            fn from($x: $from) -> Self {
                $body
            }
        })*
    };
}

conversions! {
    Key from &str: |s| Key::Str(s.to_string());
    Key from String: |s| Key::Str(s);
    Key from i64: |i| Key::Int(i);
    Key from usize: |i| Key::Int(i as i64);
}

/// An insertion-ordered dict of [`Value`]s.
///
/// ```
/// use kiln_runtime::io::{Dict, Value};
/// let mut d = Dict::new();
/// d.insert("epoch", 3);
/// d.insert("loss", 0.25);
/// assert_eq!(d.get("epoch").and_then(Value::as_int), Some(3));
/// assert_eq!(d.keys().count(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Dict {
    entries: Vec<(Key, Value)>,
}

impl Dict {
    /// An empty dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces `key` (a replaced key keeps its position).
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: impl Into<Key>) -> Option<&Value> {
        let key = key.into();
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Removes and returns `key`'s value.
    pub fn remove(&mut self, key: impl Into<Key>) -> Option<Value> {
        let key = key.into();
        let i = self.entries.iter().position(|(k, _)| *k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// `(key, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// The state dict stored under `key` (a dict of string keys to
    /// tensors), as `checkpoint["model_state_dict"]`.
    pub fn state_dict(&self, key: &str) -> Option<StateDict> {
        self.get(key).and_then(Value::to_state_dict)
    }

    /// The dict stored under `key`.
    pub fn dict(&self, key: &str) -> Option<&Dict> {
        self.get(key).and_then(Value::as_dict)
    }
}

impl fmt::Debug for Dict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(Key, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (Key, Value)>>(iter: I) -> Self {
        let mut d = Dict::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

impl Value {
    /// The Python type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Tensor(_) => "Tensor",
        }
    }
    /// The bool, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// The int, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    /// The number as a float (an `Int` converts, as in Python arithmetic).
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The list's items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }
    /// The dict, if this is one.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }
    /// A dict whose values are all tensors, as a [`StateDict`] (keys as
    /// strings, in order).
    pub fn to_state_dict(&self) -> Option<StateDict> {
        let d = self.as_dict()?;
        let mut sd = StateDict::new();
        for (k, v) in d.iter() {
            sd.insert(k.to_string(), v.as_tensor()?.shallow_clone());
        }
        Some(sd)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::None => write!(f, "None"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "bytes[{}]", b.len()),
            Value::List(v) => f.debug_list().entries(v).finish(),
            Value::Dict(d) => write!(f, "{d:?}"),
            Value::Tensor(t) => write!(f, "Tensor({:?}, {:?})", t.dtype(), t.shape()),
        }
    }
}

conversions! {
    Value from bool: |b| Value::Bool(b);
    Value from i64: |i| Value::Int(i);
    Value from i32: |i| Value::Int(i64::from(i));
    Value from usize: |i| Value::Int(i as i64);
    Value from u64: |i| Value::Int(i as i64);
    Value from f64: |x| Value::Float(x);
    Value from f32: |x| Value::Float(f64::from(x));
    Value from &str: |s| Value::Str(s.to_string());
    Value from String: |s| Value::Str(s);
    Value from Tensor: |t| Value::Tensor(t);
    Value from &Tensor: |t| Value::Tensor(t.shallow_clone());
    Value from Dict: |d| Value::Dict(d);
    Value from Vec<Value>: |v| Value::List(v);
    Value from Vec<f64>: |v| Value::List(v.into_iter().map(Value::Float).collect());
    Value from Option<Value>: |v| v.unwrap_or(Value::None);
    Value from StateDict: |sd| Value::Dict(
        sd.into_iter()
            .map(|(k, t)| (Key::Str(k), Value::Tensor(t)))
            .collect(),
    );
    Value from &StateDict: |sd| Value::from(sd.clone());
}
