"""Generates tests/data/schedulers.json: learning-rate sequences from
torch.optim.lr_scheduler, read by tests/schedulers.rs.

Run with PyTorch installed (outside CI):
    python tests/data/gen_schedulers.py
Each case records `get_last_lr()` right after construction and after each
of `steps` calls to `scheduler.step()` (with `optimizer.step()` before
each, as a training loop does). Optimizers have two parameter groups
(lr 0.1 and 0.02) unless a case says otherwise. Cases with momentum
cycling (OneCycleLR/CyclicLR's `cycle_momentum=True`) name their optimizer
(`opt`: SGD with momentum 0.9, or Adam) and record each group's
`momentum` (SGD) or `betas[0]` (Adam) next to the rates (`momentums`).
"""
import json
import math
import os

import torch
from torch.optim import SGD
from torch.optim import lr_scheduler as S


def make_opt(lrs=(0.1, 0.02), kind="plain"):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "sgd_momentum":
        return SGD(groups, lr=lrs[0], momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    return SGD(groups, lr=lrs[0])


def momentums(opt):
    return [float(g["betas"][0] if "betas" in g else g["momentum"]) for g in opt.param_groups]


def run(name, build, steps, metrics=None, lrs=(0.1, 0.02), opt_kind=None):
    opt = make_opt(lrs, opt_kind or "plain")
    sched = build(opt)
    seq = [[float(x) for x in sched.get_last_lr()]]
    moms = [momentums(opt)]
    for i in range(steps):
        opt.step()
        if metrics is not None:
            sched.step(metrics[i])
        else:
            sched.step()
        seq.append([float(x) for x in sched.get_last_lr()])
        moms.append(momentums(opt))
    case = {"name": name, "init_lrs": list(lrs), "lrs": seq}
    if opt_kind is not None:
        case["opt"] = opt_kind
        case["momentums"] = moms
    if metrics is not None:
        case["metrics"] = metrics
    return case


cases = []
add = cases.append

add(run("linear_warmup", lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=4), 10))
add(run("linear_decay", lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=5), 9))
add(run("linear_default", lambda o: S.LinearLR(o), 8))

add(run("warm_restarts_t0_3_mult_2", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001), 25))
add(run("warm_restarts_t0_4", lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4), 13))

add(run("one_cycle_cos", lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=20, cycle_momentum=False), 20))
add(run("one_cycle_linear_pct", lambda o: S.OneCycleLR(o, max_lr=0.3, epochs=3, steps_per_epoch=5, pct_start=0.25, anneal_strategy="linear", cycle_momentum=False), 15))
add(run("one_cycle_three_phase", lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=17, three_phase=True, div_factor=10.0, final_div_factor=100.0, cycle_momentum=False), 17))

add(run("cyclic_triangular", lambda o: S.CyclicLR(o, base_lr=[0.01, 0.001], max_lr=[0.1, 0.005], step_size_up=3, step_size_down=5, cycle_momentum=False), 20))
add(run("cyclic_triangular2", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, mode="triangular2", cycle_momentum=False), 16))
add(run("cyclic_exp_range", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.9, cycle_momentum=False), 16))

# Momentum cycling (PyTorch's default), SGD's momentum and Adam's beta1.
add(run("one_cycle_momentum", lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.1], total_steps=20), 20, opt_kind="sgd_momentum"))
add(run("one_cycle_three_phase_momentum", lambda o: S.OneCycleLR(o, max_lr=0.2, total_steps=17, three_phase=True, anneal_strategy="linear", base_momentum=[0.8, 0.7], max_momentum=0.9), 17, opt_kind="sgd_momentum"))
add(run("one_cycle_adam_beta1", lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=12, pct_start=0.25), 12, opt_kind="adam"))
add(run("cyclic_momentum", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5), 20, opt_kind="sgd_momentum"))
add(run("cyclic_exp_range_momentum", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.9, base_momentum=[0.7, 0.75], max_momentum=[0.9, 0.95]), 16, opt_kind="sgd_momentum"))
add(run("cyclic_adam_triangular2", lambda o: S.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=2, mode="triangular2", base_momentum=0.85, max_momentum=0.95), 16, opt_kind="adam"))
# cycle_momentum=False leaves SGD's momentum at 0.9.
add(run("one_cycle_no_momentum_cycle", lambda o: S.OneCycleLR(o, max_lr=0.3, total_steps=8, cycle_momentum=False), 8, opt_kind="sgd_momentum"))

