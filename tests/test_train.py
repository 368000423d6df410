"""scripts/train.py end to end on CPU: `accelerate launch` runs, SIGKILL + resume, bad inputs (issue 4)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "scripts" / "train.py"

TINY = {
    "model": {
        "vocab_size": "auto",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "intermediate_size": 64,
        "mixer_type": "bdlru",
        "block_size": 2,
        "num_blocks": 16,
    },
    "tokenizer": {"train_vocab_size": 384},
    "data": {"source": "embedded", "max_documents": 24, "context_length": 64, "num_proc": 1},
    "training": {
        "max_steps": 6,
        "batch_size": 8,
        "learning_rate": 3.0e-3,
        "log_interval": 1,
        "eval_interval": 3,
        "eval_batches": 3,  # 19 validation blocks: not a multiple of test_multiprocess's 2 processes
        "save_interval": 2,
        "keep_last_checkpoints": 2,
        "report_to": "none",
    },
}


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HLRU_CACHE=str(cache),
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    env.pop("HLRU_DEBUG_KILL", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def accelerate_cmd(num_processes: int = 1) -> list[str]:
    """CPU launch. accelerate 1.15 sends `--cpu` to its single-process (or mpirun) launcher, so several CPU processes
    go through `--multi_gpu` (torchrun); train.py then builds a CPU Accelerator, which uses gloo DDP."""
    mode = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *mode,
        "--num_processes",
        str(num_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]


def launch(
    config: Path,
    out: Path,
    cache: Path,
    *extra: str,
    nproc: int = 1,
    kill: str | None = None,
    check: bool = True,
    timeout: int = 300,
) -> subprocess.CompletedProcess:
    env = _env(cache)
    if kill:
        env["HLRU_DEBUG_KILL"] = kill
    cmd = [*accelerate_cmd(nproc), str(TRAIN), "--config", str(config), "--output_dir", str(out), *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"train failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def losses(out: Path) -> dict[int, float]:
    """step -> training loss; a step logged twice (before a kill and after the resume) keeps the later value."""
    rec = {}
    for line in (out / "train_log.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            rec[r["step"]] = r["loss"]
    return rec


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train")


@pytest.fixture(scope="session")
def cache(workdir) -> Path:
    return workdir / "cache"


@pytest.fixture(scope="session")
def tiny_yaml(workdir) -> Path:
    return write_config(workdir / "tiny.yaml", TINY)


@pytest.fixture(scope="session")
def reference_run(workdir, tiny_yaml, cache) -> Path:
    """One uninterrupted single-process run (batch 8, 6 steps), shared with the 2-process tests."""
    out = workdir / "reference"
    launch(tiny_yaml, out, cache)
    return out


def test_launch_produces_loadable_model(reference_run, cache):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import hlru_lm  # noqa: F401

    out = reference_run
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert tok.model_max_length == 64 and "parameters" in (out / "model" / "README.md").read_text()
    assert type(model).__name__ == "HLRUForCausalLM"
    assert model.config.max_position_embeddings == 64 and model.config.vocab_size >= len(tok)
    assert model.config.eos_token_id == tok.eos_token_id
    ids = tok("def f(x):\n    return x", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size) and torch.isfinite(logits).all()

    curve = losses(out)
    assert sorted(curve) == [1, 2, 3, 4, 5, 6]
    assert curve[6] < curve[1] - 0.1, curve  # it learns
    vals = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines() if "val_loss" in x]
    assert [v["step"] for v in vals] == [3, 6] and all(v["val_ppl"] > 1 for v in vals)
    results = json.loads((out / "train_results.json").read_text())
    assert results["step"] == 6 and results["val_ppl"] == pytest.approx(vals[-1]["val_ppl"])
    # keep_last_checkpoints=2, complete and atomic: no temp dirs, every checkpoint has its marker
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step_4", "step_6"], ckpts
    assert all((out / "checkpoints" / c / "hlru_checkpoint.json").is_file() for c in ckpts)
    # the tokenised corpus is cached once, keyed by corpus + tokenizer
    assert len(list((cache / "tokens").iterdir())) == 1
    assert len(list((cache / "tokenizers").iterdir())) == 1


def test_validation_loss_is_the_models_loss_on_the_held_out_blocks(reference_run, cache):
    """The final val_loss recomputed from the published model on the validation token file's first
    eval_batches x batch_size blocks (the run's own token cache, found by its data fingerprint)."""
    import torch
    from transformers import AutoModelForCausalLM

    from hlru_lm import data as D
    from hlru_lm.training import read_state

    fingerprint = read_state(reference_run / "checkpoints" / "step_6")["train"]["data_fingerprint"]
    metas = {d: json.loads((d / "meta.json").read_text()) for d in (cache / "tokens").iterdir()}
    [(tokens, meta)] = [(d, m) for d, m in metas.items() if D._tokens_fingerprint(m) == fingerprint]
    blocks = D.TokenBlocks(tokens / "val.bin", meta["dtype"], meta["n_val"], 64)
    x = torch.from_numpy(blocks.get(range(min(len(blocks), 3 * 8))))
    model = AutoModelForCausalLM.from_pretrained(reference_run / "model").eval()
    with torch.no_grad():
        loss = model(x, labels=x).loss.item()
    assert json.loads((reference_run / "train_results.json").read_text())["val_loss"] == pytest.approx(loss, rel=1e-5)


def test_sigkill_mid_save_then_resume_reproduces_losses(reference_run, workdir, tiny_yaml, cache):
    out = workdir / "killed"
    proc = launch(tiny_yaml, out, cache, kill="mid_save:4", check=False)
    assert proc.returncode != 0
    ckdir = out / "checkpoints"
    # killed after save_state wrote step 4 into its temp dir but before the rename: only step_2 is a checkpoint
    assert sorted(p.name for p in ckdir.iterdir()) == [".tmp_step_4", "step_2"]
    assert not (out / "model").exists()

    proc = launch(tiny_yaml, out, cache, "--resume")
    assert "resumed from" in proc.stdout + proc.stderr and "step_2" in proc.stdout + proc.stderr
    assert not (ckdir / ".tmp_step_4").exists()
    ref, got = losses(reference_run), losses(out)
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    for step in range(1, 7):  # same data position, optimizer, scheduler, RNG: identical losses
        assert got[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-6), (step, got, ref)
    assert (out / "model" / "model.safetensors").is_file()

    # --resume on a finished run is a no-op that keeps the final state; resume of a fresh dir starts from scratch
    launch(tiny_yaml, out, cache, "--resume")
    assert losses(out) == got


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs: a clear error before any work, nothing overwritten
# ---------------------------------------------------------------------------------------------------------------------


def _run_plain(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TRAIN), *args], env=_env(cache), capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def _tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def train_main():
    """scripts/train.py's main(), imported in-process (the bad-input checks need no subprocess)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("hlru_train_script", TRAIN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_unknown_config_key_cli(tmp_path, tiny_yaml, cache):
    proc = _run_plain(["--config", str(tiny_yaml), "--output_dir", str(tmp_path / "o"), "--max_stepz", "3"], cache)
    assert proc.returncode == 2
    assert "unknown config key 'max_stepz'" in proc.stderr and "max_steps" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["training"].update(lerning_rate=1.0), "unknown config key training.lerning_rate"),
        (lambda c: c["model"].update(hidden_sise=8), "unknown config key model.hidden_sise"),
        (lambda c: c.update(optimizer={"lr": 1}), "unknown config section 'optimizer'"),
    ],
)
def test_unknown_config_key_yaml(train_main, tmp_path, cache, capsys, mutate, message):
    cfg = json.loads(json.dumps(TINY))
    mutate(cfg)
    path = write_config(tmp_path / "bad.yaml", cfg)
    assert train_main(["--config", str(path), "--output_dir", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_ambiguous_and_dotted_overrides():
    from hlru_lm.training import ConfigError, load_config

    cfg = load_config(
        None, ["--training.learning_rate", "1e-3", "--max_steps=7", "--resume", "--model.hidden_size", "48"]
    )
    assert cfg["training"]["learning_rate"] == 1e-3 and cfg["training"]["max_steps"] == 7
    assert cfg["training"]["resume"] is True and cfg["model"]["hidden_size"] == 48
    assert load_config(None, ["--vocab_size", "100"])["model"]["vocab_size"] == 100
    with pytest.raises(ConfigError, match="unknown config key 'hiden_size'.*hidden_size"):
        load_config(None, ["--hiden_size", "100"])
    with pytest.raises(ConfigError, match="max_steps must be a positive integer"):
        load_config(None, ["--max_steps", "0"])
    assert load_config(None, ["--output_dir", "2024"])["training"]["output_dir"] == "2024"


@pytest.mark.parametrize(
    "override, message",
    [
        (["--data.val_fraction", "abc"], "val_fraction must be a number"),
        (["--training.gradient_accumulation_steps", "0"], "gradient_accumulation_steps must be a positive integer"),
        (["--training.eval_interval", "0"], "eval_interval must be a positive integer"),
        (["--training.eval_batches", "0"], "eval_batches must be a positive integer"),
        (["--data.max_documents", "abc"], "max_documents must be an integer >= 1 or null"),
        (["--training.seed", "abc"], "seed must be a non-negative integer"),
        (["--tokenizer.train_vocab_size", "1.5"], "train_vocab_size must be an integer"),
        (["--training.adam_beta1", "1.5"], r"adam_beta1 must be a number in \[0, 1\)"),
        (["--training.adam_epsilon", "0"], "adam_epsilon must be a positive number"),
        (["--data.sample_by", "sentence"], "sample_by must be line, paragraph or document"),
        (["--data.text_field", "''"], "text_field must be a non-empty string"),
    ],
)
def test_bad_values_are_config_errors(override, message):
    from hlru_lm.training import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


@pytest.mark.parametrize("kind", ["missing", "not_on_the_hub", "empty_txt", "blank_jsonl"])
def test_missing_or_empty_corpus(train_main, tmp_path, tiny_yaml, cache, capsys, kind):
    if kind == "missing":
        source, message = tmp_path / "nope.txt", "corpus not found"
    elif kind == "not_on_the_hub":  # a bare name is a Hub dataset; the tests run offline
        source, message = "nosuchdir", "no local file or folder, and loading it as a Hub dataset failed"
    elif kind == "empty_txt":
        source, message = tmp_path / "empty.txt", "is empty"
        source.write_text("")
    else:
        source, message = tmp_path / "blank.jsonl", "is empty"
        source.write_text('{"text": ""}\n{"text": "   "}\n')
    out = tmp_path / "o"
    rc = train_main(
        [
            "--config",
            str(tiny_yaml),
            "--output_dir",
            str(out),
            "--data.source",
            str(source),
            "--data.cache_dir",
            str(cache),
        ]
    )
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (out / "model").exists() and not (out / "checkpoints").exists()


def test_tokenizer_vocab_exceeds_model(train_main, reference_run, tmp_path, tiny_yaml, cache, capsys):
    # a trained tokenizer larger than the model's vocabulary: refused before training it
    out = tmp_path / "o"
    rc = train_main(
        [
            "--config",
            str(tiny_yaml),
            "--output_dir",
            str(out),
            "--model.vocab_size",
            "256",
            "--data.cache_dir",
            str(cache),
        ]
    )
    assert rc == 2 and "exceeds model.vocab_size=256" in capsys.readouterr().err
    # an existing tokenizer (the reference run's, 384 tokens) larger than the model's vocabulary
    rc = train_main(
        [
            "--config",
            str(tiny_yaml),
            "--output_dir",
            str(out),
            "--model.vocab_size",
            "128",
            "--tokenizer.name",
            str(reference_run / "model"),
            "--data.cache_dir",
            str(cache),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "tokens but model.vocab_size=128" in err, err
    assert not (out / "model").exists() and not (out / "checkpoints").exists()


def test_foreign_output_dir_is_refused(train_main, reference_run, tmp_path, tiny_yaml, cache, capsys):
    before = _tree_digest(reference_run)
    # another config (different width), with or without --resume
    for extra in ([], ["--resume"]):
        rc = train_main(
            [
                "--config",
                str(tiny_yaml),
                "--output_dir",
                str(reference_run),
                "--model.hidden_size",
                "48",
                "--data.cache_dir",
                str(cache),
                *extra,
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and "holds another run's checkpoints" in err and "model.hidden_size: 32 -> 48" in err, err
    # the same config without --resume: refused too (would silently restart over existing checkpoints)
    rc = train_main(["--config", str(tiny_yaml), "--output_dir", str(reference_run), "--data.cache_dir", str(cache)])
    assert rc == 2 and "pass --resume" in capsys.readouterr().err
    # a non-empty directory that is no training run at all
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    rc = train_main(["--config", str(tiny_yaml), "--output_dir", str(other), "--data.cache_dir", str(cache)])
    assert rc == 2 and "refusing to overwrite" in capsys.readouterr().err
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
    assert _tree_digest(reference_run) == before


def test_local_jsonl_corpus_and_token_cache_reuse(tmp_path):
    """Any `datasets` source: a local jsonl with another text column, split, tokenised, packed and cached once."""
    from hlru_lm import data as D

    rows = [{"body": f"document {i}: " + " ".join(f"word{j % 37}" for j in range(i, i + 60))} for i in range(200)]
    src = tmp_path / "corpus.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = {"source": str(src), "text_field": "body", "val_fraction": 0.1, "num_proc": 2}
    corpus = D.load_corpus(cfg)
    assert len(corpus.train) + len(corpus.validation) == 200 and 5 <= len(corpus.validation) <= 40
    tok = D.get_tokenizer({"train_vocab_size": 300}, corpus, tmp_path / "c")
    cache = D.build_token_cache(corpus, tok, cfg, tmp_path / "c")
    n_docs_tokens = sum(len(tok(t)["input_ids"]) + 1 for t in corpus.train["text"])
    assert cache.n_train == n_docs_tokens  # every document + its EOS
    blocks = D.TokenBlocks(cache.train_path, cache.dtype, cache.n_train, 32)
    first = blocks.get([0])[0]
    assert tok.decode(first).startswith(corpus.train[0]["text"][:10])
    assert (first == tok.eos_token_id).sum() <= 1
    mtime = cache.train_path.stat().st_mtime_ns
    again = D.build_token_cache(D.load_corpus(cfg), tok, cfg, tmp_path / "c")
    assert again.directory == cache.directory and cache.train_path.stat().st_mtime_ns == mtime
    shutil.rmtree(tmp_path / "c")


def test_embedded_corpus_is_deterministic_and_split():
    from hlru_lm import data as D

    a = D.embedded_corpus("all", max_documents=60)
    b = D.embedded_corpus("all", max_documents=60)
    assert a == b and len(a) == 60 and a[0]["id"].startswith("topic:")
    train = {d["id"] for d in D.embedded_corpus("train", max_documents=60)}
    val = {d["id"] for d in D.embedded_corpus("validation", max_documents=60)}
    assert train and val and not train & val and train | val == {d["id"] for d in a}
    # the training data's split is the same one: each document in exactly one of train and validation
    corpus = D.load_corpus({"source": "embedded", "max_documents": 60, "val_fraction": 0.05})
    assert sorted(corpus.validation["text"]) == sorted(d["text"] for d in a if d["id"] in val)
    assert len(corpus.train) + len(corpus.validation) == 60


@pytest.mark.parametrize("kind", ["parquet", "save_to_disk", "txt"])
def test_other_local_sources(tmp_path, kind):
    import datasets

    from hlru_lm import data as D

    texts = [f"paragraph {i} about recurrences and gates number {i * 7}." for i in range(60)]
    if kind == "parquet":
        src = tmp_path / "c.parquet"
        datasets.Dataset.from_dict({"text": texts}).to_parquet(str(src))
    elif kind == "save_to_disk":
        src = tmp_path / "saved"
        datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})}).save_to_disk(str(src))
    else:
        src = tmp_path / "c.txt"
        src.write_text("\n\n".join(texts))
    corpus = D.load_corpus({"source": str(src), "val_fraction": 0.1})
    got = sorted(list(corpus.train["text"]) + list(corpus.validation["text"]))
    assert got == sorted(t.strip() for t in texts) and len(corpus.validation) >= 1


def test_corpus_options_reach_the_data_and_its_cache_key(tmp_path):
    import datasets

    from hlru_lm import data as D

    # a folder of .txt files honours sample_by as a single file does
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("\n\n".join(f"line one {i}\nline two {i}" for i in range(10)))
    for by, n in (("paragraph", 10), ("document", 1), ("line", 20)):
        corpus = D.load_corpus({"source": str(tmp_path / "txt"), "sample_by": by})
        assert len(corpus.train) + len(corpus.validation) == n, by
    # validation_split: its own documents, and its own cache key; a bad name is a DataError naming the splits
    dd = tmp_path / "dd"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": [f"train doc {i}" for i in range(20)]}),
            "test": datasets.Dataset.from_dict({"text": [f"held out {i}" for i in range(5)]}),
        }
    ).save_to_disk(str(dd))
    plain = D.load_corpus({"source": str(dd)})
    split = D.load_corpus({"source": str(dd), "validation_split": "test"})
    assert sorted(split.validation["text"]) == [f"held out {i}" for i in range(5)]
    assert split.fingerprint != plain.fingerprint
    with pytest.raises(D.DataError, match=r"splits \['train', 'test'\], not 'tset'"):
        D.load_corpus({"source": str(dd), "validation_split": "tset"})
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": "a document"}))
    with pytest.raises(D.DataError, match="has only one: use data.val_fraction"):
        D.load_corpus({"source": str(tmp_path / "one.jsonl"), "validation_split": "test"})
    with pytest.raises(D.DataError, match="the embedded corpus has one"):
        D.load_corpus({"source": "embedded", "validation_split": "test"})
    with pytest.raises(D.DataError, match="streaming holds out data.val_documents"):
        D.load_corpus({"source": str(dd), "streaming": True, "validation_split": "test"})
    # a streamed local file is keyed by its contents' stamp and by the text field
    src = tmp_path / "s.jsonl"
    src.write_text("\n".join(json.dumps({"a": f"first {i}", "b": f"second {i}"}) for i in range(10)))
    keys = {D.load_corpus({"source": str(src), "streaming": True, "text_field": f}).fingerprint for f in "ab"}
    os.utime(src, ns=(0, 0))
    keys.add(D.load_corpus({"source": str(src), "streaming": True, "text_field": "a"}).fingerprint)
    assert len(keys) == 3


def test_resume_on_other_data_is_refused(train_main, tmp_path, tiny_yaml, cache, capsys):
    from hlru_lm import training as T

    src = tmp_path / "corpus.jsonl"
    src.write_text("\n".join(json.dumps({"text": f"doc {i}: " + "gate state " * 30}) for i in range(60)))
    args = ["--config", str(tiny_yaml), "--output_dir", str(tmp_path / "run"), "--data.source", str(src)]
    args += ["--data.max_documents", "null", "--data.cache_dir", str(cache), "--max_steps", "2"]
    args += ["--model.vocab_size", "512"]  # the same embedding shape for both tokenizers: nothing else would fail
    assert train_main(args) == 0
    before = _tree_digest(tmp_path / "run")
    with src.open("a") as f:  # more documents: another tokenizer and another sample order
        f.write("\n" + "\n".join(json.dumps({"text": f"new {i}: " + "other words " * 30}) for i in range(60)))
    capsys.readouterr()
    assert train_main([*args, "--resume", "--max_steps", "3"]) == 2
    assert "the training data or the tokenizer changed" in capsys.readouterr().err
    assert _tree_digest(tmp_path / "run") == before
    # the process count (not testable in one process: the check itself)
    assert "written by 1 process(es) and this run has 2" in T.resume_problem({"processes": 1}, "x", 2)
    assert T.resume_problem({"processes": 2, "data_fingerprint": "x"}, "x", 2) is None


def test_push_to_hub_and_eos_resets(train_main, tmp_path, tiny_yaml, cache, monkeypatch, capsys):
    """--push_to_hub uploads the published model/ folder (the Hub client is replaced: no network); a run with
    data.reset_state_at_eos trains on position_ids that restart after every EOS."""
    import huggingface_hub

    from hlru_lm import data as D

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()), commit_message))
            return f"https://huggingface.co/{repo_id}/commit/0"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    seen = []
    real = D.document_positions
    monkeypatch.setattr(D, "document_positions", lambda x, eos: seen.append(real(x, eos)) or seen[-1])
    corpus = tmp_path / "short.jsonl"  # short documents: every block holds several EOS
    corpus.write_text("".join(json.dumps({"text": f"note {i}: the state restarts here"}) + "\n" for i in range(400)))
    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--max_steps", "2", "--data.cache_dir", str(cache)]
    args += ["--data.source", str(corpus), "--tokenizer.train_vocab_size", "300", "--data.max_documents", "400"]
    assert train_main([*args, "--push_to_hub", "me/tiny", "--data.reset_state_at_eos", "true"]) == 0
    assert calls[0] == ("create", "me/tiny") and calls[1][0] == "upload" and calls[1][3] == "hlru-lm: step 2"
    assert {"model.safetensors", "config.json", "modeling_hlru.py", "tokenizer.json", "README.md"} <= set(calls[1][2])
    assert "pushed" in capsys.readouterr().out
    assert seen and any(bool((p[:, 1:] == 0).any()) for p in seen)  # restarts inside the blocks


def test_learning_rate_schedule():
    """Linear warmup to the peak over `warmup` steps (the first step already trains, at lr / warmup), then cosine
    decay to min_lr at max_steps; the warmup is round(ratio * max_steps), at least one step when the ratio is > 0."""
    import math

    from hlru_lm.training import lr_lambda, warmup_steps

    assert (warmup_steps(100, 0.1), warmup_steps(5, 0.01), warmup_steps(100, 0.0)) == (10, 1, 0)
    f = lr_lambda(max_steps=10, warmup=4, lr=1e-3, min_lr=1e-4)
    expected = [0.25, 0.5, 0.75, 1.0, 1.0] + [0.1 + 0.45 * (1 + math.cos(math.pi * k / 6)) for k in range(1, 6)]
    assert [f(s) for s in range(10)] == pytest.approx(expected)
    assert f(10) == pytest.approx(0.1) and f(20) == pytest.approx(0.1)
    assert lr_lambda(max_steps=4, warmup=0, lr=1e-3, min_lr=0.0)(0) == 1.0


def test_extending_a_run_keeps_its_warmup(train_main, tmp_path, tiny_yaml, cache):
    """4 steps with warmup_ratio 0.5 (2 warmup steps), then --resume --max_steps 6: the warmup stays 2 steps (not
    round(0.5 * 6) = 3) and the cosine ends at step 6. The log's lr is the one set for the next step."""
    from hlru_lm.training import lr_lambda

    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--data.cache_dir", str(cache)]
    args += ["--training.warmup_ratio", "0.5", "--training.min_learning_rate", "0.0"]
    assert train_main([*args, "--max_steps", "4"]) == 0
    assert train_main([*args, "--max_steps", "6", "--resume"]) == 0
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    f = lr_lambda(6, 2, 3e-3, 0.0)
    assert [lrs[s] for s in (5, 6)] == pytest.approx([3e-3 * f(5), 3e-3 * f(6)], abs=1e-12)


