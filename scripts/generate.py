"""Stream text from a trained model, token by token.

python scripts/generate.py --model runs/tiny --prompt "The import statement"
python scripts/generate.py --model runs/tiny --prompt "def " --greedy --max_new_tokens 60
"""

from __future__ import annotations

import argparse
import queue
import sys
from threading import Event, Thread

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, TextIteratorStreamer

import hlru_lm  # noqa: F401  (registers model_type "hlru" with the Auto classes)
from hlru_lm.training import ConfigError, find_model_dir


class _StopWhenSet(StoppingCriteria):
    """Ends generate() at the next token once the event is set (the reader gave up waiting)."""

    def __init__(self, event: Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _argument_problem(args: argparse.Namespace) -> str | None:
    checks = [
        (args.max_new_tokens >= 1, f"--max_new_tokens must be >= 1, got {args.max_new_tokens}"),
        (args.timeout > 0, f"--timeout must be > 0 seconds, got {args.timeout}"),
        (args.repetition_penalty > 0, f"--repetition_penalty must be > 0, got {args.repetition_penalty}"),
    ]
    if not args.greedy:
        checks += [
            (
                args.temperature > 0,
                f"--temperature must be > 0 (use --greedy for greedy decoding), got {args.temperature}",
            ),
            (args.top_k >= 0, f"--top_k must be >= 0 (0: no limit), got {args.top_k}"),
            (0 < args.top_p <= 1, f"--top_p must be in (0, 1], got {args.top_p}"),
        ]
    if args.device is not None:
        try:
            device = torch.device(args.device)
        except RuntimeError as e:
            return f"--device {args.device!r}: {e}"
        if device.type == "cuda" and not torch.cuda.is_available():
            return f"--device {args.device!r}: CUDA is not available on this machine"
    return next((message for ok, message in checks if not ok), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", required=True, help="a run folder of scripts/train.py (its model/), or any hlru model folder"
    )
    p.add_argument("--prompt", action="append", required=True, help="prompt text; repeat for several prompts")
    p.add_argument("--max_new_tokens", type=int, default=80)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top_k", type=int, default=50)
    p.add_argument("--top_p", type=float, default=0.95)
    p.add_argument("--repetition_penalty", type=float, default=1.1)
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the next token before giving up")
    args = p.parse_args(argv)
    problem = _argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        model_dir = find_model_dir(args.model)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not all(args.prompt):
        print("error: --prompt is empty: give at least one character to continue from", file=sys.stderr)
        return 2

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).to(device).eval()
    torch.manual_seed(args.seed)

    for prompt in args.prompt:
        inputs = tokenizer(prompt, return_tensors="pt").to(device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=args.timeout)
        give_up = Event()
        gen_kwargs = dict(
            **inputs,
            streamer=streamer,
            stopping_criteria=[_StopWhenSet(give_up)],
            max_new_tokens=args.max_new_tokens,
            do_sample=not args.greedy,
            repetition_penalty=args.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        )
        if not args.greedy:
            gen_kwargs.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
        error: list[BaseException] = []

        def run(kw=gen_kwargs, err=error, streamer=streamer):
            try:
                with torch.no_grad():
                    model.generate(**kw)
            except BaseException as e:  # surfaced below
                err.append(e)
                streamer.end()

        thread = Thread(target=run, daemon=True)
        thread.start()
        sys.stdout.write(prompt)
        sys.stdout.flush()
        try:
            for text in streamer:
                sys.stdout.write(text)
                sys.stdout.flush()
        except queue.Empty:
            give_up.set()  # generate() stops at its next token; wait for it, so nothing runs at exit
            thread.join()
            sys.stdout.write("\n")
            print(f"error: no new token within --timeout {args.timeout:g} s; generation stopped", file=sys.stderr)
            return 2
        thread.join()
        sys.stdout.write("\n")
        if error:
            raise error[0]
        if len(args.prompt) > 1:
            sys.stdout.write("-" * 60 + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
