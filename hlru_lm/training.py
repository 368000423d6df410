"""Helpers of ``scripts/train.py``: config schema + overrides, run-directory guards, checkpoints, schedule, batches."""

from __future__ import annotations

import argparse
import copy
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from .data import file_sha256

# Every key a training config may hold; a key outside this schema (or outside HLRUConfig's fields for `model`) is an
# error. `model` values are HLRUConfig fields; `vocab_size: auto` = the tokenizer's size rounded up to a multiple of 64,
# `max_position_embeddings` defaults to data.context_length.
DEFAULTS: dict[str, dict] = {
    "model": {},
    "tokenizer": {
        "name": None,  # any AutoTokenizer name/path; null = train a byte-level BPE on the corpus
        "train_vocab_size": 4096,
        "min_frequency": 2,
    },
    "data": {
        "source": "embedded",  # "embedded", a data file/dir, a save_to_disk dir, or a Hub dataset name
        "config_name": None,
        "split": "train",
        "validation_split": None,  # use this split as validation instead of a hashed document split
        "text_field": "text",
        "sample_by": "paragraph",  # for .txt files: line | paragraph | document
        "streaming": False,
        "val_fraction": 0.05,
        "val_documents": 1000,  # streaming only: the first N documents are the validation split
        "max_documents": None,
        "max_train_tokens": None,
        "context_length": 256,
        # true: the recurrent state restarts after every EOS of the packed corpus (position_ids restart there);
        # false, as in the paper: the state runs on across document boundaries
        "reset_state_at_eos": False,
        "num_proc": None,
        "cache_dir": None,  # default $HLRU_CACHE or ~/.cache/hlru_lm
    },
    "training": {
        "output_dir": "runs/tiny",
        "resume": False,  # true = continue from the latest checkpoint in output_dir (if any); or a checkpoint path
        "seed": 1234,
        "max_steps": 200,
        "batch_size": 16,  # per process, per micro-step
        "gradient_accumulation_steps": 1,
        "learning_rate": 3.0e-3,
        "min_learning_rate": 1.0e-5,
        "warmup_ratio": 0.1,
        "weight_decay": 0.1,
        "adam_beta1": 0.9,
        "adam_beta2": 0.95,
        "adam_epsilon": 1.0e-8,
        "max_grad_norm": 1.0,
        "mixed_precision": "auto",  # auto = bf16 on a GPU that supports it, else no
        "gradient_checkpointing": False,
        # auto = torch.compile every block when training on CUDA (eager elsewhere); true = on any device; false = eager
        "compile": "auto",
        "log_interval": 10,
        "eval_interval": 100,
        "eval_batches": 8,
        "save_interval": 100,
        "keep_last_checkpoints": 2,
        "report_to": "auto",  # auto = tensorboard when installed; none; or a tracker name / list
        "push_to_hub": None,  # a Hub repo id: upload <output_dir>/model there at the end (needs a login / HF_TOKEN)
    },
}
# Keys that do not change what is trained: may differ between a run and its resumption.
RUN_CONTROL_KEYS = {
    "max_steps",  # a resumed run may be extended (check_output_dir refuses a max_steps below the checkpoint)
    "output_dir",
    "resume",
    "log_interval",
    "eval_interval",
    "eval_batches",
    "save_interval",
    "keep_last_checkpoints",
    "report_to",
    "push_to_hub",
    "compile",
    "num_proc",
    "cache_dir",
}
RUN_FILE = "hlru_run.json"
CKPT_META = "hlru_checkpoint.json"  # written last: the checkpoint's manifest (files, sizes, sha256)
STATE_FILE = "hlru_state.json"  # step, data cursor and scheduler: JSON, so resuming unpickles nothing of ours
LOCK_FILE = ".hlru_run.lock"
MODEL_DIR = "model"  # the publishable folder: model, tokenizer, card; checkpoints and logs stay beside it


class ConfigError(ValueError):
    pass


def model_fields() -> list[str]:
    from .configuration_hlru import HLRUConfig

    fields = []
    for klass in reversed(HLRUConfig.__mro__):
        if klass.__module__.startswith("hlru_lm"):
            fields += [k for k in getattr(klass, "__annotations__", {}) if not k.startswith("_")]
    return list(dict.fromkeys(fields))


