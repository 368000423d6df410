"""The paper's synthetic benchmarks in one command.

python scripts/synthetic.py --suite smoke --out runs/synthetic-smoke                       # CPU, minutes
python scripts/synthetic.py --suite full --family mad --plan --workers 12                   # runs, predicted minutes
python scripts/synthetic.py --suite full --family mad --out runs/syn-mad --device cuda --workers 12 --max_minutes 8.5

A call on an --out that has results resumes there (same settings): finished runs are skipped. --max_minutes is a hard
deadline: no run starts unless it is predicted to finish, runs that cannot finish stop, and the process exits by the
deadline with results.json, results.md and the plots written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_STARTED = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hlru_lm.ops import BACKENDS  # noqa: E402
from hlru_lm.synthetic import make_suite, run_suite  # noqa: E402
from hlru_lm.synthetic.protocol import plan, replace_suite  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=("smoke", "full"), required=True)
    p.add_argument("--family", choices=("mad", "group", "all"), default=None, help="full: mad or group (one per call)")
    p.add_argument("--out", type=Path, default=None, help="results folder; resumed when it has results")
    p.add_argument("--plan", action="store_true", help="print runs and predicted minutes per family, run nothing")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (one run each)")
    p.add_argument("--max_minutes", type=float, default=60.0, help="hard wall-clock deadline of this call")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument(
        "--backend", choices=BACKENDS, default="auto", help="scan backend of the mixers (auto: Triton on GPU)"
    )
    p.add_argument("--tier", choices=("iso_state", "iso_param"), default=None, help="default: the suite's (iso_state)")
    p.add_argument("--budget", type=int, default=None, help="state floats (iso_state) or parameters (iso_param)")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--tasks", nargs="+", default=None)
    a = p.parse_args(argv)
    family = a.family or "all"
    if a.suite == "full" and family == "all" and not a.plan:
        p.error("--suite full runs one family per call: --family mad or --family group (see --plan)")
    if a.workers < 1 or a.max_minutes <= 0:
        p.error("--workers must be >= 1 and --max_minutes > 0")
    if not a.plan and a.out is None:
        p.error("--out is required (except with --plan)")
    for what in ("models", "tasks"):  # a name given twice would run and score twice
        names = getattr(a, what)
        if names and len(set(names)) != len(names):
            p.error(f"--{what} lists a name more than once: {' '.join(names)}")
    import torch

    try:
        device = torch.device(a.device)
    except RuntimeError as e:
        p.error(f"--device {a.device!r}: {e}")
    if device.type not in ("cpu", "cuda"):
        p.error(f"--device must be cpu or cuda, got {a.device!r}")
    try:
        suite = make_suite(a.suite, tuple(a.models) if a.models else None, tuple(a.tasks) if a.tasks else None, family)
    except ValueError as e:
        p.error(str(e))
    if a.tier or a.budget:
        if not (a.tier and a.budget and a.budget > 0):
            p.error("--tier and --budget go together, and --budget must be > 0")
        suite = replace_suite(suite, tier=a.tier, budget=a.budget)
    if a.plan:
        try:
            pl = plan(suite, a.workers, a.out)
        except ValueError as e:
            p.error(str(e))
        for fam, f in pl["families"].items():
            fits = "fits" if f["predicted_minutes"] <= a.max_minutes else "does NOT fit"
            print(
                f"{a.suite}/{fam}: {f['runs_left']} of {f['runs_total']} runs left, {f['steps']} steps each, "
                f"{f['worker_seconds']:.0f} worker-s -> about {f['predicted_minutes']} min with {a.workers} workers "
                f"({fits} in --max_minutes {a.max_minutes:g})"
            )
            per_model = ", ".join(f"{m} {s:.0f}" for m, s in f["per_model_seconds"].items())
            print(f"   per model (worker-s): {per_model or 'none left'}")
        note = (
            f"refitted on finished runs of {', '.join(pl['calibrated_models'])}"
            if pl["calibrated_models"]
            else ("cost model from the first GPU call (12 workers on one H200); no finished runs to refit on")
        )
        print(f"({note})")
        return 0
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    try:
        res = run_suite(suite, a.out, a.workers, a.max_minutes, a.device, a.backend, started=_STARTED)
    except ValueError as e:
        p.error(str(e))
    print(
        f"{len(res['runs'])} runs finished, status {res['status']}, {res['pending']} left, "
        f"{time.time() - _STARTED:.0f}s; wrote results.json, results.md and plots to {a.out}"
    )
    print(json.dumps({"status": res["status"], "runs": len(res["runs"]), "pending": res["pending"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
