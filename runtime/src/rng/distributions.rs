//! PyTorch's CPU sampling algorithms on top of a [`Generator`]: the same
//! draws, in the same order, with the same floating-point operations, so
//! the results are bit-identical to `torch.rand`, `randn`, `randint`,
//! `randperm`, `normal_` and `uniform_` on the CPU.

use super::Generator;
use rayon::prelude::*;

/// `[0, 1)` from the low 24 bits of a 32-bit draw (`uniform_real<float>`).
#[inline]
pub(crate) fn unit_f32(v: u32) -> f32 {
    (v & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
}

/// `[0, 1)` from the low 53 bits of a 64-bit draw (`uniform_real<double>`).
#[inline]
pub(crate) fn unit_f64(v: u64) -> f64 {
    (v & ((1 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// `x * (to - from) + from` as PyTorch's CPU kernels compute it: GCC
/// contracts it into one fused multiply-add in the vectorised builds that
/// x86 machines dispatch to.
#[inline]
fn affine_f32(x: f32, scale: f32, shift: f32) -> f32 {
    x.mul_add(scale, shift)
}

#[inline]
fn affine_f64(x: f64, scale: f64, shift: f64) -> f64 {
    x.mul_add(scale, shift)
}

/// Fills `out` with `f(random())`, drawing a chunk of 32-bit values at a time.
fn fill_from_u32(g: &mut Generator, out: &mut [f32], f: impl Fn(u32) -> f32) {
    let mut buf = [0u32; 1024];
    for chunk in out.chunks_mut(buf.len()) {
        let bits = &mut buf[..chunk.len()];
        g.fill_random(bits);
        for (o, &b) in chunk.iter_mut().zip(bits.iter()) {
            *o = f(b);
        }
    }
}

/// `uniform_(from, to)` on float32: one `random()` per element.
pub fn uniform_f32(g: &mut Generator, out: &mut [f32], from: f64, to: f64) {
    let (from, to) = (from as f32, to as f32);
    let scale = to - from;
    fill_from_u32(g, out, |b| affine_f32(unit_f32(b), scale, from));
}

/// `uniform_(from, to)` on float64: one `random64()` per element.
pub fn uniform_f64(g: &mut Generator, out: &mut [f64], from: f64, to: f64) {
    let scale = to - from;
    for o in out.iter_mut() {
        *o = affine_f64(unit_f64(g.random64()), scale, from);
    }
}

/// Elements below which PyTorch draws normals one at a time.
const FILL_MIN: usize = 16;

/// `normal_(mean, std)` on float32, like PyTorch's CPU `normal_kernel` on
/// x86: 16 or more elements go through `normal_fill_AVX2` (all uniforms
/// first, then Box–Muller with Cephes polynomials on blocks of 16, the last
/// block redrawn when the length is not a multiple of 16); fewer take the
/// scalar double path.
pub fn normal_f32(g: &mut Generator, out: &mut [f32], mean: f64, std: f64) {
    if out.len() < FILL_MIN {
        for o in out.iter_mut() {
            *o = affine_f64(g.next_normal(), std, mean) as f32;
        }
        return;
    }
    let (mean, std) = (mean as f32, std as f32);
    normal_blocks(
        g,
        out,
        |g, o| fill_from_u32(g, o, unit_f32),
        |b| super::avx_mathfun::box_muller_16(b, mean, std),
    );
}

/// `normal_(mean, std)` on float64 (see [`normal_f32`]).
pub fn normal_f64(g: &mut Generator, out: &mut [f64], mean: f64, std: f64) {
    if out.len() < FILL_MIN {
        for o in out.iter_mut() {
            *o = affine_f64(g.next_normal(), std, mean);
        }
        return;
    }
    normal_blocks(
        g,
        out,
        |g, o| o.iter_mut().for_each(|x| *x = unit_f64(g.random64())),
        |b| box_muller_16_f64(b, mean, std),
    );
}

/// PyTorch's vectorised normal fill of `out` (16 or more elements): all
/// uniforms first (`uniforms`), then `box_muller` on each block of 16, the
/// last block redrawn and transformed again when the length is not a
/// multiple of 16.
fn normal_blocks<T: Send>(
    g: &mut Generator,
    out: &mut [T],
    uniforms: impl Fn(&mut Generator, &mut [T]),
    box_muller: impl Fn(&mut [T]) + Sync,
) {
    uniforms(g, out);
    let full = out.len() / FILL_MIN * FILL_MIN;
    // Blocks are independent: transforming them in parallel keeps the bits.
    out[..full]
        .par_chunks_mut(FILL_MIN * 256)
        .for_each(|chunk| chunk.chunks_exact_mut(FILL_MIN).for_each(&box_muller));
    if full != out.len() {
        let tail = out.len() - FILL_MIN;
        uniforms(g, &mut out[tail..]);
        box_muller(&mut out[tail..]);
    }
}

#[inline]
fn box_muller_16_f64(x: &mut [f64], mean: f64, std: f64) {
    for j in 0..8 {
        let u1 = 1.0 - x[j];
        let u2 = x[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        let (s, c) = theta.sin_cos();
        x[j] = (radius * c).mul_add(std, mean);
        x[j + 8] = (radius * s).mul_add(std, mean);
    }
}

/// Ranges from which PyTorch's CPU `random_(from, to)` takes 64-bit draws
/// (measured on PyTorch 2.15: `2^28 - 1` takes one `random()`, `2^28` one
/// `random64()`).
const RANDINT_64: u64 = 1 << 28;

/// One draw of `random_(low, low + range)`: `random() % range`, or
/// `random64() % range` for ranges of [`RANDINT_64`] or more.
#[inline]
pub(crate) fn below(g: &mut Generator, range: u64) -> u64 {
    if range >= RANDINT_64 {
        g.random64() % range
    } else {
        g.random() as u64 % range
    }
}

/// `random_(low, high)` / `torch.randint(low, high, ...)` on int64:
/// `random() % range + low`, with `random64()` for ranges of `2^28` or
/// more (PyTorch's rule). Panics on an empty range.
pub fn randint(g: &mut Generator, out: &mut [i64], low: i64, high: i64) {
    assert!(high > low, "randint: empty range [{low}, {high})");
    let range = high.wrapping_sub(low) as u64;
    for o in out.iter_mut() {
        *o = below(g, range).wrapping_add(low as u64) as i64;
    }
}

/// `torch.empty((), dtype=torch.int64).random_()`: a non-negative int64
/// from one `random64()` (how `RandomSampler` and `DataLoader` draw seeds).
pub fn random_i64(g: &mut Generator) -> i64 {
    (g.random64() % (1 << 63)) as i64
}

/// Lengths from which PyTorch's CPU `randperm` switches to 64-bit draws.
const RANDPERM_64: usize = (u32::MAX / 20) as usize;

/// `torch.randperm(n)` on the CPU: Fisher–Yates from the front with
/// `random() % (n - i)`; for `n >= 2^32 / 20` the "inside-out" variant with
/// `random64() % (i + 1)`.
pub fn randperm(g: &mut Generator, n: usize) -> Vec<usize> {
    if n < RANDPERM_64 {
        let mut p: Vec<usize> = (0..n).collect();
        for i in 0..n.saturating_sub(1) {
            let z = g.random() as usize % (n - i);
            p.swap(i, i + z);
        }
        p
    } else {
        let mut p = vec![0usize; n];
        for i in 0..n {
            let z = (g.random64() % (i as u64 + 1)) as usize;
            p[i] = p[z];
            p[z] = i;
        }
        p
    }
}

/// `bernoulli_(p)` with a scalar `p` (and so dropout's keep-mask): `true`
/// where a float64 uniform (one `random64()`) is below `p`, PyTorch's CPU
/// kernel (checked against PyTorch 2.15's x86 wheel; builds that route this
/// through MKL's VSL stream give other masks).
pub fn bernoulli_mask(g: &mut Generator, n: usize, p: f64) -> Vec<bool> {
    (0..n).map(|_| g.next_f64() < p).collect()
}
