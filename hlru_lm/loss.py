"""Next-token cross-entropy straight from the last hidden states, without the (tokens, vocab) logits of the batch.

The LM head's logits of a 125M model's step (65,536 tokens x 50,304 vocab) take 6.6 GB in bf16 and 13 GB in fp32,
several times over in the unfused loss and its backward. Here they exist one chunk of rows at a time: the forward
computes the loss and, in the same pass, the gradients of the hidden states and of the head's weight, which the
backward only scales (the approach of Liger-Kernel's fused linear cross-entropy). The matmuls run in the autocast
dtype like `nn.Linear` would; the softmax and the loss in float32.
"""

import math

import torch

IGNORE_INDEX = -100


def _chunk_loss_grad(logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor):
    """Summed loss of one chunk and d(loss * scale)/d(logits), from logits in the matmul dtype; rows with an
    ignored target contribute nothing."""
    x = logits if logits.dtype == torch.float64 else logits.float()
    valid = target != IGNORE_INDEX
    safe = torch.where(valid, target, 0)
    lse = torch.logsumexp(x, dim=-1)
    picked = x.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    loss = torch.where(valid, lse - picked, 0.0).sum()
    weight = valid.to(x.dtype) * scale
    grad = torch.exp(x - lse.unsqueeze(-1)) * weight.unsqueeze(-1)
    grad[torch.arange(x.shape[0], device=x.device), safe] -= weight  # softmax - onehot(target)
    return loss, grad.to(logits.dtype)


_compiled_chunk = None


def _chunk_fn(device: torch.device):
    """On CUDA the chunk's float32 work is one fused kernel pair (the logits are read twice, the gradient written
    once); elsewhere plain torch."""
    global _compiled_chunk
    if device.type != "cuda":
        return _chunk_loss_grad
    if _compiled_chunk is None:
        _compiled_chunk = torch.compile(_chunk_loss_grad, dynamic=True)
    return _compiled_chunk


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, scale, chunk_size):
        fn = _chunk_fn(hidden.device)
        grad_hidden = torch.empty_like(hidden)
        acc = scale.dtype  # float32, or float64 for float64 inputs
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)
        loss = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]
            chunk_loss, g = fn(h @ weight.t(), target[start : start + chunk_size], scale)
            loss += chunk_loss
            grad_hidden[start : start + chunk_size] = g @ weight
            grad_weight += (g.t() @ h).to(acc)
        ctx.save_for_backward(grad_hidden, grad_weight.to(weight.dtype))
        return loss * scale

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_loss, grad_weight * grad_loss, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """The causal-LM loss of `transformers` (labels shifted left by one inside, -100 ignored, mean over the counted
    tokens, or sum / `num_items_in_batch` when given) of the logits `hidden @ weight.T`, computed in chunks.

    hidden: (B, T, d) last hidden states; weight: (V, d) the LM head; labels: (B, T) token ids or -100.
    chunk_size: rows per chunk (default: about as many logits as hidden-state elements, at least 1024 rows).
    """
    if hidden.dim() != 3 or labels.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected hidden (B, T, d) and labels (B, T), got {tuple(hidden.shape)} and {tuple(labels.shape)}"
        )
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"weight must be (vocab, {hidden.shape[-1]}), got {tuple(weight.shape)}")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    vocab, d = weight.shape
    target = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:].reshape(-1)
    hidden = hidden.reshape(-1, d)
    if chunk_size is None:
        chunk_size = max(1024, 1 << int(math.log2(max(1, hidden.shape[0] * d // vocab))))
    if num_items_in_batch is None:
        count = (target != IGNORE_INDEX).sum()
    else:
        count = torch.as_tensor(num_items_in_batch, device=hidden.device)
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    scale = 1.0 / count.clamp(min=1).to(acc)
    dev = hidden.device.type
    if torch.is_autocast_enabled(dev):  # the head's matmuls in the autocast dtype, as nn.Linear would run them
        dtype = torch.get_autocast_dtype(dev)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
    elif weight.dtype != hidden.dtype:
        hidden = hidden.to(weight.dtype)
    with torch.autocast(dev, enabled=False):
        return _LinearCrossEntropy.apply(hidden, weight, target, scale, chunk_size)
