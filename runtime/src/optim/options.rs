//! What SGD, Adam and RMSprop share: their [`Groups`] (parameter groups,
//! default options, per-parameter state), the [`Options`] of a group as
//! they resolve, save and load them (one struct holds every option any of
//! them has) and the [`Format`] of their state dicts.

use super::state::{Problems, load, save};
use super::{LoadStateError, ParamGroup, StateMap, resolve_lrs};
use crate::Tensor;
use crate::io::{Dict, Value};

/// An optimizer's parameter groups, its default options and its state
/// `S` per parameter.
pub(crate) struct Groups<S> {
    pub groups: Vec<ParamGroup>,
    pub defaults: Options,
    pub state: StateMap<S>,
}

impl<S> Groups<S> {
    /// `groups` with no state yet, those that set no learning rate taking
    /// `lr` (`name` names the optimizer when `lr` is invalid).
    pub(crate) fn new(name: &str, mut groups: Vec<ParamGroup>, lr: f64, defaults: Options) -> Self {
        assert!(lr >= 0.0, "{name}: invalid learning rate: {lr}");
        resolve_lrs(&mut groups, lr);
        Groups {
            groups,
            defaults,
            state: StateMap::default(),
        }
    }

    /// The state dict in `format`, `entries(state)` giving each
    /// parameter's buffers.
    pub(crate) fn save(
        &self,
        format: &Format,
        entries: impl Fn(&S) -> Vec<(&'static str, Value)>,
    ) -> Dict {
        save(
            &self.groups,
            |g| group_entries(g, &self.defaults, format),
            |p| self.state.get(p).map(&entries),
        )
    }

    /// Loads a state dict in `format` (see [`load`]): `read_state` reads
    /// each parameter's saved state.
    pub(crate) fn load(
        &mut self,
        format: &Format,
        sd: &Dict,
        read_state: impl FnMut(&mut Problems, &Dict, &Tensor, &str) -> Option<S>,
    ) -> Result<(), LoadStateError> {
        let unsupported: Vec<&str> = format
            .flags
            .iter()
            .copied()
            .filter(|&flag| !saved_as_none(flag))
            .collect();
        let read_group = |pr: &mut Problems, g: &Dict, at: &str| {
            pr.unsupported_flags(g, &unsupported, at);
            format.check_decoupled(pr, g, at);
            SavedOptions::read(pr, g, format.options, at)
        };
        load(
            format.name,
            &mut self.groups,
            &mut self.state,
            sd,
            read_group,
            read_state,
        )
    }
}

/// How an optimizer's state dict holds its groups' options.
pub(crate) struct Format {
    /// The optimizer, in load errors.
    pub name: &'static str,
    /// The options saved after `lr`, in PyTorch's order.
    pub options: &'static [Opt],
    /// PyTorch's flags kiln does not implement, saved after those at their
    /// defaults ([`saved_as_none`] or false); a loaded state may not set
    /// the boolean ones.
    pub flags: &'static [&'static str],
    /// `decoupled_weight_decay`, saved last (Adam and AdamW; a loaded
    /// state's must match).
    pub decoupled: Option<bool>,
}

impl Format {
    /// Records a problem when the saved group `g` is AdamW's and this Adam's
    /// (or the other way round).
    fn check_decoupled(&self, pr: &mut Problems, g: &Dict, at: &str) {
        if let (Some(decoupled), Some(Value::Bool(d))) =
            (self.decoupled, g.get("decoupled_weight_decay"))
            && *d != decoupled
        {
            pr.push(format!(
                "{at}[\"decoupled_weight_decay\"] is {d}: the state is {}'s, not {}'s",
                if *d { "AdamW" } else { "Adam" },
                self.name
            ));
        }
    }
}

/// Whether PyTorch's default for the flag `key` is `None` (`foreach` and
/// `fused`: chosen automatically) rather than false.
fn saved_as_none(key: &str) -> bool {
    matches!(key, "foreach" | "fused")
}

/// Every option SGD, Adam or RMSprop has, as values: an optimizer's
/// defaults, or a group's options resolved against them. Each optimizer
/// reads only its own.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub alpha: f64,
    pub centered: bool,
    pub amsgrad: bool,
}

impl Default for Options {
    /// PyTorch's defaults (those of `SGD`, `Adam` and `RMSprop`; AdamW's
    /// weight decay is its own).
    fn default() -> Self {
        Options {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            alpha: 0.99,
            centered: false,
            amsgrad: false,
        }
    }
}

impl ParamGroup {
    /// The options this group steps with: its own, else `defaults` (the
    /// optimizer's), with a cycling scheduler's momentum first (see
    /// [`momentum_or`](ParamGroup::momentum_or) and
    /// [`betas_or`](ParamGroup::betas_or)).
    pub(crate) fn options(&self, defaults: &Options) -> Options {
        Options {
            momentum: self.momentum_or(defaults.momentum),
            dampening: self.dampening.unwrap_or(defaults.dampening),
            nesterov: self.nesterov.unwrap_or(defaults.nesterov),
            weight_decay: self.weight_decay.unwrap_or(defaults.weight_decay),
            betas: self.betas_or(defaults.betas),
            eps: self.eps.unwrap_or(defaults.eps),
            alpha: self.alpha.unwrap_or(defaults.alpha),
            centered: self.centered.unwrap_or(defaults.centered),
            amsgrad: self.amsgrad.unwrap_or(defaults.amsgrad),
        }
    }
}

