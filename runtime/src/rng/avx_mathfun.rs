//! The float32 Box–Muller block of PyTorch's `normal_fill_16_AVX2`, which
//! x86 builds of PyTorch run for `randn`/`normal_` on 16 or more float32
//! elements (the AVX-512 dispatch falls back to the AVX2 kernel). Its
//! `log256_ps` and `sincos256_ps` are Cephes polynomials (Pommier's
//! `avx_mathfun`), not the C library's functions, and GCC compiles them
//! with `-mfma -ffp-contract=fast`, fusing each multiply into the add or
//! subtract that consumes it (in statement order). This module evaluates
//! the same operations, lane by lane, with the same fused steps
//! (`mul_add` is exactly rounded, like `vfmadd`), so the bits are equal.
//!
//! [`box_muller_16`] picks an AVX2+FMA version of the same steps when the
//! CPU has them; [`box_muller_16_scalar`] is the portable reference.
#![allow(clippy::excessive_precision)]

// The constants as the C source spells them (double literals stored as
// float), digit for digit, so that they are visibly the same values.
const SQRTHF: f32 = std::f64::consts::FRAC_1_SQRT_2 as f32; // 0.707106781186547524
const LOG_P: [f32; 9] = [
    7.0376836292E-2_f64 as f32,
    -1.1514610310E-1_f64 as f32,
    1.1676998740E-1_f64 as f32,
    -1.2420140846E-1_f64 as f32,
    1.4249322787E-1_f64 as f32,
    -1.6668057665E-1_f64 as f32,
    2.0000714765E-1_f64 as f32,
    -2.4999993993E-1_f64 as f32,
    3.3333331174E-1_f64 as f32,
];
const LOG_Q1: f32 = -2.12194440e-4_f64 as f32;
const LOG_Q2: f32 = 0.693359375;
const MINUS_DP1: f32 = -0.78515625;
const MINUS_DP2: f32 = -2.4187564849853515625e-4;
const MINUS_DP3: f32 = -3.77489497744594108e-8_f64 as f32;
const SINCOF: [f32; 3] = [
    -1.9515295891E-4_f64 as f32,
    8.3321608736E-3_f64 as f32,
    -1.6666654611E-1_f64 as f32,
];
const COSCOF: [f32; 3] = [
    2.443315711809948E-005_f64 as f32,
    -1.388731625493765E-003_f64 as f32,
    4.166664568298827E-002_f64 as f32,
];
const FOPI: f32 = 1.27323954473516_f64 as f32;

/// `log256_ps` for one lane (`x > 0`, not subnormal).
fn log_lane(x: f32) -> f32 {
    let x = x.max(f32::from_bits(0x0080_0000));
    let exp = (x.to_bits() >> 23) as i32 - 0x7f;
    let mut x = f32::from_bits((x.to_bits() & !0x7f80_0000) | 0.5f32.to_bits());
    let mut e = exp as f32 + 1.0;
    let small = x < SQRTHF;
    let tmp = if small { x } else { 0.0 };
    x -= 1.0;
    e -= if small { 1.0 } else { 0.0 };
    x += tmp;
    let z = x * x;
    let mut y = LOG_P[0].mul_add(x, LOG_P[1]);
    for &p in &LOG_P[2..] {
        y = y.mul_add(x, p);
    }
    y *= x;
    // y*z + e*q1: the first multiply (y*z) is the one fused.
    y = y.mul_add(z, e * LOG_Q1);
    y = (-z).mul_add(0.5, y);
    x += y;
    e.mul_add(LOG_Q2, x)
}

