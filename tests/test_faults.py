"""Faults a training run survives and bad inputs the scripts refuse (README "Reliability"). Each case failed before
the hardening; nothing is lost in any of them."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .test_train import ROOT, TINY, TRAIN, _env, losses, write_config

GENERATE = ROOT / "scripts" / "generate.py"


def _cfg(**training) -> dict:
    cfg = json.loads(json.dumps(TINY))
    cfg["training"].update({"max_steps": 4, "eval_interval": 2, "save_interval": 2, **training})
    return cfg


def train(cfg_path: Path, out: Path, cache: Path, *extra: str, kill: str | None = None, popen: bool = False):
    env = _env(cache)
    if kill:
        env["HLRU_DEBUG_KILL"] = kill
    cmd = [sys.executable, str(TRAIN), "--config", str(cfg_path), "--output_dir", str(out), *extra]
    if popen:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults_cache")


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("faults_cfg") / "c.yaml", _cfg())


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cfg_path, cache) -> Path:
    out = tmp_path_factory.mktemp("faults") / "run"
    proc = train(cfg_path, out, cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_two_runs_on_one_output_dir_started_together(tmp_path, cfg_path, cache, finished):
    out = tmp_path / "shared"
    procs = [train(cfg_path, out, cache, popen=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    assert "error: output_dir" in next(err for rc, err in results if rc == 2)
    assert sorted(losses(out)) == [1, 2, 3, 4]  # one run's log, not two interleaved
    assert (out / "model" / "model.safetensors").is_file()


def test_non_finite_loss_stops_before_saving(tmp_path, cache):
    cfg = _cfg(learning_rate=1e6, max_grad_norm=0.0, save_interval=1, max_steps=6)
    cfg["model"]["gate_norm"] = "none"
    out = tmp_path / "nan"
    proc = train(write_config(tmp_path / "nan.yaml", cfg), out, cache)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "non-finite" in proc.stderr and "stopped before saving" in proc.stderr
    assert not (out / "model").exists()
    from safetensors.torch import load_file

    for ckpt in (out / "checkpoints").glob("step_*"):  # every checkpoint kept holds finite weights
        assert all(t.isfinite().all() for t in load_file(ckpt / "model.safetensors").values())


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


class _Plant:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['HLRU_PLANT_MARKER']}",))


@pytest.mark.parametrize("planted", ["custom_checkpoint_0.pkl", "optimizer.bin"])
def test_resume_unpickles_nothing_from_the_checkpoint(tmp_path, cfg_path, cache, finished, planted):
    """accelerate loads custom_checkpoint_*.pkl with weights_only=False; we register none and keep our state in
    JSON, and its other files load with weights_only=True, even when a forged manifest vouches for the plant."""
    out = _copy_run(finished, tmp_path / "run")
    marker = tmp_path / "pwned"
    os.environ["HLRU_PLANT_MARKER"] = str(marker)
    try:
        payload = pickle.dumps(_Plant())
    finally:
        del os.environ["HLRU_PLANT_MARKER"]
    newest = out / "checkpoints" / "step_4"
    (newest / planted).write_bytes(payload)
    from hlru_lm.data import file_sha256
    from hlru_lm.training import CKPT_META

    meta = json.loads((newest / CKPT_META).read_text())
    meta["files"][planted] = {"size": (newest / planted).stat().st_size, "sha256": file_sha256(newest / planted)}
    (newest / CKPT_META).write_text(json.dumps(meta))
    proc = train(cfg_path, out, cache, "--resume", "--max_steps", "6")
    assert not marker.exists()
    assert proc.returncode == 2 and "cannot resume from" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_newest_checkpoint_falls_back(tmp_path, cfg_path, cache, finished, damage):
    out = _copy_run(finished, tmp_path / "run")
    target = out / "checkpoints" / "step_4" / "optimizer.bin"
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:100])
    proc = train(cfg_path, out, cache, "--resume")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "skipping damaged checkpoint" in text and "step_4" in text and "resumed from" in text
    assert losses(out)[4] == pytest.approx(losses(finished)[4], rel=1e-6)  # step 3-4 rerun from step_2, same losses


def test_extend_a_finished_run(tmp_path, cfg_path, cache, finished):
    out = _copy_run(finished, tmp_path / "run")
    proc = train(cfg_path, out, cache, "--resume", "--max_steps", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(losses(out)) == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "model" / "train_results.json").read_text())["step"] == 6
    proc = train(cfg_path, out, cache, "--resume", "--max_steps", "3")
    assert proc.returncode == 2 and "extended, not shortened" in proc.stderr
    proc = train(cfg_path, out, cache, "--resume", "--learning_rate", "1e-4")
    assert proc.returncode == 2 and "different config" in proc.stderr


def test_kill_during_final_save_leaves_no_half_model(tmp_path, cfg_path, cache):
    out = tmp_path / "run"
    proc = train(cfg_path, out, cache, kill="final_save:4")
    assert proc.returncode != 0
    assert not (out / "model").exists() and (out / ".model.tmp").is_dir()
    proc = train(cfg_path, out, cache, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / ".model.tmp").exists()
    files = {p.name for p in (out / "model").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md", "train_results.json"} <= files
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in (out / "model").iterdir())


def test_unwritable_folders_fail_before_any_work(tmp_path, cfg_path, cache, finished):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fresh = tmp_path / "fresh_cache"
    proc = train(cfg_path, blocker / "run", cache, "--data.cache_dir", str(fresh))
    assert proc.returncode == 2 and "cannot write to" in proc.stderr, proc.stderr[-2000:]
    # a run folder whose checkpoints/ cannot be written: refused before tokenising, not at the first save
    out = _copy_run(finished, tmp_path / "run")
    import shutil

    shutil.rmtree(out / "checkpoints")
    (out / "checkpoints").write_text("not a folder")
    proc = train(cfg_path, out, cache, "--resume", "--data.cache_dir", str(fresh))
    assert proc.returncode == 2 and "cannot write to" in proc.stderr and "checkpoints" in proc.stderr
    assert not (fresh / "tokens").exists()


def test_val_fraction_zero_writes_valid_json(tmp_path, cache):
    cfg = _cfg(max_steps=2)
    cfg["data"]["val_fraction"] = 0.0
    out = tmp_path / "run"
    proc = train(write_config(tmp_path / "c.yaml", cfg), out, cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "model" / "train_results.json").read_text(), parse_constant=_no_nan)
    assert results["val_loss"] is None
    for line in (out / "train_log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=_no_nan)


def _no_nan(name: str):
    raise AssertionError(f"invalid JSON constant {name}")


def test_corrupted_token_cache_is_rebuilt(tmp_path, cfg_path, cache, finished):
    from hlru_lm import data as D

    token_dir = next((cache / "tokens").iterdir())
    train_bin = token_dir / "train.bin"
    blob = bytearray(train_bin.read_bytes())
    blob[10] ^= 0xFF
    train_bin.write_bytes(bytes(blob))
    assert D._cache_problem(token_dir) is not None
    proc = train(cfg_path, tmp_path / "run", cache, "--max_steps", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "token cache" in proc.stderr and "rebuilding" in proc.stderr
    assert D._cache_problem(token_dir) is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.block_size", "0"], "block_size must be a positive integer"),
        (["--model.gate_norm", "softmx"], "gate_norm must be one of"),
        (["--model.initializer_range", ".inf"], "initializer_range must be a finite number"),
    ],
)
def test_bad_model_values_before_data_work(tmp_path, cfg_path, args, message):
    fresh = tmp_path / "cache"
    proc = train(cfg_path, tmp_path / "run", fresh, "--data.cache_dir", str(fresh), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not fresh.exists()


@pytest.mark.parametrize("kind", ["binary", "latin1"])
def test_unreadable_corpus_is_one_line(tmp_path, cfg_path, cache, kind):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(bytes(range(256)) * 50 if kind == "binary" else "caf\xe9 cr\xe8me\n".encode("latin-1") * 50)
    proc = train(cfg_path, tmp_path / "run", cache, "--data.source", str(corpus))
    assert proc.returncode == 2 and "could not be read" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_malformed_yaml_is_one_line(tmp_path, cache):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {max_steps: 3\n  lr: [\n")
    proc = train(bad, tmp_path / "run", cache)
    assert proc.returncode == 2 and "is not valid YAML" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/run", "--prompt", "x"], "not found"),
        (["--model", "RUN", "--prompt", ""], "--prompt is empty"),
        (["--model", "RUN", "--prompt", "x", "--max_new_tokens", "0"], "--max_new_tokens must be >= 1"),
        (["--model", "RUN", "--prompt", "x", "--temperature", "0"], "--temperature must be > 0"),
        (["--model", "RUN", "--prompt", "x", "--top_p", "1.5"], "--top_p must be in (0, 1]"),
        (["--model", "RUN", "--prompt", "x", "--timeout", "1e-9", "--max_new_tokens", "50"], "--timeout 1e-09 s"),
    ],
)
def test_generate_refuses_bad_arguments(finished, cache, args, message):
    args = [str(finished) if a == "RUN" else a for a in args]
    proc = subprocess.run(
        [sys.executable, str(GENERATE), *args], env=_env(cache), cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_generate_refuses_a_missing_gpu(finished, cache):
    test_generate_refuses_bad_arguments(
        finished, cache, ["--model", "RUN", "--prompt", "x", "--device", "cuda"], "CUDA"
    )


def test_generate_reads_a_run_folder(finished, cache):
    proc = subprocess.run(
        [sys.executable, str(GENERATE), "--model", str(finished), "--prompt", "def", "--max_new_tokens", "4"],
        env=_env(cache),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("def"), proc.stderr[-2000:]


def test_checkpoint_is_published_whole_or_not_at_all(tmp_path, monkeypatch):
    """publish_checkpoint writes the manifest into the temp folder and then renames it: a failure while writing the
    manifest (disk full) publishes nothing and keeps the previous checkpoint; pruning keeps the newest ones."""
    from hlru_lm import training as T

    root = T.checkpoints_dir(tmp_path)

    def staged(step: int) -> Path:
        tmp = root / f".tmp_step_{step}"
        (tmp / "sub").mkdir(parents=True)
        (tmp / "model.safetensors").write_bytes(bytes(range(step)))
        (tmp / "sub" / "random_states_0.pkl").write_bytes(b"rng")
        return tmp

    for step in (2, 4):
        T.publish_checkpoint(staged(step), root / f"step_{step}", {"step": step})
    manifest = json.loads((root / "step_4" / T.CKPT_META).read_text())
    assert manifest["step"] == 4 and set(manifest["files"]) == {"model.safetensors", "sub/random_states_0.pkl"}
    assert T.checkpoint_problem(root / "step_4") is None and not (root / ".tmp_step_4").exists()

    def disk_full(path, body):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(T, "write_json", disk_full)
    with pytest.raises(OSError, match="No space"):
        T.publish_checkpoint(staged(6), root / "step_6", {"step": 6})
    monkeypatch.undo()
    assert not (root / "step_6").exists() and [s for s, _ in T.list_checkpoints(tmp_path)] == [2, 4]
    assert T.pick_checkpoint(tmp_path, log=lambda *_: None) == root / "step_4"
    T.publish_checkpoint(root / ".tmp_step_6", root / "step_6", {"step": 6})
    T.prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in T.list_checkpoints(tmp_path)] == [4, 6] and not (root / "step_2").exists()
    # what a killed run leaves half-written is removed at the next start; published checkpoints stay
    for leftover in (root / ".tmp_step_8", tmp_path / ".model.tmp", tmp_path / ".model.old-123"):
        leftover.mkdir()
    removed = T.clean_partial_outputs(tmp_path)
    assert sorted(p.name for p in removed) == [".model.old-123", ".model.tmp", ".tmp_step_8"]
    assert sorted(p.name for p in root.iterdir()) == ["step_4", "step_6"] and not (tmp_path / ".model.tmp").exists()


def test_write_json_is_strict_and_atomic(tmp_path, monkeypatch):
    """write_json refuses NaN (strict JSON) and replaces the file in one rename: a failure before the rename keeps
    the previous contents whole."""
    from hlru_lm import training as T

    path = tmp_path / "train_results.json"
    T.write_json(path, {"step": 1, "val_loss": 2.5})
    with pytest.raises(ValueError):
        T.write_json(path, {"step": 2, "val_loss": float("nan")})
    monkeypatch.setattr(os, "chmod", lambda *a: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        T.write_json(path, {"step": 3, "val_loss": 1.0})
    assert json.loads(path.read_text()) == {"step": 1, "val_loss": 2.5}
