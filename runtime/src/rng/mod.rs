//! Random numbers the way PyTorch's CPU generator makes them.
//!
//! The default generator (seeded by [`manual_seed`]) and every
//! [`Generator`] run PyTorch's MT19937 engine with PyTorch's sampling
//! algorithms, so a seeded kiln program draws **the same bits** as the
//! PyTorch program it was ported from.
//!
//! # The contract of [`manual_seed`]
//!
//! After `manual_seed(s)` (or with a `Generator::new(s)`), these produce
//! exactly what PyTorch's CPU generator produces after `torch.manual_seed(s)`,
//! in any order of calls, the generator's state carrying from one call to
//! the next as in PyTorch:
//!
//! * `Tensor::rand`, `randn` (float32 and float64, every size: the scalar
//!   path below 16 elements with its cached second normal, the 16-at-a-time
//!   Box–Muller fill from 16 with the Cephes `log`/`sincos` of PyTorch's
//!   AVX2 kernel for float32), `randint` (32-bit draws below a range of
//!   2^28, 64-bit from there, as PyTorch 2.15 does), `randperm` (both of
//!   PyTorch's algorithms), `Tensor::normal` / `normal_` / `init::normal_`,
//!   `Tensor::uniform` / `uniform_` / `init::uniform_` and the other
//!   `nn::init` functions (their bounds computed in PyTorch's order);
//! * the default initialisation of `Linear`, `Conv2d`, `Embedding` and
//!   `BatchNorm2d` (which draws nothing);
//! * dropout masks (`nn::functional::dropout`, `nn::Dropout`): PyTorch's
//!   `bernoulli_(1 - p)` on the CPU draws one float64 uniform per element,
//!   and so does kiln;
//! * the order a shuffling [`DataLoader`](crate::data::DataLoader) without
//!   its own generator visits the samples (PyTorch's `RandomSampler`: a seed
//!   from the default generator each epoch, after the loader's base seed);
//!   with a [`Generator`] the loader matches `DataLoader(...,
//!   generator=g)`; [`random_split`](crate::data::random_split) matches
//!   `torch.utils.data.random_split`;
//! * [`get_rng_state`] / [`set_rng_state`]: PyTorch's 5056-byte layout, so
//!   a state saved by either side restores in the other.
//!
//! The float64 normals rely on the C library's `log`, `log1p`, `sin` and
//! `cos`, which PyTorch's kernels also call: on the same C library they are
//! the same bits. The float32 fill uses only `+ - * sqrt` and fused
//! multiply-adds (as PyTorch's x86 build does), so it is exact anywhere.
//! `tests/rng.rs` checks all of this against streams PyTorch wrote.
//!
//! **Not** bit-identical:
//!
//! * float16/bfloat16 random tensors: drawn as float32 and rounded
//!   (PyTorch draws them with fewer bits);
//! * PyTorch builds whose CPU kernels differ from the x86 wheel's: a build
//!   without the AVX2 kernel (e.g. ARM) computes float32 normals of 16 or
//!   more elements with the C library's `logf`/`sinf`/`cosf` instead, and
//!   builds that route scalar `bernoulli_` through MKL's VSL stream draw
//!   other dropout masks;
//! * the augmentation of random transforms inside a `DataLoader`: PyTorch
//!   seeds each worker process, kiln seeds each sample (so the result does
//!   not depend on the number of workers); outside a loader, `RandomCrop`
//!   and `RandomHorizontalFlip` draw from the default generator as
//!   torchvision's do (`randint`, then `rand(1) < p`);
//! * CUDA: PyTorch's CUDA generator is Philox, a separate stream; kiln
//!   draws on the CPU and copies, so CUDA tensors get the CPU stream.

mod avx_mathfun;
mod distributions;
mod engine;
mod generator;

pub use distributions::{
    bernoulli_mask, normal_f32, normal_f64, randint, random_i64, randperm, uniform_f32, uniform_f64,
};
pub use generator::{Generator, RngStateError, STATE_BYTES};

use crate::Tensor;
use std::sync::Mutex;

/// PyTorch's `default_rng_seed_val`: an unseeded kiln program is still
/// deterministic (PyTorch seeds its default CPU generator randomly).
pub const DEFAULT_SEED: u64 = 67_280_421_310_721;

static GLOBAL: Mutex<Option<Generator>> = Mutex::new(None);

/// Seeds the default generator, like `torch.manual_seed`.
///
/// See the [module documentation](self) for which calls then reproduce
/// PyTorch's CPU streams bit for bit and which do not.
///
/// ```
/// use kiln_runtime::{Tensor, manual_seed};
/// manual_seed(0);
/// // torch.manual_seed(0); torch.rand(2) -> tensor([0.4963, 0.7682])
/// let x = Tensor::rand([2]).to_vec::<f32>();
/// assert_eq!(x, vec![0.4962566, 0.7682218]);
/// ```
pub fn manual_seed(seed: u64) {
    with_rng(|g| {
        g.manual_seed(seed);
    });
}

/// Reseeds the default generator non-deterministically and returns the
/// seed, like `torch.seed()`.
pub fn seed() -> u64 {
    with_rng(Generator::seed)
}

/// The default generator's seed, like `torch.initial_seed()`.
pub fn initial_seed() -> u64 {
    with_rng(|g| g.initial_seed())
}

/// The default generator's state, like `torch.get_rng_state()`: a `uint8`
/// tensor of [`STATE_BYTES`] bytes in PyTorch's layout.
///
/// ```
/// use kiln_runtime::{Tensor, rng};
/// let state = rng::get_rng_state();
/// let a = Tensor::randn([3]).to_vec::<f32>();
/// rng::set_rng_state(&state);
/// assert_eq!(Tensor::randn([3]).to_vec::<f32>(), a);
/// ```
pub fn get_rng_state() -> Tensor {
    with_rng(|g| g.get_state())
}

/// Restores the default generator's state, like `torch.set_rng_state`.
/// Panics on a tensor that is not a state (see [`Generator::try_set_state`]).
pub fn set_rng_state(state: &Tensor) {
    with_rng(|g| g.set_state(state));
}

/// Runs `f` with the default generator.
pub fn with_rng<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Generator::default))
}

/// Runs `f` with `generator` if given, else with the default generator.
pub fn with_generator<R>(
    generator: Option<&mut Generator>,
    f: impl FnOnce(&mut Generator) -> R,
) -> R {
    match generator {
        Some(g) => f(g),
        None => with_rng(f),
    }
}
