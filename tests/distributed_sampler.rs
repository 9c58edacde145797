//! 2 ranks: `DistributedSampler` shards (through a `DataLoader`) are
//! disjoint and together cover the data set, every epoch.

mod distributed_common;

use distributed_common::Expect;
use kiln::Tensor;
use kiln::data::{DataLoader, Dataset, DistributedSampler, TensorDataset};
use kiln::distributed as dist;

fn main() {
    distributed_common::main("distributed_sampler", 2, Expect::Success, case);
}

fn case() {
    const N: usize = 21;
    let data = TensorDataset::new(vec![Tensor::arange(0.0, N as f64, 1.0)]);
    let sampler = DistributedSampler::new(data.len()).seed(11);
    let loader = DataLoader::new(sampler.wrap(data)).batch_size(4);
    let mut orders = Vec::new();
    for epoch in 0..2 {
        sampler.set_epoch(epoch);
        let mine: Vec<i64> = loader
            .iter()
            .flat_map(|b| b.unwrap()[0].to_vec::<f32>())
            .map(|v| v as i64)
            .collect();
        assert_eq!(
            mine.len(),
            N.div_ceil(2),
            "samples on rank {}",
            dist::rank()
        );
        let all = dist::all_gather(&Tensor::from_vec(mine.clone(), [mine.len()]));
        let (a, b) = (all[0].to_vec::<i64>(), all[1].to_vec::<i64>());
        let mut both: Vec<i64> = a.iter().chain(&b).copied().collect();
        both.sort();
        both.dedup();
        assert_eq!(
            both,
            (0..N as i64).collect::<Vec<_>>(),
            "epoch {epoch}: shards cover"
        );
        // 21 samples on 2 ranks: one index is the wrap-around padding.
        let overlap = a.iter().filter(|i| b.contains(i)).count();
        assert_eq!(
            overlap, 1,
            "epoch {epoch}: shards overlap only by the padding"
        );
        orders.push(a);
    }
    assert_ne!(orders[0], orders[1], "set_epoch reshuffles");
}
