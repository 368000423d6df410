"""Corpus loading, tokenizer training and the packed token cache used by ``scripts/train.py``.

Pipeline: a ``datasets`` source (local text/json/jsonl/parquet/csv files, a ``save_to_disk`` directory, a Hub name,
or the embedded default corpus) -> document-level train/validation split -> tokenise with ``datasets.map`` (``num_proc``
workers), append EOS -> one flat ``np.memmap`` token file per split, cached on disk under a key derived from the corpus
and the tokenizer (reused by the next run) -> fixed-length blocks read by :class:`TokenBlocks`.

The embedded default corpus is text every Python installation carries: the reference-manual topics of
``pydoc_data.topics`` plus the docstrings of the standard library's ``.py`` files (read with ``ast``, never imported).
It is deterministic for a given Python version.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
CACHE_VERSION = 2  # 2: meta.json holds the files' sha256
DATA_FILE_BUILDERS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow",
}
_SKIP_STDLIB_DIRS = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idle_test",
    "__pycache__",
    "pydoc_data",
    "lib2to3",
    "turtledemo",
    "ensurepip",
    "config-3",
}


class DataError(ValueError):
    """A problem with the corpus or the tokenizer that must stop the run before any work."""


def default_cache_dir() -> Path:
    """``$HLRU_CACHE`` or ``~/.cache/hlru_lm``."""
    return Path(os.environ.get("HLRU_CACHE", Path.home() / ".cache" / "hlru_lm")).expanduser()


def _sha(text: str | bytes, n: int = 16) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:n]


# ----------------------------------------------------------------------------------------------------------------------
# Embedded default corpus
# ----------------------------------------------------------------------------------------------------------------------


def _module_document(path: Path, modname: str) -> str | None:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return None
    parts = []
    doc = ast.get_docstring(tree)
    if doc:
        parts.append(f"Module {modname}\n\n{doc.strip()}")

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                name = prefix + node.name
                d = ast.get_docstring(node)
                if d:
                    parts.append(f"class {name}:\n{d.strip()}")
                visit(node.body, name + ".")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and (not node.name.startswith("_") or node.name == "__init__"):
                    try:
                        sig = ast.unparse(node.args)
                    except Exception:  # pragma: no cover - ast.unparse handles all valid code
                        sig = "..."
                    parts.append(f"def {prefix}{node.name}({sig}):\n{d.strip()}")

    visit(tree.body, modname + ".")
    if not parts:
        return None
    return "\n\n".join(parts)


def iter_embedded_documents(max_documents: int | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(doc_id, text)``: every ``pydoc_data.topics`` topic, then one document per standard-library module.

    Order and content depend only on the Python installation (sorted walk, no imports of the modules themselves).
    Parsed once per process and memoised.
    """
    yield from _embedded_documents(max_documents)


@functools.lru_cache(maxsize=4)
def _embedded_documents(max_documents: int | None) -> tuple[tuple[str, str], ...]:
    return tuple(_walk_embedded_documents(max_documents))


def _walk_embedded_documents(max_documents: int | None = None) -> Iterator[tuple[str, str]]:
    import pydoc_data.topics

    n = 0
    for name in sorted(pydoc_data.topics.topics):
        text = pydoc_data.topics.topics[name].strip()
        if text:
            yield f"topic:{name}", text
            n += 1
            if max_documents is not None and n >= max_documents:
                return
    root = Path(sysconfig.get_paths()["stdlib"])
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_STDLIB_DIRS and not d.startswith((".", "config-")))
        for fname in sorted(filenames):
            if not fname.endswith(".py"):
                continue
            path = Path(dirpath) / fname
            rel = path.relative_to(root).with_suffix("")
            modname = ".".join(rel.parts)
            if modname.endswith(".__init__"):
                modname = modname[: -len(".__init__")]
            text = _module_document(path, modname)
            if text:
                yield f"stdlib:{rel.as_posix()}", text
                n += 1
                if max_documents is not None and n >= max_documents:
                    return


def is_validation(key: str, val_fraction: float) -> bool:
    """Deterministic document-level split: a document is held out iff a hash of its key falls below ``val_fraction``."""
    if val_fraction <= 0:
        return False
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF < val_fraction


