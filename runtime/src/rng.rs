//! The global, seedable random number generator behind `rand`, `randn`,
//! dropout and initialisation, so that programs are reproducible with
//! [`manual_seed`].

use std::sync::Mutex;

/// xoshiro256++: small, fast, and good enough for ML sampling.
#[derive(Clone, Debug)]
pub struct Generator {
    s: [u64; 4],
}

impl Generator {
    /// A generator seeded from `seed` via SplitMix64.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Generator {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Standard normal sample (Box–Muller).
    pub fn next_normal(&mut self) -> f64 {
        loop {
            let u1 = self.next_f64();
            if u1 > 0.0 {
                let u2 = self.next_f64();
                return (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            }
        }
    }

    /// Uniform integer in `[0, n)` without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below: empty range");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// PyTorch's default seed, so an unseeded program is still deterministic.
const DEFAULT_SEED: u64 = 67_280_421_310_721;

static GLOBAL: Mutex<Option<Generator>> = Mutex::new(None);

/// Seeds the global generator, like `torch.manual_seed`.
pub fn manual_seed(seed: u64) {
    *GLOBAL.lock().unwrap() = Some(Generator::new(seed));
}

/// Runs `f` with the global generator.
pub fn with_rng<R>(f: impl FnOnce(&mut Generator) -> R) -> R {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(|| Generator::new(DEFAULT_SEED)))
}

/// The global generator's state as a uint8 tensor, like
/// `torch.get_rng_state()`; [`set_rng_state`] restores it, so a resumed run
/// draws the same numbers (dropout masks, shuffling orders) as one that
/// never stopped.
///
/// ```
/// use kiln_runtime::{Tensor, get_rng_state, manual_seed, set_rng_state};
/// manual_seed(7);
/// let state = get_rng_state();
/// let a = Tensor::rand([3]).to_vec::<f32>();
/// set_rng_state(&state);
/// assert_eq!(Tensor::rand([3]).to_vec::<f32>(), a);
/// ```
pub fn get_rng_state() -> crate::Tensor {
    let words = with_rng(|g| g.s);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let n = bytes.len();
    crate::Tensor::from_vec(bytes, [n])
}

/// Restores the global generator from a state returned by
/// [`get_rng_state`], like `torch.set_rng_state(state)`.
///
/// # Panics
/// When `state` is not a uint8 tensor with as many elements as
/// [`get_rng_state`] returns.
pub fn set_rng_state(state: &crate::Tensor) {
    let expected = 8 * 4;
    assert!(
        state.dtype() == crate::DType::U8 && state.numel() == expected,
        "set_rng_state: expected a uint8 tensor of {expected} elements, got {} of shape {:?}",
        state.dtype(),
        state.shape()
    );
    let bytes = state.to_vec::<u8>();
    let mut s = [0u64; 4];
    for (w, c) in s.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    }
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Generator { s });
}
