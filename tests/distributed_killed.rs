//! 2 ranks: a rank killed by SIGKILL (no panic hook runs) while the other
//! waits in a collective: mpirun ends the job, non-zero, well within the
//! launcher's timeout.

mod distributed_common;

use distributed_common::Expect;
use kiln::Tensor;
use kiln::distributed::{self as dist, ReduceOp};

fn main() {
    distributed_common::main(
        "distributed_killed",
        2,
        Expect::FailureWith("signal 9"),
        case,
    );
}

fn case() {
    let t = Tensor::ones([4]);
    dist::all_reduce(&t, ReduceOp::Sum);
    if dist::rank() == 1 {
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    dist::all_reduce(&t, ReduceOp::Sum);
    unreachable!("rank 0 must not get past the second all_reduce");
}
