//! 2 ranks: only rank 0 writes the checkpoint (atomically, no temporary
//! file left), and the other rank finds it complete after the barrier.

mod distributed_common;

use distributed_common::Expect;
use kiln::Device;
use kiln::distributed::{self as dist, DistributedDataParallel};
use kiln::io::{load_safetensors, save_safetensors};
use kiln::nn::{Linear, Module};

fn main() {
    distributed_common::main("distributed_rank0_writes", 2, Expect::Success, case);
}

fn case() {
    let dir = distributed_common::test_dir();
    kiln::manual_seed(dist::rank() as u64);
    let model = DistributedDataParallel::new(Linear::new(3, 2, &Device::Cpu));
    for name in ["ckpt.safetensors", "ckpt-again.safetensors"] {
        let path = dir.join(name);
        let wrote =
            dist::on_rank_zero(|| save_safetensors(&model.state_dict(), &path, &[]).unwrap());
        assert_eq!(wrote.is_some(), dist::rank() == 0);
        // Every rank sees rank 0's complete file once on_rank_zero returns.
        let back = load_safetensors(&path).expect("the checkpoint is complete after the barrier");
        assert_eq!(
            back.get("weight").unwrap().to_vec::<f32>(),
            model.weight.to_vec::<f32>()
        );
    }
    dist::on_rank_zero(|| {
        std::fs::write(
            dir.join("expect.txt"),
            "ckpt.safetensors\nckpt-again.safetensors\n",
        )
        .unwrap()
    });
}
