//! 2 ranks: every collective's result, sync and async, and DDP's
//! broadcast of parameters and buffers from rank 0.

mod distributed_common;

use distributed_common::Expect;
use kiln::distributed::{self as dist, DistributedDataParallel, ReduceOp};
use kiln::nn::{BatchNorm1d, Linear, Module};
use kiln::{Device, Tensor};

fn main() {
    distributed_common::main("distributed_collectives", 2, Expect::Success, case);
}

fn case() {
    let r = dist::rank() as f32;
    // rank 0: [1, 2, 3], rank 1: [2, 4, 6]
    let mine = || Tensor::from_vec(vec![1.0 + r, 2.0 + 2.0 * r, 3.0 + 3.0 * r], [3]);
    for (op, want) in [
        (ReduceOp::Sum, [3.0f32, 6.0, 9.0]),
        (ReduceOp::Avg, [1.5, 3.0, 4.5]),
        (ReduceOp::Max, [2.0, 4.0, 6.0]),
        (ReduceOp::Min, [1.0, 2.0, 3.0]),
    ] {
        let t = mine();
        dist::all_reduce(&t, op);
        assert_eq!(t.to_vec::<f32>(), want, "all_reduce {op:?}");
    }
    // f64 and i64, async, two in flight at once.
    let a = Tensor::from_vec(vec![0.5f64 + r as f64], [1]);
    let b = Tensor::from_vec(vec![10i64 * (dist::rank() as i64 + 1)], [1]);
    let wa = dist::all_reduce_async(&a, ReduceOp::Sum);
    let wb = dist::all_reduce_async(&b, ReduceOp::Max);
    wa.wait();
    wb.wait();
    assert_eq!(a.to_vec::<f64>(), vec![2.0]);
    assert_eq!(b.to_vec::<i64>(), vec![20]);

    let t = mine();
    dist::broadcast(&t, 1);
    assert_eq!(
        t.to_vec::<f32>(),
        vec![2.0, 4.0, 6.0],
        "broadcast from rank 1"
    );

    let g = dist::all_gather_async(&mine().reshape(&[1, 3])).wait();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0].shape(), &[1, 3]);
    assert_eq!(g[0].to_vec::<f32>(), vec![1.0, 2.0, 3.0]);
    assert_eq!(g[1].to_vec::<f32>(), vec![2.0, 4.0, 6.0]);

    // [4, 1]: rank 0 [0,1,2,3], rank 1 [10,11,12,13]; sum = [10,12,14,16].
    let t = Tensor::from_vec(
        (0..4).map(|i| i as f32 + 10.0 * r).collect::<Vec<_>>(),
        [4, 1],
    );
    let s = dist::reduce_scatter(&t, ReduceOp::Sum);
    assert_eq!(s.shape(), &[2, 1]);
    let want = if dist::rank() == 0 {
        vec![10.0, 12.0]
    } else {
        vec![14.0, 16.0]
    };
    assert_eq!(s.to_vec::<f32>(), want, "reduce_scatter");
    dist::barrier();
    assert_eq!(
        dist::local_rank(),
        dist::rank(),
        "both ranks on this machine"
    );

    // DDP: different initial values per rank, identical after wrapping.
    kiln::manual_seed(100 + dist::rank() as u64);
    #[derive(kiln::Module)]
    struct Net {
        fc: Linear,
        bn: BatchNorm1d,
    }
    let net = Net {
        fc: Linear::new(5, 3, &Device::Cpu),
        bn: BatchNorm1d::new(3, &Device::Cpu),
    };
    net.bn.running_mean.as_ref().unwrap().fill_(1.0 + r as f64);
    let before: Vec<f32> = net.fc.weight.to_vec();
    let ddp = DistributedDataParallel::new(net);
    for (name, t) in ddp.state_dict().iter() {
        let mine = t
            .to_dtype(kiln::DType::F64)
            .reshape(&[1, t.numel() as isize]);
        let all = dist::all_gather(&mine);
        assert_eq!(
            all[0].to_vec::<f64>(),
            all[1].to_vec::<f64>(),
            "{name} differs between ranks after the broadcast"
        );
    }
    let after: Vec<f32> = ddp.fc.weight.to_vec();
    assert_eq!(before == after, dist::rank() == 0, "rank 0's values win");
    assert_eq!(
        ddp.bn.running_mean.as_ref().unwrap().to_vec::<f32>(),
        vec![1.0; 3]
    );
}
