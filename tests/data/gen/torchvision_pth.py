"""Writes the torchvision files that tests/zoo.rs's
`torchvision_resnet18_pth_loads_into_the_zoo_model` reads (45 MB, so they
are not checked in):

    python tests/data/gen/torchvision_pth.py DIR
    KILN_TORCHVISION_DIR=DIR cargo test --test zoo torchvision

DIR/resnet18.pth is `torch.save(torchvision.models.resnet18().state_dict())`
(seeded, with non-trivial batch-norm running statistics so that eval mode
uses them); DIR/resnet18_io.safetensors holds an input batch `x` and the
eval-mode `logits` torchvision computes for it. Made with PyTorch 2.15 and
torchvision 0.29.
"""
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None)
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
model.eval()
torch.save(model.state_dict(), os.path.join(out, "resnet18.pth"))
x = torch.randn(2, 3, 64, 64)
with torch.no_grad():
    logits = model(x)
save_file({"x": x, "logits": logits.contiguous()}, os.path.join(out, "resnet18_io.safetensors"))
print("wrote", out, "logits", logits.shape, float(logits.abs().max()))
