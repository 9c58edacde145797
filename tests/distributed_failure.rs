//! 2 ranks: a rank that panics while the other waits in a collective ends
//! the whole job quickly, non-zero, with its panic message printed
//! (MPI_Abort from the panic hook), rather than hanging.

mod distributed_common;

use distributed_common::Expect;
use kiln::Tensor;
use kiln::distributed::{self as dist, ReduceOp};

fn main() {
    distributed_common::main(
        "distributed_failure",
        2,
        Expect::FailureWith("rank 1 fails on purpose"),
        case,
    );
}

fn case() {
    let t = Tensor::ones([4]);
    dist::all_reduce(&t, ReduceOp::Sum);
    if dist::rank() == 1 {
        panic!("rank 1 fails on purpose");
    }
    // Rank 0 waits here for a partner that never comes.
    dist::all_reduce(&t, ReduceOp::Sum);
    unreachable!("rank 0 must not get past the second all_reduce");
}
