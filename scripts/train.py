"""Pretrain a BD-LRU / H-LRU language model.

    accelerate launch scripts/train.py --config configs/tiny.yaml [--key value ...]
    python scripts/train.py --config configs/tiny.yaml --max_steps 50 --output_dir runs/x
    accelerate launch scripts/train.py --config configs/tiny.yaml --output_dir runs/x --resume   # continue a run

Single file, nanoGPT style: config -> guards -> tokenizer + packed token cache -> model -> Accelerate loop with
periodic validation and atomic checkpoints -> save_pretrained(output_dir). See hlru_lm/training.py for the helpers.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

import hlru_lm
from hlru_lm import data as D
from hlru_lm import training as T


def _debug_kill(kind: str, step: int) -> None:
    """Test hook: HLRU_DEBUG_KILL=<after_step|mid_save>:<k> SIGKILLs this process (no cleanup, like a crash)."""
    spec = os.environ.get("HLRU_DEBUG_KILL", "")
    if spec == f"{kind}:{step}":
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


class NonFiniteError(RuntimeError):
    pass


def _is_compile_error(e: BaseException) -> bool:
    return type(e).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _model_config(mcfg: dict, ctx: int, tokenizer=None) -> hlru_lm.HLRUConfig:
    """HLRUConfig from the `model` section; without a tokenizer (the early check) `vocab_size: auto` is a stand-in."""
    kwargs = dict(mcfg)
    if kwargs.get("vocab_size") in (None, "auto"):
        kwargs["vocab_size"] = -(-len(tokenizer) // 64) * 64 if tokenizer is not None else 64
    kwargs.setdefault("max_position_embeddings", ctx)
    if tokenizer is not None:
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            kwargs.setdefault(name, getattr(tokenizer, name))
    try:
        return hlru_lm.HLRUConfig(**kwargs)
    except (ValueError, TypeError) as e:
        raise T.ConfigError(f"model config: {e}") from None


def main(argv=None) -> int:
    try:
        _, cfg = T.parse_args(argv)
        mcfg, dcfg, tcfg, tkcfg = cfg["model"], cfg["data"], cfg["training"], cfg["tokenizer"]
        _model_config(mcfg, dcfg["context_length"])  # bad model values fail before any data work
        resume_from = T.check_output_dir(cfg)
    except (T.ConfigError, D.DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out_dir = Path(tcfg["output_dir"])

    # --- Accelerator ----------------------------------------------------------------------------------------------
    mp = tcfg["mixed_precision"]
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    report_to = tcfg["report_to"]
    if report_to == "auto":
        from accelerate.utils import is_tensorboard_available

        report_to = ["tensorboard"] if is_tensorboard_available() else None
    elif report_to in (None, "none", False):
        report_to = None
    # No accelerator device: run on CPU, which also makes `accelerate launch --multi_gpu --num_processes 2` (torchrun)
    # a gloo DDP run (accelerate 1.15's `--cpu` flag alone uses its single-process / mpirun launcher).
    has_device = (
        torch.cuda.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
        or (torch.backends.mps.is_available())
    )
    accelerator = Accelerator(
        cpu=not has_device,
        mixed_precision=mp,
        gradient_accumulation_steps=tcfg["gradient_accumulation_steps"],
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
    )
    main_proc = accelerator.is_main_process
    W, rank = accelerator.num_processes, accelerator.process_index
    set_seed(tcfg["seed"])
    cache_dir = Path(dcfg["cache_dir"] or D.default_cache_dir())
    lock = None
    if main_proc:
        try:
            ckpt_dir = T.checkpoints_dir(out_dir)  # created at the first save; probed now if it is already there
            T.check_writable([out_dir, cache_dir] + ([ckpt_dir] if ckpt_dir.exists() else []))
            lock = T.RunLock(out_dir)
            # Under the lock, look again: a run that finished between the first check and the lock left its files.
            resume_from = T.check_output_dir(cfg)
        except T.ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    # --- Tokenizer and data (the main process prepares the caches, the others then read them) ----------------------
    vocab_cfg = mcfg.get("vocab_size", "auto")
    try:
        if not tkcfg["name"] and vocab_cfg not in (None, "auto") and tkcfg["train_vocab_size"] > int(vocab_cfg):
            raise D.DataError(
                f"tokenizer.train_vocab_size={tkcfg['train_vocab_size']} exceeds model.vocab_size={vocab_cfg}"
            )
        tokenizer = D.get_tokenizer(tkcfg, None, cache_dir) if tkcfg["name"] else None
        if tokenizer is not None and vocab_cfg not in (None, "auto") and len(tokenizer) > int(vocab_cfg):
            raise D.DataError(
                f"tokenizer {tkcfg['name']!r} has {len(tokenizer)} tokens but model.vocab_size={vocab_cfg}: "
                "token ids would fall outside the embedding; raise model.vocab_size (or use vocab_size: auto)"
            )
        with accelerator.main_process_first():
            corpus = D.load_corpus(dcfg)
            if tokenizer is None:
                tokenizer = D.get_tokenizer(tkcfg, corpus, cache_dir)
            if vocab_cfg not in (None, "auto") and len(tokenizer) > int(vocab_cfg):
                raise D.DataError(f"the tokenizer has {len(tokenizer)} tokens but model.vocab_size={vocab_cfg}")
            cache = D.build_token_cache(corpus, tokenizer, dcfg, cache_dir)
    except (D.DataError, T.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ctx = dcfg["context_length"]
    train_blocks = D.TokenBlocks(cache.train_path, cache.dtype, cache.n_train, ctx)
    val_blocks = D.TokenBlocks(cache.val_path, cache.dtype, cache.n_val, ctx)
    if len(train_blocks) == 0:
        print(f"error: the corpus has {cache.n_train} training tokens, fewer than one block of {ctx}", file=sys.stderr)
        return 2
    saved = T.read_state(resume_from) if resume_from is not None else {}
    problem = T.resume_problem(saved.get("train", {}), cache.fingerprint, W)
    if problem is not None:
        print(f"error: cannot resume from {resume_from}: {problem}", file=sys.stderr)
        return 2

    # --- Model ------------------------------------------------------------------------------------------------------
    model_config = _model_config(mcfg, ctx, tokenizer)
    model = hlru_lm.HLRUForCausalLM(model_config)
    if tcfg["gradient_checkpointing"]:
        # transformers 5.25 renamed it; 5.17 has only the old name
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
    n_params = sum(p.numel() for p in model.parameters())
    compiled = tcfg["compile"] is True or (tcfg["compile"] == "auto" and accelerator.device.type == "cuda")
    if compiled:
        # every block compiled in place (one graph serves all layers; state_dict names unchanged); the embedding and
        # the fused loss stay eager. Shapes that change (last batch, eval) recompile once with dynamic shapes.
        for block in model.model.layers:
            block.compile()

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tcfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tcfg["learning_rate"],
        betas=(tcfg["adam_beta1"], tcfg["adam_beta2"]),
        eps=tcfg["adam_epsilon"],
        fused=torch.cuda.is_available() or None,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    # Our own state (step, data cursor, scheduler) is JSON in each checkpoint; accelerate loads the rest with
    # weights_only=True, so resuming a checkpoint from elsewhere runs none of its code.
    state = T.TrainState()
    state.config_hash = T.config_hash(cfg)
    state.warmup_steps = T.warmup_steps(tcfg["max_steps"], tcfg["warmup_ratio"])
    state.load_state_dict(saved.get("train", {}))
    state.data_fingerprint, state.processes = cache.fingerprint, W
    # The scheduler is stepped by hand once per optimizer step (a prepared scheduler would step W times per step).
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        T.lr_lambda(tcfg["max_steps"], state.warmup_steps, tcfg["learning_rate"], tcfg["min_learning_rate"]),
    )

    if main_proc:
        T.write_run_file(cfg, {"num_parameters": n_params, "tokenizer_vocab": len(tokenizer)})
        for p in T.clean_partial_outputs(out_dir):
            accelerator.print(f"removed incomplete output {p}")
    accelerator.wait_for_everyone()
    if resume_from is not None:
        try:
            accelerator.load_state(str(resume_from))
        except Exception as e:  # e.g. a pickle that weights_only=True refuses
            print(f"error: cannot resume from {resume_from}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        if state.config_hash != T.config_hash(cfg):
            print(f"error: checkpoint {resume_from} belongs to another config", file=sys.stderr)
            return 2
        scheduler.load_state_dict(saved["scheduler"])
        accelerator.print(f"resumed from {resume_from} at step {state.step}")
    elif tcfg["resume"]:
        accelerator.print(f"no checkpoint in {out_dir / 'checkpoints'}; starting from scratch")

    b, A = tcfg["batch_size"], tcfg["gradient_accumulation_steps"]
    tokens_per_step = b * A * W * ctx
    accelerator.print(
        f"model: {n_params / 1e6:.2f}M parameters ({model_config.mixer_type}, d={model_config.hidden_size}, "
        f"L={model_config.num_hidden_layers}, m={model_config.block_size}, N={model_config.num_blocks}) | "
        f"data: {cache.n_train:,} train / {cache.n_val:,} val tokens, vocab {len(tokenizer)} | "
        f"{W} process(es) x batch {b} x accum {A} x {ctx} tokens = {tokens_per_step:,} tokens/step | "
        f"precision {mp} | device {accelerator.device}{' | compiled' if compiled else ''}"
    )
    if report_to:
        flat = {
            f"{s}.{k}": (v if isinstance(v, (int, float, str, bool)) else str(v))
            for s, vals in cfg.items()
            for k, v in vals.items()
        }
        accelerator.init_trackers("hlru_lm", config=flat)

    schedule = T.BatchSchedule(len(train_blocks), tcfg["seed"])

    def positions(x: torch.Tensor) -> torch.Tensor | None:
        return D.document_positions(x, tokenizer.eos_token_id) if dcfg["reset_state_at_eos"] else None

    log_path = out_dir / "train_log.jsonl"

    def log(record: dict) -> None:
        if main_proc:
            with open(log_path, "a") as f:
                f.write(json.dumps({k: T.finite_or_none(v) for k, v in record.items()}, allow_nan=False) + "\n")
        if report_to:
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])

    @torch.no_grad()
    def evaluate() -> tuple[float, float]:
        n = min(len(val_blocks), tcfg["eval_batches"] * b * W)
        if n == 0:
            return float("nan"), float("nan")
        # every process runs the same number of forwards (FSDP needs it): the blocks beyond n that this takes are
        # block 0 with every label ignored, so any process count averages the same n blocks
        mine = list(range(rank, -(-n // W) * W, W))
        model.eval()
        total = torch.zeros(2, device=accelerator.device, dtype=torch.float64)
        for i in range(0, len(mine), b):
            idx = mine[i : i + b]
            x = torch.from_numpy(val_blocks.get([j if j < n else 0 for j in idx])).to(accelerator.device)
            real = torch.tensor([j < n for j in idx], device=x.device)
            labels = x.masked_fill(~real[:, None], -100)
            with accelerator.autocast():
                loss = model(
                    input_ids=x, labels=labels, use_cache=False, position_ids=positions(x), skip_logits=True
                ).loss
            k = real.sum().double()
            total += torch.stack([torch.where(k > 0, loss.double() * k, 0.0), k])
        model.train()
        total = accelerator.reduce(total, reduction="sum")
        val_loss = (total[0] / total[1]).item()
        return val_loss, math.exp(min(val_loss, 50))

    def save_checkpoint() -> None:
        root = T.checkpoints_dir(out_dir)
        tmp, final = root / f".tmp_step_{state.step}", root / f"step_{state.step}"
        if main_proc:
            root.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))  # model, optimizer, RNG of every process
        accelerator.wait_for_everyone()
        _debug_kill("mid_save", state.step)
        if main_proc:
            T.write_json(tmp / T.STATE_FILE, {"train": state.state_dict(), "scheduler": scheduler.state_dict()})
            T.publish_checkpoint(tmp, final, {"step": state.step, "config_hash": state.config_hash})
            T.prune_checkpoints(out_dir, tcfg["keep_last_checkpoints"])
        accelerator.wait_for_everyone()

    # --- Training loop ----------------------------------------------------------------------------------------------
    from tqdm.auto import tqdm

    max_steps = tcfg["max_steps"]
    pbar = tqdm(
        total=max_steps, initial=state.step, disable=not main_proc, desc="train", dynamic_ncols=True, mininterval=1.0
    )
    model.train()
    val_loss = val_ppl = float("nan")
    t_last, tokens_last = time.perf_counter(), 0
    try:
        while state.step < max_steps:
            loss_sum = torch.zeros((), device=accelerator.device)
            grad_norm = None
            for micro in range(A):
                g = state.step * A + micro  # global micro-step: the data position is a function of the step
                idx = schedule.indices(g * W * b + rank * b, b)
                x = torch.from_numpy(train_blocks.get(idx)).to(accelerator.device)
                with accelerator.accumulate(model):
                    loss = model(
                        input_ids=x, labels=x, use_cache=False, position_ids=positions(x), skip_logits=True
                    ).loss
                    loss_sum += loss.detach()
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        # max_norm inf measures without clipping; a non-finite loss or gradient stops the run before
                        # the optimizer (or any save) sees it
                        grad_norm = accelerator.clip_grad_norm_(
                            model.parameters(), tcfg["max_grad_norm"] if tcfg["max_grad_norm"] > 0 else math.inf
                        )
                        step_loss = accelerator.reduce(loss_sum / A, reduction="mean")
                        if not bool(torch.isfinite(step_loss) & torch.isfinite(grad_norm)):
                            raise NonFiniteError(
                                f"non-finite {'loss' if not torch.isfinite(step_loss) else 'gradient norm'} at step "
                                f"{state.step + 1} (loss {step_loss.item()}, gradient norm {float(grad_norm)})"
                            )
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state.step += 1
            state.samples_seen += b * A * W
            state.tokens_seen += tokens_per_step
            tokens_last += tokens_per_step
            pbar.update(1)

            last = state.step == max_steps
            if state.step % tcfg["log_interval"] == 0 or last or state.step == 1:
                train_loss = step_loss.item()
                now = time.perf_counter()
                tok_s = tokens_last / max(now - t_last, 1e-9)
                t_last, tokens_last = now, 0
                lr = scheduler.get_last_lr()[0]
                pbar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:,.0f}")
                rec = {
                    "step": state.step,
                    "loss": train_loss,
                    "lr": lr,
                    "tokens_per_s": tok_s,
                    "tokens_seen": state.tokens_seen,
                }
                if grad_norm is not None:
                    rec["grad_norm"] = float(grad_norm)
                log(rec)
                if main_proc:
                    pbar.write(
                        f"step {state.step:>6}/{max_steps} | loss {train_loss:.4f} | lr {lr:.2e} | {tok_s:,.0f} tok/s"
                    )
            if state.step % tcfg["eval_interval"] == 0 or last:
                val_loss, val_ppl = evaluate()
                log({"step": state.step, "val_loss": val_loss, "val_ppl": val_ppl})
                if main_proc:
                    pbar.write(f"step {state.step:>6}/{max_steps} | val loss {val_loss:.4f} | val ppl {val_ppl:.2f}")
                t_last = time.perf_counter()
            if state.step % tcfg["save_interval"] == 0 or last:
                save_checkpoint()
            _debug_kill("after_step", state.step)
    except NonFiniteError as e:
        pbar.close()
        last_good = T.list_checkpoints(out_dir)
        kept = f"the last good checkpoint {last_good[-1][1]} is kept" if last_good else "no checkpoint was saved"
        print(
            f"error: {e}; stopped before saving anything ({kept}). Lower the learning rate or enable "
            "training.max_grad_norm",
            file=sys.stderr,
        )
        return 1
    except Exception as e:
        if not (compiled and _is_compile_error(e)):
            raise
        pbar.close()
        print(
            f"error: torch.compile failed ({type(e).__name__}: {str(e).strip().splitlines()[0]}); "
            "train eager with --training.compile false",
            file=sys.stderr,
        )
        return 1
    pbar.close()

    # --- Final model: model, tokenizer, card and results appear together (one rename) in <output_dir>/model -------
    if math.isnan(val_loss):
        val_loss, val_ppl = evaluate()
    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)
    final_dir = out_dir / T.MODEL_DIR
    tmp_dir = out_dir / f".{T.MODEL_DIR}.tmp"
    if main_proc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir()
    accelerator.wait_for_everyone()
    unwrapped.save_pretrained(tmp_dir, is_main_process=main_proc, state_dict=state_dict, save_function=accelerator.save)
    if main_proc:
        tokenizer.model_max_length = ctx
        tokenizer.save_pretrained(tmp_dir)
        results = {
            "step": state.step,
            "tokens_seen": state.tokens_seen,
            "val_loss": T.finite_or_none(val_loss),
            "val_ppl": T.finite_or_none(val_ppl),
            "num_parameters": n_params,
        }
        T.write_json(tmp_dir / "train_results.json", results)
        (tmp_dir / "README.md").write_text(T.model_card(cfg, model_config, n_params, results, len(tokenizer)))
        _debug_kill("final_save", state.step)
        T.publish_folder(tmp_dir, final_dir)
        T.write_json(out_dir / "train_results.json", results)
        accelerator.print(
            f"saved model and tokenizer to {final_dir} | final val loss {val_loss:.4f} | val ppl {val_ppl:.2f}"
        )
        if tcfg["push_to_hub"]:
            try:
                url = T.push_to_hub(final_dir, tcfg["push_to_hub"], f"hlru-lm: step {state.step}")
            except Exception as e:  # the model stays in final_dir: say so instead of losing the run's exit code
                print(
                    f"error: push to {tcfg['push_to_hub']!r} failed ({type(e).__name__}: {e}); "
                    f"the model is saved in {final_dir}",
                    file=sys.stderr,
                )
                return 1
            accelerator.print(f"pushed {final_dir} to {url}")
    accelerator.end_training()
    if lock is not None:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
