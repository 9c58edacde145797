"""Writes tests/data/rng_extra.json: PyTorch CPU reference values for the
parts of kiln's generator contract the shared oracle (../shared/rng) does not
cover: generator objects, DataLoader(generator=...), random_split, the
generator state's bytes, dropout's single draw, and long randn streams (as
hashes of their bits). Run with any PyTorch 2.x on an x86 machine:

    python tests/data/rng_extra.py
"""
import json
import pathlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, random_split


def fnv(values, bits):
    """64-bit FNV-1a over the little-endian bytes of the values' bits."""
    h = 0xCBF29CE484222325
    raw = values.contiguous().view(torch.int32 if bits == 32 else torch.int64).numpy().tobytes()
    for b in raw:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


out = {"generator": f"torch {torch.__version__}"}

g = torch.Generator().manual_seed(7)
loader = DataLoader(list(range(12)), shuffle=True, generator=g)
out["loader_generator"] = {"seed": 7, "n": 12, "epochs": [[int(b) for b in loader] for _ in range(3)]}

parts = random_split(list(range(10)), [3, 7], generator=torch.Generator().manual_seed(42))
out["random_split"] = {"seed": 42, "lengths": [3, 7], "parts": [list(p.indices) for p in parts]}
torch.manual_seed(4)
parts = random_split(list(range(9)), [4, 5])
out["random_split_default"] = {"seed": 4, "lengths": [4, 5], "parts": [list(p.indices) for p in parts]}

torch.manual_seed(5)
torch.randn(1)
out["state_after_randn1"] = {"seed": 5, "hex": bytes(torch.get_rng_state().tolist()).hex()}

torch.manual_seed(3)
x = torch.arange(1.0, 51.0)
y = F.dropout(x, 0.3, training=True)
out["dropout"] = {"seed": 3, "n": 50, "p": 0.3, "out": y.tolist(), "rand5": torch.rand(5).tolist()}

torch.manual_seed(8)
ranges = [[0, (1 << 28) - 1], [0, 1 << 28], [-5, 1 << 31], [7, (1 << 32) + 5], [-(1 << 40), 1 << 40]]
out["randint_ranges"] = {
    "seed": 8,
    "ranges": ranges,
    "values": [torch.randint(lo, hi, (6,)).tolist() for lo, hi in ranges],
}

streams = []
for seed, op, n, dtype, args in [
    (11, "randn", 100_003, torch.float32, []),
    (12, "randn", 1 << 16, torch.float32, []),
    (13, "randn", 20_001, torch.float64, []),
    (14, "normal_", 4001, torch.float32, [1.5, 0.3]),
    (15, "normal_", 4000, torch.float64, [1.5, 0.3]),
    (16, "uniform_", 1000, torch.float64, [-2.0, 3.0]),
    (17, "uniform_", 1001, torch.float32, [-0.7, 0.2]),
]:
    torch.manual_seed(seed)
    if op == "randn":
        x = torch.randn(n, dtype=dtype)
    else:
        x = getattr(torch.empty(n, dtype=dtype), op)(*args)
    bits = 32 if dtype == torch.float32 else 64
    name = str(dtype).split(".")[1]
    streams.append({"seed": seed, "op": op, "n": n, "dtype": name, "args": args, "fnv": fnv(x, bits)})
out["streams"] = streams

torch.manual_seed(0)
out["rand2_seed0"] = torch.rand(2).tolist()

path = pathlib.Path(__file__).with_name("rng_extra.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print("wrote", path)
