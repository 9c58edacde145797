//! 2 ranks: DDP on half the batch each gives the same parameters as one
//! process on the full batch after k steps (SGD and Adam, with and
//! without `no_sync` gradient accumulation, a parameter used twice), and
//! a parameter that gets no gradient on one rank does not hang the job.

mod distributed_common;

use distributed_common::Expect;
use kiln::distributed::{self as dist, DdpOptions, DistributedDataParallel};
use kiln::loss::{Reduction, mse_loss};
use kiln::nn::{Forward, Linear, Module};
use kiln::optim::{Adam, Optimizer, SGD};
use kiln::{Device, Tensor};

fn main() {
    distributed_common::main("distributed_ddp", 2, Expect::Success, case);
}

#[derive(kiln::Module)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
    /// Used by `unused_parameter_on_one_rank` only.
    head: Option<Linear>,
    /// Apply `fc1` twice (its gradient arrives in two parts).
    #[module(skip)]
    tied: bool,
}

impl Mlp {
    fn new(head: bool) -> Mlp {
        let d = Device::Cpu;
        Mlp {
            fc1: Linear::new(4, 4, &d),
            fc2: Linear::new(4, 2, &d),
            head: head.then(|| Linear::new(4, 1, &d)),
            tied: false,
        }
    }
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = self.fc1.forward(x).relu();
        if self.tied {
            h = self.fc1.forward(&h).tanh();
        }
        self.fc2.forward(&h)
    }
}

#[derive(Clone, Copy, Debug)]
enum Opt {
    Sgd,
    Adam,
}

fn optimizer(opt: Opt, params: Vec<Tensor>) -> Box<dyn Optimizer> {
    match opt {
        Opt::Sgd => Box::new(SGD::new(params, 0.1).momentum(0.9)),
        Opt::Adam => Box::new(Adam::new(params, 0.01)),
    }
}

fn flat(m: &impl Module) -> Vec<f32> {
    m.parameters()
        .iter()
        .flat_map(|p| p.to_vec::<f32>())
        .collect()
}

/// Max |a - b|.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn same_on_every_rank(what: &str, v: &[f32]) {
    let all = dist::all_gather(&Tensor::from_vec(v.to_vec(), [v.len()]));
    assert_eq!(
        all[0].to_vec::<f32>(),
        all[1].to_vec::<f32>(),
        "{what}: ranks differ"
    );
}

/// `one_bucket_per_param`: tiny bucket caps, so that buckets go out one
/// by one during backward (and a twice-used parameter's bucket goes out
/// before its second gradient arrives); otherwise PyTorch's 25 MiB / 1 MiB
/// (one bucket here).
fn compare(opt: Opt, accumulate: bool, tied: bool, one_bucket_per_param: bool) {
    const STEPS: usize = 3;
    let world = dist::world_size();
    let rank = dist::rank();
    kiln::manual_seed(7);
    let x = Tensor::randn([8, 4]);
    let y = Tensor::randn([8, 2]);
    // A different start on each rank: DDP must broadcast rank 0's.
    kiln::manual_seed(1 + rank as u64);
    let mut m = Mlp::new(false);
    m.tied = tied;
    let options = if one_bucket_per_param {
        DdpOptions {
            bucket_cap_mb: 1e-6,
            first_bucket_cap_mb: 1e-6,
            ..DdpOptions::default()
        }
    } else {
        DdpOptions::default()
    };
    let ddp = DistributedDataParallel::with_options(m, options);
    let buckets = ddp.bucket_assignment();
    if one_bucket_per_param {
        assert_eq!(buckets, vec![vec![3], vec![2], vec![1], vec![0]]);
    } else {
        assert_eq!(buckets, vec![vec![3, 2, 1, 0]]);
    }
    let start = flat(&*ddp);
    let mut reference = Mlp::new(false);
    reference.tied = tied;
    reference.load_state_dict(&ddp.state_dict(), true).unwrap();

    let mut opt_ref = optimizer(opt, reference.parameters());
    let mut opt_ddp = optimizer(opt, ddp.parameters());
    let per_rank = 8 / world;
    let shard_x = x.narrow(0, rank * per_rank, per_rank);
    let shard_y = y.narrow(0, rank * per_rank, per_rank);
    for _ in 0..STEPS {
        opt_ref.zero_grad();
        mse_loss(&reference.forward(&x), &y, Reduction::Mean).backward();
        opt_ref.step();

        opt_ddp.zero_grad();
        if accumulate {
            let half = per_rank / 2;
            let part = |i: usize| {
                let xi = shard_x.narrow(0, i * half, half);
                let yi = shard_y.narrow(0, i * half, half);
                mse_loss(&ddp.forward(&xi), &yi, Reduction::Mean).mul_scalar(0.5)
            };
            {
                let _local = ddp.no_sync();
                part(0).backward();
            }
            part(1).backward();
        } else {
            mse_loss(&ddp.forward(&shard_x), &shard_y, Reduction::Mean).backward();
        }
        opt_ddp.step();
    }
    let what = format!(
        "{opt:?}, accumulate {accumulate}, tied {tied}, one bucket per parameter {one_bucket_per_param}"
    );
    let (a, b) = (flat(&*ddp), flat(&reference));
    let d = max_diff(&a, &b);
    assert!(
        d < 1e-5,
        "{what}: DDP and full-batch parameters differ by {d}"
    );
    assert!(
        max_diff(&a, &start) > 1e-3,
        "{what}: training moved nothing"
    );
    same_on_every_rank(&what, &a);
    if rank == 0 {
        println!("{what}: max |ddp - full batch| = {d:e}");
    }
}

/// `head` is used on rank 0 only: rank 1 contributes zeros for it, both
/// ranks end with rank 0's gradient halved, and nobody waits forever.
fn unused_parameter_on_one_rank() {
    kiln::manual_seed(3);
    let ddp = DistributedDataParallel::new(Mlp::new(true));
    let head = ddp.head.as_ref().unwrap();
    let x = Tensor::randn([2, 4]);
    let mut loss = ddp.forward(&x).sum();
    if dist::rank() == 0 {
        loss = &loss + &head.forward(&x).sum();
    }
    loss.backward();
    let g = head
        .weight
        .grad()
        .expect("head.weight gets a gradient on every rank");
    // d sum(x @ w.T + b) / dw = column sums of x; averaged with rank 1's 0.
    let xs = x.to_vec::<f32>();
    let want: Vec<f32> = (0..4).map(|j| (xs[j] + xs[4 + j]) / 2.0).collect();
    assert!(
        max_diff(&g.to_vec::<f32>(), &want) < 1e-6,
        "{:?} vs {want:?}",
        g.to_vec::<f32>()
    );
    same_on_every_rank("unused head", &g.to_vec::<f32>());
}

fn case() {
    for opt in [Opt::Sgd, Opt::Adam] {
        for accumulate in [false, true] {
            for one_bucket_per_param in [false, true] {
                compare(opt, accumulate, false, one_bucket_per_param);
            }
        }
    }
    compare(Opt::Sgd, false, true, true);
    compare(Opt::Adam, true, true, false);
    unused_parameter_on_one_rank();
}
