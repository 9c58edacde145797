"""PyTorch side of `examples/bench_rng.rs`: median time of
`torch.randn(10_000_000)` on the CPU, and a hash of the numbers drawn after
`torch.manual_seed(0)` so the benchmark can check that kiln drew the same
bits. Prints one JSON line.

    python bench/torch_rng.py [--n 10000000] [--iters 7]
"""
import argparse
import json
import time

import torch


def fnv(values):
    """64-bit FNV-1a over the bytes of the first 4096 float32 values."""
    h = 0xCBF29CE484222325
    for b in values.contiguous().view(torch.int32).numpy().tobytes()[: 4 * 4096]:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=10_000_000)
p.add_argument("--iters", type=int, default=7)
a = p.parse_args()

torch.manual_seed(0)
first = torch.randn(a.n)
for _ in range(2):
    torch.randn(a.n)
samples = []
for _ in range(a.iters):
    t = time.perf_counter()
    torch.randn(a.n)
    samples.append(time.perf_counter() - t)
samples.sort()
print(json.dumps({
    "workload": "randn_f32",
    "n": a.n,
    "torch_ms": round(samples[len(samples) // 2] * 1e3, 2),
    "threads": torch.get_num_threads(),
    "head_fnv": fnv(first),
    "torch": torch.__version__,
}))
