# ruff: noqa: B023
"""GPU benchmark of the fused-gate Triton scans: correctness first, then timings, JSON + PNG under --out.

One run: measures device-to-device copy bandwidth, checks the kernels against a float64 reference, then times
(triton.testing.do_bench, median) forward and forward+backward for the grid B x T x D x m with bf16 inputs, and the
baselines (a) materialise A in torch + the chunked torch scan, (b) fla chunk_hgrn (m = 1 only, if fla is importable),
(c) our own m = 1 kernel at the same B, T, D. --graphs also times each call replayed from a CUDA graph (GPU time
only; where eager calls are host-bound, do_bench measures the host).

    PYTHONPATH=. python benchmarks/bench_scan.py --out benchmarks/results [--quick | --shapes 8x8192x1536,...]
        [--ms 1,4] [--graphs] [--no-hlru] [--sweep 1,2,4,8 [--adopt-best]]
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import torch
import triton
from triton.testing import do_bench

from hlru_lm.kernels import launch_settings, select, triton_bdlru_scan, triton_hlru_scan
from hlru_lm.ops import bdlru_scan, chunk_bdlru_scan, hlru_scan

MS = (1, 2, 4, 8, 16)


def rel(a, b):  # as tests/conftest.rel (this script runs without the tests package)
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def bench(fn, rep=100, grad_to_none=None):
    return do_bench(fn, warmup=25, rep=rep, grad_to_none=grad_to_none, return_mode="median")


def copy_bandwidth():
    x = torch.randn(2**28, device="cuda", dtype=torch.bfloat16)  # 512 MiB
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    return 2 * x.numel() * x.element_size() / ms / 1e6  # GB/s, bytes read + written


def correctness(log):
    """Triton vs float64 torch reference on the GPU: values, grads, final state, all norms, both mixers."""
    rows, ok = [], True
    for mixer in ("bdlru", "hlru"):
        for m in MS:
            for norm in ("softmax", "sigmoid_l1", "relu_l1", "none"):
                for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 1e-2)):
                    # every m with softmax in fp32; bf16 at m = 1, 4, 16; the other norms at m = 4 (compile time)
                    if dtype == torch.bfloat16 and (norm != "softmax" or m not in (1, 4, 16)):
                        continue
                    if norm != "softmax" and m != 4:
                        continue
                    b, t = 2, 3000
                    n = 384 // m if mixer == "bdlru" else 96
                    g = torch.Generator(device="cuda").manual_seed(m)
                    if mixer == "bdlru":
                        shapes, fn = [(b, t, n, m, m + 1), (b, t, n, m), (b, n, m)], bdlru_scan
                    else:
                        shapes, fn = [(b, t, n, m + 1), (b, t, n), (b, n, m)], hlru_scan
                    z, v, h0 = (torch.randn(s, generator=g, device="cuda") for s in shapes)
                    if norm == "none":
                        z = z * 0.3
                    lt = [z.to(dtype).requires_grad_(), v.to(dtype).requires_grad_(), h0.clone().requires_grad_()]
                    lr = [x.detach().double().requires_grad_() for x in lt]
                    torch.cuda.synchronize()
                    ot = fn(*lt, gate_norm=norm, backend="triton")
                    orf = fn(*lr, gate_norm=norm, backend="torch")
                    gh = torch.randn(orf[0].shape, generator=g, device="cuda", dtype=torch.float64)
                    gf = torch.randn(orf[1].shape, generator=g, device="cuda", dtype=torch.float64)
                    for h, f in (ot, orf):
                        ((h * gh.to(h.dtype)).float().sum() + (f * gf.to(f.dtype)).sum()).backward()
                    errs = {
                        "h": rel(ot[0], orf[0]),
                        "final": rel(ot[1], orf[1]),
                        "d_logits": rel(lt[0].grad, lr[0].grad),
                        "d_v": rel(lt[1].grad, lr[1].grad),
                        "d_h0": rel(lt[2].grad, lr[2].grad),
                    }
                    limit = {"h": tol, "final": tol}
                    good = all(e == e and e < limit.get(k, 10 * tol) for k, e in errs.items())
                    ok &= good
                    rows.append(dict(mixer=mixer, m=m, norm=norm, dtype=str(dtype), ok=good, **errs))
                    log(
                        f"check {mixer} m={m:2d} {norm:10s} {str(dtype):15s} {'OK ' if good else 'BAD'} "
                        + " ".join(f"{k}={e:.1e}" for k, e in errs.items())
                    )
    # long sequence, bf16, no NaN
    for m in (1, 4, 16):
        z = torch.randn(1, 65536, 1536 // m, m, m + 1, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn(1, 65536, 1536 // m, m, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        h, f = triton_bdlru_scan(z, v, torch.zeros(1, 1536 // m, m, device="cuda"), "softmax")
        (h.float().sum() + f.sum()).backward()
        finite = bool(torch.isfinite(h).all() and torch.isfinite(z.grad).all() and torch.isfinite(v.grad).all())
        ok &= finite
        rows.append(dict(mixer="bdlru", m=m, check="T=65536 bf16 finite", ok=finite))
        log(f"check T=65536 m={m} finite={finite}")
        del z, v, h, f
    return ok, rows


def make_inputs(b, t, d, m, dtype=torch.bfloat16):
    n = d // m
    z = torch.randn(b, t, n, m, m + 1, device="cuda", dtype=dtype)
    v = torch.randn(b, t, n, m, device="cuda", dtype=dtype)
    h0 = torch.zeros(b, n, m, device="cuda")
    return z, v, h0


def time_op(fn, z, v, h0, rep=100):
    """(fwd ms, fwd+bwd ms) of fn(z, v, h0) -> (h, final)."""
    fwd = bench(lambda: fn(z, v, h0), rep=rep)
    zg, vg = z.detach().requires_grad_(), v.detach().requires_grad_()
    gh = torch.randn_like(fn(z, v, h0)[0])

    def fb():
        h, _ = fn(zg, vg, h0)
        h.backward(gh)

    fwdbwd = bench(fb, rep=rep, grad_to_none=[zg, vg])
    return fwd, fwdbwd


def graph_bench(fn, grad_to_none=()):
    """do_bench median of fn replayed from a CUDA graph: its kernels' GPU time without the host's launch gaps (at
    small shapes do_bench of the eager call measures the host)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture stream, as torch.cuda.graph asks
        for _ in range(3):
            for x in grad_to_none:
                x.grad = None
            fn()
    torch.cuda.current_stream().wait_stream(side)
    for x in grad_to_none:
        x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    ms = bench(graph.replay)
    for x in grad_to_none:
        x.grad = None
    return ms