def embedded_corpus(
    split: str = "train", val_fraction: float = 0.05, max_documents: int | None = None
) -> list[dict[str, str]]:
    """Documents (``{"id", "text"}``) of the embedded corpus, ``split`` in {"train", "validation", "all"}."""
    if split not in ("train", "validation", "all"):
        raise ValueError(f"split must be train, validation or all, got {split!r}")
    out = []
    for doc_id, text in iter_embedded_documents(max_documents):
        val = is_validation(doc_id, val_fraction)
        if split == "all" or (split == "validation") == val:
            out.append({"id": doc_id, "text": text})
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Corpus loading
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    """Train and validation documents, each a ``datasets.Dataset`` (or ``IterableDataset``) with a ``text`` column."""

    train: object
    validation: object
    fingerprint: str
    streaming: bool = False


def _looks_like_path(source: str) -> bool:
    return (
        source.startswith((".", "/", "~")) or Path(source).suffix.lower() in DATA_FILE_BUILDERS or Path(source).exists()
    )


def _load_local(source: str, load):
    """Run a local-file load, turning a file that cannot be parsed (binary, not UTF-8, malformed JSON / CSV) into a
    DataError naming it instead of a traceback from deep inside datasets."""
    try:
        return load()
    except Exception as e:
        cause = e
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        raise DataError(f"corpus {source!r} could not be read: {type(cause).__name__}: {str(cause)[:200]}") from None


def _content_fingerprint(ds) -> str:
    """The data behind a non-streaming dataset: its Arrow cache files (name, size, mtime), or its texts when it lives
    in memory (no private datasets attributes)."""
    files = [f["filename"] for f in ds.cache_files]
    if files:
        return _sha(json.dumps([(f, os.path.getsize(f), os.path.getmtime(f)) for f in files]), 32)
    return _sha(json.dumps(list(ds["text"])), 32)