def _check_keys(cfg: dict, where: str) -> None:
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: the config must be a mapping of sections, got {type(cfg).__name__}")
    for section, values in cfg.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{where}: unknown config section {section!r} (known: {sorted(DEFAULTS)})")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping")
        allowed = model_fields() if section == "model" else list(DEFAULTS[section])
        for key in values:
            if key not in allowed:
                hint = _closest(key, allowed)
                raise ConfigError(
                    f"{where}: unknown config key {section}.{key}"
                    + (f" (did you mean {section}.{hint}?)" if hint else "")
                )


def _closest(key: str, options) -> str | None:
    import difflib

    m = difflib.get_close_matches(key, list(options), n=1)
    return m[0] if m else None


def _parse_value(text: str, default):
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    if isinstance(value, str):
        try:
            value = float(value) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value) else value
        except ValueError:
            pass
    if isinstance(default, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = text  # --output_dir 2024 names a folder
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def _leaf_index() -> dict[str, list[str]]:
    idx: dict[str, list[str]] = {}
    for section, values in DEFAULTS.items():
        keys = model_fields() if section == "model" else values
        for k in keys:
            idx.setdefault(k, []).append(section)
    return idx


def load_config(path: str | None, overrides: list[str]) -> dict:
    """Defaults <- YAML file <- ``--key value`` / ``--section.key value`` / ``--key=value`` overrides.

    Unknown or ambiguous keys raise :class:`ConfigError`.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {path!r} not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {path!r} is not valid YAML: {str(e).splitlines()[0]}") from None
        _check_keys(loaded, str(path))
        for section, values in loaded.items():
            cfg[section].update(values or {})
    leaf = _leaf_index()
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --key value")
        name = arg[2:]
        if "=" in name:
            name, raw = name.split("=", 1)
            i += 1
        elif i + 1 < len(overrides) and not overrides[i + 1].startswith("--"):
            raw = overrides[i + 1]
            i += 2
        else:  # a bare flag: --resume
            raw = "true"
            i += 1
        name = name.replace("-", "_")
        if "." in name:
            section, key = name.split(".", 1)
        else:
            sections = leaf.get(name, [])
            if not sections:
                hint = _closest(name, list(leaf))
                raise ConfigError(f"unknown config key {name!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
            if len(sections) > 1:
                raise ConfigError(
                    f"ambiguous key {name!r}: write one of " + ", ".join(f"--{s}.{name}" for s in sections)
                )
            section, key = sections[0], name
        _check_keys({section: {key: None}}, "command line")
        cfg[section][key] = _parse_value(raw, DEFAULTS.get(section, {}).get(key))
    _validate(cfg)
    return cfg


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate(cfg: dict) -> None:
    t, d = cfg["training"], cfg["data"]
    for key in (
        "max_steps",
        "batch_size",
        "gradient_accumulation_steps",
        "log_interval",
        "eval_interval",
        "save_interval",
        "keep_last_checkpoints",
        "eval_batches",
    ):
        v = t[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"training.{key} must be a positive integer, got {v!r}")
    if not isinstance(d["context_length"], int) or d["context_length"] < 2:
        raise ConfigError(f"data.context_length must be an integer >= 2, got {d['context_length']!r}")
    if not _is_number(d["val_fraction"]) or not 0 <= d["val_fraction"] < 1:
        raise ConfigError(f"data.val_fraction must be a number in [0, 1), got {d['val_fraction']!r}")
    for section, key, low in (
        ("data", "max_documents", 1),
        ("data", "max_train_tokens", 1),
        ("data", "val_documents", 0),
        ("data", "num_proc", 1),
        ("tokenizer", "train_vocab_size", 1),
        ("tokenizer", "min_frequency", 1),
    ):
        v = cfg[section][key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise ConfigError(f"{section}.{key} must be an integer >= {low} or null, got {v!r}")
    if isinstance(t["seed"], bool) or not isinstance(t["seed"], int) or t["seed"] < 0:
        raise ConfigError(f"training.seed must be a non-negative integer, got {t['seed']!r}")
    for section, key in (("training", "output_dir"), ("data", "source"), ("data", "text_field")):
        v = cfg[section][key]
        if (v is not None or key == "output_dir") and (not isinstance(v, str) or not v.strip()):
            raise ConfigError(f"{section}.{key} must be a non-empty string, got {v!r}")
    for key in ("adam_beta1", "adam_beta2"):
        if not _is_number(t[key]) or not 0 <= t[key] < 1:
            raise ConfigError(f"training.{key} must be a number in [0, 1), got {t[key]!r}")
    if not _is_number(t["adam_epsilon"]) or not t["adam_epsilon"] > 0:
        raise ConfigError(f"training.adam_epsilon must be a positive number, got {t['adam_epsilon']!r}")
    if d["sample_by"] not in ("line", "paragraph", "document"):
        raise ConfigError(f"data.sample_by must be line, paragraph or document, got {d['sample_by']!r}")
    if not isinstance(d["reset_state_at_eos"], bool):
        raise ConfigError(f"data.reset_state_at_eos must be true or false, got {d['reset_state_at_eos']!r}")
    if t["push_to_hub"] is not None and (not isinstance(t["push_to_hub"], str) or not t["push_to_hub"].strip()):
        raise ConfigError(f"training.push_to_hub must be a Hub repo id like user/name, got {t['push_to_hub']!r}")
    if t["compile"] not in ("auto", True, False):
        raise ConfigError(f"training.compile must be auto, true or false, got {t['compile']!r}")
    if t["mixed_precision"] not in ("auto", "no", "bf16", "fp16", "fp8"):
        raise ConfigError(f"training.mixed_precision must be auto, no, bf16, fp16 or fp8, got {t['mixed_precision']!r}")
    for key in ("learning_rate", "min_learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm"):
        if not isinstance(t[key], (int, float)) or isinstance(t[key], bool) or t[key] < 0:
            raise ConfigError(f"training.{key} must be a non-negative number, got {t[key]!r}")


def parse_args(argv=None) -> tuple[argparse.Namespace, dict]:
    parser = argparse.ArgumentParser(
        description="Pretrain a BD-LRU / H-LRU language model (run with `accelerate launch` or plain python).",
        epilog="Any config key can be overridden: --max_steps 100, --training.learning_rate 1e-3, "
        "--model.hidden_size 64.",
    )
    parser.add_argument("--config", default=None, help="YAML config (sections: model, tokenizer, data, training)")
    args, rest = parser.parse_known_args(argv)
    return args, load_config(args.config, rest)


def identity(cfg: dict) -> dict:
    """The part of the config that defines what is trained (run-control keys removed)."""
    return {s: {k: v for k, v in vals.items() if k not in RUN_CONTROL_KEYS} for s, vals in cfg.items()}


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(identity(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------------
# Output directory and checkpoints
# ----------------------------------------------------------------------------------------------------------------------


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Published checkpoints (``step_<k>`` with their manifest), oldest first. ``.tmp_*`` dirs never count."""
    root = checkpoints_dir(output_dir)
    out = []
    if root.is_dir():
        for p in root.iterdir():
            m = re.fullmatch(r"step_(\d+)", p.name)
            if m and p.is_dir() and (p / CKPT_META).is_file():
                out.append((int(m.group(1)), p))
    return sorted(out)


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be resumed (a file missing, truncated or changed since its manifest was
    written), or None when every file matches the manifest."""
    try:
        meta = json.loads((path / CKPT_META).read_text())
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"its manifest {CKPT_META} is missing or unreadable"
    for name, want in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != want["size"]:
            return f"{name} has {f.stat().st_size} bytes, the manifest says {want['size']}"
        if file_sha256(f) != want["sha256"]:
            return f"{name} differs from the checksum in the manifest"
    return None


def pick_checkpoint(output_dir: Path, log=print) -> Path | None:
    """The newest checkpoint that passes :func:`checkpoint_problem`, naming every newer one it skips. Raises
    ConfigError when checkpoints exist but none is complete (starting over would overwrite them)."""
    ckpts = list_checkpoints(output_dir)
    skipped = []
    for _, p in reversed(ckpts):
        problem = checkpoint_problem(p)
        if problem is None:
            return p
        skipped.append(f"{p.name} ({problem})")
        log(f"skipping damaged checkpoint {p}: {problem}")
    if skipped:
        raise ConfigError(f"no complete checkpoint in {checkpoints_dir(output_dir)}: " + "; ".join(skipped))
    return None


def check_output_dir(cfg: dict) -> Path | None:
    """Refuse an output_dir that holds another run (different config) or, without --resume, any checkpoints.

    Returns the checkpoint to resume from (None = start from scratch). Writes nothing.
    """
    t = cfg["training"]
    out = Path(t["output_dir"])
    resume = t["resume"]
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir {str(out)!r} exists and is not a directory")
    run_file = out / RUN_FILE
    if out.is_dir() and any(not p.name.startswith(".hlru_") for p in out.iterdir()):  # the lock, write probes
        if not run_file.is_file():
            raise ConfigError(
                f"output_dir {str(out)!r} is not empty and holds no hlru training run ({RUN_FILE} missing); "
                "refusing to overwrite it: choose another --output_dir"
            )
        previous = json.loads(run_file.read_text())
        if previous.get("config_hash") != config_hash(cfg):
            diff = _diff(previous.get("identity", {}), identity(cfg))
            raise ConfigError(
                f"output_dir {str(out)!r} holds another run's checkpoints (different config: {diff}); "
                "nothing was overwritten: choose another --output_dir"
            )
        ckpts = list_checkpoints(out)
        if ckpts and not resume:
            raise ConfigError(
                f"output_dir {str(out)!r} already holds checkpoints up to step {ckpts[-1][0]}; "
                "pass --resume to continue that run (a larger --max_steps extends it) or choose another --output_dir"
            )
    if resume and resume is not True and str(resume).lower() not in ("true", "latest", "auto"):
        p = Path(str(resume))
        if not (p / CKPT_META).is_file():
            raise ConfigError(f"--resume {resume!r} is not a complete checkpoint directory")
        problem = checkpoint_problem(p)
        if problem is not None:
            raise ConfigError(f"--resume {resume!r} is damaged: {problem}")
        found = p
    else:
        found = pick_checkpoint(out) if resume else None
    if found is not None:
        step = read_state(found).get("train", {}).get("step", 0)
        if step > t["max_steps"]:
            raise ConfigError(
                f"checkpoint {found} is at step {step}, beyond --max_steps {t['max_steps']}: a resumed run can be "
                "extended, not shortened"
            )
    return found


def check_writable(paths: list[Path]) -> None:
    """Create each folder and write a probe file in it now, so a path that cannot be written fails before any data
    preparation or training rather than at the first save."""
    for path in paths:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".hlru_probe_"):
                pass
        except OSError as e:
            raise ConfigError(f"cannot write to {str(path)!r}: {e.strerror or e}") from None


class RunLock:
    """An exclusive lock on output_dir, held for the run's lifetime: a second run on the same folder is refused
    whatever the timing. flock is released by the kernel when the holder dies, so a crashed run leaves no stale lock."""

    def __init__(self, output_dir: Path) -> None:
        path = Path(output_dir) / LOCK_FILE
        self._f = open(path, "a+")
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.seek(0)
            holder = self._f.read().strip() or "unknown"
            self._f.close()
            raise ConfigError(
                f"output_dir {str(output_dir)!r} is in use by another training run (pid {holder}); wait for it to "
                "finish or choose another --output_dir"
            ) from None
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()

    def release(self) -> None:
        if not self._f.closed:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_UN)
            self._f.close()


def _diff(a: dict, b: dict) -> str:
    diffs = []
    for s in sorted(set(a) | set(b)):
        for k in sorted(set(a.get(s, {})) | set(b.get(s, {}))):
            va, vb = a.get(s, {}).get(k), b.get(s, {}).get(k)
            if va != vb:
                diffs.append(f"{s}.{k}: {va!r} -> {vb!r}")
    return ", ".join(diffs[:5]) + (" ..." if len(diffs) > 5 else "") or "unknown"


def finite_or_none(x):
    """JSON has no NaN / inf: write them as null."""
    return x if not isinstance(x, float) or math.isfinite(x) else None


def write_json(path: Path, body: dict) -> None:
    """Write strict JSON atomically (temp file + rename), readable by everyone (0644)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, default=str, allow_nan=False))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_run_file(cfg: dict, extra: dict | None = None) -> None:
    out = Path(cfg["training"]["output_dir"])
    out.mkdir(parents=True, exist_ok=True)
    body = {"config_hash": config_hash(cfg), "identity": identity(cfg), "config": cfg, **(extra or {})}
    write_json(out / RUN_FILE, body)


