"""PyTorch counterpart of `cargo run --release --example bench_ops`.

Same workloads, same statistic (median of timed calls after 3 warm-ups).
Run in the same session as the kiln benchmark and compare ratios.
"""
import json, time
import torch, torch.nn.functional as F


def median_time(iters, f):
    for _ in range(3):
        f()
    samples = []
    for _ in range(iters):
        t = time.perf_counter()
        f()
        samples.append(time.perf_counter() - t)
    samples.sort()
    return samples[iters // 2]


def main():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    for n in (256, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        s = median_time(10 if n >= 2048 else 30, lambda: a @ b)
        print(json.dumps({"workload": f"matmul_f32_{n}", "gflop_per_s": round(2 * n**3 / s / 1e9, 1),
                          "ms": round(s * 1e3, 3), "threads": threads, "torch": torch.__version__}))
    for name, cin, cout, hw, pad, input_grad in (("lenet_conv1_fwd_bwd_b64", 1, 6, 28, 2, False),
                                                  ("lenet_conv2_fwd_bwd_b64", 6, 16, 14, 0, True)):
        x = torch.randn(64, cin, hw, hw, requires_grad=input_grad)
        w = torch.randn(cout, cin, 5, 5, requires_grad=True)
        bias = torch.randn(cout, requires_grad=True)

        def step():
            y = F.conv2d(x, w, bias, padding=pad)
            y.backward(torch.ones_like(y))
            w.grad = None; bias.grad = None; x.grad = None

        s = median_time(50, step)
        print(json.dumps({"workload": name, "ms": round(s * 1e3, 3), "threads": threads, "torch": torch.__version__}))
    for cin, cout, hw in ((3, 32, 32), (32, 64, 16), (64, 128, 8), (128, 128, 8), (128, 256, 4), (256, 256, 4), (256, 256, 2)):
        x = torch.randn(32, cin, hw, hw, requires_grad=cin > 3)
        w = torch.randn(cout, cin, 3, 3, requires_grad=True)
        bias = torch.randn(cout, requires_grad=True)

        def step():
            y = F.conv2d(x, w, bias, padding=1)
            y.backward(torch.ones_like(y))
            w.grad = None; bias.grad = None; x.grad = None

        s = median_time(20, step)
        flops = (3 if cin > 3 else 2) * 2 * 32 * cout * cin * 9 * hw * hw
        print(json.dumps({"workload": f"vgg_conv3x3_{cin}_{cout}_{hw}x{hw}_fwd_bwd_b32", "ms": round(s * 1e3, 3),
                          "gflop_per_s": round(flops / s / 1e9, 1), "threads": threads, "torch": torch.__version__}))
    x = torch.randn(32, 32, 32, 32, requires_grad=True)
    gamma = torch.ones(32, requires_grad=True)
    beta = torch.zeros(32, requires_grad=True)
    rm, rv = torch.zeros(32), torch.ones(32)

    def block():
        y = F.batch_norm(x, rm, rv, gamma, beta, True, 0.1, 1e-5)
        y = F.max_pool2d(F.relu(y), 2)
        y.backward(torch.ones_like(y))
        x.grad = None; gamma.grad = None; beta.grad = None

    s = median_time(20, block)
    print(json.dumps({"workload": "vgg_bn_relu_pool_32x32x32_fwd_bwd_b32", "ms": round(s * 1e3, 3), "threads": threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
