"""m = 1 kernels against fla's chunk_hgrn and the copy bandwidth, in one process (v18g, v19).

    PYTHONPATH=. python benchmarks/experiments/m1_fla.py OUT.json [NAME:KNOBS ...]

Each variant is a name and the HLRU_DIAG_* launch knobs it sets (default: "raw:" and "prefix:HLRU_DIAG_RAW=0").
First the float64 check of knob_sweep.py (bf16, B=2 T=2048 D=1536: values, final state, grads) of each variant;
then per shape fwd and fwd+bwd medians of each (bench_scan.time_op) and of chunk_hgrn (as bench_scan.py times it),
with % of the copy bandwidth measured in the same process against the 8 B per channel-token byte floor.
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


def _variant(text: str) -> tuple[str, dict]:
    """NAME:KNOBS (KNOBS: comma-separated HLRU_*=VALUE launch knobs, empty for the defaults)."""
    name, _, knobs = text.partition(":")
    env = dict(kv.split("=", 1) for kv in knobs.split(",") if kv)
    if not name or any(not k.startswith("HLRU_") for k in env):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:HLRU_KNOB=VALUE,... (knobs may be empty)")
    return name, env


def _set(env: dict) -> None:
    for k in [k for k in os.environ if k.startswith("HLRU_DIAG_")]:
        del os.environ[k]
    os.environ.update(env)


def main() -> None:
    ap = argparse.ArgumentParser(description="m = 1 kernels against fla's chunk_hgrn (CUDA and fla required)")
    ap.add_argument("out", help="JSON file to write")
    ap.add_argument("variants", nargs="*", type=_variant, metavar="NAME:KNOBS",
                    help="kernel settings to time (default: the package defaults and HLRU_DIAG_RAW=0)")  # fmt: skip
    args = ap.parse_args()
    variants = dict(args.variants or [("raw", {}), ("prefix", {"HLRU_DIAG_RAW": "0"})])
    if not torch.cuda.is_available():
        sys.exit("m1_fla.py needs a CUDA GPU")
    from fla.ops.hgrn import chunk_hgrn

    checks = {}
    for name, env in variants.items():
        _set(env)
        checks[name] = check("bdlru", 1, (8, 8192, 1536))
        print(name, checks[name], flush=True)
    copy = copy_bandwidth()
    rows = []
    for b, t, d in ((8, 8192, 1536), (1, 32768, 2048), (8, 8192, 2048)):
        z, v, h0 = make_inputs(b, t, d, 1)
        floor_ms = b * t * d * 8 / copy / 1e6
        row = dict(shape=[b, t, d], copy_gbs=copy, floor_ms=floor_ms)
        for name, env in variants.items():
            _set(env)
            fwd, fb = time_op(lambda z, v, h0: triton_bdlru_scan(z, v, h0, "softmax"), z, v, h0)
            row[name] = dict(knobs=env, fwd_ms=fwd, fwdbwd_ms=fb, pct_copy_fwd=100 * floor_ms / fwd)
        _set({})
        row["fla"] = time_fla(chunk_hgrn, b, t, d)
        for name in variants:
            row[name]["fla_ratio_fwd"] = row["fla"]["fwd_ms"] / row[name]["fwd_ms"]
            row[name]["fla_ratio_fwdbwd"] = row["fla"]["fwdbwd_ms"] / row[name]["fwdbwd_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, commit=os.environ.get("HLRU_GIT_COMMIT"))
    meta["date"] = time.strftime("%Y-%m-%d")
    with open(args.out + ".tmp", "w") as fh:  # the whole file or none
        json.dump(dict(meta=meta, checks=checks, rows=rows), fh, indent=1)
    os.replace(args.out + ".tmp", args.out)
    sys.exit(0 if all(c["ok"] for c in checks.values()) else 1)


if __name__ == "__main__":
    main()
