"""Next-token cross-entropy straight from the last hidden states, without the (tokens, vocab) logits of the batch.

The LM head's logits of a 125M model's step (65,536 tokens x 50,304 vocab) take 6.6 GB in bf16 and 13 GB in fp32,
several times over in the unfused loss and its backward. Here they exist one chunk of rows at a time: the forward
computes the loss and, in the same pass, the gradients of the hidden states and of the head's weight, which the
backward only scales (the approach of Liger-Kernel's fused linear cross-entropy). The matmuls run in the autocast
dtype like `nn.Linear` would; the softmax and the loss in float32 (on CUDA one Triton kernel per chunk: two reads and
one write of the chunk's logits, the gradient written over them).
"""

import math

import torch

IGNORE_INDEX = -100


def _chunk_loss_grad(logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor):
    """Summed loss of one chunk and d(loss * scale)/d(logits); rows with an ignored target contribute nothing."""
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


try:
    import triton
    import triton.language as tl

    _INTERPRETED = bool(triton.knobs.runtime.interpret)  # Triton's own reading of TRITON_INTERPRET, as the kernels'
except (ImportError, AttributeError):  # a checkpoint's copy of this file runs without (a recent) Triton: torch path
    triton, _INTERPRETED = None, False

if triton is not None:

    @triton.jit
    def _ce_fwd_bwd_kernel(
        logits_ptr, target_ptr, loss_ptr, scale_ptr, V, stride, IGNORE: tl.constexpr, BLOCK: tl.constexpr
    ):
        """One row: the loss, and the gradient (softmax - onehot) * scale written over the row's logits. Two reads
        and one write of the row in its own dtype, the softmax in float32."""
        row = tl.program_id(0).to(tl.int64)
        ptr = logits_ptr + row * stride
        target = tl.load(target_ptr + row)
        scale = tl.load(scale_ptr)
        big = tl.zeros([], tl.float32) - float("inf")
        total = tl.zeros([], tl.float32)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(ptr + cols, mask=cols < V, other=-float("inf")).to(tl.float32)
            new_big = tl.maximum(big, tl.max(x, 0))
            total = total * tl.exp(big - new_big) + tl.sum(tl.exp(x - new_big), 0)
            big = new_big
        lse = big + tl.log(total)
        valid = target != IGNORE
        picked = tl.load(ptr + tl.where(valid, target, 0)).to(tl.float32)
        tl.store(loss_ptr + row, tl.where(valid, lse - picked, 0.0))
        w = tl.where(valid, scale, 0.0)
        for start in range(0, V, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            x = tl.load(ptr + cols, mask=cols < V, other=0.0).to(tl.float32)
            g = tl.exp(x - lse) * w
            g = tl.where(cols == target, g - w, g)
            tl.store(ptr + cols, g.to(logits_ptr.dtype.element_ty), mask=cols < V)


def _chunk_loss_grad_triton(logits: torch.Tensor, target: torch.Tensor, scale: torch.Tensor, block: int = 4096):
    """`_chunk_loss_grad` as one kernel launch; the gradient overwrites `logits` (returned)."""
    rows, vocab = logits.shape
    loss = torch.empty(rows, dtype=torch.float32, device=logits.device)
    block = min(block, triton.next_power_of_2(vocab))
    _ce_fwd_bwd_kernel[(rows,)](
        logits, target, loss, scale.float(), vocab, logits.stride(0), IGNORE=IGNORE_INDEX, BLOCK=block, num_warps=8
    )
    return loss.sum(), logits


def _chunk_fn(logits: torch.Tensor):
    """The Triton kernel for CUDA (or interpreted) half/float inputs; the torch version elsewhere."""
    usable = triton is not None and logits.dtype != torch.float64
    if usable and (logits.is_cuda or _INTERPRETED):
        return _chunk_loss_grad_triton
    return _chunk_loss_grad


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, scale, chunk_size):
        grad_hidden = torch.empty_like(hidden)
        acc = scale.dtype  # float32, or float64 for float64 inputs
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)
        loss = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]
            logits = h @ weight.t()
            chunk_loss, g = _chunk_fn(logits)(logits, target[start : start + chunk_size], scale)
            loss += chunk_loss
            torch.mm(g, weight, out=grad_hidden[start : start + chunk_size])
            grad_weight.add_(g.t() @ h)  # the bf16 partial converts inside the add (no fp32 copy of it)
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
    chunk_size: rows per chunk (default: a power of two near 2**29 / vocab rows, about 1 GB of bf16 logits).
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
        chunk_size = 1 << max(10, int(math.log2(2**29 // vocab)))
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
        if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
            return _apply(hidden, weight, target, scale, chunk_size)
        return _loss_only(hidden, weight, target, scale, chunk_size)


def _loss_only(hidden, weight, target, scale, chunk_size) -> torch.Tensor:
    """Evaluation: the same chunks, no gradient matmuls."""
    loss = torch.zeros((), dtype=scale.dtype, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_size):
        logits = hidden[start : start + chunk_size] @ weight.t()
        loss += _chunk_fn(logits)(logits, target[start : start + chunk_size], scale)[0]
    return loss * scale


# Under torch.compile of a whole model the loss runs eagerly (its Python loop over chunks is not worth tracing).
_apply = torch.compiler.disable(_LinearCrossEntropy.apply)
