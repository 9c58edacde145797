//! Launchers of `reduce.cu`: sums and max / min with indices over the
//! trailing dimensions of a permuted view, a block per output
//! (`*_block`) or a thread per output (`*_thread`).

use super::{ALL, FLOAT, INT, Strided};

kernels! {
    family REDUCE;

    /// `out[o] = scale * sum(x[view(o * n_red + r)] for r < n_red)`.
    struct SumArgs { n_out: i64, n_red: i64, x: u64, lx: Strided, out: u64, scale: f64 }
        in ["sum_block", "sum_thread"] for ALL;

    /// The extreme of each output's `n_red` inputs and its index.
    struct ArgReduceArgs { n_out: i64, n_red: i64, x: u64, lx: Strided, out: u64, idx: u64 }
        in ["max_block", "max_thread", "min_block", "min_thread"] for FLOAT,
        in ["max_block", "max_thread", "min_block", "min_thread"] for INT;
}