def test_batch_schedule_is_a_fresh_permutation_per_epoch():
    from hlru_lm.training import BatchSchedule

    s = BatchSchedule(7, seed=3)
    first, second = s.indices(0, 7), s.indices(7, 7)
    assert sorted(first) == sorted(second) == list(range(7)) and first != second
    assert s.indices(5, 4) == first[5:] + second[:2]  # a batch across the epoch boundary
    assert BatchSchedule(7, seed=3).indices(0, 14) == first + second  # a pure function of (seed, position)
    assert BatchSchedule(7, seed=4).indices(0, 7) != first


def test_gradients_are_clipped_to_max_grad_norm(train_main, tmp_path, tiny_yaml, cache, monkeypatch):
    import accelerate
    import torch

    seen, real = [], accelerate.Accelerator.clip_grad_norm_

    def clip(self, parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        norm = real(self, parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters if p.grad is not None]))
        seen.append((float(norm), float(after)))
        return norm

    monkeypatch.setattr(accelerate.Accelerator, "clip_grad_norm_", clip)
    args = ["--config", str(tiny_yaml), "--output_dir", str(tmp_path / "o"), "--max_steps", "1"]
    assert train_main([*args, "--data.cache_dir", str(cache), "--training.max_grad_norm", "0.01"]) == 0
    [(before, after)] = seen
    assert before > 0.01 and after <= 0.01 * (1 + 1e-4)


