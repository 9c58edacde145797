//! Optimizer state dicts with PyTorch's structure:
//!
//! ```text
//! {"state": {0: {"momentum_buffer": tensor}, 1: {...}, ...},
//!  "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1]}, ...]}
//! ```
//!
//! Parameters are numbered across groups in order, as PyTorch does; a
//! loaded dict's indices are matched to this optimizer's parameters by
//! position (PyTorch's `id_map`). Loading checks everything first and
//! reports every mismatch at once in a [`LoadStateError`]; the optimizer is
//! changed only when there is none.

use super::options::SavedOptions;
use super::{ParamGroup, StateMap};
use crate::Tensor;
use crate::io::{Dict, Key, Value};
use std::fmt;

/// Why an optimizer, scheduler or RNG state dict could not be loaded: every
/// problem found, each naming the entry. The object loaded into is
/// unchanged.
#[derive(Debug, Clone)]
pub struct LoadStateError {
    /// What was being loaded (`"SGD"`, `"StepLR"`, ...).
    pub what: String,
    /// One line per mismatch.
    pub problems: Vec<String>,
}

impl fmt::Display for LoadStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.load_state_dict: {} problem(s): {}",
            self.what,
            self.problems.len(),
            self.problems.join("; ")
        )
    }
}

impl std::error::Error for LoadStateError {}

/// Collects problems while a state dict is checked.
pub(crate) struct Problems {
    what: String,
    list: Vec<String>,
}

impl Problems {
    pub(crate) fn new(what: &str) -> Self {
        Problems {
            what: what.to_string(),
            list: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, p: String) {
        self.list.push(p);
    }
    /// `Ok(v)` when nothing was found, else the error.
    pub(crate) fn finish<T>(self, v: T) -> Result<T, LoadStateError> {
        if self.list.is_empty() {
            Ok(v)
        } else {
            Err(LoadStateError {
                what: self.what,
                problems: self.list,
            })
        }
    }

    /// A required float entry.
    pub(crate) fn float(&mut self, d: &Dict, key: &str, at: &str) -> Option<f64> {
        match d.get(key) {
            Some(v) => match v.as_float().or_else(|| scalar_tensor(v)) {
                Some(x) => Some(x),
                None => {
                    self.push(format!("{at}[{key:?}] is a {}, not a float", v.type_name()));
                    None
                }
            },
            None => {
                self.push(format!("{at} has no {key:?}"));
                None
            }
        }
    }

    /// A required bool entry.
    pub(crate) fn bool(&mut self, d: &Dict, key: &str, at: &str) -> Option<bool> {
        match d.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.push(format!("{at}[{key:?}] is a {}, not a bool", v.type_name()));
                None
            }
            None => {
                self.push(format!("{at} has no {key:?}"));
                None
            }
        }
    }

    /// A required list of floats.
    pub(crate) fn floats(&mut self, d: &Dict, key: &str, at: &str) -> Option<Vec<f64>> {
        let Some(v) = d.get(key) else {
            self.push(format!("{at} has no {key:?}"));
            return None;
        };
        let got = v
            .as_list()
            .and_then(|l| l.iter().map(Value::as_float).collect::<Option<Vec<_>>>());
        if got.is_none() {
            self.push(format!("{at}[{key:?}] is not a list of floats"));
        }
        got
    }

    /// Flags PyTorch has and kiln does not implement (`maximize`,
    /// `capturable`, ...): absent, `None` or `false` is fine.
    pub(crate) fn unsupported_flags(&mut self, d: &Dict, keys: &[&str], at: &str) {
        for key in keys {
            if let Some(Value::Bool(true)) = d.get(*key) {
                self.push(format!(
                    "{at}[{key:?}] is true, which kiln does not support"
                ));
            }
        }
    }

    /// An optional state buffer shaped like `p`, copied to `p`'s dtype and
    /// device.
    pub(crate) fn buffer(&mut self, d: &Dict, key: &str, p: &Tensor, at: &str) -> Option<Tensor> {
        match d.get(key) {
            None | Some(Value::None) => None,
            Some(Value::Tensor(t)) if t.shape() == p.shape() => Some(
                t.detach()
                    .to_device(p.device())
                    .to_dtype(p.dtype())
                    .deep_copy(),
            ),
            Some(Value::Tensor(t)) => {
                self.push(format!(
                    "{at}[{key:?}] has shape {:?} but the parameter has shape {:?}",
                    t.shape(),
                    p.shape()
                ));
                None
            }
            Some(v) => {
                self.push(format!(
                    "{at}[{key:?}] is a {}, not a tensor",
                    v.type_name()
                ));
                None
            }
        }
    }

    /// A required buffer (see [`Problems::buffer`]).
    pub(crate) fn required_buffer(
        &mut self,
        d: &Dict,
        key: &str,
        p: &Tensor,
        at: &str,
    ) -> Option<Tensor> {
        if d.get(key).is_none() {
            self.push(format!("{at} has no {key:?}"));
            return None;
        }
        self.buffer(d, key, p, at)
    }

    /// A step count: an int, an integral float, or a one-element tensor
    /// (PyTorch keeps `step` as a float32 scalar tensor).
    pub(crate) fn step(&mut self, d: &Dict, at: &str) -> Option<u64> {
        let Some(v) = d.get("step") else {
            self.push(format!("{at} has no \"step\""));
            return None;
        };
        let x = v.as_float().or_else(|| scalar_tensor(v));
        match x {
            Some(x) if x >= 0.0 && x.fract() == 0.0 && x < 9.0e15 => Some(x as u64),
            _ => {
                self.push(format!("{at}[\"step\"] is not a non-negative integer"));
                None
            }
        }
    }
}

