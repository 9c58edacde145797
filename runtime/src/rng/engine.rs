//! The 32-bit Mersenne Twister (MT19937) as PyTorch's CPU generator runs
//! it: seeded from the low 32 bits of a 64-bit seed with Knuth's
//! multiplier, twisting the whole state when it runs out.

/// Words of state.
pub(crate) const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER: u32 = 0x8000_0000;
const LOWER: u32 = 0x7fff_ffff;

/// MT19937 with PyTorch's bookkeeping (`seed`, `left`, `next`), so that
/// its state round-trips through `torch.get_rng_state()`'s layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mt19937 {
    /// The full 64-bit seed it was made from (only its low 32 bits matter).
    pub(crate) seed: u64,
    /// Outputs left before the next twist, plus one (1 after seeding).
    pub(crate) left: u32,
    /// Index of the next state word to temper.
    pub(crate) next: u32,
    pub(crate) state: [u32; N],
}

impl Mt19937 {
    /// The engine `torch.manual_seed(seed)` makes.
    pub(crate) fn new(seed: u64) -> Mt19937 {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(j as u32);
        }
        Mt19937 {
            seed,
            left: 1,
            next: 0,
            state,
        }
    }

    /// The next 32 random bits.
    #[inline]
    pub(crate) fn next_u32(&mut self) -> u32 {
        self.left -= 1;
        if self.left == 0 {
            self.twist();
        }
        let mut y = self.state[self.next as usize];
        self.next += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Fills `out` with the next `out.len()` outputs (the same values as
    /// calling [`next_u32`](Mt19937::next_u32) that often, but tempering a
    /// whole run of state words at a time).
    pub(crate) fn fill_u32(&mut self, out: &mut [u32]) {
        let mut done = 0;
        while done < out.len() {
            self.left -= 1;
            if self.left == 0 {
                self.twist();
            }
            // `left - 1` more outputs are available after this one.
            let start = self.next as usize;
            let run = (self.left as usize).min(out.len() - done);
            for (o, &s) in out[done..done + run]
                .iter_mut()
                .zip(&self.state[start..start + run])
            {
                let mut y = s;
                y ^= y >> 11;
                y ^= (y << 7) & 0x9d2c_5680;
                y ^= (y << 15) & 0xefc6_0000;
                *o = y ^ (y >> 18);
            }
            self.next += run as u32;
            self.left -= run as u32 - 1;
            done += run;
        }
    }

    fn twist(&mut self) {
        let s = &mut self.state;
        let mix = |u: u32, v: u32| {
            let y = (u & UPPER) | (v & LOWER);
            (y >> 1) ^ if v & 1 == 1 { MATRIX_A } else { 0 }
        };
        for k in 0..N - M {
            s[k] = s[k + M] ^ mix(s[k], s[k + 1]);
        }
        for k in N - M..N - 1 {
            s[k] = s[k + M - N] ^ mix(s[k], s[k + 1]);
        }
        s[N - 1] = s[M - 1] ^ mix(s[N - 1], s[0]);
        self.left = N as u32;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_outputs_of_seed_5489() {
        // The C++ standard fixes the 10000th output of a default-seeded
        // mt19937: 4123659995.
        let mut e = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = e.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn bulk_fill_matches_single_draws() {
        let mut a = Mt19937::new(7);
        let mut b = a.clone();
        a.next_u32();
        b.next_u32();
        for len in [0, 1, 5, 623, 624, 625, 2000] {
            let mut bulk = vec![0; len];
            a.fill_u32(&mut bulk);
            let single: Vec<u32> = (0..len).map(|_| b.next_u32()).collect();
            assert_eq!(bulk, single, "len {len}");
            assert_eq!(a, b);
        }
    }
}
