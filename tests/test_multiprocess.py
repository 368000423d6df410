"""`accelerate launch --cpu --num_processes 2` (gloo DDP) on the tiny config (issue 5, CPU part).

Two processes with half the per-process batch see exactly the samples of one process with the full batch (the data
position is a function of the step, see hlru_lm.training.BatchSchedule), so the loss curves must agree up to float
reduction order. Only the main process writes the log, checkpoints and the final model; resume works with 2 processes.
"""

from __future__ import annotations

import json

import pytest

from tests.test_train import TINY, cache, launch, losses, reference_run, tiny_yaml, workdir, write_config  # noqa: F401


@pytest.fixture(scope="module")
def half_batch_yaml(workdir):  # noqa: F811
    cfg = json.loads(json.dumps(TINY))
    cfg["training"]["batch_size"] = TINY["training"]["batch_size"] // 2
    cfg["training"]["report_to"] = "auto"  # TensorBoard when installed: one writer (main process) only
    return write_config(workdir / "tiny_half.yaml", cfg)


@pytest.fixture(scope="module")
def ddp_run(workdir, half_batch_yaml, cache):  # noqa: F811
    out = workdir / "ddp"
    proc = launch(half_batch_yaml, out, cache, nproc=2)
    return out, proc


def test_two_processes_match_one_process_full_batch(ddp_run, reference_run):  # noqa: F811
    out, proc = ddp_run
    assert "2 process(es) x batch 4" in proc.stdout + proc.stderr
    ref, got = losses(reference_run), losses(out)
    assert sorted(got) == sorted(ref) == [1, 2, 3, 4, 5, 6]
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-4, abs=1e-4), (step, got, ref)
    ref_val = json.loads((reference_run / "train_results.json").read_text())["val_loss"]
    got_val = json.loads((out / "train_results.json").read_text())["val_loss"]
    assert got_val == pytest.approx(ref_val, rel=1e-4)


def test_only_main_process_writes(ddp_run):
    out, proc = ddp_run
    text = proc.stdout + proc.stderr
    assert text.count("saved model and tokenizer") == 1
    records = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == [1, 2, 3, 4, 5, 6]  # one line per step, not one per process
    assert [r["step"] for r in records if "val_loss" in r] == [3, 6]
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step_4", "step_6"]
    for c in ckpts:
        files = sorted(p.name for p in (out / "checkpoints" / c).iterdir())
        # one model/optimizer/state copy; the RNG state of each process (needed for an exact resume)
        assert files.count("model.safetensors") == 1 and "optimizer.bin" in files
        assert {"random_states_0.pkl", "random_states_1.pkl"} <= set(files), files
    assert sorted(p.name for p in (out / "model").glob("*.safetensors")) == ["model.safetensors"]
    events = list((out / "logs").rglob("events.out.tfevents.*")) if (out / "logs").exists() else []
    assert len({e.name.split(".")[-2] for e in events}) <= 1  # events.out.tfevents.<time>.<host>.<pid>.<n>: one writer


def test_two_process_kill_and_resume(ddp_run, workdir, half_batch_yaml, cache):  # noqa: F811
    full, _ = ddp_run
    out = workdir / "ddp_killed"
    proc = launch(half_batch_yaml, out, cache, nproc=2, kill="after_step:3", check=False)
    assert proc.returncode != 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_2"]
    proc = launch(half_batch_yaml, out, cache, "--resume", nproc=2)
    assert "resumed from" in proc.stdout + proc.stderr
    ref, got = losses(full), losses(out)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-6), (step, got, ref)
