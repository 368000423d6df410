"""Training/eval protocol and the scheduler of the suite.

A run is one (task, model, lr, wd, seed): AdamW, cosine over a fixed step budget, evaluation every `eval_every` steps,
early stop at 99.9%. The lr x wd grid runs on seed 0; once a (task, model) cell's grid is finished, its best cell runs
on the other seeds. Runs go to a pool of worker processes (the d=128 models are launch-bound on a GPU).

The suite is resumable and keeps a hard deadline:
- every finished run is added to `results.json` at once (atomically); `results.md` is rewritten after every run and the
  plots at every exit (also on SIGTERM / Ctrl-C);
- a call on an `--out` that already has results skips the runs done there (the settings must be the same);
- no run starts unless its predicted time (per-step cost model, refitted on the runs already finished) fits before the
  deadline; a running run that can no longer finish stops itself, and at the deadline the pool is killed. Such runs are
  listed under `incomplete`, never under `runs`, and are run again by the next call.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

import torch
import torch.nn.functional as F

from . import tasks as _tasks
from .models import MICRO_BATCH, MODELS, SyntheticModel, count_params, solve_width
from .tasks import IGNORE, TaskSpec, generate, group_tasks, mad_tasks, train_test

STOP_ACC = 0.999
FAMILIES = ("mad", "group")
# the models the paper's claims need (BD-LRU m in {1,2,4,8}, H-LRU m in {2,4}, LSTM, Mamba2, Gated DeltaNet)
FULL_MODELS = ("bdlru1", "bdlru2", "bdlru4", "bdlru8", "hlru2", "hlru4", "lstm", "mamba2", "gdn")


@dataclass(frozen=True)
class Suite:
    """Sizes of one suite; `grid` is searched on seed 0, the best cell then runs on `seeds[1:]`.

    `steps` is a run's step budget per family, as ((family, steps), ...); a task's own `n_train` option (MAD's
    memorization: 256) overrides `n_train`.
    """

    name: str
    family: str
    tasks: tuple[TaskSpec, ...]
    models: tuple[str, ...]
    d: int
    layers: int
    tier: str
    budget: int
    n_train: int
    n_test: int
    batch: int
    steps: tuple[tuple[str, int], ...]
    eval_every: int
    grid: tuple[tuple[float, float], ...]
    seeds: tuple[int, ...]
    group_test_lens: tuple[int, ...] = ()
    chance_tasks: tuple[str, ...] = field(default=())  # tasks on which every model must beat chance (smoke check)

    def steps_for(self, spec: TaskSpec) -> int:
        return dict(self.steps)[spec.family]


def make_suite(
    name: str,
    models: tuple[str, ...] | None = None,
    tasks: tuple[str, ...] | None = None,
    family: str = "all",
) -> Suite:
    """`smoke` (CPU, minutes) or `full` (one H200; run one family per call: `mad` or `group`)."""
    if family not in (*FAMILIES, "all"):
        raise ValueError(f"unknown family {family!r}; expected one of mad, group, all")
    if name == "smoke":
        # the CPU check: three short tasks; every model must beat chance on memorization (recall/S3 are only reported)
        smoke = mad_tasks("smoke")
        suite = Suite(
            "smoke",
            family,
            (smoke["in_context_recall"], smoke["memorization"], group_tasks(16)["S3"]),
            MODELS,
            d=32,
            layers=1,
            tier="iso_state",
            budget=32,
            n_train=512,
            n_test=128,
            batch=32,
            steps=(("mad", 48), ("group", 48)),
            eval_every=16,
            grid=((3e-3, 0.0),),
            seeds=(0,),
            group_test_lens=(32,),
            chance_tasks=("memorization",),
        )
    elif name == "full":
        # Our budget choices (README, "Cost"): 2-point lr grid at wd 0 on seed 0 (lr 1e-3 beat 5e-4 in all 19 cells of
        # the first GPU run, wd 0.1 vs 0 never mattered), batch 256, a fixed step budget per family, 9 models.
        suite = Suite(
            "full",
            family,
            (*mad_tasks("full").values(), *group_tasks(64).values()),
            FULL_MODELS,
            d=128,
            layers=2,
            tier="iso_state",
            budget=512,
            n_train=12800,
            n_test=1280,
            batch=256,
            steps=(("mad", 160), ("group", 288)),
            eval_every=40,
            grid=((1e-3, 0.0), (3e-3, 0.0)),
            seeds=(0, 1, 2),
            group_test_lens=(128, 256),
        )
    else:
        raise ValueError(f"unknown suite {name!r}; expected 'smoke' or 'full'")
    if family != "all":
        suite = replace_suite(suite, tasks=tuple(t for t in suite.tasks if t.family == family))
    if models is not None:
        bad = [m for m in models if m not in MODELS]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; expected a subset of {', '.join(MODELS)}")
        suite = replace_suite(suite, models=tuple(models))
    if tasks is not None:
        names = {t.name: t for t in suite.tasks}
        bad = [t for t in tasks if t not in names]
        if bad:
            raise ValueError(f"unknown task(s) {bad} for family {family!r}; expected a subset of {', '.join(names)}")
        suite = replace_suite(suite, tasks=tuple(names[t] for t in tasks))
    return suite


def replace_suite(suite: Suite, **kw) -> Suite:
    return Suite(**{**asdict(suite), "tasks": suite.tasks, **kw})


# ---------------------------------------------------------------- cost model

# Seconds per training step of one worker among 12 sharing an H200, at length 128 and batch 128: the median of
# (run time / steps) over the 139 runs of the first GPU call (data generation and 3 evaluations included).
STEP_S = {
    "bdlru1": 0.060,
    "bdlru2": 0.065,
    "bdlru3": 1.70,  # m = 3 has no Triton kernel: the torch scan
    "bdlru4": 0.075,
    "bdlru8": 0.136,
    "hlru2": 0.050,
    "hlru4": 0.063,
    "hlru8": 0.064,
    "lstm": 0.052,
    "mamba2": 0.249,
    # measured 0.381 with the loop over time; the chunked form runs 21x fewer ops per step (1,225 vs 25,625 at length
    # 128, counted on CPU), about as many as BD-LRU's: an estimate until refitted on GPU runs
    "gdn": 0.10,
}
LENGTH_SHARE: dict[str, float] = {}  # share of a model's step cost that grows with length: 0.25 unless listed
RUN_OVERHEAD_S = 4.0  # build, data, first-call compilation
CALIBRATED_WORKERS = 12  # more workers than this share the GPU: assume no more throughput, i.e. slower runs
STARTUP_MIN = 0.5  # spawning the workers, imports, CUDA init


def step_cost(model: str, seq_len: int, batch: int) -> float:
    share = LENGTH_SHARE.get(model, 0.25)
    return STEP_S[model] * ((1 - share) + share * seq_len / 128) * (0.8 + 0.2 * batch / 128)


def predict_run_s(job: dict) -> float:
    """Predicted seconds for one run (no early stop) from the per-step cost model."""
    spec: TaskSpec = job["spec"]
    step = step_cost(job["model"], spec.seq_len, job["batch"])
    evals = math.ceil(job["steps"] / job["eval_every"]) * math.ceil(job["n_test"] / (4 * job["batch"]))
    extra = sum(
        math.ceil(job["n_test"] / job["batch"]) * step_cost(job["model"], n, job["batch"]) / 3
        for n in job.get("group_test_lens", ())
        if spec.family == "group"
    )
    contention = max(1.0, job.get("workers", 1) / CALIBRATED_WORKERS)
    return (RUN_OVERHEAD_S + job["steps"] * step + evals * step / 3 + extra) * contention


def calibration(records: list[dict]) -> dict[str, float]:
    """Per model: median of measured / predicted time over finished runs that did not stop early (default 1)."""
    ratios: dict[str, list[float]] = {}
    for r in records:
        if r.get("predicted_s") and r["status"] == "done":
            ratios.setdefault(r["model"], []).append(r["time_s"] / r["predicted_s"])
    return {m: median(v) for m, v in ratios.items()}


# ---------------------------------------------------------------- one run


def scored_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """Correct and scored counts over all positions, and per position (for group curves)."""
    mask = y != IGNORE
    ok = (logits.argmax(-1) == y) & mask
    return int(ok.sum()), int(mask.sum()), ok.sum(0), mask.sum(0)


def macro_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """MAD's accuracy: torchmetrics `MulticlassAccuracy(average="macro", ignore_index=-100)` on the scored positions,
    i.e. the mean per-class recall over the classes that occur as a target or a prediction."""
    mask = target != IGNORE
    p, t = pred[mask], target[mask]
    tp = torch.bincount(t[p == t], minlength=num_classes).double()
    support = torch.bincount(t, minlength=num_classes).double()
    predicted = torch.bincount(p, minlength=num_classes).double()
    present = (support + predicted) > 0
    if not bool(present.any()):
        return 0.0
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    return float(recall[present].mean())


def accumulate_grads(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, micro: int) -> torch.Tensor:
    """Backward of the batch's mean cross-entropy over its scored positions, `micro` examples per pass (the same
    gradients as one pass, up to rounding). Returns the loss, detached (no host sync)."""
    scored = (y != IGNORE).sum().clamp(min=1)
    total = torch.zeros((), device=x.device, dtype=torch.float32)
    for xs, ys in zip(x.split(micro), y.split(micro), strict=True):
        loss = F.cross_entropy(model(xs).float().flatten(0, 1), ys.flatten(), ignore_index=IGNORE, reduction="sum")
        loss = loss / scored
        loss.backward()
        total += loss.detach()
    return total


def _evaluate(model, x, y, batch, device, num_classes: int) -> dict:
    model.eval()
    correct = total = 0
    pos_ok = torch.zeros(x.shape[1])
    pos_n = torch.zeros(x.shape[1])
    seq_ok, preds = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
            logits = model(xb).float()
            c, n, po, pn = scored_accuracy(logits, yb)
            correct, total = correct + c, total + n
            pos_ok += po.cpu()
            pos_n += pn.cpu()
            mask = yb != IGNORE
            pred = logits.argmax(-1)
            seq_ok.append(((pred == yb) | ~mask).all(-1).cpu())
            preds.append(pred.cpu())
    model.train()
    return {
        "accuracy": correct / max(total, 1),
        "macro_accuracy": macro_accuracy(torch.cat(preds), y, num_classes),
        "sequence_accuracy": float(torch.cat(seq_ok).float().mean()),
        "per_position": (pos_ok / pos_n.clamp(min=1)).tolist(),
    }


_DATA: dict = {}
DATA_DIR = Path(tempfile.gettempdir()) / "hlru_synthetic_data"
_GENERATORS = Path(_tasks.__file__).read_bytes()


def _data(spec: TaskSpec, n_train: int, n_test: int, seed: int):
    """Train/test sets, generated once per (task, seed) and machine: kept in memory (a few per worker) and in a file
    that the other workers load (the recall generators take seconds for 12,800 examples)."""
    key = (spec, n_train, n_test, seed)
    if key in _DATA:
        return _DATA[key]
    tag = hashlib.sha256(repr(key).encode() + _GENERATORS).hexdigest()[:16]  # stale if the generators change
    path = DATA_DIR / f"{spec.name}-seed{seed}-{tag}.pt"
    data = None
    if path.exists():
        try:
            data = torch.load(path, weights_only=True)
        except Exception:  # a damaged file: generate again
            data = None
    if data is None:
        data = train_test(spec, n_train, n_test, seed)
        try:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            torch.save(data, tmp)
            os.replace(tmp, path)
        except OSError:  # a cache only
            pass
    if len(_DATA) >= 6:
        _DATA.pop(next(iter(_DATA)))
    _DATA[key] = data
    return data


def job_key(task: str, model: str, lr: float, wd: float, seed: int) -> str:
    return f"{task}|{model}|lr={lr:g}|wd={wd:g}|seed={seed}"


def run_one(job: dict) -> dict:
    """Train one (task, model, lr, wd, seed) and return its record.

    Status `done` (step budget used), `early_stop` (99.9% reached), or `incomplete` (it stopped itself because it
    could not finish before `job["stop_at"]`: such a record is not a result).
    """
    torch.set_num_threads(job.get("threads", 1))
    spec: TaskSpec = job["spec"]
    device = torch.device(job["device"])
    t0 = time.time()
    torch.manual_seed(job["seed"])
    auto = spec.name == "compression"
    width = solve_width(
        job["model"], job["tier"], job["budget"], job["d"], job["layers"], spec.vocab_size, spec.num_classes
    )
    model = SyntheticModel(
        job["model"],
        spec.vocab_size,
        spec.num_classes,
        job["d"],
        job["layers"],
        width,
        spec.seq_len,
        auto,
        job["backend"],
    ).to(device)
    (xtr, ytr), (xte, yte) = _data(spec, spec.option("n_train", job["n_train"]), job["n_test"], job["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job["wd"])
    total = job["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(job["seed"])
    batch = min(job["batch"], len(xtr))
    micro = MICRO_BATCH.get(job["model"], batch)

    def eval_batch(length: int, full: int) -> int:  # `full` examples per pass, unless the model needs micro-batches
        return full if micro == batch else max(1, 2 * micro * spec.seq_len // length)

    perm, cursor = torch.randperm(len(xtr), generator=gen), 0
    status, ev, eval_s = "done", None, None
    # the group tasks' length-generalisation evals after training, in units of one eval at the training length
    tail_evals = 4 * sum(job["group_test_lens"]) / spec.seq_len if spec.family == "group" else 0.0
    t_steps = time.time()
    for step in range(1, total + 1):
        if cursor + batch > len(xtr):  # a new epoch (the last partial batch of an epoch is dropped)
            perm, cursor = torch.randperm(len(xtr), generator=gen), 0
        idx = perm[cursor : cursor + batch]
        cursor += batch
        opt.zero_grad(set_to_none=True)
        accumulate_grads(model, xtr[idx].to(device), ytr[idx].to(device), micro)
        opt.step()
        sched.step()
        now = time.time()
        if step == 3:
            t_steps = now  # the first steps include compilation: predict from the later ones
        if step > 3:
            per_step = (now - t_steps) / (step - 3)
            left = (total - step) * per_step + (eval_s or 0.0) * (1 + tail_evals)
            if now + left > job["stop_at"]:
                status = "incomplete"
                break
        elif now > job["stop_at"]:
            status = "incomplete"
            break
        if step % job["eval_every"] == 0 or step == total:
            te = time.time()
            ev = _evaluate(model, xte, yte, eval_batch(spec.seq_len, 4 * job["batch"]), device, spec.num_classes)
            eval_s = time.time() - te
            if min(ev["accuracy"], ev["macro_accuracy"]) >= STOP_ACC:
                status = "early_stop"
                break
    rec = {
        **_stub(job),
        "status": status,
        "steps": step,
        "time_s": round(time.time() - t0, 2),
        "predicted_s": round(job.get("predicted_s", 0.0), 2),
    }
    if status == "incomplete":
        return rec
    rec.update(
        params=count_params(model),
        state_size=model.state_size,
        width=width,
        accuracy=ev["accuracy"],
        macro_accuracy=ev["macro_accuracy"],
        sequence_accuracy=ev["sequence_accuracy"],
        chance=spec.chance,
    )
    if spec.family == "group":  # per position at the training length, then longer test lengths (generalisation)
        rec["per_position"] = ev["per_position"]
        rec["length_generalisation"] = {}
        for n_len in job["group_test_lens"]:
            xl, yl = generate(spec, job["n_test"], job["seed"], "test", seq_len=n_len)
            curve = _evaluate(model, xl, yl, eval_batch(n_len, job["batch"]), device, spec.num_classes)["per_position"]
            rec["length_generalisation"][str(n_len)] = curve
        rec["time_s"] = round(time.time() - t0, 2)
    return rec


# ---------------------------------------------------------------- the suite


def _common(suite: Suite, device: str, backend: str, workers: int = 1) -> dict:
    return {
        "workers": workers,
        "device": device,
        "backend": backend,
        "tier": suite.tier,
        "budget": suite.budget,
        "d": suite.d,
        "layers": suite.layers,
        "n_train": suite.n_train,
        "n_test": suite.n_test,
        "batch": suite.batch,
        "eval_every": suite.eval_every,
        "group_test_lens": suite.group_test_lens,
    }


def all_jobs(suite: Suite, common: dict) -> list[dict]:
    """Every run of the suite, assuming the first grid cell wins (the plan's count; the scheduler picks the best)."""
    jobs = []
    for spec in suite.tasks:
        for m in suite.models:
            for i, (lr, wd) in enumerate(suite.grid):
                for seed in suite.seeds if i == 0 else suite.seeds[:1]:
                    jobs.append(_job(suite, common, spec, m, lr, wd, seed))
    return jobs


def _job(suite: Suite, common: dict, spec: TaskSpec, model: str, lr: float, wd: float, seed: int) -> dict:
    job = {**common, "spec": spec, "model": model, "lr": lr, "wd": wd, "seed": seed, "steps": suite.steps_for(spec)}
    job["key"] = job_key(spec.name, model, lr, wd, seed)
    job["predicted_s"] = predict_run_s(job)
    return job


def best_cells(records: list[dict], suite: Suite) -> dict:
    """(task, model) -> (lr, wd) of the best seed-0 run, for cells whose whole seed-0 grid is finished.

    Ranked by accuracy, then by fewer steps (an earlier early stop wins a tie)."""
    grid = {(lr, wd) for lr, wd in suite.grid}
    seed0: dict = {}
    for r in records:
        if r["seed"] == suite.seeds[0] and (r["lr"], r["wd"]) in grid:
            seed0.setdefault((r["task"], r["model"]), []).append(r)
    return {
        k: (lambda b: (b["lr"], b["wd"]))(max(rs, key=lambda r: (r["accuracy"], -r["steps"])))
        for k, rs in seed0.items()
        if {(r["lr"], r["wd"]) for r in rs} == grid
    }


def pending_jobs(suite: Suite, common: dict, records: list[dict]) -> tuple[list[dict], int]:
    """Runs ready now (seed-0 grid runs not done; other seeds of cells whose grid is done), and a count of runs that
    wait on an unfinished grid."""
    done = {r["key"] for r in records}
    cells = best_cells(records, suite)
    ready, waiting = [], 0
    for spec in suite.tasks:
        for m in suite.models:
            for lr, wd in suite.grid:
                job = _job(suite, common, spec, m, lr, wd, suite.seeds[0])
                if job["key"] not in done:
                    ready.append(job)
            best = cells.get((spec.name, m))
            for seed in suite.seeds[1:]:
                if best is None:
                    waiting += 1
                    continue
                job = _job(suite, common, spec, m, *best, seed)
                if job["key"] not in done:
                    ready.append(job)
    return ready, waiting


def plan(suite: Suite, workers: int, out: Path | None = None, device: str = "cuda") -> dict:
    """Runs left and predicted wall time per family from the cost model (refitted on the runs finished in `out`)."""
    records = _load(out, suite)[0] if out is not None and (out / "results.json").exists() else []
    cal = calibration(records)
    common = _common(suite, device, "auto", workers)
    done = {r["key"] for r in records}
    fams = {}
    for fam in sorted({t.family for t in suite.tasks}):
        jobs = [j for j in all_jobs(suite, common) if j["spec"].family == fam and j["key"] not in done]
        secs = [j["predicted_s"] * cal.get(j["model"], 1.0) for j in jobs]
        per_model: dict[str, float] = {}
        for j, s in zip(jobs, secs, strict=True):
            per_model[j["model"]] = per_model.get(j["model"], 0.0) + s
        loads = [0.0] * workers  # the scheduler's longest-first list scheduling, simulated
        for sec in sorted(secs, reverse=True):
            loads[loads.index(min(loads))] += sec
        fams[fam] = {
            "runs_total": len([j for j in all_jobs(suite, common) if j["spec"].family == fam]),
            "runs_left": len(jobs),
            "worker_seconds": round(sum(secs), 1),
            "predicted_minutes": round(max(loads) / 60 + STARTUP_MIN, 1),
            "per_model_seconds": {m: round(s, 1) for m, s in per_model.items()},
            "steps": suite.steps_for(next(t for t in suite.tasks if t.family == fam)),
        }
    return {"workers": workers, "calibrated_models": sorted(cal), "families": fams}


def _settings(suite: Suite) -> dict:
    d = asdict(suite)
    d["tasks"] = [t.name for t in suite.tasks]
    return json.loads(json.dumps(d))  # tuples -> lists, as read back from results.json


def _load(out: Path, suite: Suite) -> tuple[list[dict], list[dict], list[dict]]:
    data = json.loads((out / "results.json").read_text())
    if data.get("settings") != _settings(suite):
        raise ValueError(
            f"{out / 'results.json'} holds results of other settings (suite {data.get('suite')!r}, family "
            f"{data.get('family')!r}); resume needs the same suite, family, models, tasks and sizes: use another --out"
        )
    return data.get("runs", []), data.get("incomplete", []), data.get("calls", [])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # never a half-written file


class _Stop(Exception):
    pass


def run_suite(
    suite: Suite,
    out: Path,
    workers: int = 1,
    max_minutes: float = 60.0,
    device: str = "cpu",
    backend: str = "auto",
    log=print,
    started: float | None = None,
) -> dict:
    """Run (or resume) the suite in `out` until done or the deadline; returns the results.json content."""
    from .report import markdown, plots

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_minutes <= 0:
        raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time() if started is None else started
    deadline = t_start + 60 * max_minutes
    exit_margin = min(20.0, max(3.0, 0.06 * 60 * max_minutes))  # kill, write results.md and the plots
    stop_at = deadline - exit_margin
    worker_stop = stop_at - min(5.0, exit_margin / 2)  # a worker stops itself so that its record still arrives
    records, incomplete, calls = _load(out, suite) if (out / "results.json").exists() else ([], [], [])
    if records:
        log(f"resuming: {len(records)} runs already in {out / 'results.json'}")
    call = {"started": round(t_start, 1), "max_minutes": max_minutes, "workers": workers, "finished": 0}
    calls = [*calls, call]
    common = {**_common(suite, device, backend, workers), "stop_at": worker_stop}
    task_names, state = [t.name for t in suite.tasks], {"status": "running", "pending": 0}

    def save() -> None:
        done_keys = {r["key"] for r in records}
        body = {
            "suite": suite.name,
            "family": suite.family,
            "status": state["status"],
            "pending": state["pending"],
            "settings": _settings(suite),
            "runs": records,
            "incomplete": [r for r in incomplete if r["key"] not in done_keys],
            "calls": calls,
        }
        _atomic_write(out / "results.json", json.dumps(body))
        _atomic_write(out / "results.md", markdown(records, task_names, list(suite.models), state["status"], body))

    def on_signal(signum, frame):
        raise _Stop(f"signal {signum}")

    old = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            old[sig] = signal.signal(sig, on_signal)
        except ValueError:  # not the main thread
            pass
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(workers)
    running: dict[str, tuple] = {}
    skipped: set[str] = set()  # predicted not to fit before the deadline in this call
    try:
        save()
        while True:
            now = time.time()
            for key, (res, job) in list(running.items()):
                if not res.ready():
                    continue
                del running[key]
                try:
                    rec = res.get()
                except Exception as e:  # a crashed run is reported, the suite goes on
                    rec = {**_stub(job), "status": "error", "error": f"{type(e).__name__}: {e}"}
                if rec["status"] in ("done", "early_stop"):
                    records.append(rec)
                else:  # not a result; not retried in this call
                    incomplete.append(rec)
                    skipped.add(key)
                call["finished"] += rec["status"] in ("done", "early_stop")
                log(_line(rec))
                save()
            if now >= stop_at:
                raise _Stop("deadline")
            ready, waiting = pending_jobs(suite, common, records)
            cal = calibration(records)
            ready = [j for j in ready if j["key"] not in running and j["key"] not in skipped]
            ready.sort(key=lambda j: -j["predicted_s"] * cal.get(j["model"], 1.0))  # longest first packs best
            for job in ready:
                if len(running) >= workers:
                    break
                predicted = job["predicted_s"] * cal.get(job["model"], 1.0)
                if now + 0.75 * predicted > worker_stop:
                    skipped.add(job["key"])
                    continue
                running[job["key"]] = (pool.apply_async(run_one, (job,)), job)
            if not running:
                state["pending"] = len(skipped) + waiting
                state["status"] = "complete" if not skipped and not waiting else "partial"
                break
            time.sleep(0.1)
    except _Stop as why:
        for _key, (_res, job) in running.items():
            incomplete.append({**_stub(job), "status": "incomplete", "why": str(why)})
        ready, waiting = pending_jobs(suite, common, records)
        state["pending"], state["status"] = len(ready) + waiting, "partial"
        log(f"stopped ({why}): {len(running)} running runs killed, {state['pending']} runs left for the next call")
    finally:
        pool.terminate()
        pool.join()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        call["ended"] = round(time.time(), 1)
        if state["status"] == "running":
            state["status"] = "partial"
        save()
        try:
            plots(records, out)
        except Exception as e:  # plots are a convenience; results.json/md are written already
            log(f"plots failed: {type(e).__name__}: {e}")
    return json.loads((out / "results.json").read_text())


def _stub(job: dict) -> dict:
    spec = job["spec"]
    return {
        "key": job["key"],
        "task": spec.name,
        "family": spec.family,
        "model": job["model"],
        "lr": job["lr"],
        "wd": job["wd"],
        "seed": job["seed"],
    }


def _line(rec: dict) -> str:
    acc = f"acc={rec['accuracy']:.3f} macro={rec['macro_accuracy']:.3f} " if "accuracy" in rec else ""
    return (
        f"{rec['task']:>18} {rec['model']:>7} lr={rec['lr']:g} wd={rec['wd']:g} seed={rec['seed']} {acc}"
        f"steps={rec.get('steps', 0)} {rec.get('time_s', 0)}s (predicted {rec.get('predicted_s', 0)}s) "
        f"{rec['status']} {rec.get('error', '')}"
    ).rstrip()
