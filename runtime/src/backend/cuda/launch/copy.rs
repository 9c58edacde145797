//! Launchers of `copy.cu`: strided copies and assignment, casts, fill,
//! where, and the conv bias add.

use super::{ALL, EXACT, FLOAT, Strided};

kernels! {
    family COPY;

    /// `out[i] = f(x[view(i)])` into contiguous `out`: the strided copy
    /// and every dtype cast (`cast_{from}_{to}`, named by the source's stem
    /// and the target dtype).
    struct CopyArgs { n: i64, x: u64, lx: Strided, out: u64 }
        in ["copy"] for ALL,
        in [
            "cast_f32", "cast_f64", "cast_f16", "cast_bf16", "cast_i64", "cast_i32",
            "cast_i16", "cast_u8", "cast_bool",
        ] for ALL,
        in ["cast_f32_f16_direct", "cast_f32_bf16_direct"] for EXACT;

    /// `dst[view] = src[view]`.
    struct AssignArgs { n: i64, dst: u64, ld: Strided, src: u64, ls: Strided }
        in ["assign"] for ALL;

    /// `dst[view] = value`.
    struct FillArgs { n: i64, dst: u64, ld: Strided, value: f64 }
        in ["fill"] for ALL;

    /// `out[i] = cond[view] ? a[view] : b[view]`.
    struct WhereArgs {
        n: i64, cond: u64, lc: Strided, a: u64, la: Strided, b: u64, lb: Strided, out: u64,
    }
        in ["where"] for ALL;

    /// `out[n, c, s] += bias[c]` over a contiguous `[N, C, S]` tensor.
    struct AddBiasArgs { total: i64, out: u64, bias: u64, c: i64, s: i64 }
        in ["add_bias"] for FLOAT;
}
