"""Training/eval protocol: AdamW + cosine; lr x wd grid on seed 0, its best cell for the other seeds; stop at 99.9%.

Runs are independent, so they go to a pool of worker processes (small d=128 models are launch-bound on a GPU); every
finished run is appended to results.json at once, and a wall-clock deadline stops the suite cleanly.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .models import MODELS, SyntheticModel, count_params, solve_width
from .tasks import IGNORE, TaskSpec, generate, group_tasks, mad_tasks, train_test

STOP_ACC = 0.999


@dataclass(frozen=True)
class Suite:
    """Sizes of one suite; `grid` is searched on seed 0, the best cell then reruns for `seeds[1:]`."""

    name: str
    tasks: tuple[TaskSpec, ...]
    models: tuple[str, ...]
    d: int
    layers: int
    tier: str
    budget: int
    n_train: int
    n_test: int
    batch: int
    epochs: int
    grid: tuple[tuple[float, float], ...]
    seeds: tuple[int, ...]
    group_test_lens: tuple[int, ...] = ()
    chance_tasks: tuple[str, ...] = field(default=())  # tasks on which every model must beat chance (smoke check)


def make_suite(name: str, models: tuple[str, ...] | None = None, tasks: tuple[str, ...] | None = None) -> Suite:
    if name == "smoke":
        # the CPU check: three short tasks; every model must beat chance on memorization (recall/S3 are only reported)
        smoke = mad_tasks("smoke")
        all_tasks = (smoke["in_context_recall"], smoke["memorization"], group_tasks(16)["S3"])
        suite = Suite(
            "smoke",
            all_tasks,
            MODELS,
            d=32,
            layers=1,
            tier="iso_state",
            budget=32,
            n_train=512,
            n_test=128,
            batch=32,
            epochs=3,
            grid=((3e-3, 0.0),),
            seeds=(0,),
            group_test_lens=(32,),
            chance_tasks=("memorization",),
        )
    elif name == "full":
        all_tasks = (*mad_tasks("full").values(), *group_tasks(64).values())
        # MAD's grid without lr 1e-4, which never wins in a few epochs; the lead's GPU call is 10 minutes in all
        grid = tuple((lr, wd) for lr in (5e-4, 1e-3) for wd in (0.0, 0.1))
        suite = Suite(
            "full",
            all_tasks,
            MODELS,
            d=128,
            layers=2,
            tier="iso_state",
            budget=512,
            n_train=12800,
            n_test=1280,
            batch=128,
            epochs=3,
            grid=grid,
            seeds=(0, 1, 2),
            group_test_lens=(128, 256),
        )
    else:
        raise ValueError(f"unknown suite {name!r}; expected 'smoke' or 'full'")
    if models is not None:
        bad = [m for m in models if m not in MODELS]
        if bad:
            raise ValueError(f"unknown model(s) {bad}; expected a subset of {', '.join(MODELS)}")
        suite = replace_suite(suite, models=tuple(models))
    if tasks is not None:
        names = {t.name: t for t in suite.tasks}
        bad = [t for t in tasks if t not in names]
        if bad:
            raise ValueError(f"unknown task(s) {bad}; expected a subset of {', '.join(names)}")
        suite = replace_suite(suite, tasks=tuple(names[t] for t in tasks))
    return suite


def replace_suite(suite: Suite, **kw) -> Suite:
    return Suite(**{**asdict(suite), "tasks": suite.tasks, **kw})


def scored_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """Correct and scored counts over all positions, and per position (for group curves)."""
    mask = y != IGNORE
    ok = (logits.argmax(-1) == y) & mask
    return int(ok.sum()), int(mask.sum()), ok.sum(0), mask.sum(0)


def _evaluate(model, x, y, batch, device) -> dict:
    model.eval()
    correct = total = 0
    pos_ok = torch.zeros(x.shape[1])
    pos_n = torch.zeros(x.shape[1])
    seq_ok = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i : i + batch].to(device), y[i : i + batch].to(device)
            logits = model(xb).float()
            c, n, po, pn = scored_accuracy(logits, yb)
            correct, total = correct + c, total + n
            pos_ok += po.cpu()
            pos_n += pn.cpu()
            mask = yb != IGNORE
            seq_ok.append((((logits.argmax(-1) == yb) | ~mask).all(-1)).cpu())
    model.train()
    return {
        "accuracy": correct / max(total, 1),
        "sequence_accuracy": float(torch.cat(seq_ok).float().mean()),
        "per_position": (pos_ok / pos_n.clamp(min=1)).tolist(),
    }


_DATA: dict = {}


def _data(spec: TaskSpec, n_train: int, n_test: int, seed: int):
    key = (spec, n_train, n_test, seed)
    if key not in _DATA:
        _DATA.clear()  # one task at a time per worker keeps memory flat
        _DATA[key] = train_test(spec, n_train, n_test, seed)
    return _DATA[key]


def run_one(job: dict) -> dict:
    """Train one (task, model, lr, wd, seed) and return its record; stops early at 99.9% or at the deadline."""
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
    (xtr, ytr), (xte, yte) = _data(spec, job["n_train"], job["n_test"], job["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job["wd"])
    steps_per_epoch = math.ceil(len(xtr) / job["batch"])
    total = steps_per_epoch * job["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(job["seed"])
    step, status = 0, "done"
    ev = None
    for _ in range(job["epochs"]):
        perm = torch.randperm(len(xtr), generator=gen)
        for i in range(0, len(xtr), job["batch"]):
            idx = perm[i : i + job["batch"]]
            xb, yb = xtr[idx].to(device), ytr[idx].to(device)
            loss = F.cross_entropy(model(xb).float().flatten(0, 1), yb.flatten(), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if time.time() > job["deadline"]:
                status = "deadline"
                break
        if status == "deadline":
            break
        ev = _evaluate(model, xte, yte, 4 * job["batch"], device)
        if ev["accuracy"] >= STOP_ACC:
            status = "early_stop"
            break
    if ev is None or status == "deadline":
        ev = _evaluate(model, xte, yte, 4 * job["batch"], device)
    rec = {
        "task": spec.name,
        "family": spec.family,
        "model": job["model"],
        "params": count_params(model),
        "state_size": model.state_size,
        "width": width,
        "lr": job["lr"],
        "wd": job["wd"],
        "seed": job["seed"],
        "accuracy": ev["accuracy"],
        "sequence_accuracy": ev["sequence_accuracy"],
        "chance": spec.chance,
        "steps": step,
        "time_s": round(time.time() - t0, 2),
        "status": status,
    }
    if spec.family == "group":  # per position at the training length, then longer test lengths (generalisation)
        rec["per_position"] = ev["per_position"]
        rec["length_generalisation"] = {}
        for n_len in job["group_test_lens"]:
            xl, yl = generate(spec, job["n_test"], job["seed"], "test", seq_len=n_len)
            rec["length_generalisation"][str(n_len)] = _evaluate(model, xl, yl, job["batch"], device)["per_position"]
    return rec


def _jobs(suite: Suite, cells: dict | None, seeds, common: dict) -> list[dict]:
    jobs = []
    for spec in suite.tasks:
        for m in suite.models:
            grid = suite.grid if cells is None else [cells.get((spec.name, m))]
            for lr_wd in grid:
                if lr_wd is None:
                    continue
                for seed in seeds:
                    jobs.append({**common, "spec": spec, "model": m, "lr": lr_wd[0], "wd": lr_wd[1], "seed": seed})
    return jobs


def best_cells(records: list[dict]) -> dict:
    """(task, model) -> (lr, wd) of the best seed-0 run."""
    best: dict = {}
    for r in records:
        if r["seed"] != 0:
            continue
        k = (r["task"], r["model"])
        if k not in best or r["accuracy"] > best[k]["accuracy"]:
            best[k] = r
    return {k: (r["lr"], r["wd"]) for k, r in best.items()}


def run_suite(
    suite: Suite,
    out: Path,
    workers: int = 1,
    max_minutes: float = 60.0,
    device: str = "cpu",
    backend: str = "auto",
    log=print,
) -> list[dict]:
    """Phase 1: the grid on seed 0; phase 2: the best cell on the remaining seeds. Returns all finished records."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if max_minutes <= 0:
        raise ValueError(f"max_minutes must be > 0, got {max_minutes}")
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + 60 * max_minutes
    common = {
        "device": device,
        "backend": backend,
        "deadline": deadline,
        "tier": suite.tier,
        "budget": suite.budget,
        "d": suite.d,
        "layers": suite.layers,
        "n_train": suite.n_train,
        "n_test": suite.n_test,
        "batch": suite.batch,
        "epochs": suite.epochs,
        "group_test_lens": suite.group_test_lens,
    }
    records: list[dict] = []
    json_path = out / "results.json"

    def save(status: str) -> None:
        tmp = json_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"suite": suite.name, "status": status, "settings": _settings(suite), "runs": records})
        )
        tmp.replace(json_path)  # never a half-written results.json

    phases = [(None, suite.seeds[:1]), ("best", suite.seeds[1:])]
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(workers) if workers > 1 else None
    finished = True
    try:
        for cells, seeds in phases:
            if not seeds:
                continue
            jobs = _jobs(suite, best_cells(records) if cells else None, seeds, common)
            it = pool.imap_unordered(run_one, jobs) if pool else map(run_one, jobs)
            for rec in it:
                records.append(rec)
                save("running")
                log(
                    f"{rec['task']:>18} {rec['model']:>7} lr={rec['lr']:g} wd={rec['wd']:g} seed={rec['seed']} "
                    f"acc={rec['accuracy']:.3f} steps={rec['steps']} {rec['time_s']}s {rec['status']}"
                )
                if time.time() > deadline + 30:  # a straggler past the deadline: stop waiting for it
                    finished = False
                    break
            if not finished or time.time() > deadline:
                finished = False
                break
    finally:
        if pool:
            pool.terminate()
            pool.join()
    save("complete" if finished else "deadline")
    return records


def _settings(suite: Suite) -> dict:
    d = asdict(suite)
    d["tasks"] = [t.name for t in suite.tasks]
    return d