/// `sincos256_ps` for one lane: `(sin, cos)`.
fn sincos_lane(x: f32) -> (f32, f32) {
    let sign_sin = x.to_bits() & 0x8000_0000;
    let ax = x.abs();
    let mut j = (ax * FOPI) as i32;
    j = (j + 1) & !1;
    let y = j as f32;
    let swap_sin = ((j & 4) as u32) << 29;
    let poly_sin = j & 2 == 0; // true: the sine polynomial gives the sine
    let sign_cos = ((!(j - 2) & 4) as u32) << 29;
    let sign_sin = sign_sin ^ swap_sin;

    let mut x = y.mul_add(MINUS_DP1, ax);
    x = y.mul_add(MINUS_DP2, x);
    x = y.mul_add(MINUS_DP3, x);
    let z = x * x;

    let mut c = COSCOF[0].mul_add(z, COSCOF[1]);
    c = c.mul_add(z, COSCOF[2]);
    c *= z;
    c = c.mul_add(z, -(z * 0.5));
    c += 1.0;

    let mut s = SINCOF[0].mul_add(z, SINCOF[1]);
    s = s.mul_add(z, SINCOF[2]);
    s *= z;
    s = s.mul_add(x, x);

    // The selection: masked parts subtracted and added back, as in the
    // original (exact: each is 0 or the value itself).
    let (ysin2, ysin1) = if poly_sin { (s, 0.0) } else { (0.0, c) };
    let (s_rest, c_rest) = (s - ysin2, c - ysin1);
    let sin = ysin1 + ysin2;
    let cos = c_rest + s_rest;
    (
        f32::from_bits(sin.to_bits() ^ sign_sin),
        f32::from_bits(cos.to_bits() ^ sign_cos),
    )
}

/// Two-pi as PyTorch rounds it: `(float)(2.0f * c10::pi<double>)`.
const TWO_PI: f32 = (2.0 * std::f64::consts::PI) as f32;

/// `normal_fill_16_AVX2` on one block of 16 uniforms, lane by lane.
pub(crate) fn box_muller_16_scalar(x: &mut [f32], mean: f32, std: f32) {
    for j in 0..8 {
        let u1 = 1.0 - x[j];
        let u2 = x[j + 8];
        let radius = (-2.0 * log_lane(u1)).sqrt();
        let (s, c) = sincos_lane(TWO_PI * u2);
        x[j] = (radius * c).mul_add(std, mean);
        x[j + 8] = (radius * s).mul_add(std, mean);
    }
}

