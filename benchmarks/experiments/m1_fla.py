"""m = 1 forward kernels against fla's chunk_hgrn and the copy bandwidth, in one process (v18g).

    PYTHONPATH=. python benchmarks/experiments/m1_fla.py OUT.json

First the float64 check of knob_sweep.py (bf16, B=2 T=2048 D=1536: values, final state, grads) of the default
forward (raw words) and of the prefix forward (HLRU_DIAG_RAW=0); then per shape fwd and fwd+bwd medians of both
(bench_scan.time_op) and of chunk_hgrn (as bench_scan.py times it), with % of the copy bandwidth measured in the
same process against the 8 B per channel-token byte floor.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path[:0] = ["scripts", "benchmarks/experiments"]
from bench_scan import bench, copy_bandwidth, make_inputs, time_op  # noqa: E402
from knob_sweep import check  # noqa: E402

from hlru_lm.kernels import triton_bdlru_scan  # noqa: E402


def time_fla(chunk_hgrn, b: int, t: int, d: int) -> dict:
    """chunk_hgrn's fwd and fwd+bwd medians, timed as bench_scan.py times them."""
    x = torch.randn(b, t, d, device="cuda", dtype=torch.bfloat16)
    gl = torch.nn.functional.logsigmoid(torch.randn(b, t, d, device="cuda")).to(torch.bfloat16)
    xg, gl_g, go = x.detach().requires_grad_(), gl.detach().requires_grad_(), torch.randn_like(x)

    def fla_fb():
        chunk_hgrn(xg, gl_g)[0].backward(go)

    return dict(fwd_ms=bench(lambda: chunk_hgrn(x, gl)), fwdbwd_ms=bench(fla_fb, grad_to_none=[xg, gl_g]))


def main() -> None:
    ap = argparse.ArgumentParser(description="m = 1 forwards against fla's chunk_hgrn (CUDA and fla required)")
    ap.add_argument("out", help="JSON file to write")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("m1_fla.py needs a CUDA GPU")
    from fla.ops.hgrn import chunk_hgrn

    checks = {}
    for name, raw in (("raw", "1"), ("prefix", "0")):
        os.environ["HLRU_DIAG_RAW"] = raw
        checks[name] = check("bdlru", 1, (8, 8192, 1536))
        print(name, checks[name], flush=True)
    copy = copy_bandwidth()
    rows = []
    for b, t, d in ((8, 8192, 1536), (1, 32768, 2048), (8, 8192, 2048)):
        z, v, h0 = make_inputs(b, t, d, 1)
        floor_ms = b * t * d * 8 / copy / 1e6
        row = dict(shape=[b, t, d], copy_gbs=copy, floor_ms=floor_ms)
        for name, raw in (("raw", "1"), ("prefix", "0")):
            os.environ["HLRU_DIAG_RAW"] = raw
            fwd, fb = time_op(lambda z, v, h0: triton_bdlru_scan(z, v, h0, "softmax"), z, v, h0)
            row[name] = dict(fwd_ms=fwd, fwdbwd_ms=fb, pct_copy_fwd=100 * floor_ms / fwd)
        os.environ.pop("HLRU_DIAG_RAW")
        row["fla"] = time_fla(chunk_hgrn, b, t, d)
        for name in ("raw", "prefix"):
            row[name]["fla_ratio_fwd"] = row["fla"]["fwd_ms"] / row[name]["fwd_ms"]
            row[name]["fla_ratio_fwdbwd"] = row["fla"]["fwdbwd_ms"] / row[name]["fwdbwd_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, commit=os.environ.get("HLRU_GIT_COMMIT"))
    meta["date"] = time.strftime("%Y-%m-%d")
    with open(args.out, "w") as fh:
        json.dump(dict(meta=meta, checks=checks, rows=rows), fh, indent=1)
    sys.exit(0 if all(c["ok"] for c in checks.values()) else 1)


if __name__ == "__main__":
    main()
