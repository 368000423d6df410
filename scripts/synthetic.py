"""The paper's synthetic benchmarks in one command.

python scripts/synthetic.py --suite smoke --out runs/synthetic-smoke            # CPU, minutes
python scripts/synthetic.py --suite full --out runs/synthetic --device cuda --workers 12 --max_minutes 8.5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hlru_lm.synthetic import make_suite, markdown, plots, run_suite  # noqa: E402
from hlru_lm.synthetic.protocol import replace_suite  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("smoke", "full"), required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (one run each)")
    p.add_argument("--max_minutes", type=float, default=60.0, help="wall-clock deadline; unfinished runs are marked")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--backend", default="auto", help="scan backend of the BD-LRU/H-LRU mixer (auto uses Triton on GPU)")
    p.add_argument("--tier", choices=("iso_state", "iso_param"), default=None, help="default: the suite's (iso_state)")
    p.add_argument("--budget", type=int, default=None, help="state floats (iso_state) or parameters (iso_param)")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--tasks", nargs="+", default=None)
    a = p.parse_args(argv)
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda but no CUDA device is available")
    try:
        suite = make_suite(a.suite, tuple(a.models) if a.models else None, tuple(a.tasks) if a.tasks else None)
    except ValueError as e:
        p.error(str(e))
    if a.tier or a.budget:
        if not (a.tier and a.budget and a.budget > 0):
            p.error("--tier and --budget go together, and --budget must be > 0")
        suite = replace_suite(suite, tier=a.tier, budget=a.budget)
    if a.workers < 1 or a.max_minutes <= 0:
        p.error("--workers must be >= 1 and --max_minutes > 0")
    t0 = time.time()
    records = run_suite(suite, a.out, a.workers, a.max_minutes, a.device, a.backend)
    import json

    status = json.loads((a.out / "results.json").read_text())["status"]
    (a.out / "results.md").write_text(markdown(records, [t.name for t in suite.tasks], list(suite.models), status))
    pngs = plots(records, a.out)
    print(
        f"{len(records)} runs, status {status}, {time.time() - t0:.0f}s; wrote results.json, results.md, "
        f"{', '.join(pngs) or 'no plots (matplotlib not importable)'} to {a.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