def test_document_positions():
    import torch

    from hlru_lm.data import document_positions

    ids = torch.tensor([[5, 2, 7, 8, 2, 2, 9], [1, 1, 1, 1, 1, 1, 1]])
    assert document_positions(ids, 2).tolist() == [[0, 1, 0, 1, 2, 0, 0], [0, 1, 2, 3, 4, 5, 6]]


@pytest.mark.parametrize("backend", ["eager", "broken"])
def test_compiled_training(train_main, reference_run, tmp_path, tiny_yaml, cache, monkeypatch, capsys, backend):
    """training.compile: true compiles every block (here with a CPU-cheap dynamo backend) and trains the same losses
    as eager; a compile failure is an error that names the switch, not a silent eager fallback."""
    import torch

    def broken(gm, example_inputs):
        raise RuntimeError("backend exploded")

    compile_block = torch.nn.Module.compile
    monkeypatch.setattr(
        torch.nn.Module,
        "compile",
        lambda self, **kw: compile_block(self, backend=broken if backend == "broken" else backend),
    )
    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--data.cache_dir", str(cache)]
    rc = train_main([*args, "--training.compile", "true"])
    if backend == "broken":
        assert rc == 1
        err = capsys.readouterr().err
        assert "torch.compile failed" in err and "--training.compile false" in err
        assert not (out / "model").exists()
        return
    assert rc == 0
    ref, got = losses(reference_run), losses(out)
    assert ref.keys() == got.keys()
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-4)


