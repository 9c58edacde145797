"""Generates tests/data/indexing.json: PyTorch's results for a table of
index expressions, read by tests/indexing.rs.

Run with PyTorch installed (outside CI):
    python tests/data/gen/indexing.py
Every input is `torch.arange(n, dtype=torch.float64).reshape(shape)`. An
index is a list of items: {"int": i}, {"slice": [start, stop, step]} (null
for omitted), "none", "ellipsis", {"index": values, "shape": s} (an int64
tensor) and {"mask": values, "shape": s} (a bool tensor).

Reading cases record the result (`out`, `out_shape`), whether it is a view
of the input (`view`: `y._base is x`, `x` being a base tensor) and the gradient of
`(x[idx] * w).sum()` with `w = 1, 2, ...` in the result's shape (`grad`).
Assignment cases (`x[idx] = value`, value a scalar or a tensor) record the
whole tensor afterwards. Cases PyTorch rejects record its message
(`error`).
"""
import json
import os

import torch


def build(items):
    out = []
    for it in items:
        if it == "none":
            out.append(None)
        elif it == "ellipsis":
            out.append(Ellipsis)
        elif "int" in it:
            out.append(it["int"])
        elif "slice" in it:
            out.append(slice(*it["slice"]))
        elif "index" in it:
            out.append(torch.tensor(it["index"], dtype=torch.int64).reshape(it["shape"]))
        elif "mask" in it:
            out.append(torch.tensor(it["mask"], dtype=torch.bool).reshape(it["shape"]))
        else:
            raise ValueError(it)
    return tuple(out)


def arange(shape):
    n = 1
    for d in shape:
        n *= d
    return torch.arange(n, dtype=torch.float64).reshape(shape).clone()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def read_case(shape, items):
    case = {"shape": shape, "index": items}
    x = arange(shape)
    try:
        y = x[build(items)]
    except (IndexError, ValueError, RuntimeError, TypeError) as e:
        case["error"] = str(e)
        return case
    case["out_shape"] = list(y.shape)
    case["out"] = flat(y)
    case["view"] = y._base is x
    xr = x.clone().requires_grad_(True)
    yr = xr[build(items)]
    w = torch.arange(1, yr.numel() + 1, dtype=torch.float64).reshape(yr.shape)
    (yr * w).sum().backward()
    case["grad"] = flat(xr.grad)
    return case


def set_case(shape, items, value):
    case = {"shape": shape, "index": items, "value": value}
    x = arange(shape)
    if "scalar" in value:
        v = value["scalar"]
    else:
        v = torch.tensor(value["tensor"], dtype=torch.float64).reshape(value["shape"])
    try:
        x[build(items)] = v
    except (IndexError, ValueError, RuntimeError, TypeError) as e:
        case["error"] = str(e)
        return case
    case["result"] = flat(x)
    return case


def S(a=None, b=None, c=None):
    return {"slice": [a, b, c]}


def I(i):
    return {"int": i}


N = "none"
E = "ellipsis"


def idx(values, shape=None):
    return {"index": values, "shape": shape if shape is not None else [len(values)]}


def mask(values, shape):
    fl = []

    def walk(v):
        if isinstance(v, list):
            for u in v:
                walk(u)
        else:
            fl.append(bool(v))

    walk(values)
    return {"mask": fl, "shape": shape}


