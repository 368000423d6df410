"""Where the time of a small m = 1 scan goes (v20): GPU time against host time, ours against fla's chunk_hgrn.

    PYTHONPATH=. python benchmarks/experiments/host_time.py OUT.json [BxTxD ...]

Per shape (bf16, softmax), for the package's m = 1 scan and for fla's chunk_hgrn (when installed), forward and
forward + backward (autograd, as bench_scan.py):
- `bench`: triton.testing.do_bench median, bench_scan.py's protocol (the number the issue's table quotes);
- `graph`: the same call captured in a CUDA graph and replayed (do_bench median): GPU time without host gaps;
- `host`: host time per call, with the GPU held busy by torch.cuda._sleep so no call waits on the GPU.
If `bench` is near `host` and above `graph`, the benchmark is host-bound there; if it is near `graph`, GPU-bound.
First and last (after fla is imported), the host cost of the pieces at B=1 T=2048 D=1536: an allocation, a zeroed
one, an environment read, the launch arguments, a bare Triton launch of the raw forward, the un-wrapped forward and
backward, the autograd call, the same with Python's GC off, and an autograd.Function of the same signature that
launches nothing (the engine's own cost). Then a cProfile of the fwd+bwd call at the first shape (OUT.prof.txt).
"""

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import time

import torch
import triton

sys.path[:0] = ["scripts"]
from bench_scan import _shapes, bench, graph_bench  # noqa: E402

from hlru_lm.kernels import triton_bdlru_scan  # noqa: E402
from hlru_lm.kernels.bdlru_chain import _lookback_buffers  # noqa: E402
from hlru_lm.kernels.diag_tile import _diag_raw_fwd_kernel, _launch_args, diag_bwd, diag_fwd  # noqa: E402

chunk_hgrn = None  # fla's, imported after the pieces are timed (does importing it change our host time?)

SLEEP_CYCLES = 800_000_000  # ~0.4 s of GPU sleep: more than the calls it covers take on the host


def host_ms(fn, n: int = 40) -> float:
    """Host time per call while the GPU sleeps (so nothing waits for it); NaN if a call synchronised."""
    fn()
    torch.cuda.synchronize()
    torch.cuda._sleep(SLEEP_CYCLES)
    slept = torch.cuda.Event()
    slept.record()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    dt = time.perf_counter() - t
    waited = slept.query()  # the sleep ended inside the loop: a call may have waited for the GPU
    torch.cuda.synchronize()
    return float("nan") if waited else dt / n * 1e3


