"""Functional ops of the BD-LRU and H-LRU recurrences (Dubinin, Orvieto & Effenberger, 2026), torch side.

One file, so that a saved checkpoint can carry it (transformers copies only single-file relative imports):
gate normalisation phi, the readable Python loop over time ("naive", the reference), the chunked parallel scan
("torch"), and the public scans and steps, which validate their inputs and choose the backend. Backends: "naive",
"torch", "triton" (fused-gate GPU kernels from `hlru_lm.kernels`), "auto" (triton on CUDA tensors when available,
else torch).
"""

import contextlib
import warnings

import torch

BACKENDS = ("auto", "torch", "naive", "triton")

__all__ = [
    "BACKENDS",
    "GATE_NORMS",
    "bdlru_scan",
    "bdlru_step",
    "hlru_scan",
    "hlru_step",
    "normalize_gates",
    "state_dtype",
]


# --- gate normalisation phi ---------------------------------------------------------------------------------

GATE_NORMS = ("softmax", "sigmoid_l1", "relu_l1", "none")
# relu_l1 divides by sum(relu(z)) + eps: an all-negative row gives P = 0 (the state decays to 0), never NaN.
RELU_L1_EPS = 1e-6


def check_gate_norm(gate_norm: str) -> None:
    if gate_norm not in GATE_NORMS:
        raise ValueError(f"gate_norm must be one of {GATE_NORMS}, got {gate_norm!r}")


def normalize_gates(z: torch.Tensor, gate_norm: str) -> torch.Tensor:
    """phi(z) along the last axis: softmax, sigma(z)/sum sigma(z), relu(z)/(sum relu(z) + eps), or identity."""
    check_gate_norm(gate_norm)
    if gate_norm == "softmax":
        return torch.softmax(z, dim=-1)
    if gate_norm == "sigmoid_l1":
        # sigma(z) / sum sigma(z) as a softmax of log sigma(z): exact, and finite where every sigma(z) of a row
        # underflows (fp32: z < -88.7), which would otherwise give 0 / 0.
        return torch.softmax(torch.nn.functional.logsigmoid(z), dim=-1)
    if gate_norm == "relu_l1":
        r = torch.relu(z)
        return r / (r.sum(dim=-1, keepdim=True) + RELU_L1_EPS)
    return z


# --- reference: a Python loop over time ----------------------------------------------------------------------


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The recurrent state accumulates in float32 (float64 when the inputs are float64)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _state_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off for the scans' matmuls: under autocast they would run in bf16 / fp16 and round the state at
    every step (the state accumulates in float32 whatever the model's autocast)."""
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def naive_bdlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One BD-LRU token: gate_logits (B,N,m,m+1), v (B,N,m), state (B,N,m) -> (h in v.dtype, new float32 state)."""
    acc = state_dtype(v.dtype)
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    m = v.shape[-1]
    with _state_precision(v.device):
        h = (p[..., :m] @ state.to(acc).unsqueeze(-1)).squeeze(-1) + p[..., m] * v.to(acc)
    return h.to(v.dtype), h


def naive_hlru_step(
    gate_logits: torch.Tensor, v: torch.Tensor, state: torch.Tensor, gate_norm: str = "softmax"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One H-LRU token: gate_logits (B,N,m+1), v (B,N), state (B,N,m) with state[..., k] = x_{t-1-k}.

    Returns (y, new_state), both the shifted state (x_t, x_{t-1}, ..., x_{t-m+1}); y in v.dtype, new_state float32.
    """
    acc = state_dtype(v.dtype)
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    m = state.shape[-1]
    state = state.to(acc)
    x = (p[..., :m] * state).sum(-1) + p[..., m] * v.to(acc)
    new_state = torch.cat([x.unsqueeze(-1), state[..., : m - 1]], dim=-1)
    return new_state.to(v.dtype), new_state


def naive_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    state, hs = initial_state, []
    for z_t, v_t in zip(gate_logits.unbind(1), v.unbind(1), strict=True):  # not [:, t]: see affine_scan
        h, state = naive_bdlru_step(z_t, v_t, state, gate_norm)
        hs.append(h)
    return torch.stack(hs, dim=1), state


def naive_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str
) -> tuple[torch.Tensor, torch.Tensor]:
    state, ys = initial_state, []
    for z_t, v_t in zip(gate_logits.unbind(1), v.unbind(1), strict=True):  # not [:, t]: see affine_scan
        y, state = naive_hlru_step(z_t, v_t, state, gate_norm)
        ys.append(y)
    return torch.stack(ys, dim=1), state