metrics_min = [1.0, 0.9, 0.9, 0.95, 0.91, 0.89, 0.8999, 0.9, 0.9, 0.9, 0.7, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78]
add(run("plateau_min_rel", lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=2), 20, metrics=metrics_min))
add(run("plateau_min_abs_cooldown", lambda o: S.ReduceLROnPlateau(o, factor=0.1, patience=1, threshold=0.05, threshold_mode="abs", cooldown=2, min_lr=[1e-3, 1e-4]), 20, metrics=metrics_min))
metrics_max = [0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
add(run("plateau_max_min_lr", lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.3, patience=0, min_lr=0.005), 15, metrics=metrics_max))

add(run("sequential_linear_cosine", lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=3), S.CosineAnnealingLR(o, T_max=7)], milestones=[3]), 12))
add(run("sequential_linear_restarts", lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.5, total_iters=2), S.CosineAnnealingWarmRestarts(o, T_0=3)], milestones=[2]), 10))
add(run("sequential_three", lambda o: S.SequentialLR(o, [S.ExponentialLR(o, gamma=0.5), S.StepLR(o, step_size=2, gamma=0.1), S.LinearLR(o, start_factor=0.2, total_iters=2)], milestones=[2, 5]), 10))

add(run("chained_linear_exponential", lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.5, total_iters=3), S.ExponentialLR(o, gamma=0.9)]), 8))
add(run("chained_step_multistep", lambda o: S.ChainedScheduler([S.StepLR(o, step_size=3, gamma=0.5), S.MultiStepLR(o, milestones=[2, 5], gamma=0.1)]), 8))

# The tutorials' hand-written warm-up + cosine rule, evaluated by a
# LambdaLR as the tutorials do, past `total` too.
def tutorial_factor(i, warmup=3, total=8):
    if i < warmup:
        return (i + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (i - warmup) / (total - warmup)))


add(run("tutorial_warmup_cosine", lambda o: S.LambdaLR(o, tutorial_factor), 12))

# LBFGS on the Rosenbrock function, strong-Wolfe line search and without.
def rosenbrock(p):
    x, y = p[0], p[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def lbfgs_case(name, steps, **kw):
    p = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([p], **kw)
    traj = []
    losses = []

    def closure():
        opt.zero_grad()
        loss = rosenbrock(p)
        loss.backward()
        return loss

    for _ in range(steps):
        loss = opt.step(closure)
        losses.append(float(loss))
        traj.append([float(v) for v in p.detach()])
    st = opt.state[opt._params[0]]
    return {"name": name, "options": {k: v for k, v in kw.items()}, "start": [-1.5, 2.0],
            "losses": losses, "params": traj, "func_evals": st["func_evals"], "n_iter": st["n_iter"]}


lbfgs = [
    lbfgs_case("wolfe", 6, lr=1.0, max_iter=5, history_size=4, line_search_fn="strong_wolfe"),
    lbfgs_case("wolfe_default_iter", 3, lr=1.0, line_search_fn="strong_wolfe"),
    lbfgs_case("fixed_step", 5, lr=0.05, max_iter=4, history_size=3),
]

out = {"generator": "tests/data/gen_schedulers.py", "torch": torch.__version__, "schedulers": cases, "lbfgs": lbfgs}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schedulers.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote", path, len(cases), "scheduler cases,", len(lbfgs), "lbfgs cases")
