"""The paper's synthetic benchmarks: MAD tasks and group state tracking, BD-LRU / H-LRU vs LSTM, Mamba2, GDN."""

from .models import MODELS, GatedDeltaNet, SyntheticModel, gated_delta_rule, solve_width
from .protocol import Suite, make_suite, run_suite
from .report import aggregate, markdown, plots
from .tasks import IGNORE, TaskSpec, generate, group_prefix_products, group_table, group_tasks, mad_tasks, train_test

__all__ = [
    "IGNORE",
    "MODELS",
    "GatedDeltaNet",
    "Suite",
    "SyntheticModel",
    "TaskSpec",
    "aggregate",
    "gated_delta_rule",
    "generate",
    "group_prefix_products",
    "group_table",
    "group_tasks",
    "mad_tasks",
    "make_suite",
    "markdown",
    "plots",
    "run_suite",
    "solve_width",
    "train_test",
]
