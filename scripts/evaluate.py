"""Evaluate a model with lm-evaluation-harness; every lm-eval option works.

    python scripts/evaluate.py --model runs/tiny --tasks hlru_offline
    python scripts/evaluate.py --model runs/tiny --tasks hlru_pydoc_ppl --limit 10 --batch_size 8 --output_path out/
    python scripts/evaluate.py --model runs/tiny --tasks wikitext,lambada_openai,hellaswag     # needs the Hub

This imports ``hlru_lm`` (registering the model with the Auto classes and ``--model hlru`` with lm-eval), then runs
lm-eval's own CLI with these rewrites:
  * ``--model <dir>`` (a model folder, or a train.py run folder: its ``model/``)  ->
    ``--model hlru --model_args pretrained=<dir>``, followed by your own ``--model_args`` as you gave them (lm-eval
    merges repeated ``--model_args``: ``k=v,k2=v2``, ``k=v k2=v2`` and JSON all work);
  * ``--include_path`` gains the package's offline task directory (tasks ``hlru_pydoc_ppl``,
    ``hlru_pydoc_continuation``, tag ``hlru_offline``).
``--model hf``/``hlru`` with ``--model_args pretrained=...`` are passed through untouched.
"""

from __future__ import annotations

import os
import sys


def rewrite_argv(argv: list[str]) -> list[str]:
    from hlru_lm.lm_eval_model import TASK_DIR
    from hlru_lm.training import ConfigError, find_model_dir

    args = list(argv)
    if args and args[0] in ("run", "ls", "validate"):
        command, args = args[0], args[1:]
    else:
        command = "run"

    def pop(*names: str) -> str | None:
        for i, a in enumerate(args):
            if a in names and i + 1 < len(args):
                value = args[i + 1]
                del args[i : i + 2]
                return value
            if a.startswith(tuple(n + "=" for n in names)):
                del args[i]
                return a.split("=", 1)[1]
        return None

    model = pop("--model", "-M")
    if model is not None and (os.path.isdir(model) or os.sep in model or model.startswith(".")):
        try:
            model = find_model_dir(model)
        except ConfigError as e:
            raise SystemExit(f"error: {e}") from None
        args = ["--model_args", f"pretrained={model}", *args]  # first: the user's own --model_args merge into it
        model = "hlru"
    if model is not None:
        args += ["--model", model]
    include = pop("--include_path")
    include = f"{include}{os.pathsep if include else ''}{TASK_DIR}" if include else str(TASK_DIR)
    if command in ("run", "ls", "validate"):
        args += ["--include_path", include]
    return [command, *args]


def main(argv: list[str] | None = None) -> None:
    from lm_eval.__main__ import cli_evaluate

    import hlru_lm  # noqa: F401
    import hlru_lm.lm_eval_model  # noqa: F401  (registers --model hlru)

    argv = sys.argv[1:] if argv is None else argv
    sys.argv = ["lm-eval", *rewrite_argv(argv)]
    cli_evaluate()


if __name__ == "__main__":
    main()
