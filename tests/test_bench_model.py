"""benchmarks/bench_model.py: argument handling and a CPU smoke run of its plumbing (the numbers mean nothing here)."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_model.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--models", "bdlru3"], "unknown model(s) bdlru3"),
        (["--seq_lens", "2048,x"], "--seq_lens must be a comma list of integers"),
        (["--decode_batches", "0"], "--decode_batches must list positive integers"),
        (["--modes", "fast"], "--modes must list eager and/or compiled"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--model_timeout", "0"], "--model_timeout must be > 0"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, args, message):
    proc = _run("--out", str(tmp_path / "r.json"), *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_smoke_run_writes_every_measurement(tmp_path):
    out = tmp_path / "r.json"
    common = ["--smoke"]  # its own tiny shapes: eager, T 16 and 32 at 64 tokens a step, prompts 8 and 16, B 1 and 2
    proc = _run("--out", str(out), *common, "--models", "bdlru1,hlru2", "--decode_models", "bdlru1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = json.loads(out.read_text())
    train = [r for r in body["records"] if r["kind"] == "train"]
    assert {(r["model"], r["seq_len"], r["batch"]) for r in train} == {
        (m, t, 64 // t) for m in ("bdlru1", "hlru2") for t in (16, 32)
    }
    assert all(r["tokens_per_s"] > 0 and r["flops_per_token"] > 0 for r in train)
    decode = [r for r in body["records"] if r["kind"] == "decode"]
    assert sorted((r["model"], r["prompt"], r["batch"]) for r in decode) == [
        ("bdlru1", p, b) for p in (8, 16) for b in (1, 2)
    ]
    assert all(math.isfinite(r["ms_per_token"]) and r["prefill_s"] > 0 for r in decode)  # tiny: noise may win
    assert body["environment"]["torch"]
    assert out.with_suffix(".png").exists() == (importlib.util.find_spec("matplotlib") is not None)
    # --append replaces a model's records of the same kind and keeps the others
    proc = _run("--out", str(out), *common, "--models", "llama", "--no-decode", "--append")
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = {(r["model"], r["kind"]) for r in json.loads(out.read_text())["records"]}
    assert models == {("bdlru1", "train"), ("hlru2", "train"), ("llama", "train"), ("bdlru1", "decode")}


def test_a_model_past_its_time_is_stopped_and_named(tmp_path):
    out = tmp_path / "r.json"
    both = ("--models", "bdlru1", "--decode_models", "bdlru1")
    proc = _run("--out", str(out), "--smoke", *both, "--model_timeout", "0.5")
    assert proc.returncode == 1
    body = json.loads(out.read_text())
    # training and decoding are separate workers with a time limit each
    assert body["skipped"]["bdlru1"].startswith("killed after 0.5 s")
    assert body["skipped"]["bdlru1 decode"].startswith("killed after 0.5 s")
    # appending a new run of one part: that part's failure goes, the other's stays named
    common = ("--smoke", "--seq_lens", "16", "--tokens_per_step", "32", "--steps", "1", "--warmup", "0")
    proc = _run("--out", str(out), *common, "--models", "bdlru1", "--no-decode", "--append")
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = json.loads(out.read_text())
    assert "bdlru1" not in body["skipped"] and body["skipped"]["bdlru1 decode"].startswith("killed after 0.5 s")
    assert {r["model"] for r in body["records"] if r["kind"] == "train"} == {"bdlru1"}