reads = [
    ([5], [I(0)]),
    ([5], [I(-1)]),
    ([5], [S(1, 3)]),
    ([5], [S(None, None, 2)]),
    ([5], [S(-3, None)]),
    ([5], [S(None, -1)]),
    ([5], [S(-100, 100)]),
    ([5], [S(4, 1)]),
    ([5], [S(1, None, 3)]),
    ([4, 5], [S(), S(1, 3)]),
    ([4, 5], [I(1), S(None, None, 2)]),
    ([4, 5], [S(None, None, 2), I(-1)]),
    ([4, 5], [S(1, None, 2), S(-4, -1, 2)]),
    ([4, 5], [I(-2), I(3)]),
    ([2, 3, 4], [E, I(1)]),
    ([2, 3, 4], [I(1), E]),
    ([2, 3, 4], [I(0), E, S(1, 3)]),
    ([2, 3, 4], [E]),
    ([2, 3, 4], [N]),
    ([2, 3, 4], [S(), N, S(None, 2)]),
    ([2, 3, 4], [E, N]),
    ([2, 3, 4], [N, I(1), N, S(None, None, 3)]),
    ([2, 3, 4], [S(1), E, N, I(2)]),
    ([3], [N, N]),
    ([], [N]),
    ([], [E]),
    ([4, 5], [idx([2, 0, -1])]),
    ([4, 5], [S(), idx([4, 4, 1])]),
    ([4, 5], [idx([[0, 1], [3, 3]], [2, 2])]),
    ([2, 3, 4], [S(), idx([[2], [0]], [2, 1]), S(1, None, 2)]),
    ([2, 3, 4], [I(1), idx([1, 0]), I(-1)]),
    ([2, 3, 4], [E, idx([3, 0, 0])]),
    ([2, 3, 4], [N, S(), idx(1, [])]),
    ([4, 5], [idx([], [0])]),
    ([3, 4], [mask([True, False, True], [3])]),
    ([3, 4], [mask([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], [3, 4])]),
    ([3, 4], [S(), mask([0, 1, 1, 0], [4])]),
    ([2, 3, 4], [S(), mask([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]], [3, 4])]),
    ([2, 3, 4], [I(1), mask([False, True, True], [3]), S(None, None, 2)]),
    ([2, 3, 4], [E, mask([1, 0, 1, 1], [4])]),
    ([3, 4], [mask([False, False, False], [3])]),
    ([3, 4], [mask(True, [])]),
    ([3, 4], [mask(False, [])]),
    # PyTorch's errors.
    ([5], [I(5)]),
    ([4, 5], [S(), I(-6)]),
    ([4, 5], [I(0), I(0), I(0)]),
    ([2, 3, 4], [E, I(0), E]),
    ([5], [S(None, None, -1)]),
    ([5], [S(None, None, 0)]),
    ([], [I(0)]),
    ([4, 5], [idx([4, 1])]),
    ([4, 5], [S(), idx([-6])]),
    ([3, 4], [mask([True, False], [2])]),
    ([3, 4], [S(), mask([[1, 0, 0, 1]], [1, 4])]),
]

sets = [
    ([5], [S(1, 3)], {"scalar": -1.0}),
    ([4, 5], [S(1, 3), S(None, None, 2)], {"scalar": 7.5}),
    ([4, 5], [S(), I(-1)], {"tensor": [10, 20, 30, 40], "shape": [4]}),
    ([4, 5], [S(1, None, 2)], {"tensor": [1, 2, 3, 4, 5], "shape": [5]}),
    ([4, 5], [I(0)], {"tensor": [9, 8, 7, 6, 5], "shape": [1, 5]}),
    ([2, 3, 4], [E, S(None, None, 3)], {"tensor": [-1, -2], "shape": [2]}),
    ([2, 3, 4], [N, I(1), S(1)], {"scalar": 0.0}),
    ([4, 5], [idx([3, 0])], {"scalar": -2.0}),
    ([4, 5], [S(), idx([4, -5])], {"tensor": [1, 2, 3, 4, 5, 6, 7, 8], "shape": [4, 2]}),
    ([4, 5], [idx([[1], [2]], [2, 1]), S(None, 2)], {"tensor": [100, 200], "shape": [2]}),
    ([3, 4], [mask([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], [3, 4])], {"scalar": -3.0}),
    ([3, 4], [mask([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]], [3, 4])],
     {"tensor": [1, 2, 3, 4, 5, 6], "shape": [6]}),
    ([3, 4], [mask([True, False, True], [3])], {"tensor": [5, 6, 7, 8], "shape": [4]}),
    ([2, 3, 4], [S(), mask([False, True, True], [3])],
     {"tensor": list(range(16)), "shape": [2, 2, 4]}),
    ([2, 3, 4], [I(1), S(), mask([1, 0, 0, 1], [4])], {"tensor": [-5], "shape": [1]}),
    # PyTorch's errors.
    ([4, 5], [S(), S(1, 3)], {"tensor": [1, 2, 3], "shape": [3]}),
    ([5], [I(7)], {"scalar": 1.0}),
    ([3, 4], [mask([True, False, True], [3])], {"tensor": [1, 2, 3], "shape": [3]}),
]

out = {
    "generator": "tests/data/gen/indexing.py",
    "torch": torch.__version__,
    "read": [read_case(s, i) for s, i in reads],
    "set": [set_case(s, i, v) for s, i, v in sets],
}
path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "indexing.json")
with open(path, "w") as f:
    json.dump(out, f)
    f.write("\n")
print("wrote", path, len(out["read"]), "reads,", len(out["set"]), "sets")
