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
    /// or `"scalar"`. `gemm` 0.19 (built with `x86-v4`) takes AVX-512
    /// whenever `avx512f` is detected, else FMA, else scalar code; it
    /// has no run-time switch to force a narrower path.
    pub gemm: &'static str,
    /// The instruction set kiln's own vectorised loops (im2col, col2im)
    /// are compiled for on this CPU: `"avx512f"`, `"avx2"` or `"baseline"`.
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
        let gemm = if avx512f {
            "avx512f"
        } else if fma {
            "fma"
        } else {
            "scalar"
        };
        let kernels = if avx512f {
            "avx512f"
        } else if avx2 {
            "avx2"
        } else {
            "baseline"
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
    fn gemm_choice_follows_the_detected_features() {
        let f = cpu_features();
        assert_eq!(f.gemm == "avx512f", f.avx512f);
        if !f.avx512f {
            assert_eq!(f.gemm == "fma", f.fma);
        }
        let j = f.to_json();
        assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
        assert!(j.contains(&format!("\"gemm\": \"{}\"", f.gemm)), "{j}");
    }
}