def graph_op(fn, z, v, h0):
    """(fwd ms, fwd+bwd ms) of fn(z, v, h0) -> (h, final), each replayed from a CUDA graph."""
    zg, vg = z.detach().requires_grad_(), v.detach().requires_grad_()
    gh = torch.randn_like(fn(z, v, h0)[0])
    fwd = graph_bench(lambda: fn(z, v, h0))
    return fwd, graph_bench(lambda: fn(zg, vg, h0)[0].backward(gh), grad_to_none=[zg, vg])


def _shapes(text: str) -> list[tuple[int, int, int]]:
    shapes = []
    for item in text.split(","):
        parts = item.strip().split("x")
        if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"shape {item!r} is not BxTxD with positive integers, e.g. 8x8192x1536")
        if int(parts[2]) % 16:
            raise argparse.ArgumentTypeError(f"shape {item!r}: D must be a multiple of 16 (D = N*m for m up to 16)")
        shapes.append(tuple(int(p) for p in parts))
    return shapes


def _grid_ms(text: str) -> list[int]:
    ms = [x.strip() for x in text.split(",")]
    if not ms or not all(x.isdigit() and int(x) in MS for x in ms):
        raise argparse.ArgumentTypeError(f"--ms takes m values from {MS}, got {text!r}")
    return sorted({int(x) for x in ms})