/// The value of a one-element tensor.
fn scalar_tensor(v: &Value) -> Option<f64> {
    match v {
        Value::Tensor(t) if t.numel() == 1 => Some(t.item()),
        _ => None,
    }
}

/// `step` as PyTorch stores it: a float32 scalar tensor.
pub(crate) fn step_tensor(step: u64) -> Value {
    Value::Tensor(Tensor::scalar(step as f32))
}

/// Builds `{"state", "param_groups"}`: `hypers(group)` gives a group's
/// options (without `params`), `state(param)` a parameter's entries
/// (`None` when it has no state yet).
pub(crate) fn save(
    groups: &[ParamGroup],
    hypers: impl Fn(&ParamGroup) -> Vec<(&'static str, Value)>,
    state: impl Fn(&Tensor) -> Option<Vec<(&'static str, Value)>>,
) -> Dict {
    let mut states = Dict::new();
    let mut out_groups = Vec::new();
    let mut index = 0usize;
    for g in groups {
        let mut gd = Dict::new();
        for (k, v) in hypers(g) {
            gd.insert(k, v);
        }
        let mut ids = Vec::new();
        for p in &g.params {
            if let Some(entries) = state(p) {
                let mut sd = Dict::new();
                for (k, v) in entries {
                    sd.insert(k, v);
                }
                states.insert(Key::Int(index as i64), sd);
            }
            ids.push(Value::Int(index as i64));
            index += 1;
        }
        gd.insert("params", Value::List(ids));
        out_groups.push(Value::Dict(gd));
    }
    let mut d = Dict::new();
    d.insert("state", states);
    d.insert("param_groups", Value::List(out_groups));
    d
}

/// A checked state dict: each group's saved dict, and each parameter's
/// saved state (by position across groups), matched like PyTorch's
/// `load_state_dict`.
pub(crate) struct Matched<'a> {
    /// The saved dict of each group, in order.
    pub groups: Vec<&'a Dict>,
    /// For each parameter (numbered across groups), its saved state.
    pub states: Vec<Option<&'a Dict>>,
}

/// Checks the structure of `sd` against `groups` (group count, parameter
/// counts, state indices), recording mismatches in `pr`.
pub(crate) fn match_groups<'a>(
    groups: &[ParamGroup],
    sd: &'a Dict,
    pr: &mut Problems,
) -> Option<Matched<'a>> {
    let saved_groups: Option<Vec<&Dict>> = match sd.get("param_groups") {
        Some(Value::List(l)) => {
            let ds: Option<Vec<&Dict>> = l.iter().map(Value::as_dict).collect();
            if ds.is_none() {
                pr.push("\"param_groups\" holds something that is not a dict".into());
            }
            ds
        }
        Some(v) => {
            pr.push(format!(
                "\"param_groups\" is a {}, not a list",
                v.type_name()
            ));
            None
        }
        None => {
            pr.push("the state dict has no \"param_groups\"".into());
            None
        }
    };
    let state = match sd.get("state") {
        Some(Value::Dict(d)) => Some(d),
        Some(v) => {
            pr.push(format!("\"state\" is a {}, not a dict", v.type_name()));
            None
        }
        None => {
            pr.push("the state dict has no \"state\"".into());
            None
        }
    };
    let saved_groups = saved_groups?;
    if saved_groups.len() != groups.len() {
        pr.push(format!(
            "the state dict has {} parameter group(s), the optimizer {}",
            saved_groups.len(),
            groups.len()
        ));
        return None;
    }
    // Saved parameter id → position across this optimizer's groups.
    let mut id_map = std::collections::HashMap::new();
    let mut position = 0usize;
    for (gi, (g, sg)) in groups.iter().zip(&saved_groups).enumerate() {
        let ids = sg
            .get("params")
            .and_then(Value::as_list)
            .and_then(|l| l.iter().map(Value::as_int).collect::<Option<Vec<_>>>());
        match ids {
            Some(ids) if ids.len() == g.params.len() => {
                for id in ids {
                    if id_map.insert(id, position).is_some() {
                        pr.push(format!(
                            "parameter index {id} appears twice in param_groups"
                        ));
                    }
                    position += 1;
                }
            }
            Some(ids) => {
                pr.push(format!(
                    "param_groups[{gi}] has {} parameters, the optimizer's group {}",
                    ids.len(),
                    g.params.len()
                ));
                position += g.params.len();
            }
            None => {
                pr.push(format!(
                    "param_groups[{gi}][\"params\"] is not a list of ints"
                ));
                position += g.params.len();
            }
        }
    }
    let mut states = vec![None; position];
    if let Some(state) = state {
        for (k, v) in state.iter() {
            let Some(&pos) = k.as_index().and_then(|i| id_map.get(&i)) else {
                pr.push(format!("state[{k}] is for a parameter no group lists"));
                continue;
            };
            match v {
                Value::Dict(d) => states[pos] = Some(d),
                other => pr.push(format!("state[{k}] is a {}, not a dict", other.type_name())),
            }
        }
    }
    Some(Matched {
        groups: saved_groups,
        states,
    })
}