/// `normal_fill_16_AVX2` on one block of 16 uniforms: the AVX2+FMA version
/// when the CPU has it (the same operations as [`box_muller_16_scalar`],
/// eight lanes at a time), else the scalar one.
#[inline]
pub(crate) fn box_muller_16(x: &mut [f32], mean: f32, std: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            unsafe { avx2::box_muller_16(x, mean, std) };
            return;
        }
    }
    box_muller_16_scalar(x, mean, std)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    fn log256(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let x = _mm256_max_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(0x0080_0000)));
        let exp = _mm256_sub_epi32(
            _mm256_srli_epi32::<23>(_mm256_castps_si256(x)),
            _mm256_set1_epi32(0x7f),
        );
        let x = _mm256_or_ps(
            _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(!0x7f80_0000))),
            _mm256_set1_ps(0.5),
        );
        let e = _mm256_add_ps(_mm256_cvtepi32_ps(exp), one);
        let mask = _mm256_cmp_ps::<_CMP_LT_OS>(x, _mm256_set1_ps(SQRTHF));
        let tmp = _mm256_and_ps(x, mask);
        let x = _mm256_sub_ps(x, one);
        let e = _mm256_sub_ps(e, _mm256_and_ps(one, mask));
        let x = _mm256_add_ps(x, tmp);
        let z = _mm256_mul_ps(x, x);
        let mut y = _mm256_fmadd_ps(_mm256_set1_ps(LOG_P[0]), x, _mm256_set1_ps(LOG_P[1]));
        for &p in &LOG_P[2..] {
            y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(p));
        }
        y = _mm256_mul_ps(y, x);
        y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(e, _mm256_set1_ps(LOG_Q1)));
        y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5), y);
        let x = _mm256_add_ps(x, y);
        _mm256_fmadd_ps(e, _mm256_set1_ps(LOG_Q2), x)
    }

    #[target_feature(enable = "avx2,fma")]
    fn sincos256(x: __m256) -> (__m256, __m256) {
        let sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
        let sign_sin = _mm256_and_ps(x, sign_mask);
        let ax = _mm256_andnot_ps(sign_mask, x);
        let j = _mm256_cvttps_epi32(_mm256_mul_ps(ax, _mm256_set1_ps(FOPI)));
        let j = _mm256_and_si256(
            _mm256_add_epi32(j, _mm256_set1_epi32(1)),
            _mm256_set1_epi32(!1),
        );
        let y = _mm256_cvtepi32_ps(j);
        let four = _mm256_set1_epi32(4);
        let swap_sin = _mm256_castsi256_ps(_mm256_slli_epi32::<29>(_mm256_and_si256(j, four)));
        let poly_mask = _mm256_castsi256_ps(_mm256_cmpeq_epi32(
            _mm256_and_si256(j, _mm256_set1_epi32(2)),
            _mm256_setzero_si256(),
        ));
        let sign_cos = _mm256_castsi256_ps(_mm256_slli_epi32::<29>(_mm256_andnot_si256(
            _mm256_sub_epi32(j, _mm256_set1_epi32(2)),
            four,
        )));
        let sign_sin = _mm256_xor_ps(sign_sin, swap_sin);

        let mut x = _mm256_fmadd_ps(y, _mm256_set1_ps(MINUS_DP1), ax);
        x = _mm256_fmadd_ps(y, _mm256_set1_ps(MINUS_DP2), x);
        x = _mm256_fmadd_ps(y, _mm256_set1_ps(MINUS_DP3), x);
        let z = _mm256_mul_ps(x, x);

        let mut c = _mm256_fmadd_ps(_mm256_set1_ps(COSCOF[0]), z, _mm256_set1_ps(COSCOF[1]));
        c = _mm256_fmadd_ps(c, z, _mm256_set1_ps(COSCOF[2]));
        c = _mm256_mul_ps(c, z);
        c = _mm256_fmsub_ps(c, z, _mm256_mul_ps(z, _mm256_set1_ps(0.5)));
        c = _mm256_add_ps(c, _mm256_set1_ps(1.0));

        let mut s = _mm256_fmadd_ps(_mm256_set1_ps(SINCOF[0]), z, _mm256_set1_ps(SINCOF[1]));
        s = _mm256_fmadd_ps(s, z, _mm256_set1_ps(SINCOF[2]));
        s = _mm256_mul_ps(s, z);
        s = _mm256_fmadd_ps(s, x, x);

        let ysin2 = _mm256_and_ps(poly_mask, s);
        let ysin1 = _mm256_andnot_ps(poly_mask, c);
        let s_rest = _mm256_sub_ps(s, ysin2);
        let c_rest = _mm256_sub_ps(c, ysin1);
        let sin = _mm256_add_ps(ysin1, ysin2);
        let cos = _mm256_add_ps(c_rest, s_rest);
        (_mm256_xor_ps(sin, sign_sin), _mm256_xor_ps(cos, sign_cos))
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `x` must hold 16 floats.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn box_muller_16(x: &mut [f32], mean: f32, std: f32) {
        assert!(x.len() >= 16, "box_muller_16: a block is 16 floats");
        let p = x.as_mut_ptr();
        // SAFETY: 16 floats are in bounds (asserted); unaligned loads/stores.
        unsafe {
            let u1 = _mm256_sub_ps(_mm256_set1_ps(1.0), _mm256_loadu_ps(p));
            let u2 = _mm256_loadu_ps(p.add(8));
            let radius = _mm256_sqrt_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0), log256(u1)));
            let (s, c) = sincos256(_mm256_mul_ps(_mm256_set1_ps(TWO_PI), u2));
            let (mean, std) = (_mm256_set1_ps(mean), _mm256_set1_ps(std));
            _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_mul_ps(radius, c), std, mean));
            _mm256_storeu_ps(
                p.add(8),
                _mm256_fmadd_ps(_mm256_mul_ps(radius, s), std, mean),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_and_scalar_blocks_agree_bit_for_bit() {
        let mut g = crate::rng::Generator::new(1);
        for block in 0..20_000 {
            let mut u = [0f32; 16];
            for v in u.iter_mut() {
                *v = g.next_f32();
            }
            if block == 0 {
                u[0] = 0.0; // u1 = 1: log 0
                u[8] = 1.0 - f32::EPSILON / 2.0; // theta just under 2 pi
            }
            let (mut a, mut b) = (u, u);
            box_muller_16(&mut a, 0.25, 1.5);
            box_muller_16_scalar(&mut b, 0.25, 1.5);
            let bits = |x: &[f32; 16]| x.map(f32::to_bits);
            assert_eq!(bits(&a), bits(&b), "block {block}: uniforms {u:?}");
        }
    }
}