def _local_files_fingerprint(path: Path) -> str:
    """A local corpus file or folder by its files' names, sizes and modification times."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return _sha(json.dumps([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]), 32)


def _validation_split(source: str, path: Path, val_split: str, data_cfg: dict, text_field: str):
    """The named split of a saved DatasetDict, a data folder or a Hub dataset, as a dataset with a text column."""
    import datasets

    if path.is_file():
        raise DataError(
            f"data.validation_split={val_split!r} needs a corpus with splits (a folder, a saved DatasetDict or a Hub "
            f"dataset); the file {source!r} has only one: use data.val_fraction instead"
        )
    if path.is_dir() and (path / "dataset_dict.json").exists():
        splits = datasets.load_from_disk(str(path))
        if val_split not in splits:
            raise DataError(f"saved dataset {source!r} has splits {list(splits)}, not {val_split!r}")
        val = splits[val_split]
    else:
        try:
            val = datasets.load_dataset(
                source if not path.exists() else str(path), data_cfg.get("config_name"), split=val_split
            )
        except ValueError as e:  # datasets: 'Unknown split "x". Should be one of [...]'
            raise DataError(f"data.validation_split={val_split!r}: {e}") from None
    if text_field not in val.column_names:
        raise DataError(f"split {val_split!r} of {source!r} has no column {text_field!r} (columns: {val.column_names})")
    val = val.rename_column(text_field, "text") if text_field != "text" else val
    return val.select_columns(["text"])


def _count_nonempty(ds, text_field: str) -> int:
    col = ds[text_field]
    return sum(1 for t in col if t and str(t).strip())


def load_corpus(data_cfg: dict) -> Corpus:
    """Load the corpus described by the ``data`` section of a training config; raise :class:`DataError` if it is
    missing or empty."""
    import datasets

    source = data_cfg.get("source") or "embedded"
    text_field = data_cfg.get("text_field") or "text"
    val_fraction = float(data_cfg.get("val_fraction") or 0.0)
    max_documents = data_cfg.get("max_documents")
    streaming = bool(data_cfg.get("streaming"))
    if data_cfg.get("validation_split") and (source == "embedded" or streaming):
        raise DataError(
            f"data.validation_split={data_cfg['validation_split']!r} needs a non-streaming corpus with splits (a "
            "folder, a saved DatasetDict or a Hub dataset); "
            + (
                "streaming holds out data.val_documents"
                if streaming
                else "the embedded corpus has one: use data.val_fraction"
            )
        )

    if source == "embedded":
        docs = list(iter_embedded_documents(max_documents))
        if not docs:
            raise DataError("the embedded corpus is empty on this Python installation")
        train = [{"text": t} for k, t in docs if not is_validation(k, val_fraction)]
        val = [{"text": t} for k, t in docs if is_validation(k, val_fraction)]
        fp = _sha(json.dumps(["embedded", sys.version_info[:3], val_fraction, [(k, _sha(t)) for k, t in docs]]), 32)
        empty = datasets.Dataset.from_dict({"text": []})
        return Corpus(
            datasets.Dataset.from_list(train) if train else empty, datasets.Dataset.from_list(val) if val else empty, fp
        )

    split = data_cfg.get("split") or "train"
    path = Path(source).expanduser()
    if _looks_like_path(source) and not path.exists():
        raise DataError(f"corpus not found: {source!r} does not exist")

    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DataError(f"saved dataset {source!r} has splits {list(ds)}, not {split!r}")
            ds = ds[split]
        streaming = False
    elif path.is_file() or path.is_dir():
        if path.is_file():
            builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise DataError(
                    f"unsupported corpus file type {path.suffix!r} (use one of {sorted(DATA_FILE_BUILDERS)})"
                )
            if path.stat().st_size == 0:
                raise DataError(f"corpus file {source!r} is empty")
            kwargs = {"data_files": {"train": str(path)}}
            if builder == "text":
                kwargs["sample_by"] = data_cfg.get("sample_by") or "paragraph"
            ds = _load_local(
                source, lambda: datasets.load_dataset(builder, split="train", streaming=streaming, **kwargs)
            )
        else:
            files = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in DATA_FILE_BUILDERS]
            if not files:
                raise DataError(f"corpus directory {source!r} contains no data files ({sorted(DATA_FILE_BUILDERS)})")
            kwargs = {}
            if all(DATA_FILE_BUILDERS[p.suffix.lower()] == "text" for p in files):
                kwargs["sample_by"] = data_cfg.get("sample_by") or "paragraph"
            ds = _load_local(
                source, lambda: datasets.load_dataset(str(path), split=split, streaming=streaming, **kwargs)
            )
    else:  # a Hub dataset name
        try:
            ds = datasets.load_dataset(source, data_cfg.get("config_name"), split=split, streaming=streaming)
        except (ConnectionError, FileNotFoundError, ValueError) as e:  # offline, unknown name, unknown split
            raise DataError(
                f"corpus {source!r} is no local file or folder, and loading it as a Hub dataset failed: "
                f"{type(e).__name__}: {str(e)[:300]}"
            ) from None

    if not streaming and text_field not in ds.column_names:
        raise DataError(
            f"corpus {source!r} has no column {text_field!r} (columns: {ds.column_names}); set data.text_field"
        )
    if text_field != "text":
        ds = ds.rename_column(text_field, "text") if not streaming else ds.map(lambda e: {"text": e[text_field]})

    def keep_text(e):
        return bool(e["text"]) and bool(str(e["text"]).strip())

    if streaming:
        n_val = int(data_cfg.get("val_documents") or 0)
        ds = ds.select_columns(["text"]) if hasattr(ds, "select_columns") else ds
        ds = ds.filter(keep_text)
        val = ds.take(n_val)
        train = ds.skip(n_val)
        if max_documents is not None:
            train = train.take(int(max_documents))
        fp = _sha(
            json.dumps(
                [
                    "stream",
                    source,
                    _local_files_fingerprint(path) if path.exists() else None,  # a Hub dataset: its name only
                    data_cfg.get("config_name"),
                    split,
                    text_field,
                    data_cfg.get("sample_by"),
                    n_val,
                    max_documents,
                    data_cfg.get("max_train_tokens"),
                ]
            ),
            32,
        )
        return Corpus(train, val, fp, streaming=True)

    ds = ds.select_columns(["text"])
    if max_documents is not None:
        ds = ds.select(range(min(int(max_documents), len(ds))))
    if len(ds) == 0 or _count_nonempty(ds, "text") == 0:
        raise DataError(f"corpus {source!r} is empty (no non-blank documents in column {text_field!r})")
    ds = ds.filter(keep_text)
    val_split = data_cfg.get("validation_split")
    fp = _sha(json.dumps(["ds", source, split, max_documents, val_fraction, _content_fingerprint(ds)]), 32)
    if val_split:
        val = _validation_split(source, path, val_split, data_cfg, text_field)
        fp = _sha(json.dumps([fp, val_split, _content_fingerprint(val)]), 32)
        return Corpus(ds, val.filter(keep_text), fp)
    flags = [is_validation(f"{i}:{_sha(t)}", val_fraction) for i, t in enumerate(ds["text"])]
    val_idx = [i for i, f in enumerate(flags) if f]
    train_idx = [i for i, f in enumerate(flags) if not f]
    if not val_idx and val_fraction > 0 and len(ds) > 1:  # tiny corpora: hold out the last document
        val_idx, train_idx = train_idx[-1:], train_idx[:-1]
    return Corpus(ds.select(train_idx), ds.select(val_idx), fp)


# ----------------------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------------------


def _iter_texts(ds, batch: int = 1000) -> Iterator[list[str]]:
    buf = []
    for ex in ds:
        buf.append(ex["text"])
        if len(buf) >= batch:
            yield buf
            buf = []
    if buf:
        yield buf


def train_bpe_tokenizer(texts: Iterable[list[str]], vocab_size: int, min_frequency: int = 2):
    """Train a byte-level BPE with ``tokenizers`` and wrap it as a standard ``PreTrainedTokenizerFast``.

    ``<|endoftext|>`` (id 0) is BOS/EOS, ``<|pad|>`` (id 1) is padding.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=int(vocab_size),
        min_frequency=int(min_frequency),
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((t for batch in texts for t in batch), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        clean_up_tokenization_spaces=False,
    )