/// Loads an optimizer state dict into `groups` and `state`: checks its
/// structure ([`match_groups`]), reads each saved group's options with
/// `read_group(pr, saved, at)` and each parameter's saved state with
/// `read_state(pr, saved, param, at)` (`at` names the entry in problems),
/// and only when no problem was found applies each group's options and
/// replaces the state.
pub(crate) fn load<S>(
    what: &str,
    groups: &mut [ParamGroup],
    state: &mut StateMap<S>,
    sd: &Dict,
    mut read_group: impl FnMut(&mut Problems, &Dict, &str) -> Option<SavedOptions>,
    mut read_state: impl FnMut(&mut Problems, &Dict, &Tensor, &str) -> Option<S>,
) -> Result<(), LoadStateError> {
    let mut pr = Problems::new(what);
    let Some(m) = match_groups(groups, sd, &mut pr) else {
        return pr.finish(());
    };
    let hypers: Vec<Option<SavedOptions>> = m
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| read_group(&mut pr, g, &format!("param_groups[{i}]")))
        .collect();
    let mut states = Vec::new();
    for (i, (p, s)) in all_params(groups).iter().zip(&m.states).enumerate() {
        if let Some(s) = s
            && let Some(s) = read_state(&mut pr, s, p, &format!("state[{i}]"))
        {
            states.push((p.shallow_clone(), s));
        }
    }
    pr.finish(())?;
    // Every group's options are `Some` once the checks passed.
    for (g, h) in groups.iter_mut().zip(&hypers) {
        if let Some(h) = h {
            h.apply(g);
        }
    }
    state.replace(states);
    Ok(())
}

/// Every parameter across `groups`, in order.
pub(crate) fn all_params(groups: &[ParamGroup]) -> Vec<Tensor> {
    groups
        .iter()
        .flat_map(|g| g.params.iter().map(Tensor::shallow_clone))
        .collect()
}