def test_gradient_accumulation_matches_the_full_batch(train_main, reference_run, tmp_path, tiny_yaml, cache):
    """2 micro-batches of 4 per optimizer step are the reference run's batches of 8 (micro-step g reads stream
    positions g*4 .. g*4+4): the same logged losses, gradient norms, token counts and final validation loss (on the
    same 24 blocks: eval_batches counts batches of batch_size). With 6 steps and eval / save intervals of 4, the last
    step is evaluated and saved too; resuming the finished run keeps its results."""
    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--data.cache_dir", str(cache)]
    args += ["--batch_size", "4", "--gradient_accumulation_steps", "2", "--eval_batches", "6"]
    assert train_main([*args, "--eval_interval", "4", "--save_interval", "4"]) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_4", "step_6"]
    vals = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines() if "val_loss" in x]
    assert vals == [4, 6]

    def records(run: Path) -> dict[int, dict]:
        lines = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
        return {r["step"]: r for r in lines if "loss" in r}

    ref, got = records(reference_run), records(out)
    assert sorted(got) == sorted(ref) == [1, 2, 3, 4, 5, 6]
    for step in ref:
        for key in ("loss", "grad_norm"):
            assert got[step][key] == pytest.approx(ref[step][key], rel=1e-4), (step, key, got[step], ref[step])
        assert got[step]["tokens_seen"] == ref[step]["tokens_seen"] == step * 8 * 64
    ref_val = json.loads((reference_run / "train_results.json").read_text())["val_loss"]
    assert json.loads((out / "train_results.json").read_text())["val_loss"] == pytest.approx(ref_val, rel=1e-5)
    assert train_main([*args, "--eval_interval", "4", "--save_interval", "4", "--resume"]) == 0
    final = json.loads((out / "model" / "train_results.json").read_text())
    assert final["val_loss"] == pytest.approx(ref_val, rel=1e-5)