# --- parallel torch path: chunked affine scan ----------------------------------------------------------------


def affine_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_size: int = 64) -> torch.Tensor:
    """h_t = a_t @ h_{t-1} + b_t for a (B,T,N,m,m), b (B,T,N,m), h0 (B,N,m); returns h (B,T,N,m)."""
    bsz, seqlen, nblocks, m = b.shape
    chunk = min(chunk_size, seqlen)
    n_chunks = -(-seqlen // chunk)
    pad = n_chunks * chunk - seqlen
    if pad:  # identity maps at the end leave the state unchanged; sliced off below
        eye = torch.eye(m, dtype=a.dtype, device=a.device).expand(bsz, pad, nblocks, m, m)
        a = torch.cat([a, eye], dim=1)
        b = torch.cat([b, b.new_zeros(bsz, pad, nblocks, m)], dim=1)
    a = a.reshape(bsz, n_chunks, chunk, nblocks, m, m)
    b = b.reshape(bsz, n_chunks, chunk, nblocks, m, 1)
    # Inclusive scan of map compositions within each chunk: (A2, b2) o (A1, b1) = (A2 A1, A2 b1 + b2).
    offset = 1
    while offset < chunk:
        a_prev, b_prev = a[:, :, :-offset], b[:, :, :-offset]
        a_cur, b_cur = a[:, :, offset:], b[:, :, offset:]
        a = torch.cat([a[:, :, :offset], a_cur @ a_prev], dim=2)
        b = torch.cat([b[:, :, :offset], a_cur @ b_prev + b_cur], dim=2)
        offset *= 2
    # Carry the state across chunks: start_c = A_end(c-1) start_{c-1} + b_end(c-1).
    # unbind, not a[:, c, -1] per chunk: an index's backward writes a zero gradient of all of a (O(T^2) in all)
    starts, h = [], h0.unsqueeze(-1)
    for a_end, b_end in zip(a[:, :, -1].unbind(1), b[:, :, -1].unbind(1), strict=True):
        starts.append(h)
        h = a_end @ h + b_end
    start = torch.stack(starts, dim=1).unsqueeze(2)  # (B, n_chunks, 1, N, m, 1)
    out = (a @ start + b).reshape(bsz, n_chunks * chunk, nblocks, m)
    return out[:, :seqlen]


def chunk_bdlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str, chunk_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    acc = state_dtype(v.dtype)
    m = v.shape[-1]
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    with _state_precision(v.device):
        h = affine_scan(p[..., :m], p[..., m] * v.to(acc), initial_state.to(acc), chunk_size)
    return h.to(v.dtype), h[:, -1].clone()  # a view would keep all of h alive in a cache


def chunk_hlru_scan(
    gate_logits: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor, gate_norm: str, chunk_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    acc = state_dtype(v.dtype)
    bsz, seqlen, nch = v.shape
    m = initial_state.shape[-1]
    p = normalize_gates(gate_logits.to(acc), gate_norm)
    # Companion form: first row mixes the m lags, the sub-diagonal shifts them by one.
    shift = torch.eye(m - 1, m, dtype=acc, device=v.device).expand(bsz, seqlen, nch, m - 1, m)
    a = torch.cat([p[..., :m].unsqueeze(-2), shift], dim=-2)
    b = torch.cat([(p[..., m] * v.to(acc)).unsqueeze(-1), p.new_zeros(bsz, seqlen, nch, m - 1)], dim=-1)
    with _state_precision(v.device):
        y = affine_scan(a, b, initial_state.to(acc), chunk_size)
    return y.to(v.dtype), y[:, -1].clone()  # a view would keep all of y alive in a cache


# --- public ops ----------------------------------------------------------------------------------------------


def _check_common(v: torch.Tensor, gate_logits: torch.Tensor, gate_norm: str, backend: str) -> None:
    check_gate_norm(gate_norm)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    for name, x in (("gate_logits", gate_logits), ("v", v)):
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if gate_logits.device != v.device:
        raise ValueError(f"gate_logits is on {gate_logits.device} but v is on {v.device}")
    if 0 in v.shape:
        raise ValueError(f"v has an empty axis (shape {tuple(v.shape)}): the scans need at least one step and channel")


def _initial_state(initial_state: torch.Tensor | None, shape: tuple[int, ...], v: torch.Tensor) -> torch.Tensor:
    if initial_state is None:
        return torch.zeros(shape, dtype=state_dtype(v.dtype), device=v.device)
    if tuple(initial_state.shape) != shape:
        raise ValueError(f"initial_state must have shape {shape}, got {tuple(initial_state.shape)}")
    if initial_state.device != v.device:
        raise ValueError(f"initial_state is on {initial_state.device} but v is on {v.device}")
    if not initial_state.is_floating_point():
        raise ValueError(f"initial_state must be a real floating-point tensor, got {initial_state.dtype}")
    return initial_state


_warned: set = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(msg, stacklevel=4)


def _use_triton(backend: str, v: torch.Tensor, m: int, op: str) -> bool:
    """Whether the call runs the Triton kernels. The only place the torch fallback is decided: "triton" and "auto"
    on CUDA take the kernels unless m is not in their SUPPORTED_M, the inputs are float64 (they accumulate in fp32)
    or the tensors are on the CPU outside Triton's interpreter (TRITON_INTERPRET=1); then a one-time warning and the
    torch scan."""
    if backend == "triton":
        if _kernels() is None:
            raise ValueError("backend='triton' needs the hlru-lm package with Triton installed (pip install hlru-lm)")
    elif not (backend == "auto" and v.is_cuda and _kernels() is not None):
        return False
    supported = _kernels().SUPPORTED_M
    if m not in supported:
        _warn_once(f"{op}-m{m}", f"hlru_lm Triton {op}: m={m} not in {supported}; falling back to the torch scan")
        return False
    if v.dtype == torch.float64:
        _warn_once(f"{op}-f64", f"hlru_lm Triton {op}: float64 inputs use the torch scan (kernels accumulate in fp32)")
        return False
    if not v.is_cuda and not _kernels().INTERPRETED:
        _warn_once(f"{op}-cpu", f"hlru_lm Triton {op}: CPU tensor without TRITON_INTERPRET=1; using the torch scan")
        return False
    return True


def _kernels():
    """The Triton kernels of the installed hlru-lm package, or None. Imported absolutely and inside try, so this file
    also runs as a checkpoint's remote code on a machine without hlru-lm or Triton (the torch path)."""
    try:
        import triton  # noqa: F401

        from hlru_lm import kernels
    except ImportError:
        return None
    return kernels


def _check_pos_in_doc(pos_in_doc: torch.Tensor | None, v: torch.Tensor) -> None:
    if pos_in_doc is None:
        return
    integer = not (pos_in_doc.is_floating_point() or pos_in_doc.is_complex() or pos_in_doc.dtype == torch.bool)
    if tuple(pos_in_doc.shape) != tuple(v.shape[:2]) or not integer:
        raise ValueError(
            f"pos_in_doc must be an integer tensor of shape {tuple(v.shape[:2])}, got {pos_in_doc.dtype} of shape "
            f"{tuple(pos_in_doc.shape)}"
        )
    if pos_in_doc.device != v.device:
        raise ValueError(f"pos_in_doc is on {pos_in_doc.device} but v is on {v.device}")
    if not torch.compiler.is_compiling() and bool((pos_in_doc < 0).any()):  # eager only: no graph break
        raise ValueError("pos_in_doc must be >= 0 (steps since the current document started)")


def _reset_gates(z: torch.Tensor, v: torch.Tensor, gate_norm: str, keep: torch.Tensor) -> torch.Tensor:
    """P = phi(z) in v's accumulation dtype (fp32, float64 for float64 v, as the scans without documents) with the
    coefficients that would read across a document start zeroed (keep: a 0/1 mask broadcast over the row's state
    entries; the input entry P[..., m] is always kept). Scanning P with gate_norm="none" then runs every document
    from a zero state, in any backend."""
    p = normalize_gates(z.to(state_dtype(v.dtype)), gate_norm)
    m = p.shape[-1] - 1
    return torch.cat([p[..., :m] * keep.to(p.dtype), p[..., m:]], dim=-1)


def bdlru_scan(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    gate_norm: str = "softmax",
    backend: str = "auto",
    pos_in_doc: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-diagonal LRU scan.

    For every block n and step t: P = phi(gate_logits[:, t, n]) row-wise, A = P[:, :m], a0 = P[:, m],
    h_t = A h_{t-1} + a0 * v_t.

    Args:
        gate_logits: (B, T, N, m, m+1) gate logits z.
        v: (B, T, N, m) inputs.
        initial_state: (B, N, m) state before the first step; zeros if None.
        gate_norm: row normalisation phi, one of GATE_NORMS.
        backend: one of BACKENDS.
        pos_in_doc: packed documents: (B, T) integer steps since the current document started (0 at its first
            token). A is zeroed at a document's first token, so each document starts from a zero state. None: one
            document. Costs a materialised fp32 P (see _reset_gates).

    Returns:
        h (B, T, N, m) in v's dtype, and the final state (B, N, m) in float32 (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 5 or gate_logits.shape[-1] != gate_logits.shape[-2] + 1:
        raise ValueError(f"gate_logits must have shape (B, T, N, m, m+1), got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:4]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:4])} (B, T, N, m), got {tuple(v.shape)}")
    bsz, _, nblocks, m = v.shape
    h0 = _initial_state(initial_state, (bsz, nblocks, m), v)
    _check_pos_in_doc(pos_in_doc, v)
    if pos_in_doc is not None:
        keep = (pos_in_doc > 0)[:, :, None, None, None]
        p = _reset_gates(gate_logits, v, gate_norm, keep)
        h, final = bdlru_scan(p, v.to(p.dtype), h0, "none", backend)
        return h.to(v.dtype), final
    if _use_triton(backend, v, m, "bdlru_scan"):
        return _kernels().triton_bdlru_scan(gate_logits, v, h0, gate_norm)
    if backend == "naive":
        return naive_bdlru_scan(gate_logits, v, h0, gate_norm)
    return chunk_bdlru_scan(gate_logits, v, h0, gate_norm)


def hlru_scan(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    gate_norm: str = "softmax",
    backend: str = "auto",
    pos_in_doc: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Higher-order LRU scan (order m per channel).

    For every channel n and step t: P = phi(gate_logits[:, t, n]), x_t = sum_{k=1..m} P[k-1] x_{t-k} + P[m] v_t.
    The state is (x_t, x_{t-1}, ..., x_{t-m+1}): state[..., k] = x_{t-k}.

    Args:
        gate_logits: (B, T, N, m+1) gate logits z.
        v: (B, T, N) inputs.
        initial_state: (B, N, m) lags before the first step (state[..., k] = x_{-1-k}); zeros if None.
        gate_norm: normalisation phi, one of GATE_NORMS.
        backend: one of BACKENDS.
        pos_in_doc: packed documents: (B, T) integer steps since the current document started (0 at its first
            token). At a document's j-th token the lags k > j, which lie in the previous document, are dropped.
            None: one document.

    Returns:
        y (B, T, N, m), the state after each step, in v's dtype, and the final state (B, N, m) in float32
        (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 4 or gate_logits.shape[-1] < 2:
        raise ValueError(f"gate_logits must have shape (B, T, N, m+1) with m >= 1, got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:3]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:3])} (B, T, N), got {tuple(v.shape)}")
    bsz, _, nch = v.shape
    m = gate_logits.shape[-1] - 1
    h0 = _initial_state(initial_state, (bsz, nch, m), v)
    _check_pos_in_doc(pos_in_doc, v)
    if pos_in_doc is not None:
        lags = torch.arange(m, device=v.device)
        keep = lags + 1 <= pos_in_doc[:, :, None, None]  # coefficient k - 1 reads x_{t-k}
        p = _reset_gates(gate_logits, v, gate_norm, keep)
        y, final = hlru_scan(p, v.to(p.dtype), h0, "none", backend)
        # the state (x_t, ..., x_{t-m+1}) itself holds lags of the previous document for the first m - 1 steps
        y = y * (lags <= pos_in_doc[:, :, None, None]).to(y.dtype)
        return y.to(v.dtype), final * (lags <= pos_in_doc[:, -1, None, None]).to(final.dtype)
    if _use_triton(backend, v, m, "hlru_scan"):
        return _kernels().triton_hlru_scan(gate_logits, v, h0, gate_norm)
    if backend == "naive":
        return naive_hlru_scan(gate_logits, v, h0, gate_norm)
    return chunk_hlru_scan(gate_logits, v, h0, gate_norm)


def bdlru_step(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One BD-LRU decoding step (same math as bdlru_scan for a single token).

    Args:
        gate_logits: (B, N, m, m+1); v: (B, N, m); state: (B, N, m) state before the step.

    Returns:
        h (B, N, m) in v's dtype and the new state (B, N, m) in float32 (float64 for float64 inputs).
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 4 or gate_logits.shape[-1] != gate_logits.shape[-2] + 1:
        raise ValueError(f"gate_logits must have shape (B, N, m, m+1), got {tuple(gate_logits.shape)}")
    shape = tuple(gate_logits.shape[:3])
    if tuple(v.shape) != shape:
        raise ValueError(f"v must have shape {shape} (B, N, m), got {tuple(v.shape)}")
    state = _initial_state(state, shape, v)
    if _use_triton(backend, v, shape[-1], "bdlru_step"):
        return _kernels().triton_bdlru_step(gate_logits, v, state, gate_norm)
    return naive_bdlru_step(gate_logits, v, state, gate_norm)


def hlru_step(
    gate_logits: torch.Tensor,
    v: torch.Tensor,
    state: torch.Tensor,
    gate_norm: str = "softmax",
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One H-LRU decoding step (same math as hlru_scan for a single token).

    Args:
        gate_logits: (B, N, m+1); v: (B, N); state: (B, N, m) lags before the step, state[..., k] = x_{t-1-k}.

    Returns:
        y (B, N, m) = (x_t, ..., x_{t-m+1}) in v's dtype and the same new state in float32.
    """
    _check_common(v, gate_logits, gate_norm, backend)
    if gate_logits.ndim != 3 or gate_logits.shape[-1] < 2:
        raise ValueError(f"gate_logits must have shape (B, N, m+1) with m >= 1, got {tuple(gate_logits.shape)}")
    if tuple(v.shape) != tuple(gate_logits.shape[:2]):
        raise ValueError(f"v must have shape {tuple(gate_logits.shape[:2])} (B, N), got {tuple(v.shape)}")
    state = _initial_state(state, (*v.shape, gate_logits.shape[-1] - 1), v)
    if _use_triton(backend, v, state.shape[-1], "hlru_step"):
        return _kernels().triton_hlru_step(gate_logits, v, state, gate_norm)
    return naive_hlru_step(gate_logits, v, state, gate_norm)