/// One option of a saved group, under its PyTorch key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Opt {
    Momentum,
    Dampening,
    Nesterov,
    WeightDecay,
    Betas,
    Eps,
    Alpha,
    Centered,
    Amsgrad,
}

/// Where an option lives in an [`Options`], by its type.
enum Slot<'a> {
    Float(&'a mut f64),
    Bool(&'a mut bool),
    Pair(&'a mut (f64, f64)),
}

impl Opt {
    fn key(self) -> &'static str {
        match self {
            Opt::Momentum => "momentum",
            Opt::Dampening => "dampening",
            Opt::Nesterov => "nesterov",
            Opt::WeightDecay => "weight_decay",
            Opt::Betas => "betas",
            Opt::Eps => "eps",
            Opt::Alpha => "alpha",
            Opt::Centered => "centered",
            Opt::Amsgrad => "amsgrad",
        }
    }

    fn slot(self, o: &mut Options) -> Slot<'_> {
        match self {
            Opt::Momentum => Slot::Float(&mut o.momentum),
            Opt::Dampening => Slot::Float(&mut o.dampening),
            Opt::Nesterov => Slot::Bool(&mut o.nesterov),
            Opt::WeightDecay => Slot::Float(&mut o.weight_decay),
            Opt::Betas => Slot::Pair(&mut o.betas),
            Opt::Eps => Slot::Float(&mut o.eps),
            Opt::Alpha => Slot::Float(&mut o.alpha),
            Opt::Centered => Slot::Bool(&mut o.centered),
            Opt::Amsgrad => Slot::Bool(&mut o.amsgrad),
        }
    }

    /// The option's value in `o`, as PyTorch saves it.
    fn value(self, mut o: Options) -> Value {
        match self.slot(&mut o) {
            Slot::Float(x) => Value::Float(*x),
            Slot::Bool(b) => Value::Bool(*b),
            Slot::Pair(&mut (a, b)) => Value::from(vec![a, b]),
        }
    }

    /// Reads the option from the saved group `d` into `o`; false (with the
    /// problem recorded) when it is missing or malformed.
    fn read(self, pr: &mut Problems, d: &Dict, at: &str, o: &mut Options) -> bool {
        let key = self.key();
        match self.slot(o) {
            Slot::Float(x) => pr.float(d, key, at).map(|v| *x = v).is_some(),
            Slot::Bool(b) => pr.bool(d, key, at).map(|v| *b = v).is_some(),
            Slot::Pair(p) => match pr.floats(d, key, at).as_deref() {
                Some(&[a, b]) => {
                    *p = (a, b);
                    true
                }
                Some(_) => {
                    pr.push(format!("{at}[{key:?}] must hold two floats"));
                    false
                }
                None => false,
            },
        }
    }

    /// Makes the option's value in `o` the group's own.
    fn set(self, g: &mut ParamGroup, o: &Options) {
        match self {
            Opt::Momentum => g.momentum = Some(o.momentum),
            Opt::Dampening => g.dampening = Some(o.dampening),
            Opt::Nesterov => g.nesterov = Some(o.nesterov),
            Opt::WeightDecay => g.weight_decay = Some(o.weight_decay),
            Opt::Betas => g.betas = Some(o.betas),
            Opt::Eps => g.eps = Some(o.eps),
            Opt::Alpha => g.alpha = Some(o.alpha),
            Opt::Centered => g.centered = Some(o.centered),
            Opt::Amsgrad => g.amsgrad = Some(o.amsgrad),
        }
    }
}

/// A group's entries in a state dict: `lr`, the options of `format` (in
/// its order) resolved against `defaults`, then its flags and
/// `decoupled_weight_decay`.
fn group_entries(
    g: &ParamGroup,
    defaults: &Options,
    format: &Format,
) -> Vec<(&'static str, Value)> {
    let o = g.options(defaults);
    let mut entries = vec![("lr", Value::Float(g.get_lr()))];
    entries.extend(format.options.iter().map(|opt| (opt.key(), opt.value(o))));
    entries.extend(format.flags.iter().map(|&flag| {
        let default = if saved_as_none(flag) {
            Value::None
        } else {
            Value::Bool(false)
        };
        (flag, default)
    }));
    entries.extend(
        format
            .decoupled
            .map(|d| ("decoupled_weight_decay", Value::Bool(d))),
    );
    entries
}

/// A saved group's `lr` and options, checked, to apply once the whole
/// state dict is.
pub(crate) struct SavedOptions {
    lr: f64,
    options: Options,
    opts: &'static [Opt],
}

impl SavedOptions {
    /// Reads `lr` and the options `opts` of the saved group `d` (`at` names
    /// it in problems); `None` once a problem is recorded.
    fn read(pr: &mut Problems, d: &Dict, opts: &'static [Opt], at: &str) -> Option<SavedOptions> {
        let lr = pr.float(d, "lr", at);
        let mut options = Options::default();
        let mut all_read = true;
        for opt in opts {
            // Every option is read, so that every problem is recorded.
            all_read &= opt.read(pr, d, at, &mut options);
        }
        let lr = lr.filter(|_| all_read)?;
        Some(SavedOptions { lr, options, opts })
    }

    /// Makes these the group's own options, replacing its learning rate and
    /// dropping a cycling scheduler's momentum (PyTorch's load replaces the
    /// group's dict).
    pub(crate) fn apply(&self, g: &mut ParamGroup) {
        g.set_lr(self.lr);
        g.momentum_cell().clear();
        for opt in self.opts {
            opt.set(g, &self.options);
        }
    }
}
