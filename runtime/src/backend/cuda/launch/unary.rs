//! Launchers of `unary.cu`: elementwise math and activations, logical not,
//! isnan and isfinite.

use super::{ALL, FLOAT, INT, Strided};

kernels! {
    family UNARY;

    /// `out[i] = f(x[view(i)])` with the op's scalar parameters `p`, `q`
    /// (`unary_{name}` for [`crate::backend::UnaryOp::name`]).
    struct UnaryArgs { n: i64, x: u64, lx: Strided, out: u64, p: f64, q: f64 }
        in [
            "unary_neg", "unary_exp", "unary_log", "unary_log2", "unary_log1p", "unary_expm1",
            "unary_sqrt", "unary_rsqrt", "unary_abs", "unary_sign", "unary_floor", "unary_ceil",
            "unary_round", "unary_trunc", "unary_sin", "unary_cos", "unary_tan",
            "unary_reciprocal", "unary_square", "unary_relu", "unary_sigmoid", "unary_tanh",
            "unary_erf", "unary_gelu", "unary_gelu_tanh", "unary_silu", "unary_add_scalar",
            "unary_mul_scalar", "unary_pow", "unary_rpow", "unary_leaky_relu", "unary_elu",
            "unary_softplus", "unary_clamp", "unary_clamp_min", "unary_clamp_max",
            "unary_threshold",
        ] for FLOAT,
        in [
            "unary_neg", "unary_abs", "unary_sign", "unary_square", "unary_relu",
            "unary_add_scalar", "unary_mul_scalar", "unary_pow", "unary_clamp",
            "unary_clamp_min", "unary_clamp_max",
        ] for INT;

    /// `out[i] = pred(x[view(i)])`, bool output.
    struct PredicateArgs { n: i64, x: u64, lx: Strided, out: u64 }
        in ["logical_not"] for ALL,
        in ["isnan", "isfinite"] for FLOAT;
}