def clean_partial_outputs(output_dir: Path) -> list[Path]:
    """Remove what a killed run left half-written: temp checkpoints and temp model folders."""
    removed = []
    for root, prefixes in ((checkpoints_dir(output_dir), (".tmp_",)), (Path(output_dir), (f".{MODEL_DIR}.",))):
        if root.is_dir():
            for p in root.iterdir():
                if p.name.startswith(prefixes):
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
    return removed


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    for _, p in list_checkpoints(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def publish_checkpoint(tmp: Path, final: Path, meta: dict) -> None:
    """Write the manifest of a fully written temp checkpoint last, then rename it into place (atomic on POSIX)."""
    _fsync_tree(tmp)
    files = {
        str(f.relative_to(tmp)): {"size": f.stat().st_size, "sha256": file_sha256(f)}
        for f in sorted(tmp.rglob("*"))
        if f.is_file()
    }
    write_json(tmp / CKPT_META, {**meta, "files": files})
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(final.parent)


def publish_folder(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place as one rename (a reader sees all of it or the previous one); files
    become 0644 (safetensors writes 0600)."""
    for f in tmp.rglob("*"):
        os.chmod(f, 0o755 if f.is_dir() else 0o644)
    os.chmod(tmp, 0o755)
    _fsync_tree(tmp)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)


def find_model_dir(path: str) -> str:
    """The model folder of ``path``: a run folder's ``model/`` (see MODEL_DIR), or ``path`` itself when it holds a
    config.json. A Hub id (not a path) passes through; a path that holds no model is a ConfigError naming it."""
    p = Path(path).expanduser()
    if not p.exists():
        if os.sep in path or path.startswith(".") or path.startswith("~"):
            raise ConfigError(f"model folder {path!r} not found")
        return path
    for candidate in (p / MODEL_DIR, p):
        if (candidate / "config.json").is_file():
            return str(candidate)
    raise ConfigError(f"{path!r} holds no model (no config.json in it or in its {MODEL_DIR}/ folder)")


def model_card(cfg: dict, config, n_params: int, results: dict, vocab: int) -> str:
    """README.md of the published model folder: what it is, what it was trained on, how to load it."""
    t, d = cfg["training"], cfg["data"]
    mixer = "BD-LRU (N blocks of size m)" if config.mixer_type == "bdlru" else "H-LRU (N channels of order m)"
    val = results.get("val_loss")
    metrics = f"validation loss {val:.4f}, perplexity {results['val_ppl']:.2f}" if val is not None else "no validation"
    return f"""---
library_name: transformers
tags: [hlru-lm, linear-recurrence, {config.mixer_type}]
---
# {config.mixer_type}-m{config.block_size} language model

A causal language model whose token mixers are the {mixer} linear recurrence of Dubinin, Orvieto & Effenberger,
"Improved state mixing in higher-order and block diagonal linear recurrent networks" (2026), trained with
[hlru-lm](https://pypi.org/project/hlru-lm/).

| | |
| --- | --- |
| parameters | {n_params:,} |
| architecture | d = {config.hidden_size}, {config.num_hidden_layers} layers, m = {config.block_size}, N = \
{config.num_blocks}, gate_norm = {config.gate_norm}, SwiGLU {config.intermediate_size}, vocabulary {vocab} |
| recurrent state | {config.num_blocks * config.block_size} numbers per layer, whatever the length |
| data | {d["source"]} (context {d["context_length"]} tokens) |
| training | {results["step"]} steps, {results["tokens_seen"]:,} tokens, AdamW lr {t["learning_rate"]} |
| final metrics | {metrics} |

The folder carries the model code: `trust_remote_code=True` loads it without hlru-lm (torch path); with hlru-lm
installed (`pip install hlru-lm`, then `import hlru_lm`) it needs no remote code and uses the Triton kernels on GPUs.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("<this folder or repo>", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("<this folder or repo>", trust_remote_code=True)
print(tokenizer.decode(model.generate(**tokenizer("Hello", return_tensors="pt"), max_new_tokens=20)[0]))
```
"""


def push_to_hub(folder: Path, repo_id: str, message: str) -> str:
    """Upload the published model folder to a Hub model repo (created if missing); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=message))


def read_state(checkpoint: Path) -> dict:
    """The JSON state of a checkpoint (see STATE_FILE); {} for a checkpoint without one."""
    path = Path(checkpoint) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


class TrainState:
    """Step counter, data cursor and the warmup length (fixed at the start, so extending a run moves only the cosine
    horizon). Saved as JSON in each checkpoint next to the scheduler's state."""

    def __init__(self) -> None:
        self.step = 0
        self.samples_seen = 0
        self.tokens_seen = 0
        self.warmup_steps = 0
        self.config_hash = ""
        self.data_fingerprint = ""  # the token cache's contents and tokenizer (TokenCache.fingerprint)
        self.processes = 0  # the data order depends on processes x batch_size

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, sd: dict) -> None:
        for k in vars(self):
            if k in sd:
                setattr(self, k, sd[k])


def resume_problem(saved: dict, data_fingerprint: str, processes: int) -> str | None:
    """Why a run cannot continue the checkpoint whose TrainState is `saved` on this data with this many processes
    (None when it can). Checkpoints written before these fields existed are not checked."""
    if saved.get("data_fingerprint") and saved["data_fingerprint"] != data_fingerprint:
        return (
            "the training data or the tokenizer changed since it was written (the token cache differs): the weights "
            "would continue on other token ids or another sample order. Restore the corpus and tokenizer, or train "
            "into another --output_dir"
        )
    if saved.get("processes") and saved["processes"] != processes:
        return (
            f"it was written by {saved['processes']} process(es) and this run has {processes}: each step's batch "
            f"and the data order would change. Resume with {saved['processes']} process(es)"
        )
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Schedule and batches
# ----------------------------------------------------------------------------------------------------------------------


def warmup_steps(max_steps: int, warmup_ratio: float) -> int:
    return max(1, int(round(warmup_ratio * max_steps))) if warmup_ratio > 0 else 0


def lr_lambda(max_steps: int, warmup: int, lr: float, min_lr: float):
    """Linear warmup over ``warmup`` steps then cosine decay to ``min_lr`` at ``max_steps`` (as a factor of ``lr``).
    Extending a run (a larger max_steps on resume) keeps the warmup and moves the end of the cosine."""
    floor = min_lr / lr if lr > 0 else 0.0

    def f(step: int) -> float:  # `step` = optimizer steps already taken
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class BatchSchedule:
    """Deterministic sample order: a fresh permutation of the training blocks per epoch, seeded by (seed, epoch).

    Global micro-step ``g`` covers stream positions ``[g * W * b, (g + 1) * W * b)``; process ``r`` reads the
    sub-range ``r * b .. (r + 1) * b``. W processes with batch b therefore see exactly the samples of one process with
    batch W * b, and the data position is a pure function of the step (resume needs no sampler state).
    """

    def __init__(self, num_blocks: int, seed: int) -> None:
        if num_blocks < 1:
            raise ValueError("no training blocks")
        self.n, self.seed = num_blocks, seed
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._epoch = epoch
        return self._perm

    def indices(self, start: int, count: int) -> list[int]:
        out = []
        for pos in range(start, start + count):
            out.append(int(self._permutation(pos // self.n)[pos % self.n]))
        return out
