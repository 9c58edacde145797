//! Measures kiln's MPI collectives (a benchmark, not a test):
//!
//! 1. all-reduce bandwidth of float32 tensors of 1-64 MiB, to compare with
//!    `bench/allreduce.c` (the same `MPI_Allreduce` from C) on the same
//!    machine;
//! 2. the share of a data-parallel MLP training step spent waiting for
//!    gradient communication, with buckets launched during backward
//!    (overlap) and after it (no overlap).
//!
//! ```text
//! cargo build --release --features distributed --example bench_allreduce
//! mpirun -n 2 --bind-to none target/release/examples/bench_allreduce
//! ```
//!
//! Prints one JSON object per measurement (rank 0).

use kiln::distributed::{self as dist, Backend, DdpOptions, DistributedDataParallel, ReduceOp};
use kiln::loss::{Reduction, mse_loss};
use kiln::nn::{Forward, Linear, Module};
use kiln::optim::{Optimizer, SGD};
use kiln::{Device, Tensor};
use std::time::{Duration, Instant};

const REPS: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bandwidth() {
    let world = dist::world_size() as f64;
    let mut mib = 1;
    while mib <= 64 {
        let n = mib * 1024 * 1024 / 4;
        let t = Tensor::from_vec((0..n).map(|i| (i % 97) as f32).collect::<Vec<_>>(), [n]);
        dist::all_reduce(&t, ReduceOp::Sum);
        let times: Vec<f64> = (0..REPS)
            .map(|_| {
                dist::barrier();
                let t0 = Instant::now();
                dist::all_reduce(&t, ReduceOp::Sum);
                t0.elapsed().as_secs_f64()
            })
            .collect();
        let med = median(times);
        let bytes = (n * 4) as f64;
        if dist::rank() == 0 {
            println!(
                "{{\"impl\":\"kiln\",\"ranks\":{},\"mib\":{mib},\"median_ms\":{:.3},\"algbw_gbps\":{:.3},\"busbw_gbps\":{:.3}}}",
                world,
                med * 1e3,
                bytes / med / 1e9,
                bytes / med / 1e9 * 2.0 * (world - 1.0) / world
            );
        }
        mib *= 2;
    }
}

#[derive(kiln::Module)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Forward for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h);
            if i + 1 < self.layers.len() {
                h = h.relu();
            }
        }
        h
    }
}

/// Median step time and median communication wait of `steps` DDP steps.
fn mlp_steps(overlap: bool, steps: usize) -> (Duration, Duration) {
    kiln::manual_seed(0);
    let width = 1024;
    let d = Device::Cpu;
    let mlp = Mlp {
        layers: (0..16).map(|_| Linear::new(width, width, &d)).collect(),
    };
    let options = DdpOptions {
        overlap,
        ..DdpOptions::default()
    };
    let ddp = DistributedDataParallel::with_options(mlp, options);
    let mut opt = SGD::new(ddp.parameters(), 1e-3);
    let x = Tensor::randn([64, width]);
    let y = Tensor::randn([64, width]);
    let (mut step_t, mut wait_t) = (Vec::new(), Vec::new());
    for i in 0..steps + 2 {
        dist::barrier();
        let t0 = Instant::now();
        opt.zero_grad();
        mse_loss(&ddp.forward(&x), &y, Reduction::Mean).backward();
        opt.step();
        if i >= 2 {
            step_t.push(t0.elapsed().as_secs_f64());
            wait_t.push(ddp.last_comm_wait().as_secs_f64());
        }
    }
    (
        Duration::from_secs_f64(median(step_t)),
        Duration::from_secs_f64(median(wait_t)),
    )
}

fn main() {
    let _group = dist::init_process_group(Backend::Mpi).expect("init_process_group");
    if dist::rank() == 0 {
        println!(
            "{{\"note\":\"{} ranks, RAYON_NUM_THREADS={}\"}}",
            dist::world_size(),
            std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into())
        );
    }
    bandwidth();
    // Alternate the two variants so that a change in machine load hits both.
    for round in 0..2 {
        for overlap in [true, false] {
            let (step, wait) = mlp_steps(overlap, 8);
            if dist::rank() == 0 {
                println!(
                    "{{\"mlp\":\"16x1024x1024 ({} MiB of gradients), batch 64 per rank\",\"round\":{round},\"overlap\":{overlap},\"step_ms\":{:.1},\"comm_wait_ms\":{:.1},\"wait_share\":{:.3}}}",
                    16 * (1024 * 1024 + 1024) * 4 / (1024 * 1024),
                    step.as_secs_f64() * 1e3,
                    wait.as_secs_f64() * 1e3,
                    wait.as_secs_f64() / step.as_secs_f64()
                );
            }
        }
    }
}
