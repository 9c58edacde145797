//! NCCL (feature `nccl`): the library probe gives a typed error rather
//! than a panic when `libnccl.so` is missing, and on a GPU a world-of-one
//! NCCL all-reduce and broadcast run in place. (A single GPU cannot host
//! two NCCL ranks, so multi-rank NCCL is not tested here.) The GPU test
//! skips with a notice where there is no GPU or no NCCL; `KILN_REQUIRE_GPU`
//! makes that a failure.
#![cfg(feature = "nccl")]

use kiln::distributed::{self as dist, Backend, DistError, ReduceOp};
use kiln::{Device, Tensor};

fn nccl_present() -> bool {
    dist::probe_nccl().is_ok()
}

#[test]
fn probing_for_nccl_is_a_typed_answer() {
    match dist::probe_nccl() {
        Ok(()) => println!("libnccl.so found"),
        Err(e) => {
            assert!(
                matches!(
                    e,
                    DistError::LibraryMissing {
                        library: "libnccl.so",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(e.to_string().contains("LD_LIBRARY_PATH"), "{e}");
            // And init_process_group says the same instead of panicking.
            let init = dist::init_process_group(Backend::Nccl).unwrap_err();
            assert!(matches!(init, DistError::LibraryMissing { .. }), "{init}");
            assert!(!dist::is_initialized());
        }
    }
}

#[test]
fn world_of_one_nccl_all_reduce_and_broadcast_on_the_gpu() {
    if !Device::cuda_is_available() || !nccl_present() {
        println!("skipped: needs a GPU and libnccl.so");
        assert!(
            std::env::var_os("KILN_REQUIRE_GPU").is_none(),
            "KILN_REQUIRE_GPU is set but there is no GPU with NCCL"
        );
        return;
    }
    let _group = dist::init_process_group(Backend::Nccl).expect("init NCCL");
    assert_eq!(dist::world_size(), 1);
    let d = Device::Cuda(0);
    let t = Tensor::from([1.0f32, -2.0, 3.5]).to(&d);
    dist::all_reduce(&t, ReduceOp::Sum);
    assert_eq!(t.to_vec::<f32>(), vec![1.0, -2.0, 3.5]);
    dist::all_reduce_async(&t, ReduceOp::Max).wait();
    let doubled = (&t + &t).to(&d);
    dist::broadcast(&doubled, 0);
    assert_eq!(doubled.to_vec::<f32>(), vec![2.0, -4.0, 7.0]);
}
