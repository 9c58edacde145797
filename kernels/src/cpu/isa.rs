//! Which SIMD instruction sets this CPU has, decided at run time, and which
//! of them the CPU kernels dispatch to, for benchmark records.

/// The x86 SIMD extensions found at run time and the matrix-product kernel
/// family the `gemm` crate picks from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX2 (256-bit integer and float vectors).
    pub avx2: bool,
    /// Fused multiply-add (FMA3).
    pub fma: bool,
    /// The `gemm` micro-kernels in use: `"avx512f"`, `"fma"` (AVX2 + FMA)
    /// or `"scalar"`. `gemm` 0.19 built with `x86-v4` (kiln's default
    /// `avx512` feature) takes AVX-512 whenever `avx512f` is detected, else
    /// FMA, else scalar code; it has no run-time switch, so measuring its
    /// AVX2 path on an AVX-512 CPU takes a build without that feature.
    pub gemm: &'static str,
    /// The instruction set kiln's own vectorised kernels (im2col, direct
    /// and Winograd convolution, pooling, statistics) run with:
    /// `"avx512f"`, `"avx2"` or `"baseline"` ([`simd_level`]).
    pub kernels: &'static str,
}

impl CpuFeatures {
    /// The features as a JSON object, e.g.
    /// `{"avx512f": true, "avx2": true, "fma": true, "gemm": "avx512f", "kernels": "avx512f"}`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"avx512f\": {}, \"avx2\": {}, \"fma\": {}, \"gemm\": \"{}\", \"kernels\": \"{}\"}}",
            self.avx512f, self.avx2, self.fma, self.gemm, self.kernels
        )
    }
}

/// The widest x86 SIMD level kiln's own kernels use, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// No AVX2: portable code (as compiled for the target).
    Baseline,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 Foundation.
    Avx512,
}

/// What this CPU has, capped by `KILN_CPU_ISA` (`avx512`, `avx2` or
/// `baseline`; read once; an unknown value panics naming the accepted
/// ones), so that an AVX-512 machine can run the kernels an AVX2-only CPU
/// would.
///
/// ```
/// use kiln_kernels::cpu::isa::{SimdLevel, simd_level};
/// assert!(simd_level() >= SimdLevel::Baseline);
/// ```
pub fn simd_level() -> SimdLevel {
    static LEVEL: std::sync::OnceLock<SimdLevel> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let var = std::env::var("KILN_CPU_ISA").ok();
        let cap = parse_cap(var.as_deref()).unwrap_or_else(|e| panic!("{e}"));
        detected_level().min(cap)
    })
}

/// The level `KILN_CPU_ISA`'s value allows (unset or empty: no cap).
fn parse_cap(var: Option<&str>) -> Result<SimdLevel, String> {
    match var {
        None | Some("") | Some("avx512") => Ok(SimdLevel::Avx512),
        Some("avx2") => Ok(SimdLevel::Avx2),
        Some("baseline") => Ok(SimdLevel::Baseline),
        Some(other) => Err(format!(
            "KILN_CPU_ISA={other:?}: expected \"avx512\", \"avx2\" or \"baseline\""
        )),
    }
}

#[cfg(target_arch = "x86_64")]
fn detected_level() -> SimdLevel {
    if std::arch::is_x86_feature_detected!("avx512f") {
        SimdLevel::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        SimdLevel::Avx2
    } else {
        SimdLevel::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detected_level() -> SimdLevel {
    SimdLevel::Baseline
}

/// Whether kiln's kernels may use AVX-512F (the CPU has it and
/// `KILN_CPU_ISA` allows it).
pub(crate) fn avx512() -> bool {
    simd_level() >= SimdLevel::Avx512
}

/// Whether kiln's kernels may use AVX2 and FMA.
pub(crate) fn avx2_fma() -> bool {
    simd_level() >= SimdLevel::Avx2
}

/// Detects this CPU's features (cheap: the standard library caches them).
///
/// ```
/// let f = kiln_kernels::cpu::isa::cpu_features();
/// assert!(!f.gemm.is_empty());
/// ```
pub fn cpu_features() -> CpuFeatures {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512f = std::arch::is_x86_feature_detected!("avx512f");
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        let fma = std::arch::is_x86_feature_detected!("fma");
        // Mirrors gemm-common 0.19's `init_gemm_fn`.
        let gemm = if avx512f && cfg!(feature = "avx512") {
            "avx512f"
        } else if fma {
            "fma"
        } else {
            "scalar"
        };
        let kernels = match simd_level() {
            SimdLevel::Avx512 => "avx512f",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Baseline => "baseline",
        };
        CpuFeatures {
            avx512f,
            avx2,
            fma,
            gemm,
            kernels,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        CpuFeatures {
            avx512f: false,
            avx2: false,
            fma: false,
            gemm: "non-x86",
            kernels: "baseline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isa_cap_parses_and_only_lowers() {
        assert_eq!(parse_cap(None), Ok(SimdLevel::Avx512));
        assert_eq!(parse_cap(Some("")), Ok(SimdLevel::Avx512));
        assert_eq!(parse_cap(Some("avx2")), Ok(SimdLevel::Avx2));
        assert_eq!(parse_cap(Some("baseline")), Ok(SimdLevel::Baseline));
        let e = parse_cap(Some("sse9")).unwrap_err();
        assert!(e.contains("sse9") && e.contains("avx2"), "{e}");
        assert!(simd_level() <= detected_level());
        let f = cpu_features();
        assert_eq!(f.kernels == "avx512f", simd_level() == SimdLevel::Avx512);
    }

    #[test]
    fn gemm_choice_follows_the_detected_features() {
        let f = cpu_features();
        assert_eq!(f.gemm == "avx512f", f.avx512f && cfg!(feature = "avx512"));
        if f.gemm != "avx512f" {
            assert_eq!(f.gemm == "fma", f.fma);
        }
        let j = f.to_json();
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
        assert!(j.contains(&format!("\"gemm\": \"{}\"", f.gemm)), "{j}");
    }
}
