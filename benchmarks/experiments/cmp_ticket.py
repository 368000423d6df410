# ruff: noqa: B023  (the lambdas are timed inside the loop iteration that defines them)
"""Same-run comparison: tiles from program ids (package) vs from per-chain atomic tickets (.exp/chain_ticket.py)."""

import json
import os
import sys

import torch
from triton.testing import do_bench

sys.path.insert(0, os.path.dirname(__file__))
import chain_ticket as ct

from hlru_lm.kernels import bdlru_chain as cp

out = {}
for m in (1, 2):
    os.environ.update(
        HLRU_CHAIN_BT=str(32 if m == 1 else 16),
        HLRU_CHAIN_BT_BWD=str(8 if m == 1 else 4),
        HLRU_CHAIN_WARPS=str(4 if m == 1 else 2),
    )
    n = 1536 // m
    z = torch.randn(8, 8192, n, m, m + 1, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(8, 8192, n, m, device="cuda", dtype=torch.bfloat16)
    h0 = torch.zeros(8, n, m, device="cuda")
    ref = None
    for name, mod in (("pid", cp), ("ticket", ct)):
        f = do_bench(lambda: mod.bdlru_chain_fwd(z, v, h0, "softmax"), warmup=25, rep=100, return_mode="median")
        h, fin = mod.bdlru_chain_fwd(z, v, h0, "softmax")
        g = torch.randn_like(h)
        b = do_bench(
            lambda: mod.bdlru_chain_bwd(z, v, h0, h, g, None, "softmax"), warmup=25, rep=100, return_mode="median"
        )
        dz, dv, dh0 = mod.bdlru_chain_bwd(z, v, h0, h, g, None, "softmax")
        if ref is None:
            ref = (h.float(), dz.float())
            same = True
        else:
            same = bool(torch.allclose(ref[0], h.float(), atol=1e-2) and torch.allclose(ref[1], dz.float(), atol=1e-2))
        out[f"m{m}_{name}"] = dict(fwd_ms=f, bwd_ms=b, agrees_with_pid=same)
        print(f"m={m} {name:6s} fwd {f:.3f} ms bwd {b:.3f} ms agrees={same}", flush=True)
json.dump(out, open(os.path.join(os.environ["OUT"], "cmp_ticket.json"), "w"), indent=1)
