//! Without a usable GPU, CUDA reports itself unavailable and using a CUDA
//! device fails with a clear message instead of crashing. Runs everywhere
//! (a GPU machine skips the parts that assume no GPU).
#![cfg(feature = "cuda")]

use kiln::prelude::*;

#[test]
fn availability_check_never_panics() {
    let available = Device::cuda_is_available();
    assert_eq!(available, kiln::backend::cuda::device_count().is_ok());
    if available {
        println!("skipped: a CUDA device is present (this checks the no-GPU path)");
        return;
    }
    let err = kiln::backend::cuda::try_device(0).unwrap_err();
    assert!(
        err.message()
            .starts_with("CUDA device cuda:0 is not available: "),
        "{err}"
    );
    assert!(kiln::backend::cuda::memory_stats(0).is_err());
}

#[test]
fn moving_a_tensor_to_a_missing_gpu_panics_clearly() {
    if Device::cuda_is_available() {
        println!("skipped: a CUDA device is present (this checks the no-GPU path)");
        return;
    }
    let r = std::panic::catch_unwind(|| Tensor::ones([2]).to(&Device::Cuda(0)).numel());
    let msg = r.expect_err("moving to cuda:0 must fail without a GPU");
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        msg.starts_with("CUDA device cuda:0 is not available: "),
        "unexpected message: {msg}"
    );
    println!("{msg}");
}

/// No machine has 1000 GPUs, so this panics with or without CUDA.
#[test]
#[should_panic(expected = "CUDA device cuda:999 is not available")]
fn a_device_that_does_not_exist_panics() {
    let _ = Tensor::ones([2]).to(&Device::Cuda(999));
}