def ours(b: int, t: int, d: int):
    z = torch.randn(b, t, d, 1, 2, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(b, t, d, 1, device="cuda", dtype=torch.bfloat16)
    h0 = torch.zeros(b, d, 1, device="cuda")
    zg, vg = z.detach().requires_grad_(), v.detach().requires_grad_()
    gh = torch.randn_like(v)

    def fwd():
        triton_bdlru_scan(z, v, h0, "softmax")

    def fb():
        zg.grad = vg.grad = None
        triton_bdlru_scan(zg, vg, h0, "softmax")[0].backward(gh)

    return fwd, fb


def fla(b: int, t: int, d: int):
    x = torch.randn(b, t, d, device="cuda", dtype=torch.bfloat16)
    gl = torch.nn.functional.logsigmoid(torch.randn(b, t, d, device="cuda")).to(torch.bfloat16)
    xg, gg = x.detach().requires_grad_(), gl.detach().requires_grad_()
    go = torch.randn_like(x)

    def fwd():
        chunk_hgrn(x, gl)

    def fb():
        xg.grad = gg.grad = None
        chunk_hgrn(xg, gg)[0].backward(go)

    return fwd, fb


def measure(fn) -> dict:
    out = dict(bench=bench(fn), host=host_ms(fn))
    try:
        out["graph"] = graph_bench(fn)
    except Exception as e:  # noqa: BLE001 - a failed capture is a result to report, not a reason to stop
        out["graph_error"] = f"{type(e).__name__}: {e}"[:200]
    return out


class _Empty(torch.autograd.Function):
    """The scan's autograd signature (two inputs, two outputs, one unused) with no kernels: the engine's own cost."""

    @staticmethod
    def forward(ctx, z, v, materialize):
        ctx.set_materialize_grads(materialize)
        ctx.z_shape = z.shape
        return torch.empty_like(v), torch.empty(v.shape[0], v.shape[2], 1, device=v.device)

    @staticmethod
    def backward(ctx, dh, dfinal):
        return torch.empty(ctx.z_shape, dtype=dh.dtype, device=dh.device), torch.empty_like(dh), None


def pieces() -> dict:
    """Host ms of the parts a call is made of, at B=1 T=2048 D=1536."""
    z = torch.randn(1, 2048, 1536, 1, 2, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, 2048, 1536, 1, device="cuda", dtype=torch.bfloat16)
    h0 = torch.zeros(1, 1536, 1, device="cuda")
    h, _ = diag_fwd(z, v, h0, "softmax")
    dh = torch.randn_like(v)
    kw, nt, ntt = _launch_args(2048, 1536, bwd=False, raw=True)
    final = torch.empty(1, 1536, 1, device="cuda")
    bufs = _lookback_buffers(1, ntt, 1536, nt, 1, z.device)

    def launch():  # flags left set by the last launch: wrong h, but every poll ends at once (timing only)
        _diag_raw_fwd_kernel[(ntt * nt,)](z, v, h0, h, final, *bufs, 1, 2048, 1536, nt, ntt, NORM=0, DT=0, **kw)

    zg, vg = z.detach().requires_grad_(), v.detach().requires_grad_()

    def empty_fb(materialize):
        def fb():
            zg.grad = vg.grad = None
            _Empty.apply(zg, vg, materialize)[0].backward(dh)

        return fb

    _, fb = ours(1, 2048, 1536)
    gc.disable()
    fb_gc_off = host_ms(fb, 100)
    gc.enable()
    return dict(
        empty=host_ms(lambda: torch.empty(4096, device="cuda"), 200),
        zeros=host_ms(lambda: torch.zeros(4096, dtype=torch.int32, device="cuda"), 200),
        env_get=host_ms(lambda: os.environ.get("HLRU_DIAG_BT"), 200),
        launch_args=host_ms(lambda: _launch_args(2048, 1536, bwd=False, raw=True), 200),
        triton_launch=host_ms(launch, 200),
        diag_fwd=host_ms(lambda: diag_fwd(z, v, h0, "softmax"), 200),
        diag_bwd=host_ms(lambda: diag_bwd(z, v, h0, h, dh, None, "softmax"), 200),
        autograd_fwd=host_ms(lambda: triton_bdlru_scan(z, v, h0, "softmax"), 200),
        ours_fb=host_ms(fb, 100),
        ours_fb_gc_off=fb_gc_off,
        engine_fb=host_ms(empty_fb(True), 200),
        engine_fb_no_materialize=host_ms(empty_fb(False), 200),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", help="JSON path (written whole or not at all; the profile beside it, OUT.prof.txt)")
    ap.add_argument("shapes", nargs="*", type=lambda s: _shapes(s)[0], help="BxTxD (default 1x2048x1536 8x8192x1536)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU")
    out, shapes = args.out, args.shapes or [(1, 2048, 1536), (8, 8192, 1536)]
    res = dict(pieces=pieces())
    print(json.dumps(res["pieces"]), flush=True)
    global chunk_hgrn
    try:
        from fla.ops.hgrn import chunk_hgrn
    except ImportError:
        pass
    rows = []
    for b, t, d in shapes:
        row = dict(B=b, T=t, D=d)
        f, fb = ours(b, t, d)
        row["ours_fwd"], row["ours_fb"] = measure(f), measure(fb)
        if chunk_hgrn is not None:
            f, fb = fla(b, t, d)
            row["fla_fwd"], row["fla_fb"] = measure(f), measure(fb)
        rows.append(row)
        print(json.dumps(row), flush=True)
    res["pieces_after_fla"] = pieces()
    print(json.dumps(res["pieces_after_fla"]), flush=True)
    b, t, d = shapes[0]
    _, fb = ours(b, t, d)
    fb()
    prof = cProfile.Profile()
    prof.enable()
    for i in range(200):
        fb()
        if i % 20 == 19:
            torch.cuda.synchronize()
    prof.disable()
    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(35)
    with open(out + ".prof.txt.tmp", "w") as fh:
        fh.write(s.getvalue())
    os.replace(out + ".prof.txt.tmp", out + ".prof.txt")
    meta = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton.__version__)
    meta.update(date=time.strftime("%Y-%m-%d"), commit=os.environ.get("HLRU_GIT_COMMIT"))
    tmp = out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(dict(meta=meta, rows=rows, **res), fh, indent=1)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