def test_token_cache_is_keyed_by_tokenizer_split_and_token_budget(tmp_path):
    """A cache is reused only for the same tokens: another tokenizer of the same size, another val_fraction or another
    max_train_tokens gets its own; blocks are the file's consecutive, non-overlapping slices; a streamed corpus holds
    its first val_documents out of training; a tiny corpus with no hashed validation document holds out its last."""
    import numpy as np

    from hlru_lm import data as D

    src = tmp_path / "c.jsonl"
    src.write_text("\n".join(json.dumps({"text": f"doc {i}: " + "gate state mixes " * (5 + i % 7)}) for i in range(40)))
    cfg = {"source": str(src), "val_fraction": 0.1, "num_proc": 1}
    corpus = D.load_corpus(cfg)
    words = " ".join(f"w{j}x{j % 13}" for j in range(3000))
    tok_a = D.train_bpe_tokenizer([[t] for t in corpus.train["text"]], 270)
    tok_b = D.train_bpe_tokenizer([[words]], 270)
    assert len(tok_a) == len(tok_b) == 270 and tok_a.eos_token_id == tok_b.eos_token_id
    a = D.build_token_cache(corpus, tok_a, cfg, tmp_path / "c")
    b = D.build_token_cache(corpus, tok_b, cfg, tmp_path / "c")
    assert a.directory != b.directory and a.fingerprint != b.fingerprint
    tokens = np.fromfile(a.train_path, dtype=a.dtype)
    assert tokens.tolist() == [t for x in corpus.train["text"] for t in tok_a(x)["input_ids"] + [tok_a.eos_token_id]]
    blocks = D.TokenBlocks(a.train_path, a.dtype, a.n_train, 16)
    assert len(blocks) == a.n_train // 16
    assert blocks.get([2, 0]).tolist() == [tokens[32:48].tolist(), tokens[:16].tolist()]
    capped = D.build_token_cache(corpus, tok_a, {**cfg, "max_train_tokens": 50}, tmp_path / "c")
    assert capped.directory != a.directory and capped.n_train == 50
    assert np.fromfile(capped.train_path, dtype=a.dtype).tolist() == tokens[:50].tolist()
    assert D.load_corpus({**cfg, "val_fraction": 0.2}).fingerprint != corpus.fingerprint
    embedded = [D.load_corpus({"source": "embedded", "max_documents": 8, "val_fraction": f}) for f in (0.1, 0.3)]
    assert embedded[0].fingerprint != embedded[1].fingerprint
    # streaming: the first val_documents are held out and not trained on; max_train_tokens caps the stream too
    stream = D.load_corpus({"source": str(src), "streaming": True, "val_documents": 3})
    val, train = [e["text"] for e in stream.validation], [e["text"] for e in stream.train]
    assert val == [f"doc {i}: " + "gate state mixes " * (5 + i % 7) for i in range(3)] and not set(val) & set(train)
    assert len(train) == 37
    capped = D.build_token_cache(stream, tok_a, {"max_train_tokens": 50}, tmp_path / "c")
    assert capped.n_train == 50 and np.fromfile(capped.train_path, dtype=a.dtype).size == 50
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text("\n".join(json.dumps({"text": t}) for t in ("first", "second", "third")))
    three = D.load_corpus({"source": str(tiny), "val_fraction": 1e-9})
    assert list(three.validation["text"]) == ["third"] and list(three.train["text"]) == ["first", "second"]


