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

// The constants as the C source spells them: double literals stored as float.
const SQRTHF: f32 = 0.707106781186547524_f64 as f32;
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

/// `normal_fill_16_AVX2` on one block of 16 uniforms.
#[inline]
pub(crate) fn box_muller_16(x: &mut [f32], mean: f32, std: f32) {
    box_muller_16_scalar(x, mean, std)
}