def load_pretrained_tokenizer(name: str):
    """Any ``AutoTokenizer`` name or path; a pad token is added as EOS when missing."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name)
    except Exception as e:  # OSError offline, ValueError for unknown types
        raise DataError(f"could not load tokenizer {name!r}: {e}") from e
    if tok.eos_token is None:
        raise DataError(f"tokenizer {name!r} has no EOS token; documents could not be separated")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def get_tokenizer(tok_cfg: dict, corpus: Corpus | None, cache_dir: Path):
    """The tokenizer named in ``tok_cfg["name"]``, or a byte-level BPE trained on the corpus' train split (cached)."""
    from transformers import AutoTokenizer

    if tok_cfg.get("name"):
        return load_pretrained_tokenizer(tok_cfg["name"])
    if corpus is None:
        raise ValueError("training a tokenizer needs the corpus")
    vocab = int(tok_cfg.get("train_vocab_size") or 4096)
    min_freq = int(tok_cfg.get("min_frequency") or 2)
    key = _sha(json.dumps(["bpe", CACHE_VERSION, corpus.fingerprint, vocab, min_freq]), 24)
    out = Path(cache_dir) / "tokenizers" / key
    if (out / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(str(out))
    tok = train_bpe_tokenizer(_iter_texts(corpus.train), vocab, min_freq)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_mkdir(out.parent)))
    tok.save_pretrained(str(tmp))
    _atomic_publish(tmp, out)
    return AutoTokenizer.from_pretrained(str(out))


