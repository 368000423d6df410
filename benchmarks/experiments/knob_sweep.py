"""Launch-knob experiments on the GPU (v13): per case, a float64 check then fwd and fwd+bwd timings, in one process.

    PYTHONPATH=. python benchmarks/experiments/knob_sweep.py OUT.json "bdlru:4:" "bdlru:4:HLRU_TILE_REV=1" ...

A case is MIXER:M:KNOBS, KNOBS a comma-separated list of HLRU_* launch knobs (empty: the package defaults). The check
runs bf16 inputs at B=2, T/4 and the timing's N·m (softmax) against the float64 torch path: values, final state
and grads (bf16 tolerance: 1e-2 for values, 1e-1 for grads). Timings: triton.testing.do_bench medians at B=8
T=8192 N·m=1536 (--shape), bf16 inputs, as bench_scan.py.
"""

import argparse
import json
import os
import sys
import time

import torch
from triton.testing import do_bench

from hlru_lm.kernels import triton_bdlru_scan, triton_hlru_scan
from hlru_lm.ops import bdlru_scan, hlru_scan


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def inputs(mixer: str, m: int, b: int, t: int, d: int, dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(seed)
    n = d // m
    # N = D / m blocks or channels, as bench_scan.py (before v16 the H-LRU cases here had N = D channels)
    shapes = (
        [(b, t, n, m, m + 1), (b, t, n, m), (b, n, m)] if mixer == "bdlru" else [(b, t, n, m + 1), (b, t, n), (b, n, m)]
    )
    z, v, h0 = (torch.randn(s, generator=g, device="cuda") for s in shapes)
    return [z.to(dtype), v.to(dtype), h0]


_REF: dict = {}  # (mixer, m) -> inputs, float64 reference outputs and grads (computed once)


def check(mixer: str, m: int, shape: tuple[int, int, int]) -> dict:
    """bf16 inputs at B = 2, T / 4 and the timing's D (kernels specialise on integers only by divisibility by 16, so
    the timing's kernels are the ones checked) against the float64 torch path."""
    key = (mixer, m)
    if key not in _REF:
        _REF.clear()
        x = inputs(mixer, m, 2, shape[1] // 4, shape[2], torch.bfloat16, seed=m)
        lr = [t.detach().double().requires_grad_() for t in x]
        fn = bdlru_scan if mixer == "bdlru" else hlru_scan
        h, f = fn(*lr, gate_norm="softmax", backend="torch")
        g = torch.Generator(device="cuda").manual_seed(1)
        gh = torch.randn(h.shape, generator=g, device="cuda", dtype=torch.float64)
        gf = torch.randn(f.shape, generator=g, device="cuda", dtype=torch.float64)
        (h * gh).sum().add((f * gf).sum()).backward()
        _REF[key] = x, gh, gf, [h.detach(), f.detach()] + [t.grad for t in lr]
    x, gh, gf, ref = _REF[key]
    lt = [t.detach().clone().requires_grad_() for t in x]
    h, f = (triton_bdlru_scan if mixer == "bdlru" else triton_hlru_scan)(*lt, "softmax")
    ((h * gh.to(h.dtype)).float().sum() + (f * gf.float()).sum()).backward()
    names = ("h", "final", "d_logits", "d_v", "d_h0")
    errs = {k: rel(a, r) for k, a, r in zip(names, [h, f] + [t.grad for t in lt], ref, strict=True)}
    return dict(ok=all(e == e and e < (1e-2 if k in ("h", "final") else 1e-1) for k, e in errs.items()), **errs)


def timing(mixer: str, m: int, shape: tuple[int, int, int]) -> tuple[float, float]:
    fn = triton_bdlru_scan if mixer == "bdlru" else triton_hlru_scan
    z, v, h0 = inputs(mixer, m, *shape, torch.bfloat16)
    fwd = do_bench(lambda: fn(z, v, h0, "softmax"), warmup=25, rep=100, return_mode="median")
    zg, vg = z.detach().requires_grad_(), v.detach().requires_grad_()
    gh = torch.randn_like(fn(z, v, h0, "softmax")[0])

    def fb():
        fn(zg, vg, h0, "softmax")[0].backward(gh)

    return fwd, do_bench(fb, warmup=25, rep=100, grad_to_none=[zg, vg], return_mode="median")


def _case(text: str) -> tuple[str, int, dict]:
    """MIXER:M:KNOBS as (mixer, m, {knob: value}), or an argparse error naming what is wrong."""
    parts = text.split(":")
    if len(parts) != 3 or parts[0] not in ("bdlru", "hlru") or parts[1] not in ("1", "2", "4", "8", "16"):
        raise argparse.ArgumentTypeError(f"case {text!r} is not MIXER:M:KNOBS (bdlru|hlru, m in 1,2,4,8,16)")
    knobs = [kv.split("=") for kv in parts[2].split(",") if kv]
    if any(len(kv) != 2 or not kv[0].startswith("HLRU_") for kv in knobs):
        raise argparse.ArgumentTypeError(f"case {text!r}: knobs must be HLRU_NAME=VALUE, comma-separated")
    return parts[0], int(parts[1]), dict(knobs)


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"shape {text!r} is not BxTxD with positive integers, e.g. 8x8192x1536")
    return tuple(int(p) for p in parts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("cases", nargs="+", type=_case, help="MIXER:M:KNOBS, e.g. bdlru:4:HLRU_TILE_REV=1")
    ap.add_argument("--shape", type=_shape, default=(8, 8192, 1536), help="BxTxD (D = N·m)")
    ap.add_argument("--budget-s", type=float, default=1e9, help="skip the remaining cases after this many seconds")
    ap.add_argument("--check-only", action="store_true", help="no timings (e.g. to fill Triton's cache in parallel)")
    args = ap.parse_args()
    shape = args.shape
    t0, rows = time.time(), []
    for mixer, m, kn in args.cases:
        knobs = ",".join(f"{k}={v}" for k, v in kn.items())
        if time.time() - t0 > args.budget_s:
            print(f"skipped {mixer}:{m}:{knobs} (budget)")
            continue
        saved = {k: os.environ.get(k) for k in kn}
        os.environ.update(kn)
        try:
            errs = check(mixer, m, shape)
            fwd, fb = (0.0, 0.0) if args.check_only else timing(mixer, m, shape)
        finally:
            for k, val in saved.items():
                if val is None:
                    os.environ.pop(k)
                else:
                    os.environ[k] = val
        ok = errs["ok"]
        rows.append(dict(mixer=mixer, m=m, knobs=kn, shape=shape, fwd_ms=fwd, fwdbwd_ms=fb, ok=ok, errs=errs))
        worst = max(v for k, v in errs.items() if k != "ok")
        print(f"{mixer} m={m} {knobs:55s} fwd {fwd:.3f} fwd+bwd {fb:.3f} bwd {fb - fwd:.3f} ms  "
              f"{'OK' if ok else 'BAD'} (worst rel {worst:.1e})  [{time.time() - t0:.0f} s]", flush=True)  # fmt: skip
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, commit=os.environ.get("HLRU_GIT_COMMIT"))
    meta["date"] = time.strftime("%Y-%m-%d")
    with open(args.out, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