def _sweep_ms(text: str) -> list[int]:
    ms = [x.strip() for x in text.split(",")]
    if not all(x in ("1", "2", "4", "8") for x in ms):
        raise argparse.ArgumentTypeError(f"--sweep takes m values from 1,2,4,8, got {text!r}")
    return [int(x) for x in ms]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results")
    ap.add_argument("--tag", default="v1")
    ap.add_argument("--quick", action="store_true", help="B=8, T=8192, D=1536 only")
    ap.add_argument("--shapes", type=_shapes, default=[], help="comma-separated BxTxD list instead of the full grid")
    ap.add_argument("--sweep", type=_sweep_ms, default=[], help="comma-separated m in 1,2,4,8: sweep launch settings")
    ap.add_argument("--adopt-best", action="store_true", help="time the grid with the best swept settings per m")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--no-torch", action="store_true", help="skip baseline (a), the slow materialise + torch scan")
    ap.add_argument("--ms", type=_grid_ms, default=list(MS), help="comma-separated m of the grid (default: all)")
    ap.add_argument("--graphs", action="store_true", help="also time every grid call replayed from a CUDA graph")
    ap.add_argument("--no-hlru", action="store_true", help="skip the H-LRU rows")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop timing new configs after this many seconds")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the kernels' correctness check and timings run on the device)")
    os.makedirs(args.out, exist_ok=True)
    t_start = time.time()
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)

    props = torch.cuda.get_device_properties(0)
    res = dict(
        device=props.name,
        sms=props.multi_processor_count,
        torch=torch.__version__,
        triton=triton.__version__,
        python=platform.python_version(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        git_commit=os.environ.get("HLRU_GIT_COMMIT", "unknown"),
        tag=args.tag,
        byte_floor="2*(m^2+3m) bytes per block-token forward (bf16 logits + v in, h out)",
    )
    out_json = os.path.join(args.out, f"bench_scan_{args.tag}.json")

    def dump():
        res["elapsed_s"] = time.time() - t_start
        with open(out_json + ".tmp", "w") as fh:  # complete file or none: a killed run keeps the last dump
            json.dump(res, fh, indent=1)
        os.replace(out_json + ".tmp", out_json)

    res["copy_GBps"] = copy_bw = copy_bandwidth()
    log(f"device {props.name}: copy {copy_bw:.0f} GB/s (read+write)")
    if not args.no_check:
        ok, rows = correctness(log)
        res["correct"], res["checks"] = ok, rows
        log(f"correctness: {'ALL OK' if ok else 'FAILURES'} ({time.time() - t_start:.0f}s)")
        dump()

    try:
        from fla.ops.hgrn import chunk_hgrn
    except Exception as exc:  # noqa: BLE001
        chunk_hgrn = None
        log(f"fla not importable: {exc!r}")

    best = {}  # m -> launch_settings arguments adopted for the grid (from the sweep)
    if args.sweep:
        sweep = []

        # launch_settings arguments ({} = the package defaults); "routes" entries time another kernel, not settings
        tile8 = {("bdlru", 8): "bdlru_tile"}  # m = 8 runs bdlru_rows at this shape
        knobs = {
            1: [{}, {"routes": {("bdlru", 1, "bwd"): "bdlru_chain"}}, {"diag_bwd": {"bt": 32}}, {"diag": {"warps": 8}}],
            2: [{}, {"routes": {("bdlru", 2, "bwd"): "bdlru_chain"}}, {"tile": {"warps": 4}}],
            4: [{}, {"tile": {"maxnreg": 112}}, {"tile": {"coal": True}}],
            8: [{}, {"rows": {"unroll": 16}}, {"routes": tile8}, {"routes": tile8, "tile": {"coal": False}}],
        }  # fmt: skip
        for m in args.sweep:
            z, v, h0 = make_inputs(8, 8192, 1536, m)
            floor = 8 * 8192 * (1536 // m) * 2 * (m * m + 3 * m)
            for kn in knobs[m]:
                with launch_settings(**kn):
                    fwd, fb = time_op(lambda z, v, h0: triton_bdlru_scan(z, v, h0, "softmax"), z, v, h0)
                row = dict(m=m, knobs=repr(kn), fwd_ms=fwd, fwdbwd_ms=fb, pct_copy=floor / fwd / 1e6 / copy_bw * 100)
                sweep.append(row)
                log(f"sweep m={m:2d} {kn!r:80s} fwd {fwd:.3f} ms ({row['pct_copy']:.0f}% copy) fwd+bwd {fb:.3f} ms")
            if args.adopt_best:
                same = [(r, kn) for r, kn in zip(sweep[-len(knobs[m]) :], knobs[m], strict=True) if "routes" not in kn]
                best[m] = min(same, key=lambda rk: rk[0]["fwdbwd_ms"])[1]
                log(f"sweep m={m:2d}: the grid below uses {best[m]} (lowest fwd+bwd)")
        res["sweep"] = sweep
        res["grid_knobs"] = {str(k): repr(v) for k, v in best.items()}
        dump()

    if args.shapes:
        shapes = args.shapes
    elif args.quick:
        shapes = [(8, 8192, 1536)]
    else:  # most informative shapes first, in case the time budget cuts the grid
        first = [(8, 8192, 1536), (1, 8192, 1536), (8, 8192, 2048), (8, 2048, 1536), (1, 32768, 1536)]
        rest = [(b, t, d) for b in (1, 8) for t in (2048, 8192, 32768) for d in (1536, 2048)]
        shapes = first + [s for s in rest if s not in first]
    grid = [(b, t, d, m) for b, t, d in shapes for m in args.ms]
    rows = []
    res["rows"] = rows
    m1 = {}
    for b, t, d, m in grid:
        if time.time() - t_start > args.budget_s:
            log(f"time budget reached: skipped {b, t, d, m} and later")
            res.setdefault("skipped", []).append([b, t, d, m])
            continue
        z, v, h0 = make_inputs(b, t, d, m)
        floor = b * t * (d // m) * 2 * (m * m + 3 * m)
        with launch_settings(**best.get(m, {})):
            fwd, fb = time_op(lambda z, v, h0: triton_bdlru_scan(z, v, h0, "softmax"), z, v, h0)
            if args.graphs:
                gfwd, gfb = graph_op(lambda z, v, h0: triton_bdlru_scan(z, v, h0, "softmax"), z, v, h0)
        row = dict(
            B=b,
            T=t,
            D=d,
            m=m,
            fwd_ms=fwd,
            fwdbwd_ms=fb,
            floor_bytes=floor,
            fwd_GBps=floor / fwd / 1e6,
            pct_copy=floor / fwd / 1e6 / copy_bw * 100,
        )
        if args.graphs:
            row.update(graph_fwd_ms=gfwd, graph_fwdbwd_ms=gfb)
        if m == 1:
            m1[(b, t, d)] = (fwd, fb) + ((gfwd, gfb) if args.graphs else ())
        if (b, t, d) in m1:
            row["vs_own_m1_fwd"] = fwd / m1[(b, t, d)][0]
            row["vs_own_m1_fwdbwd"] = fb / m1[(b, t, d)][1]
            if args.graphs:
                row.update(graph_vs_own_m1_fwd=gfwd / m1[(b, t, d)][2], graph_vs_own_m1_fwdbwd=gfb / m1[(b, t, d)][3])
        if b * t <= 65536 and not args.no_torch:
            try:
                tf, tfb = time_op(lambda z, v, h0: chunk_bdlru_scan(z, v, h0, "softmax"), z, v, h0, rep=50)
                row.update(
                    torch_ms_fwd=tf,
                    torch_ms_fwdbwd=tfb,
                    speedup_vs_torch_fwd=tf / fwd,
                    speedup_vs_torch_fwdbwd=tfb / fb,
                )
            except torch.OutOfMemoryError:
                row["torch"] = "OOM"
            torch.cuda.empty_cache()
        if m == 1 and chunk_hgrn is not None:
            x = torch.randn(b, t, d, device="cuda", dtype=torch.bfloat16)
            gl = torch.nn.functional.logsigmoid(torch.randn(b, t, d, device="cuda")).to(torch.bfloat16)

            gl_g = gl.detach().requires_grad_()
            ff = bench(lambda: chunk_hgrn(x, gl))
            xg = x.detach().requires_grad_()
            go = torch.randn_like(x)

            def fla_fb():
                o, _ = chunk_hgrn(xg, gl_g)
                o.backward(go)

            ffb = bench(fla_fb, grad_to_none=[xg, gl_g])
            row.update(fla_ms_fwd=ff, fla_ms_fwdbwd=ffb, speedup_vs_fla_fwd=ff / fwd, speedup_vs_fla_fwdbwd=ffb / fb)
            if args.graphs:
                gff = graph_bench(lambda: chunk_hgrn(x, gl))
                gffb = graph_bench(fla_fb, grad_to_none=[xg, gl_g])
                row.update(fla_graph_ms_fwd=gff, fla_graph_ms_fwdbwd=gffb)
                row.update(graph_speedup_vs_fla_fwd=gff / gfwd, graph_speedup_vs_fla_fwdbwd=gffb / gfb)
        rows.append(row)
        extra = ""
        if "speedup_vs_torch_fwd" in row:
            extra += f" | vs torch x{row['speedup_vs_torch_fwd']:.1f}/x{row['speedup_vs_torch_fwdbwd']:.1f}"
        if "speedup_vs_fla_fwd" in row:
            extra += f" | vs fla x{row['speedup_vs_fla_fwd']:.2f}/x{row['speedup_vs_fla_fwdbwd']:.2f}"
        if args.graphs:
            extra += f" | graph {gfwd:.3f}/{gfb:.3f} ms"
        if "graph_speedup_vs_fla_fwd" in row:
            extra += f" vs fla x{row['graph_speedup_vs_fla_fwd']:.2f}/x{row['graph_speedup_vs_fla_fwdbwd']:.2f}"
        if "vs_own_m1_fwd" in row and m > 1:
            extra += f" | /m1 {row['vs_own_m1_fwd']:.2f}/{row['vs_own_m1_fwdbwd']:.2f}"
        log(
            f"B={b} T={t:5d} D={d} m={m:2d}: fwd {fwd:7.3f} ms ({row['pct_copy']:4.0f}% copy) fwd+bwd {fb:7.3f} ms"
            + extra
        )
        del z, v, h0
        dump()

    # H-LRU at one size, each order also on the kernels it does not run by default: orders 2, 4 on the sequential
    # and lane-per-lag kernels, order 8 on the tile and sequential kernels, order 16 on the sequential one
    hrows = []
    cases = [(1, None), (2, None), (2, "hlru_seq"), (2, "hlru_lags"), (4, None), (4, "hlru_seq"), (4, "hlru_lags")]
    cases += [(8, None), (8, "hlru_tile"), (8, "hlru_seq"), (16, None), (16, "hlru_seq")]
    for m, route in cases:
        if args.no_hlru or time.time() - t_start > args.budget_s + 60:
            break
        b, t, d = 8, 8192, 1536
        n = d // m
        z = torch.randn(b, t, n, m + 1, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, t, n, device="cuda", dtype=torch.bfloat16)
        h0 = torch.zeros(b, n, m, device="cuda")
        with launch_settings(routes={("hlru", m): route} if route else None):
            fwd, fb = time_op(lambda z, v, h0: triton_hlru_scan(z, v, h0, "softmax"), z, v, h0)
        route = route or select("hlru", m, "fwd", b * n * m)
        floor = b * t * n * 2 * ((m + 1) + 1 + m)
        pct = floor / fwd / 1e6 / copy_bw * 100
        hrows.append(dict(B=b, T=t, D=d, m=m, route=route, fwd_ms=fwd, fwdbwd_ms=fb, pct_copy=pct))
        res["hlru_rows"] = hrows
        dump()
        log(f"hlru B={b} T={t} D={d} m={m:2d} {route:14s}: fwd {fwd:.3f} ms ({pct:.0f}% copy) fwd+bwd {fb:.3f}")
    dump()
    with open(os.path.join(args.out, f"bench_scan_{args.tag}.log"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    try:
        plot(res, os.path.join(args.out, f"bench_scan_{args.tag}.png"))
    except Exception as exc:  # noqa: BLE001
        log(f"plot failed: {exc!r}")
    log(f"done in {time.time() - t_start:.0f}s -> {out_json}")
    return 0 if res.get("correct", True) else 1


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = {}
    for r in res["rows"]:
        series.setdefault((r["B"], r["T"], r["D"]), []).append((r["m"], r["pct_copy"]))
    colours = {}  # one colour per (T, D); B = 1 dashed, B = 8 solid (the grid has 12 shapes, a colour cycle 10)
    for (b, t, d), pts in sorted(series.items()):
        pts.sort()
        colour = colours.setdefault((t, d), f"C{len(colours)}")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colour, ls="--" if b == 1 else "-",
                label=f"B={b} T={t} D={d}")  # fmt: skip
    ax.axhline(70, color="grey", ls="--", lw=0.8)
    ax.axhline(50, color="grey", ls=":", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("block size m")
    ax.set_ylabel("% of measured copy bandwidth (fwd, vs byte floor)")
    ax.set_title(f"fused BD-LRU forward, bf16, {res['device']}")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
