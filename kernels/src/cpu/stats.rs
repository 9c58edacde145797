//! f64-accumulated sums over `f32` slices, for normalisation statistics.
//!
//! Batch norm accumulates its per-channel sums in f64 so that a channel of
//! a million values keeps f32's precision. Written as plain loops over
//! generic elements, LLVM converted one element at a time (`vcvtss2sd`
//! and scalar loads): the statistics were 5-8% of a VGG step. These load
//! eight (AVX-512) or four (AVX2) floats, widen them in one instruction and
//! keep two independent vector accumulators per sum.

/// `sum(x)` in f64.
pub fn sum_f64(x: &[f32]) -> f64 {
    dispatch(x, &[], 0.0, Kind::Sum)[0]
}

/// `sum((x - mu)²)` in f64.
pub fn sum_sq_dev_f64(x: &[f32], mu: f64) -> f64 {
    dispatch(x, &[], mu, Kind::SqDev)[0]
}

/// `[sum(g), sum(g · (x - mu))]` in f64 (a batch norm's backward sums).
///
/// # Panics
/// If `g` and `x` differ in length.
pub fn grad_sums_f64(g: &[f32], x: &[f32], mu: f64) -> [f64; 2] {
    assert_eq!(g.len(), x.len(), "grad_sums_f64: lengths differ");
    dispatch(g, x, mu, Kind::Grad)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sum,
    SqDev,
    Grad,
}

fn dispatch(a: &[f32], b: &[f32], mu: f64, kind: Kind) -> [f64; 2] {
    #[cfg(target_arch = "x86_64")]
    {
        if super::isa::avx512() {
            // SAFETY: the CPU has AVX-512F; `b` is empty or as long as `a`.
            return unsafe { x86::avx512(a, b, mu, kind) };
        }
        if super::isa::avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA; lengths as above.
            return unsafe { x86::avx2(a, b, mu, kind) };
        }
    }
    scalar(a, b, mu, kind, 0)
}

/// The sums from element `from` on, one element at a time.
fn scalar(a: &[f32], b: &[f32], mu: f64, kind: Kind, from: usize) -> [f64; 2] {
    let (mut s0, mut s1) = (0.0f64, 0.0f64);
    for i in from..a.len() {
        let v = a[i] as f64;
        match kind {
            Kind::Sum => s0 += v,
            Kind::SqDev => s0 += (v - mu) * (v - mu),
            Kind::Grad => {
                s0 += v;
                s1 += v * (b[i] as f64 - mu);
            }
        }
    }
    [s0, s1]
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Kind, scalar};

    /// Generates one ISA's kernel: `$lanes` floats widened per step, two
    /// steps per iteration into independent accumulators.
    macro_rules! sums {
        ($feat:literal, $name:ident, $lanes:literal, $vd:ty, $zero:ident, $set1:ident,
         $widen:ident, $add:ident, $sub:ident, $fmadd:ident, $store:ident) => {
            /// # Safety
            /// The CPU has the features; `b` is empty or as long as `a`
            /// (and not empty for `Kind::Grad`).
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name(a: &[f32], b: &[f32], mu: f64, kind: Kind) -> [f64; 2] {
                let n = a.len() / (2 * $lanes) * (2 * $lanes);
                let m = $set1(mu);
                let (mut s0, mut s1) = ([$zero(); 2], [$zero(); 2]);
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let mut i = 0;
                while i < n {
                    for h in 0..2 {
                        // SAFETY: `i + h * lanes + lanes <= n <= a.len()`,
                        // and `b` is as long as `a` when it is read.
                        unsafe {
                            let v: $vd = $widen(pa.add(i + h * $lanes));
                            match kind {
                                Kind::Sum => s0[h] = $add(s0[h], v),
                                Kind::SqDev => {
                                    let d = $sub(v, m);
                                    s0[h] = $fmadd(d, d, s0[h]);
                                }
                                Kind::Grad => {
                                    s0[h] = $add(s0[h], v);
                                    let x: $vd = $widen(pb.add(i + h * $lanes));
                                    s1[h] = $fmadd(v, $sub(x, m), s1[h]);
                                }
                            }
                        }
                    }
                    i += 2 * $lanes;
                }
                let mut out = [[0f64; $lanes]; 2];
                // SAFETY: each row of `out` holds one vector.
                unsafe {
                    $store(out[0].as_mut_ptr(), $add(s0[0], s0[1]));
                    $store(out[1].as_mut_ptr(), $add(s1[0], s1[1]));
                }
                let tail = scalar(a, b, mu, kind, n);
                [
                    out[0].iter().sum::<f64>() + tail[0],
                    out[1].iter().sum::<f64>() + tail[1],
                ]
            }
        };
    }

    /// Eight floats at `p`, widened.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `p` is valid for eight reads.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn widen8(p: *const f32) -> __m512d {
        // SAFETY: forwarded from the caller.
        unsafe { _mm512_cvtps_pd(_mm256_loadu_ps(p)) }
    }

    /// Four floats at `p`, widened.
    ///
    /// # Safety
    /// The CPU has AVX2; `p` is valid for four reads.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn widen4(p: *const f32) -> __m256d {
        // SAFETY: forwarded from the caller.
        unsafe { _mm256_cvtps_pd(_mm_loadu_ps(p)) }
    }

    sums!(
        "avx512f",
        avx512,
        8,
        __m512d,
        _mm512_setzero_pd,
        _mm512_set1_pd,
        widen8,
        _mm512_add_pd,
        _mm512_sub_pd,
        _mm512_fmadd_pd,
        _mm512_storeu_pd
    );
    sums!(
        "avx2,fma",
        avx2,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_set1_pd,
        widen4,
        _mm256_add_pd,
        _mm256_sub_pd,
        _mm256_fmadd_pd,
        _mm256_storeu_pd
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_f64_loops_for_every_length() {
        for len in [0usize, 1, 7, 8, 15, 16, 17, 33, 1000] {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 37) % 101) as f32 * 0.01 - 0.4)
                .collect();
            let g: Vec<f32> = (0..len)
                .map(|i| ((i * 13) % 29) as f32 * 0.1 - 1.2)
                .collect();
            let mu = 0.17;
            let s: f64 = x.iter().map(|&v| v as f64).sum();
            let q: f64 = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum();
            let sg: f64 = g.iter().map(|&v| v as f64).sum();
            let sgx: f64 = g
                .iter()
                .zip(&x)
                .map(|(&a, &b)| a as f64 * (b as f64 - mu))
                .sum();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
            assert!(close(sum_f64(&x), s), "sum, len {len}");
            assert!(close(sum_sq_dev_f64(&x, mu), q), "sq dev, len {len}");
            let [a, b] = grad_sums_f64(&g, &x, mu);
            assert!(close(a, sg) && close(b, sgx), "grad sums, len {len}");
        }
    }
}
