//! [`Generator`]: PyTorch's CPU generator (`torch.Generator()`), an
//! MT19937 engine plus the cached second normal samples, with its state in
//! `torch.get_rng_state()`'s byte layout.

use super::engine::{self, Mt19937};
use crate::Tensor;
use std::fmt;

/// A random number generator that produces PyTorch's CPU streams, like
/// `torch.Generator()`: the same seed gives the same numbers as PyTorch in
/// the random creation functions that take one (`Tensor::rand_with`, ...),
/// in [`DataLoader::generator`](crate::data::DataLoader::generator) and in
/// [`random_split`](crate::data::random_split).
///
/// `Clone` copies the state (like `g2.set_state(g.get_state())`); the
/// default generator behind [`manual_seed`](crate::manual_seed) is one of
/// these.
///
/// ```
/// use kiln_runtime::rng::Generator;
/// let mut g = Generator::new(42);
/// let saved = g.get_state();
/// let a = g.random();
/// g.set_state(&saved);
/// assert_eq!(g.random(), a);
/// assert_eq!(g.initial_seed(), 42);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Generator {
    engine: Mt19937,
    next_float_normal: Option<f32>,
    next_double_normal: Option<f64>,
}

/// Bytes in a generator state, `torch.get_rng_state().numel()`.
pub const STATE_BYTES: usize = 5056;

// Offsets in PyTorch's `CPUGeneratorImplState` (x86-64/aarch64 layout).
const OFF_SEED: usize = 0;
const OFF_LEFT: usize = 8;
const OFF_SEEDED: usize = 12;
const OFF_NEXT: usize = 16;
const OFF_STATE: usize = 24;
const OFF_NORMAL_Y: usize = OFF_STATE + 8 * engine::N + 8;
const OFF_NORMAL_VALID: usize = OFF_STATE + 8 * engine::N + 24;
const OFF_FLOAT_NORMAL: usize = 5048;
const OFF_FLOAT_VALID: usize = 5052;

/// Why a byte tensor is not a generator state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RngStateError {
    /// Not a 1-D uint8 tensor of [`STATE_BYTES`] bytes.
    Shape {
        /// What was given, e.g. `"float32 [3]"`.
        got: String,
    },
    /// The bytes do not describe a valid MT19937 state.
    Invalid,
}

impl fmt::Display for RngStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RngStateError::Shape { got } => write!(
                f,
                "set_state: expected a uint8 tensor of {STATE_BYTES} bytes (torch.get_rng_state()), got {got}"
            ),
            RngStateError::Invalid => write!(f, "set_state: invalid mt19937 state"),
        }
    }
}

impl std::error::Error for RngStateError {}

impl Generator {
    /// A generator seeded with `seed`, like `torch.Generator().manual_seed(seed)`.
    pub fn new(seed: u64) -> Generator {
        Generator {
            engine: Mt19937::new(seed),
            next_float_normal: None,
            next_double_normal: None,
        }
    }

    /// Reseeds, like `Generator.manual_seed`: the engine restarts from
    /// `seed` (its low 32 bits, as in PyTorch) and cached normals are
    /// dropped. Returns `self` for chaining.
    pub fn manual_seed(&mut self, seed: u64) -> &mut Generator {
        *self = Generator::new(seed);
        self
    }

    /// Reseeds from a non-deterministic source and returns the seed, like
    /// `Generator.seed()`.
    pub fn seed(&mut self) -> u64 {
        let seed = nondeterministic_seed();
        self.manual_seed(seed);
        seed
    }

    /// The seed this generator was last seeded with, like
    /// `Generator.initial_seed()`.
    pub fn initial_seed(&self) -> u64 {
        self.engine.seed
    }

    /// The next 32 random bits (PyTorch's `CPUGeneratorImpl::random`).
    #[inline]
    pub fn random(&mut self) -> u32 {
        self.engine.next_u32()
    }

    /// The next 64 random bits: two 32-bit draws, the first one high
    /// (PyTorch's `random64`).
    #[inline]
    pub fn random64(&mut self) -> u64 {
        let hi = self.engine.next_u32() as u64;
        let lo = self.engine.next_u32() as u64;
        (hi << 32) | lo
    }

    /// Fills `out` with consecutive [`random`](Generator::random) draws.
    pub fn fill_random(&mut self, out: &mut [u32]) {
        self.engine.fill_u32(out);
    }

    /// The next 64 random bits; the same as [`random64`](Generator::random64).
    pub fn next_u64(&mut self) -> u64 {
        self.random64()
    }

    /// Uniform in `[0, 1)` from 53 bits of one `random64`, like one element
    /// of `torch.rand(n, dtype=torch.float64)`.
    pub fn next_f64(&mut self) -> f64 {
        super::distributions::unit_f64(self.random64())
    }

    /// Uniform in `[0, 1)` from 24 bits of one `random`, like one element of
    /// `torch.rand(n)`.
    pub fn next_f32(&mut self) -> f32 {
        super::distributions::unit_f32(self.random())
    }

