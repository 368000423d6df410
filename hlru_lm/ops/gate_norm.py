"""Row normalisation phi of the gate logits (the last axis sums to 1)."""

import torch

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
        s = torch.sigmoid(z)
        return s / s.sum(dim=-1, keepdim=True)
    if gate_norm == "relu_l1":
        r = torch.relu(z)
        return r / (r.sum(dim=-1, keepdim=True) + RELU_L1_EPS)
    return z