def test_non_finite_gradient_stops_the_run(train_main, tmp_path, tiny_yaml, cache, monkeypatch, capsys):
    """A finite loss with an infinite gradient (an overflow in the backward) stops the run before the optimizer step
    and before any save, naming the gradient norm."""
    import accelerate
    import torch

    real = accelerate.Accelerator.clip_grad_norm_

    def overflow(self, parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        parameters[0].grad[0].fill_(torch.inf)
        return real(self, parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "clip_grad_norm_", overflow)
    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--max_steps", "2", "--data.cache_dir", str(cache)]
    assert train_main(args) == 1
    err = capsys.readouterr().err
    assert "non-finite gradient norm at step 1" in err and "no checkpoint was saved" in err, err
    assert not (out / "model").exists() and not (out / "checkpoints").exists()


def test_validation_loss_reads_the_first_eval_blocks(train_main, reference_run, tmp_path, tiny_yaml, cache):
    """With fewer eval blocks (eval_batches x batch_size = 8) than the 19 held out, val_loss is the model's loss on
    the validation file's first 8 blocks (the reference run evaluates all 19, where any order gives the same mean)."""
    import torch
    from transformers import AutoModelForCausalLM

    from hlru_lm import data as D
    from hlru_lm.training import read_state

    out = tmp_path / "o"
    args = ["--config", str(tiny_yaml), "--output_dir", str(out), "--data.cache_dir", str(cache)]
    assert train_main([*args, "--max_steps", "1", "--eval_batches", "1"]) == 0
    fingerprint = read_state(out / "checkpoints" / "step_1")["train"]["data_fingerprint"]
    metas = {d: json.loads((d / "meta.json").read_text()) for d in (cache / "tokens").iterdir()}
    [(tokens, meta)] = [(d, m) for d, m in metas.items() if D._tokens_fingerprint(m) == fingerprint]
    blocks = D.TokenBlocks(tokens / "val.bin", meta["dtype"], meta["n_val"], 64)
    assert len(blocks) > 8
    x = torch.from_numpy(blocks.get(range(8)))
    model = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    with torch.no_grad():
        loss = model(x, labels=x).loss.item()
    assert json.loads((out / "train_results.json").read_text())["val_loss"] == pytest.approx(loss, rel=1e-5)