    /// A standard normal sample the way PyTorch's scalar path draws it
    /// (`at::normal_distribution<double>`): Box–Muller on two `random64`
    /// uniforms, the second value of each pair cached for the next call.
    pub fn next_normal(&mut self) -> f64 {
        if let Some(z) = self.next_double_normal.take() {
            return z;
        }
        let u1 = self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// A uniform integer in `[0, n)` the way `torch.randint(0, n, ...)`
    /// draws it: `random() % n`, or `random64() % n` when `n >= 2^28`
    /// (slightly biased for huge `n`, exactly as in PyTorch). Panics on 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below: empty range");
        super::distributions::below(self, n)
    }

    /// A random permutation of `0..n`, the one `torch.randperm(n)` makes.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        super::distributions::randperm(self, n)
    }

    /// The generator state as PyTorch lays it out: a `uint8` tensor of
    /// [`STATE_BYTES`] bytes, interchangeable with `torch.get_rng_state()`
    /// / `Generator.get_state()`.
    pub fn get_state(&self) -> Tensor {
        Tensor::from_vec(self.state_bytes(), [STATE_BYTES])
    }

    /// Restores a state from [`get_state`](Generator::get_state) (or from
    /// PyTorch's `get_rng_state()`), like `Generator.set_state`. Panics on
    /// a tensor that is not one; see [`try_set_state`](Generator::try_set_state).
    pub fn set_state(&mut self, state: &Tensor) {
        if let Err(e) = self.try_set_state(state) {
            panic!("{e}");
        }
    }

    /// [`set_state`](Generator::set_state) that reports a bad state instead
    /// of panicking (the generator is unchanged then).
    pub fn try_set_state(&mut self, state: &Tensor) -> Result<(), RngStateError> {
        if state.dtype() != crate::DType::U8 || state.shape() != [STATE_BYTES] {
            return Err(RngStateError::Shape {
                got: format!("{} {:?}", state.dtype(), state.shape()),
            });
        }
        let bytes: Vec<u8> = state.to(&crate::Device::Cpu).to_vec::<u8>();
        *self = Generator::from_state_bytes(&bytes)?;
        Ok(())
    }

    /// The state as raw bytes (see [`get_state`](Generator::get_state)).
    pub fn state_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; STATE_BYTES];
        let e = &self.engine;
        b[OFF_SEED..OFF_SEED + 8].copy_from_slice(&e.seed.to_le_bytes());
        b[OFF_LEFT..OFF_LEFT + 4].copy_from_slice(&(e.left as i32).to_le_bytes());
        b[OFF_SEEDED..OFF_SEEDED + 4].copy_from_slice(&1i32.to_le_bytes());
        b[OFF_NEXT..OFF_NEXT + 8].copy_from_slice(&(e.next as u64).to_le_bytes());
        for (k, &w) in e.state.iter().enumerate() {
            let at = OFF_STATE + 8 * k;
            b[at..at + 8].copy_from_slice(&(w as u64).to_le_bytes());
        }
        if let Some(y) = self.next_double_normal {
            b[OFF_NORMAL_Y..OFF_NORMAL_Y + 8].copy_from_slice(&y.to_le_bytes());
            b[OFF_NORMAL_VALID..OFF_NORMAL_VALID + 4].copy_from_slice(&1i32.to_le_bytes());
        }
        if let Some(z) = self.next_float_normal {
            b[OFF_FLOAT_NORMAL..OFF_FLOAT_NORMAL + 4].copy_from_slice(&z.to_le_bytes());
            b[OFF_FLOAT_VALID] = 1;
        }
        b
    }

    /// A generator from raw state bytes (see [`get_state`](Generator::get_state)).
    pub fn from_state_bytes(b: &[u8]) -> Result<Generator, RngStateError> {
        if b.len() != STATE_BYTES {
            return Err(RngStateError::Shape {
                got: format!("{} bytes", b.len()),
            });
        }
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        let i32_at = |at: usize| i32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let left = i32_at(OFF_LEFT);
        let next = u64_at(OFF_NEXT) as u32;
        // PyTorch's check (`mt19937::is_valid`): seeded, 0 < left <= N, next <= N.
        if i32_at(OFF_SEEDED) == 0
            || left <= 0
            || left as usize > engine::N
            || next as usize > engine::N
        {
            return Err(RngStateError::Invalid);
        }
        let mut state = [0u32; engine::N];
        for (k, w) in state.iter_mut().enumerate() {
            *w = u64_at(OFF_STATE + 8 * k) as u32;
        }
        let float_valid = b[OFF_FLOAT_VALID] != 0;
        let double_valid = i32_at(OFF_NORMAL_VALID) != 0;
        Ok(Generator {
            engine: Mt19937 {
                seed: u64_at(OFF_SEED),
                left: left as u32,
                next,
                state,
            },
            next_float_normal: float_valid.then(|| {
                f32::from_le_bytes(
                    b[OFF_FLOAT_NORMAL..OFF_FLOAT_NORMAL + 4]
                        .try_into()
                        .expect("4 bytes"),
                )
            }),
            next_double_normal: double_valid.then(|| f64::from_bits(u64_at(OFF_NORMAL_Y))),
        })
    }
}

impl Default for Generator {
    /// A generator with PyTorch's default seed (`default_rng_seed_val`).
    fn default() -> Generator {
        Generator::new(super::DEFAULT_SEED)
    }
}

/// 64 bits from the OS's randomness (std's hasher keys), mixed with the time.
fn nondeterministic_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}
