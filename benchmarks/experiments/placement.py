# ruff: noqa: B023
"""Does where the look-back buffers lie set the m = 1 kernels' time at few chains (v20c, NOTES lead A)?

    PYTHONPATH=. python benchmarks/experiments/placement.py OUT.json [BxTxD ...]

v19d timed the raw-word m = 1 backward at B=1 T=32768 D=2048 at 0.36-0.92 ms between measurements of the same kernel,
each measurement stable in itself. Hypothesis: the placement of the flag and carry buffers (fresh from the caching
allocator per call, so fixed within one do_bench loop) sets the latency of every look-back hop. Here the package's
_lookback_buffers is replaced by views into one preallocated buffer: the flags at byte offset F and the maps and end
states at offset A (beyond the flags), each swept with the other fixed, and the allocator's own placement timed
between them. Every case times diag_fwd and diag_bwd directly (no autograd; host time ~0.15 ms is below the GPU time
at this shape) twice, as do_bench medians. Placement matters if the two timings of a case agree and cases differ.
"""

import argparse
import json
import os
import sys
import time

import torch
from triton.testing import do_bench

sys.path[:0] = ["scripts"]
from bench_scan import _shapes  # noqa: E402

import hlru_lm.kernels.diag_tile as dt  # noqa: E402
from hlru_lm.kernels.bdlru_chain import _lookback_buffers  # noqa: E402

OFFSETS = (0, 128, 1024, 4096, 16384, 65536, 1 << 20, 4 << 20)
DATA_BASE = 64 << 20  # the maps and end states start here (plus A); flags at F < DATA_BASE


def placed(base: torch.Tensor, flag_off: int, data_off: int):
    def bufs(bsz, ntt, nblocks, nt, m, device):
        nf, na, ni = ntt * bsz * nt, ntt * bsz * nblocks * (m * m + m), ntt * bsz * nblocks * m
        flags = base[flag_off : flag_off + 4 * nf].view(torch.int32)
        flags.zero_()
        a0 = DATA_BASE + data_off
        i0 = a0 + ((4 * na + 127) // 128) * 128
        return flags, base[a0 : a0 + 4 * na].view(torch.float32), base[i0 : i0 + 4 * ni].view(torch.float32)

    return bufs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", help="JSON path (written whole or not at all)")
    ap.add_argument("shapes", nargs="*", type=lambda s: _shapes(s)[0], help="BxTxD (default 1x32768x2048)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU")
    out, shapes = args.out, args.shapes or [(1, 32768, 2048)]
    base = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    rows = []
    for b, t, d in shapes:
        z = torch.randn(b, t, d, 1, 2, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, t, d, 1, device="cuda", dtype=torch.bfloat16)
        h0 = torch.zeros(b, d, 1, device="cuda")
        dh = torch.randn_like(v)
        cases = [("alloc", None, None)]
        for off in OFFSETS:
            cases += [("flags", off, 0), ("data", 0, off), ("alloc", None, None)]
        for kind, fo, ao in cases:
            dt._lookback_buffers = _lookback_buffers if kind == "alloc" else placed(base, fo, ao)
            try:
                h, _ = dt.diag_fwd(z, v, h0, "softmax")
                fwd = [do_bench(lambda: dt.diag_fwd(z, v, h0, "softmax"), return_mode="median") for _ in range(2)]
                bwd = [do_bench(lambda: dt.diag_bwd(z, v, h0, h, dh, None, "softmax"), return_mode="median")
                       for _ in range(2)]  # fmt: skip
            finally:
                dt._lookback_buffers = _lookback_buffers
            row = dict(B=b, T=t, D=d, kind=kind, flag_off=fo, data_off=ao, fwd_ms=fwd, bwd_ms=bwd)
            rows.append(row)
            print(f"B={b} T={t} D={d} {kind:5s} F={fo!s:8s} A={ao!s:8s} fwd {fwd[0]:.3f} {fwd[1]:.3f}  "
                  f"bwd {bwd[0]:.3f} {bwd[1]:.3f} ms", flush=True)  # fmt: skip
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, commit=os.environ.get("HLRU_GIT_COMMIT"))
    meta["date"] = time.strftime("%Y-%m-%d")
    with open(out + ".tmp", "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
