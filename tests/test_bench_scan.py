"""benchmarks/bench_scan.py's argument checks on CPU (the benchmark itself needs a GPU)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scan.py"


@pytest.fixture(scope="module")
def bench_scan():
    spec = importlib.util.spec_from_file_location("hlru_bench_scan", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grid_ms(bench_scan):
    assert bench_scan._grid_ms("4, 1,4") == [1, 4]
    for bad in ("3", "1,x", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="--ms"):
            bench_scan._grid_ms(bad)


def test_shapes(bench_scan):
    assert bench_scan._shapes("8x8192x1536,1x2048x2048") == [(8, 8192, 1536), (1, 2048, 2048)]
    with pytest.raises(argparse.ArgumentTypeError, match="BxTxD"):
        bench_scan._shapes("8x8192")
    with pytest.raises(argparse.ArgumentTypeError, match="multiple of 16"):
        bench_scan._shapes("8x8192x100")


def test_needs_cuda(bench_scan, monkeypatch, capsys):
    if bench_scan.torch.cuda.is_available():
        pytest.skip("a GPU is present: main() would run the benchmark")
    monkeypatch.setattr(sys, "argv", ["bench_scan.py", "--ms", "1", "--graphs"])
    with pytest.raises(SystemExit) as exc:
        bench_scan.main()
    assert exc.value.code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
