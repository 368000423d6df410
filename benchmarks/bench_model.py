"""Whole-model speed on one GPU, measured the way a user meets it, against named baselines in the same run.

Training: tokens/s, step time, peak memory and MFU of the step `scripts/train.py` runs (bf16 autocast, forward with
labels, backward, gradient clipping at 1.0, a finiteness check, fused AdamW), eager and with every block compiled
(train.py's default on CUDA), at T = 2048 and 16384 with equal tokens per step. Decoding: ms per token of a greedy
`generate()` (bf16 weights) after 2k and 16k prompts at B = 1 and 16, and the prefill time.
Models (125M class: d = 768, 12 layers, SwiGLU 2048, vocab 50304): hlru BD-LRU m = 1, 2, 4, 8 (N·m = d), H-LRU
m = 2, 4 (N = d), transformers' Llama (SDPA, 12 heads) and fla's HGRN (when `fla` is importable). Each model's
training and its decoding run in processes of their own; MFU is model FLOPs per token x tokens/s over the bf16
matmul rate measured at the start of the run.

    python benchmarks/bench_model.py --out benchmarks/results/bench_model_h200.json            # everything
    python benchmarks/bench_model.py --models llama,fla_hgrn --no-train --out r.json --append  # add to a file
    python benchmarks/bench_model.py --smoke --out /tmp/bench.json                              # CPU plumbing check

The JSON holds every measurement with the device and versions; a PNG of the training tok/s sits beside it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HLRU_MODELS = {
    "bdlru1": ("bdlru", 1),
    "bdlru2": ("bdlru", 2),
    "bdlru4": ("bdlru", 4),
    "bdlru8": ("bdlru", 8),
    "hlru2": ("hlru", 2),
    "hlru4": ("hlru", 4),
}
MODELS = (*HLRU_MODELS, "llama", "fla_hgrn")
DECODE_DEFAULT = ("bdlru1", "bdlru4", "hlru4", "llama", "fla_hgrn")


def build(name: str, size: dict) -> torch.nn.Module:
    """A freshly initialised causal LM of the given size (seeded, so eager and compiled start from the same weights)."""
    torch.manual_seed(0)
    d, layers, ffn, vocab = size["hidden_size"], size["layers"], size["intermediate_size"], size["vocab_size"]
    if name in HLRU_MODELS:
        import hlru_lm

        mixer, m = HLRU_MODELS[name]
        cfg = hlru_lm.HLRUConfig(
            vocab_size=vocab,
            hidden_size=d,
            num_hidden_layers=layers,
            intermediate_size=ffn,
            mixer_type=mixer,
            block_size=m,
            num_blocks=d // m if mixer == "bdlru" else d,
        )
        cfg.fuse_cross_entropy = True  # as scripts/train.py trains (skip_logits=True)
        return hlru_lm.HLRUForCausalLM(cfg)
    if name == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        heads = max(1, d // 64)
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=d,
            num_hidden_layers=layers,
            intermediate_size=ffn,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=16384,
            attn_implementation="sdpa",
        )
        return LlamaForCausalLM(cfg)
    if name == "fla_hgrn":
        from fla.models import HGRNConfig, HGRNForCausalLM

        cfg = HGRNConfig(
            vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, intermediate_size=ffn, attn_mode="chunk"
        )
        return HGRNForCausalLM(cfg)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    return model.model.layers


def flops_per_token(model: torch.nn.Module, name: str, seq_len: int) -> float:
    """Training FLOPs per token: 6 x the weights every token multiplies (every nn.Linear, the LM head included, the
    embedding lookup not), plus causal attention's 6 L d T for Llama. The recurrences' own FLOPs (< 1%) are left out."""
    n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    attn = 6 * model.config.num_hidden_layers * model.config.hidden_size * seq_len if name == "llama" else 0
    return 6.0 * n + attn


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_steps(model, opt, device, batch: int, seq_len: int, vocab: int, warmup: int, steps: int) -> dict:
    """The step of scripts/train.py, timed: median seconds over `steps` after `warmup`."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randint(0, vocab, (batch, seq_len), generator=gen).to(device)
    times, losses = [], []
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = model(input_ids=x, labels=x, use_cache=False).loss
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not bool(torch.isfinite(loss) & torch.isfinite(norm)):
            raise RuntimeError(f"non-finite loss or gradient at step {i}")
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    times.sort()
    return {"step_s": times[len(times) // 2], "loss_first": losses[0], "loss_last": losses[-1]}


def run_training(name: str, args, device: torch.device) -> list[dict]:
    out = []
    for mode in args.modes:
        model = build(name, args.size).to(device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
        if mode == "compiled":
            for block in blocks(model):
                block.compile()
        for seq_len in args.seq_lens:
            batch = max(1, args.tokens_per_step // seq_len)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            rec = {"model": name, "mode": mode, "seq_len": seq_len, "batch": batch, "kind": "train"}
            t0 = time.perf_counter()
            try:
                rec.update(
                    train_steps(model, opt, device, batch, seq_len, args.size["vocab_size"], args.warmup, args.steps)
                )
            except torch.OutOfMemoryError as e:
                rec["error"] = f"OutOfMemoryError: {str(e).splitlines()[0]}"
            rec["wall_s"] = time.perf_counter() - t0
            if "step_s" in rec:
                rec["tokens_per_s"] = batch * seq_len / rec["step_s"]
                rec["flops_per_token"] = flops_per_token(model, name, seq_len)
                if args.matmul_flops:
                    rec["mfu"] = rec["tokens_per_s"] * rec["flops_per_token"] / args.matmul_flops
            if device.type == "cuda":
                rec["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
            emit(rec)
            out.append(rec)
            if args.profile and "step_s" in rec and mode == args.modes[-1] and seq_len == args.seq_lens[0]:
                out.append(profile_step(model, opt, device, batch, seq_len, args.size["vocab_size"], name, mode))
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def profile_step(model, opt, device, batch: int, seq_len: int, vocab: int, name: str, mode: str) -> dict:
    """Where one training step's GPU time goes: the 25 costliest kernels (summed over the step)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train_steps(model, opt, device, batch, seq_len, vocab, 0, 1)
    events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
    events = sorted(events, key=lambda e: e.device_time_total, reverse=True)
    total = sum(e.device_time_total for e in events)
    top = [{"kernel": e.key[:120], "ms": e.device_time_total / 1e3, "calls": e.count} for e in events[:25]]
    rec = {"model": name, "mode": mode, "seq_len": seq_len, "kind": "profile", "gpu_ms": total / 1e3, "top": top}
    emit(rec)
    return rec


@torch.no_grad()
def run_decode(name: str, args, device: torch.device) -> list[dict]:
    model = build(name, args.size).to(device)
    if device.type == "cuda":
        model = model.to(torch.bfloat16)
    model.eval()
    out = []
    for prompt in args.prompts:
        for batch in args.decode_batches:
            ids = torch.randint(0, args.size["vocab_size"], (batch, prompt), generator=torch.Generator().manual_seed(2))
            ids = ids.to(device)

            def gen(n: int, ids: torch.Tensor = ids) -> float:
                sync(device)
                t0 = time.perf_counter()
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=False,
                    pad_token_id=0,
                    eos_token_id=None,
                )
                sync(device)
                return time.perf_counter() - t0

            rec = {"model": name, "kind": "decode", "batch": batch, "prompt": prompt, "new_tokens": args.new_tokens}
            try:
                gen(2)  # warm-up: kernels, the decode step's CUDA graph
                one = gen(1)
                full = gen(args.new_tokens + 1)
                rec.update(prefill_s=one, ms_per_token=1e3 * (full - one) / args.new_tokens)
            except Exception as e:  # recorded, so one failing shape does not lose the others' numbers
                rec["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            emit(rec)
            out.append(rec)
    return out


def matmul_flops(device: torch.device) -> float | None:
    """Measured bf16 matmul rate (FLOP/s) at 8192^3, the MFU denominator."""
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t0, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    sync(device)
    return 2 * 8192**3 * n / (time.perf_counter() - t0)


def environment(device: torch.device) -> dict:
    import transformers

    env = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        pass
    try:
        import fla

        env["fla"] = fla.__version__
    except ImportError:
        pass
    return env


def fla_available() -> bool:
    try:
        import fla.models  # noqa: F401
    except Exception:
        return False
    return True


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    train = [r for r in records if r["kind"] == "train" and "tokens_per_s" in r]
    if not train:
        return
    seq_lens = sorted({r["seq_len"] for r in train})
    names = list(dict.fromkeys(r["model"] for r in train))
    # records merged from earlier invocations (--append) are hatched: only same-run bars compare exactly
    latest = max((r.get("run", "") for r in train), key=lambda run: run[:16].replace("T", " "))
    fig, axes = plt.subplots(1, len(seq_lens), figsize=(5.5 * len(seq_lens), 4), squeeze=False)
    recs = {(r["model"], r["mode"], r["seq_len"]): r for r in train}
    for ax, seq_len in zip(axes[0], seq_lens, strict=True):
        for j, mode in enumerate(("eager", "compiled")):
            found = [recs.get((n, mode, seq_len)) for n in names]
            bars = ax.bar(
                [i + 0.4 * j for i in range(len(names))],
                [r["tokens_per_s"] / 1e3 if r else 0 for r in found],
                width=0.4,
                color=f"C{j}",
                label=mode,
            )
            for bar, r in zip(bars, found, strict=True):
                if r and r.get("run", "") != latest:
                    bar.set_hatch("//")
        handles = ax.get_legend_handles_labels()[0]
        if any(r.get("run", "") != latest for r in train):
            handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="earlier run"))
        ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=30)
        ax.set_title(f"training, T = {seq_len}")
        ax.set_ylabel("k tokens / s")
        ax.legend(handles=handles)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="JSON file to write (its PNG goes beside it)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list from {', '.join(MODELS)}")
    p.add_argument("--decode_models", default=",".join(DECODE_DEFAULT), help="models whose decoding is timed")
    # shapes: the full run's defaults, or --smoke's (tiny, seconds on a CPU); a value given explicitly wins
    for name, kind, full, smoke, what in SHAPE_ARGS:
        p.add_argument(f"--{name}", type=kind, default=None, help=f"{what} (default {full}; with --smoke {smoke})")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip the training measurements")
    p.add_argument("--no-decode", dest="decode", action="store_false", help="skip the decoding measurements")
    p.add_argument("--profile", action="store_true", help="also record the costliest kernels of one step")
    p.add_argument(
        "--model_timeout",
        type=float,
        default=None,
        help="seconds after which a model's training or decoding worker is stopped (its records so far are kept)",
    )
    p.add_argument("--append", action="store_true", help="add to the records already in --out")
    p.add_argument("--smoke", action="store_true", help="tiny shapes on any device: checks the plumbing only")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: measure one model in this process
    p.add_argument("--part", choices=("train", "decode"), default=None, help=argparse.SUPPRESS)  # the worker's part
    p.add_argument("--matmul_flops", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, _, full, smoke, _ in SHAPE_ARGS:
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)

    def ints(text: str, what: str) -> list[int]:
        try:
            vals = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            p.error(f"--{what} must be a comma list of integers, got {text!r}")
        if not vals or min(vals) < 1:
            p.error(f"--{what} must list positive integers, got {text!r}")
        return vals

    args.seq_lens, args.prompts = ints(args.seq_lens, "seq_lens"), ints(args.prompts, "prompts")
    args.decode_batches = ints(args.decode_batches, "decode_batches")
    for what in ("models", "decode_models"):
        names = [n.strip() for n in getattr(args, what).split(",") if n.strip()]
        bad = [n for n in names if n not in MODELS]
        if bad:
            p.error(f"--{what}: unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
        setattr(args, what, names)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or any(m not in ("eager", "compiled") for m in args.modes):
        p.error(f"--modes must list eager and/or compiled, got {','.join(args.modes)!r}")
    for what in ("tokens_per_step", "new_tokens", "steps"):
        if getattr(args, what) < 1:
            p.error(f"--{what} must be >= 1")
    if args.model_timeout is not None and args.model_timeout <= 0:
        p.error("--model_timeout must be > 0")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.smoke:
        args.size = {"hidden_size": 64, "layers": 2, "intermediate_size": 128, "vocab_size": 256}
    else:
        args.size = {"hidden_size": 768, "layers": 12, "intermediate_size": 2048, "vocab_size": 50304}
    return args


# (argument, type, full-run default, --smoke default, help)
SHAPE_ARGS = (
    ("modes", str, "eager,compiled", "eager", "eager, compiled, or both"),
    ("seq_lens", str, "2048,16384", "16,32", "training sequence lengths"),
    ("tokens_per_step", int, 65536, 64, "tokens per training step (batch = this / sequence length)"),
    ("prompts", str, "2048,16384", "8,16", "decode prompt lengths"),
    ("decode_batches", str, "1,16", "1,2", "decode batch sizes"),
    ("new_tokens", int, 128, 4, "tokens generated per decode measurement"),
    ("warmup", int, 2, 0, "untimed steps first"),
    ("steps", int, 6, 1, "timed steps (the median is kept)"),
)


def emit(rec: dict) -> None:
    """A worker hands each measurement to the parent as soon as it has it (a worker killed later keeps them)."""
    print("RECORD " + json.dumps(rec), flush=True)


def worker(args) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    (run_training if args.part == "train" else run_decode)(args.worker, args, device)
    return 0


def run_worker(cmd: list[str], timeout: float | None, on_record) -> tuple[int | None, list[str]]:
    """Run one model's worker, passing its records on as they come; kill it after `timeout` seconds. Returns the
    exit code (None when killed) and the last lines it printed otherwise."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.start()
    tail: list[str] = []
    for line in proc.stdout:
        if line.startswith("RECORD "):
            on_record(json.loads(line[len("RECORD ") :]))
        else:
            tail = (tail + [line.rstrip()])[-5:]
    proc.wait()
    if timer:
        timer.cancel()
    return (None if killed.is_set() else proc.returncode), tail


def write(out: Path, previous: list, records: list, skipped: dict, args, device, flops, png: bool = True) -> None:
    keep = {(r["model"], r["kind"]) for r in records}
    merged = [r for r in previous if (r["model"], r["kind"]) not in keep] + records
    body = {
        "environment": environment(device),
        "matmul_flops": flops,
        "size": args.size,
        "tokens_per_step": args.tokens_per_step,
        "skipped": skipped,
        "records": merged,
    }
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=1, allow_nan=False) + "\n")
    tmp.replace(out)
    if not png:
        return
    try:
        plot(merged, out.with_suffix(".png"))
    except ImportError:
        pass  # no matplotlib: the JSON only


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    flops = matmul_flops(device)
    started = datetime.datetime.now().isoformat(timespec="minutes")
    before = json.loads(out.read_text()) if args.append and out.exists() else {}
    previous = before.get("records", [])
    records = []
    # a model's training, then its decoding, each in its own worker and time limit: a slow part loses only its own
    wants = {"train": args.models if args.train else [], "decode": args.decode_models if args.decode else []}
    names = dict.fromkeys([*wants["train"], *wants["decode"]])
    jobs = [(n, part, n if part == "train" else f"{n} decode") for n in names for part in wants if n in wants[part]]
    # an earlier invocation's failures stay named unless this one runs the same part again
    skipped = {k: v for k, v in before.get("skipped", {}).items() if k not in {job[2] for job in jobs}}
    failed = False
    for name, part, label in jobs:
        if name == "fla_hgrn" and not fla_available():
            skipped[label] = "fla is not importable"
            print(f"skip {label}: fla is not importable", flush=True)
            continue
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        cmd += ["--worker", name, "--part", part]
        if flops:
            cmd += ["--matmul_flops", str(flops)]

        def on_record(rec: dict) -> None:
            rec["run"] = started  # records merged from several invocations (--append) say which one measured them
            print(json.dumps(rec), flush=True)
            records.append(rec)
            write(out, previous, records, skipped, args, device, flops, png=False)  # a killed run keeps its records

        code, tail = run_worker(cmd, args.model_timeout, on_record)
        if code != 0:
            why = f"killed after {args.model_timeout:g} s" if code is None else f"exit {code}"
            skipped[label] = f"{why}: " + " | ".join(tail)
            failed = True
            print(f"{label} failed: {skipped[label]}", flush=True)
    write(out, previous, records, skipped, args, device, flops)
    print(f"wrote {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
