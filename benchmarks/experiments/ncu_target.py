"""One BD-LRU / H-LRU scan, forward + backward, run a few times: the program Nsight Compute profiles (v13a).

    ncu --clock-control none -k regex:tile_bwd --launch-skip 2 --launch-count 1 --set full -o rep \
        python benchmarks/experiments/ncu_target.py bdlru 1 [B T D]

bf16 inputs, softmax; B T D default to the issue's shape 8 8192 1536 (D = N·m). Each of the 3 iterations launches
every kernel of the op once, so --launch-skip 2 profiles the third (warm) launch of the kernel named by -k.
"""

import sys

import torch

from hlru_lm.kernels import triton_bdlru_scan, triton_hlru_scan


def main() -> None:
    args = sys.argv[1:]
    if (
        len(args) not in (2, 5)
        or not all(a.isdigit() and int(a) > 0 for a in args[1:])
        or args[1] not in "1 2 4 8 16".split()
    ):
        raise SystemExit("usage: ncu_target.py bdlru|hlru M [B T D], M in 1 2 4 8 16, B T D positive integers")
    mixer, m = args[0], int(args[1])
    b, t, d = (int(x) for x in args[2:5]) if len(args) == 5 else (8, 8192, 1536)
    n = d // m
    g = torch.Generator(device="cuda").manual_seed(0)
    if mixer == "bdlru":
        z = torch.randn(b, t, n, m, m + 1, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(b, t, n, m, device="cuda", dtype=torch.bfloat16, generator=g)
        h0, fn = torch.zeros(b, n, m, device="cuda"), triton_bdlru_scan
    elif mixer == "hlru":
        z = torch.randn(b, t, d, m + 1, device="cuda", dtype=torch.bfloat16, generator=g)
        v = torch.randn(b, t, d, device="cuda", dtype=torch.bfloat16, generator=g)
        h0, fn = torch.zeros(b, d, m, device="cuda"), triton_hlru_scan
    else:
        raise ValueError(f"mixer must be bdlru or hlru, got {mixer!r}")
    z.requires_grad_()
    v.requires_grad_()
    for _ in range(3):
        h, _ = fn(z, v, h0, "softmax")
        h.backward(torch.ones_like(h))
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
