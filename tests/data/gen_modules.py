"""Generates tests/data/modules.json: module-tree names, Sequential slicing
and loss modules as PyTorch reports them, read by tests/modules.rs.

    python tests/data/gen_modules.py   (needs PyTorch; CI never runs it)
"""
import json
import os

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.ModuleList([Block(), Block()])
        self.fc = nn.Linear(8, 2)


net = Net()
out = {
    "generator": "tests/data/gen_modules.py",
    "torch": torch.__version__,
    "named_modules": [[n, type(m).__name__] for n, m in net.named_modules()],
    "named_children": [[n, type(m).__name__] for n, m in net.named_children()],
    "features_print": str(net.features),
}
f = net.features
out["slice_1_4_children"] = [n for n, _ in f[1:4].named_children()]
out["slice_to_2_keys"] = list(f[:2].state_dict().keys())
g = Net().features
del g[1]
out["after_del_1"] = [[n, type(m).__name__] for n, m in g.named_children()]
g.pop(0)
out["after_pop_0"] = [[n, type(m).__name__] for n, m in g.named_children()]
h = Net().features
del h[1:3]
out["after_del_1_3"] = [[n, type(m).__name__] for n, m in h.named_children()]

torch.manual_seed(0)
logits = torch.tensor([[1.0, -0.5, 0.25], [0.1, 0.2, 2.0], [-1.0, 0.5, 0.0], [0.3, 0.3, -0.3]], dtype=torch.float64)
classes = torch.tensor([0, 2, 1, 1])
w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
x = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
y = torch.tensor([0.0, 1.0, 1.5, -0.5], dtype=torch.float64)
p = torch.tensor([0.2, 0.9, 0.5, 0.01], dtype=torch.float64)
t = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
losses = {
    "logits": logits.tolist(), "classes": classes.tolist(), "weight": w.tolist(),
    "x": x.tolist(), "y": y.tolist(), "p": p.tolist(), "t": t.tolist(),
}
cases = [
    ("CrossEntropyLoss()", nn.CrossEntropyLoss()(logits, classes)),
    ("CrossEntropyLoss(weight, ignore_index=1, label_smoothing=0.1)", nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1)(logits, classes)),
    ("CrossEntropyLoss(reduction=sum)", nn.CrossEntropyLoss(reduction="sum")(logits, classes)),
    ("NLLLoss(weight)", nn.NLLLoss(weight=w)(torch.log_softmax(logits, 1), classes)),
    ("MSELoss()", nn.MSELoss()(x, y)),
    ("L1Loss(reduction=sum)", nn.L1Loss(reduction="sum")(x, y)),
    ("SmoothL1Loss(beta=0.5)", nn.SmoothL1Loss(beta=0.5)(x, y)),
    ("BCELoss()", nn.BCELoss()(p, t)),
    ("BCEWithLogitsLoss()", nn.BCEWithLogitsLoss()(x, t)),
]
losses["values"] = {k: float(v) for k, v in cases}
losses["prints"] = [str(nn.CrossEntropyLoss(weight=w)), str(nn.MSELoss()), str(nn.BCEWithLogitsLoss())]
losses["ce_weight_state_keys"] = list(nn.CrossEntropyLoss(weight=w).state_dict().keys())
out["losses"] = losses

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "modules.json")
with open(path, "w") as fh:
    json.dump(out, fh, indent=1)
    fh.write("\n")
print("wrote", path)