def tokenizer_fingerprint(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    return _sha(json.dumps([body, tokenizer.eos_token_id, len(tokenizer)]), 32)


# ----------------------------------------------------------------------------------------------------------------------
# Token cache
# ----------------------------------------------------------------------------------------------------------------------


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _atomic_publish(tmp: Path, final: Path) -> None:
    """Rename a fully written temp dir into place; if another writer won the race, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            raise


@dataclass
class TokenCache:
    directory: Path
    dtype: str
    n_train: int
    n_val: int
    fingerprint: str  # of the tokens' contents and the tokenizer: what a resumed run must see again

    @property
    def train_path(self) -> Path:
        return self.directory / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.directory / "val.bin"


def _tokenize_batch(batch, tokenizer, eos_id):
    ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
    ids = [x + [eos_id] for x in ids]
    return {"ids": ids, "len": [len(x) for x in ids]}


def _write_split(ds, path: Path, dtype, tokenizer, num_proc, streaming: bool, max_tokens: int | None) -> int:
    eos = tokenizer.eos_token_id
    if streaming:
        n = 0
        with open(path, "wb") as f:
            for texts in _iter_texts(ds, 1000):
                for x in _tokenize_batch({"text": texts}, tokenizer, eos)["ids"]:
                    arr = np.asarray(x, dtype=dtype)
                    if max_tokens is not None and n + len(arr) > max_tokens:
                        arr = arr[: max_tokens - n]
                    f.write(arr.tobytes())
                    n += len(arr)
                    if max_tokens is not None and n >= max_tokens:
                        return n
        return n
    if len(ds) == 0:
        path.write_bytes(b"")
        return 0
    tok_ds = ds.map(
        _tokenize_batch,
        fn_kwargs={"tokenizer": tokenizer, "eos_id": eos},
        batched=True,
        remove_columns=ds.column_names,
        num_proc=num_proc if num_proc and num_proc > 1 and len(ds) >= 4 * num_proc else None,
        desc=f"tokenizing {path.stem}",
    )
    total = int(np.sum(tok_ds["len"], dtype=np.int64))
    if max_tokens is not None:
        total = min(total, int(max_tokens))
    arr = np.memmap(path, dtype=dtype, mode="w+", shape=(max(total, 1),))
    pos = 0
    n_shards = max(1, min(64, len(tok_ds) // 256))
    for i in range(n_shards):
        shard = tok_ds.shard(n_shards, i, contiguous=True).with_format("numpy")
        chunk = np.concatenate([np.asarray(x) for x in shard["ids"]]) if len(shard) else np.zeros(0)
        chunk = chunk[: total - pos]
        arr[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
        if pos >= total:
            break
    arr.flush()
    del arr
    if total == 0:
        path.write_bytes(b"")
    return total


def build_token_cache(corpus: Corpus, tokenizer, data_cfg: dict, cache_dir: Path) -> TokenCache:
    """Tokenise and pack the corpus into ``train.bin`` / ``val.bin`` memmaps, reusing a cache with the same key."""
    dtype = "uint16" if len(tokenizer) <= 65535 else "uint32"
    max_train_tokens = data_cfg.get("max_train_tokens")
    key = _sha(
        json.dumps(["tokens", CACHE_VERSION, corpus.fingerprint, tokenizer_fingerprint(tokenizer), max_train_tokens]),
        24,
    )
    out = Path(cache_dir) / "tokens" / key
    meta_path = out / "meta.json"
    if meta_path.exists():
        problem = _cache_problem(out)
        if problem is None:
            meta = json.loads(meta_path.read_text())
            return TokenCache(out, meta["dtype"], meta["n_train"], meta["n_val"], _tokens_fingerprint(meta))
        warnings.warn(f"token cache {out} is damaged ({problem}); rebuilding it", stacklevel=2)
        stale = out.with_name(f".{key}.stale-{os.getpid()}")
        os.rename(out, stale)
        shutil.rmtree(stale, ignore_errors=True)
    num_proc = data_cfg.get("num_proc")
    if num_proc is None:
        num_proc = min(os.cpu_count() or 1, 8)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_mkdir(out.parent)))
    try:
        n_train = _write_split(
            corpus.train, tmp / "train.bin", dtype, tokenizer, num_proc, corpus.streaming, max_train_tokens
        )
        n_val = _write_split(corpus.validation, tmp / "val.bin", dtype, tokenizer, num_proc, corpus.streaming, None)
        meta = {
            "dtype": dtype,
            "n_train": n_train,
            "n_val": n_val,
            "sha256": {name: file_sha256(tmp / name) for name in ("train.bin", "val.bin")},
            "corpus": corpus.fingerprint,
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "version": CACHE_VERSION,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _atomic_publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TokenCache(out, dtype, n_train, n_val, _tokens_fingerprint(meta))


def _tokens_fingerprint(meta: dict) -> str:
    return _sha(json.dumps([meta["sha256"], meta.get("tokenizer")], sort_keys=True), 32)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_problem(directory: Path) -> str | None:
    """Why a published token cache cannot be trusted (unreadable meta, a file missing, resized or changed), or None.
    The checksums are read back on every reuse: hashing costs about a second per GB, a silently corrupted corpus
    costs a run."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        sums, itemsize = meta["sha256"], np.dtype(meta["dtype"]).itemsize
        sizes = {"train.bin": meta["n_train"], "val.bin": meta["n_val"]}
    except (OSError, ValueError, KeyError, TypeError):
        return "meta.json is unreadable or from an older version"
    for name, n in sizes.items():
        f = directory / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != n * itemsize:
            return f"{name} has {f.stat().st_size} bytes, expected {n * itemsize}"
        if file_sha256(f) != sums[name]:
            return f"{name} does not match its checksum"
    return None


def document_positions(ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    """HF padding-free position_ids for packed token blocks: steps since the last EOS (0 right after one, and at the
    start of each row)."""
    idx = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    starts = torch.zeros_like(ids, dtype=torch.bool)
    starts[:, 1:] = ids[:, :-1] == eos_id
    return idx - torch.where(starts, idx, 0).cummax(dim=1).values


class TokenBlocks:
    """Non-overlapping blocks of ``block_size`` tokens from a flat token memmap (re-opened per read, nanoGPT style)."""

    def __init__(self, path: Path, dtype: str, n_tokens: int, block_size: int):
        self.path, self.dtype, self.n_tokens, self.block_size = Path(path), dtype, int(n_tokens), int(block_size)
        self.num_blocks = self.n_tokens // self.block_size

    def __len__(self) -> int:
        return self.num_blocks

    def get(self, indices) -> np.ndarray:
        data = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_tokens,))
        T = self.block_size
        out = np.stack([np.asarray(data[i * T : (i + 1) * T]) for i in indices]).astype(np.int64)
        del data
        return out
