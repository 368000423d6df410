"""The model under the HF ecosystem's trainers: transformers' Trainer (padded and padding-free batches) and TRL's
SFTTrainer (padded and packed), each training a few steps, evaluating and saving a folder that reloads."""

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForLanguageModeling,
    DataCollatorWithFlattening,
    Trainer,
    TrainingArguments,
)

from .conftest import TEXT, tiny_model


def _texts() -> list[str]:
    return [f"{t} {i}" for i, t in enumerate(TEXT * 4)]  # different lengths: padded batches


def _reloads(folder, model, tokenizer) -> None:
    again = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer(TEXT[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.allclose(again(**ids).logits, model.eval()(**ids).logits, atol=1e-6)


def _args(tmp_path) -> dict:  # what both trainers share: 12 logged steps on CPU, no saving, no trackers
    return dict(
        output_dir=str(tmp_path / "out"),
        max_steps=12,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )


def _losses(history: list[dict]) -> list[float]:
    return [r["loss"] for r in history if "loss" in r]


@pytest.mark.parametrize("collator", ["padded", "padding_free"])
def test_hf_trainer(tokenizer, tmp_path, collator):
    ds = Dataset.from_dict({"text": _texts()}).map(lambda b: tokenizer(b["text"]), batched=True, remove_columns="text")
    if collator == "padded":
        data_collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    else:  # one row, position_ids restarting at every example: the state restarts there
        data_collator = DataCollatorWithFlattening()
    model = tiny_model(vocab_size=len(tokenizer)).train()
    args = TrainingArguments(**_args(tmp_path), per_device_eval_batch_size=4)
    trainer = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ds, data_collator=data_collator)
    trainer.train()
    losses = _losses(trainer.state.log_history)
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    assert torch.isfinite(torch.tensor(trainer.evaluate()["eval_loss"]))
    trainer.save_model(str(tmp_path / "saved"))
    _reloads(tmp_path / "saved", model, tokenizer)


@pytest.mark.parametrize("packing", [False, True])
def test_trl_sft_trainer(tokenizer, tmp_path, packing):
    from trl import SFTConfig, SFTTrainer

    model = tiny_model(vocab_size=len(tokenizer)).train()
    # bf16=False: TRL defaults to bf16, and its autocast would stay on the trained model's forward
    args = SFTConfig(**_args(tmp_path), max_length=32, packing=packing, bf16=False)
    ds = Dataset.from_dict({"text": _texts()})
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    trainer.train()
    losses = _losses(trainer.state.log_history)
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) < sum(losses[:3])
    trainer.save_model(str(tmp_path / "saved"))
    _reloads(tmp_path / "saved", model, tokenizer)
