"""Synthetic benchmarks: generators, the Gated DeltaNet recurrence vs a float64 loop, bad arguments, smoke suite."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hlru_lm.synthetic import (
    IGNORE,
    gated_delta_rule,
    generate,
    group_prefix_products,
    group_table,
    group_tasks,
    mad_tasks,
    make_suite,
    protocol,
    solve_width,
    train_test,
)
from hlru_lm.synthetic.models import SyntheticModel, chunked_gated_delta_rule
from hlru_lm.synthetic.protocol import accumulate_grads, macro_accuracy, plan, replace_suite, run_suite
from hlru_lm.synthetic.tasks import memory_map

ROOT = Path(__file__).resolve().parents[1]


def test_group_tables_are_groups():
    for g, order in (("S3", 6), ("S4", 24), ("A5", 60), ("S5", 120)):
        t = group_table(g)
        assert t.shape == (order, order)
        assert all(sorted(row) == list(range(order)) for row in t.tolist())  # Latin square
        a, b, c = np.random.default_rng(0).integers(0, order, (3, 50))
        assert (t[t[a, b], c] == t[a, t[b, c]]).all()  # associative
    assert len({tuple(r) for r in group_table("S3").tolist()}) == 6


def test_group_prefix_products_hand_checked():
    # S3 elements in itertools.permutations order: 0=(0,1,2) identity, 1=(0,2,1), 3=(1,2,0)
    t = group_table("S3")
    y = group_prefix_products(np.array([[1, 1, 3, 0]]), t)
    assert y[0].tolist() == [1, 0, 3, 3]  # (0,2,1)^2 = identity; identity then the 3-cycle; identity keeps it
    # non-commuting: 2=(1,0,2) after 1=(0,2,1) is (1,2,0)=3 (the other order, 1 after 2, would be (2,0,1)=4)
    assert group_prefix_products(np.array([[1, 2]]), t)[0].tolist() == [1, 3]


def _pairs(xr):
    return [(xr[i], xr[i + 1]) for i in range(0, len(xr) - 1, 2)]


def test_in_context_recall_matches_mad_structure():
    # MAD multi-query recall, vocab 16, seq_len 128: inputs are 127 tokens = 63 (key, value) pairs + the final key; keys
    # 0-7, values 8-15, one value per key per example; the test target at a key's position is its value iff the key
    # was presented before; the final key was presented before (always scored); train targets are the next tokens.
    spec = mad_tasks("full")["in_context_recall"]
    x, y = generate(spec, 30, seed=3, split="test")
    xt, yt = generate(spec, 30, seed=3, split="train")
    assert x.shape == (30, 127) and xt.shape == (30, 127)
    assert torch.equal(yt[:, :-1], xt[:, 1:])  # next-token targets everywhere (MAD trains recall as an LM)
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        seen = {}
        for i, (k, v) in enumerate(_pairs(xr)):
            assert 0 <= k < 8 <= v < 16
            assert yr[2 * i] == (v if k in seen else IGNORE)
            assert seen.setdefault(k, v) == v
            assert yr[2 * i + 1] == IGNORE
        assert xr[-1] in seen and yr[-1] != IGNORE  # the final probe: its value is the last target
    assert len({k for xr in x.tolist() for k in xr[::2]}) == 8  # all 8 keys are used, as in MAD


def test_noisy_recall_noise_comes_in_pairs_and_is_never_scored():
    spec = mad_tasks("full")["noisy_recall"]
    x, y = generate(spec, 40, seed=0, split="test")
    n_noise = 0
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        seen = {}
        for i, (a, b) in enumerate(_pairs(xr)):
            if a >= 16:  # MAD: a slot is noise (2 tokens from 16-31) with probability 0.2
                assert b >= 16 and yr[2 * i] == IGNORE and yr[2 * i + 1] == IGNORE
                n_noise += 1
                continue
            assert a < 8 <= b < 16
            assert yr[2 * i] == (b if a in seen else IGNORE)
            seen.setdefault(a, b)
    assert 0.15 < n_noise / (40 * 63) < 0.25


def _motifs(xr, start):
    """Split xr[start:] into alternating key (tokens < 7) and value (7-14) motifs: [(key, value_start, value_end)]."""
    out, i = [], start
    while i < len(xr):
        j = i
        while j < len(xr) and xr[j] < 7:
            j += 1
        m = j
        while m < len(xr) and 7 <= xr[m] < 15:
            m += 1
        out.append((tuple(xr[i:j]), j, m))
        i = m
    return out


def test_fuzzy_recall_matches_mad_structure():
    # vocab 16: pad 15 at the front only; keys are motifs of distinct tokens from 0-6 (3 long at test time), values
    # 1-3 distinct tokens from 7-14; a value's tokens are scored (at the positions that predict them) iff its key was
    # presented before; the final key repeats an earlier pair (its value's last token is only a target).
    spec = mad_tasks("full")["fuzzy_recall"]
    x, y = generate(spec, 30, seed=1, split="test")
    assert x.shape == (30, 128)
    missed = 0
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        start = next(i for i, t in enumerate(xr) if t != 15)
        assert 15 not in xr[start:]
        expected, kv = [IGNORE] * len(xr), {}
        motifs = _motifs(xr, start)
        for n, (k, j, m) in enumerate(motifs):
            assert len(k) == 3 and len(set(k)) == 3
            if n == len(motifs) - 1:  # the final probe: its whole value is the target
                if k not in kv:  # MAD's probe can miss the body (~3% of test sequences): scored all the same
                    kv[k] = tuple(yr[j - 1 :])
                    missed += 1
                assert xr[j:] == list(kv[k][: len(xr) - j]) and 1 <= len(kv[k]) <= 3
                expected[j - 1 :] = list(kv[k])
                break
            v = tuple(xr[j:m])
            assert 1 <= len(v) <= 3 and len(set(v)) == len(v)
            if k in kv:
                assert kv[k] == v
                expected[j - 1 : m - 1] = list(v)
            kv[k] = v
        assert yr == expected
    assert missed <= 3
    xt, yt = generate(spec, 30, seed=1, split="train")
    assert torch.equal(yt[:, :-1], xt[:, 1:])
    key_lens = {len(k) for xr in xt.tolist() for k, _, _ in _motifs(xr, next(i for i, t in enumerate(xr) if t != 15))}
    assert key_lens == {1, 2, 3}  # training keys are 1-3 tokens long


def test_selective_copy_matches_mad_layout():
    # vocab 16, length 256, 16 tokens: 16 tokens from 0-13 among 223 blanks (14), never a blank after the last one
    # (MAD's np.insert), then the copy token (15) at 239 and 16 blanks; targets are the tokens at positions 240-255.
    x, y = generate(mad_tasks("full")["selective_copying"], 8, seed=0)
    for xr, yr in zip(x.tolist(), y.tolist(), strict=True):
        toks = [t for t in xr[:239] if t < 14]
        assert len(toks) == 16 and xr[:239].count(14) == 223 and xr[238] < 14
        assert xr[239] == 15 and xr[240:] == [14] * 16
        assert yr[:240] == [IGNORE] * 240 and yr[240:] == toks


def test_compression_and_memorization_match_mad():
    x, y = generate(mad_tasks("full")["compression"], 8, seed=0)
    assert torch.equal(x, y) and (x[:, -1] == 15).all() and (x[:, :-1] < 15).all() and x.shape == (8, 32)
    # memorization: vocab 256, insert token 255; 16 (key, insert) pairs; the value is the target at the insert token;
    # MAD's map: 127 keys (0-126) onto 127 distinct values (127-254), built by default_rng(12345) as MAD does
    table = memory_map(256)
    assert sorted(table) == list(range(127)) and len(set(table.values())) == 127
    assert all(127 <= v < 255 for v in table.values())
    rng = np.random.default_rng(12345)  # MAD's generate_kv_map, step by step
    keys, vals = [(i,) for i in range(127)], [(i,) for i in range(127, 255)]
    rng.shuffle(keys)
    rng.shuffle(vals)
    assert table == {k[0]: v[0] for k, v in zip(keys, vals, strict=False)}
    spec = mad_tasks("full")["memorization"]
    assert spec.option("n_train") == 256 and spec.chance == 1 / 127
    x, y = generate(spec, 8, seed=0)
    assert (x[:, 1::2] == 255).all() and (y[:, ::2] == IGNORE).all()
    assert all(table[k] == v for k, v in zip(x[:, ::2].flatten().tolist(), y[:, 1::2].flatten().tolist(), strict=True))


def test_macro_accuracy_is_torchmetrics_macro():
    # classes 0..3; class 0: 1/2 right, class 1: 1/1, class 2 never a target but predicted once (counts as 0),
    # class 3 absent (excluded): mean(0.5, 1, 0) = 0.5; ignored positions do not count
    pred = torch.tensor([0, 2, 1, 3])
    target = torch.tensor([0, 0, 1, IGNORE])
    assert macro_accuracy(pred, target, 4) == pytest.approx(0.5)


def test_determinism_and_disjoint_splits():
    for spec in (*mad_tasks("smoke").values(), group_tasks(16)["S3"]):
        a, b = generate(spec, 16, 5), generate(spec, 16, 5)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], generate(spec, 16, 6)[0])
        (xtr, _), (xte, _) = train_test(spec, 64, 64, 0)
        assert not ({tuple(r) for r in xtr.tolist()} & {tuple(r) for r in xte.tolist()})
    # S3 at length 2 has only 36 sequences: test rows that also occur in train are dropped
    (xtr, _), (xte, yte) = train_test(group_tasks(2)["S3"], 64, 64, 0)
    assert 0 < len(xte) < 64 and len(yte) == len(xte)
    assert not ({tuple(r) for r in xtr.tolist()} & {tuple(r) for r in xte.tolist()})


def _gdn_float64_loop(q, k, v, alpha, beta, s0=None):
    b, length, h, dk = k.shape
    out = np.zeros((b, length, h, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            s = np.zeros((v.shape[-1], dk)) if s0 is None else s0[bi, hi].copy()
            for t in range(length):
                kt = k[bi, t, hi]
                s = alpha[bi, t, hi] * s @ (np.eye(dk) - beta[bi, t, hi] * np.outer(kt, kt))
                s = s + beta[bi, t, hi] * np.outer(v[bi, t, hi], kt)
                out[bi, t, hi] = s @ q[bi, t, hi]
    return out


def test_gated_delta_rule_matches_float64_loop_values_and_grads():
    g = torch.Generator().manual_seed(0)
    b, length, h, dk, dv = 2, 7, 2, 4, 3
    q = torch.randn(b, length, h, dk, generator=g, dtype=torch.float64)
    k = torch.nn.functional.normalize(torch.randn(b, length, h, dk, generator=g, dtype=torch.float64), dim=-1)
    v = torch.randn(b, length, h, dv, generator=g, dtype=torch.float64)
    alpha = torch.rand(b, length, h, generator=g, dtype=torch.float64)
    beta = 2 * torch.rand(b, length, h, generator=g, dtype=torch.float64)  # negative eigenvalues when beta > 1
    o, _ = gated_delta_rule(q, k, v, alpha, beta)
    ref = _gdn_float64_loop(*(t.numpy() for t in (q, k, v, alpha, beta)))
    np.testing.assert_allclose(o.numpy(), ref, rtol=1e-10, atol=1e-12)
    args = [t.clone().requires_grad_() for t in (q, k, v, alpha, beta)]
    assert torch.autograd.gradcheck(lambda *a: gated_delta_rule(*a)[0], args)


def test_chunked_gated_delta_rule_matches_float64_loop():
    # the layer's chunked form (a triangular solve per chunk) against the float64 loop: lengths that are and are not
    # multiples of the chunk, an initial state, negative eigenvalues (beta up to 2); values, final states and grads
    g = torch.Generator().manual_seed(1)
    for b, length, h, dk, dv, chunk in ((2, 7, 2, 4, 3, 4), (1, 33, 3, 6, 5, 16), (2, 20, 1, 4, 4, 64)):
        q = torch.randn(b, length, h, dk, generator=g, dtype=torch.float64)
        k = torch.nn.functional.normalize(torch.randn(b, length, h, dk, generator=g, dtype=torch.float64), dim=-1)
        v = torch.randn(b, length, h, dv, generator=g, dtype=torch.float64)
        alpha = 0.05 + 0.95 * torch.rand(b, length, h, generator=g, dtype=torch.float64)
        beta = 2 * torch.rand(b, length, h, generator=g, dtype=torch.float64)
        s0 = torch.randn(b, h, dv, dk, generator=g, dtype=torch.float64)
        o, s = chunked_gated_delta_rule(q, k, v, alpha.log(), beta, s0, chunk=chunk)
        np.testing.assert_allclose(
            o.numpy(),
            _gdn_float64_loop(*(t.numpy() for t in (q, k, v, alpha, beta)), s0.numpy()),
            rtol=1e-10,
            atol=1e-12,
        )
        ref_o, ref_s = gated_delta_rule(q, k, v, alpha, beta, s0)
        torch.testing.assert_close(s, ref_s, rtol=1e-10, atol=1e-12)
    args = [t[:1, :6, :1, ...].clone().requires_grad_() for t in (q, k, v, alpha.log(), beta)]
    assert torch.autograd.gradcheck(lambda *a: chunked_gated_delta_rule(*a, chunk=4)[0], args)


def test_micro_batches_give_the_full_batch_gradient():
    """Mamba2 trains in micro-batches (memory); the step must equal one pass over the batch: the mean over all scored
    positions, not a mean of per-micro-batch means (micro-batches score different numbers of positions)."""
    torch.manual_seed(0)
    model = SyntheticModel("lstm", 12, 12, 16, 1, 8, 10, False)
    x = torch.randint(0, 12, (5, 10))
    y = torch.randint(0, 12, (5, 10))
    y[0, :7] = IGNORE  # unequal scored counts per example
    y[3, 2:] = IGNORE
    ref = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE)
    ref.backward()
    want = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    loss = accumulate_grads(model, x, y, micro=2)
    assert torch.allclose(loss, ref.detach(), rtol=1e-5)
    for p, g in zip(model.parameters(), want, strict=True):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
    model.zero_grad(set_to_none=True)
    accumulate_grads(model, x[:4], y[:4], micro=2)  # a mean of per-micro-batch means would differ here
    per_half = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    accumulate_grads(model, x[:4], y[:4], micro=4)
    assert all(
        torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7) for p, g in zip(model.parameters(), per_half, strict=True)
    )


def test_bad_arguments_raise_clear_errors():
    spec = mad_tasks("smoke")["compression"]
    with pytest.raises(ValueError, match="split"):
        generate(spec, 4, 0, "valid")
    with pytest.raises(ValueError, match="n must be"):
        generate(spec, 0, 0)
    with pytest.raises(ValueError, match="unknown group"):
        group_table("S6")
    with pytest.raises(ValueError, match="unknown model"):
        make_suite("smoke", models=("transformer",))
    with pytest.raises(ValueError, match="unknown task"):
        make_suite("smoke", tasks=("parity",))
    with pytest.raises(ValueError, match="unknown suite"):
        make_suite("medium")
    with pytest.raises(ValueError, match="tier"):
        solve_width("bdlru2", "iso_flops", 64, 32, 1, 16, 16)
    with pytest.raises(ValueError, match="unknown model"):
        SyntheticModel("rnn", 16, 16, 32, 1, 4, 8, False)


def test_tiers_solve_the_budget():
    assert solve_width("bdlru4", "iso_state", 64, 32, 1, 16, 16) == 16
    assert solve_width("lstm", "iso_state", 64, 32, 1, 16, 16) == 32
    w = solve_width("hlru2", "iso_param", 20000, 32, 1, 16, 16)
    near = [
        sum(p.numel() for p in SyntheticModel("hlru2", 16, 16, 32, 1, n, 2, False).parameters()) for n in (w, w + 1)
    ]
    assert near[0] <= 20000 + (near[1] - near[0]) and abs(near[0] - 20000) <= abs(near[1] - 20000)


def test_smoke_suite_end_to_end(tmp_path):
    out = tmp_path / "smoke"
    cmd = [sys.executable, str(ROOT / "scripts/synthetic.py"), "--suite", "smoke", "--out", str(out), "--workers", "2"]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600, capture_output=True)
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "complete"
    suite = make_suite("smoke")
    runs = res["runs"]
    assert len(runs) == len(suite.models) * len(suite.tasks)
    for r in runs:
        for key in ("task", "model", "params", "state_size", "lr", "wd", "seed", "accuracy", "steps", "time_s"):
            assert key in r
        if r["task"] in suite.chance_tasks:
            assert r["accuracy"] > r["chance"], r
    md = (out / "results.md").read_text()
    assert all(m in md for m in suite.models)


def test_full_plan_fits_the_gpu_call_per_family():
    # the budget the lead's GPU calls rely on: each family within 8.5 minutes on 12 workers by the cost model
    for family, runs in (("mad", 6 * 9 * 4), ("group", 4 * 9 * 4)):
        fam = plan(make_suite("full", family=family), 12)["families"][family]
        assert fam["runs_total"] == runs and fam["runs_left"] == runs
        assert fam["predicted_minutes"] <= 8.5, fam
    with pytest.raises(ValueError, match="unknown family"):
        make_suite("full", family="lm")


def test_resume_skips_finished_runs_and_refuses_other_settings(tmp_path):
    suite = make_suite("smoke", models=("lstm",), tasks=("memorization",), family="mad")
    suite = replace_suite(suite, steps=(("mad", 4), ("group", 4)), eval_every=2, n_train=64, n_test=16)
    first = run_suite(suite, tmp_path, workers=1, max_minutes=5, log=lambda *_: None)
    assert first["status"] == "complete" and len(first["runs"]) == 1 and first["runs"][0]["steps"] <= 4
    assert (tmp_path / "results.md").read_text().count("| lstm |") == 1
    again = run_suite(suite, tmp_path, workers=1, max_minutes=5, log=lambda *_: None)
    assert again["runs"] == first["runs"] and len(again["calls"]) == 2 and again["calls"][1]["finished"] == 0
    with pytest.raises(ValueError, match="other settings"):
        run_suite(replace_suite(suite, batch=16), tmp_path, workers=1, max_minutes=5)


def test_deadline_is_hard_and_unfinished_runs_are_not_results(tmp_path, monkeypatch):
    suite = make_suite("smoke", models=("gdn", "lstm"), tasks=("in_context_recall",), family="mad")
    suite = replace_suite(suite, steps=(("mad", 100000), ("group", 4)), eval_every=100000, n_train=64, n_test=16)
    # runs predicted not to fit are not started: the call returns at once with everything pending
    res = run_suite(suite, tmp_path / "a", workers=2, max_minutes=0.25, log=lambda *_: None)
    assert res["status"] == "partial" and res["runs"] == [] and res["incomplete"] == [] and res["pending"] == 2
    # a cost model that is far too optimistic: the runs start, see they cannot finish, stop and are not results
    monkeypatch.setattr(protocol, "STEP_S", dict.fromkeys(protocol.STEP_S, 1e-9))
    monkeypatch.setattr(protocol, "RUN_OVERHEAD_S", 0.0)
    t0 = time.time()
    res = run_suite(suite, tmp_path / "b", workers=2, max_minutes=0.25, log=lambda *_: None, started=t0)
    assert time.time() - t0 <= 15 + 1.0  # exits by the deadline
    assert res["status"] == "partial" and res["runs"] == [] and res["pending"] == 2
    assert {r["model"] for r in res["incomplete"]} == {"gdn", "lstm"}
    assert all(r["status"] == "incomplete" and "accuracy" not in r for r in res["incomplete"])
    md = (tmp_path / "b" / "results.md").read_text()
    assert "partial" in md and "2 stopped unfinished, not counted" in md


def test_plot_panels_hold_only_their_tasks_cells():
    """Each panel (one per task of a family) gets that task's cells only, so its chance line is its own."""
    from hlru_lm.synthetic.report import aggregate, panels

    def rec(task, model, family, chance, acc):
        return dict(task=task, model=model, family=family, chance=chance, accuracy=acc, seed=0, steps=10, lr=1e-3,
                    wd=0.0, params=1, state_size=2, per_position=[acc])  # fmt: skip

    records = [rec("recall", "a", "mad", 0.125, 0.9), rec("recall", "b", "mad", 0.125, 0.5),
               rec("copy", "a", "mad", 0.071, 0.2), rec("S3", "a", "group", 1 / 6, 1.0)]  # fmt: skip
    mad = panels(aggregate(records), "mad")
    assert list(mad) == ["copy", "recall"]
    assert [m for m, _ in mad["recall"]] == ["a", "b"] and [m for m, _ in mad["copy"]] == ["a"]
    assert {a["chance"] for _, a in mad["copy"]} == {0.071}
    assert list(panels(aggregate(records), "group")) == ["S3"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend", "foo"], "invalid choice: 'foo'"),
        (["--device", "foo"], "--device 'foo'"),
        (["--device", "meta"], "--device must be cpu or cuda"),
        (["--models", "hlru2", "hlru2"], "--models lists a name more than once"),
    ],
)
def test_cli_refuses_bad_arguments_before_any_run(tmp_path, args, message):
    cmd = [sys.executable, str(ROOT / "scripts/synthetic.py"), "--suite", "smoke", "--out", str(tmp_path / "o"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, timeout=300, capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()


def test_accuracy_is_over_scored_positions_and_the_best_cell_wins():
    """_evaluate counts scored positions over the whole test set (not a mean of per-batch accuracies); the report and
    the scheduler take the best seed-0 lr/wd cell (accuracy, then fewer steps) and average that cell's seeds."""
    from hlru_lm.synthetic.protocol import _common, _evaluate, best_cells, job_key, pending_jobs
    from hlru_lm.synthetic.report import aggregate

    class Echo(torch.nn.Module):  # predicts its input token
        def forward(self, x):
            return torch.nn.functional.one_hot(x, 5).float()

    x = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3]])
    y = torch.tensor([[IGNORE, 0, IGNORE, IGNORE], [IGNORE, IGNORE, IGNORE, 4], [0, 1, 2, 3]])
    ev = _evaluate(Echo(), x, y, 2, "cpu", 5)  # batches of 2 and 1 example: 1/2 and 4/4 right
    assert ev["accuracy"] == pytest.approx(5 / 6) and ev["sequence_accuracy"] == pytest.approx(2 / 3)
    assert ev["per_position"] == pytest.approx([1.0, 0.5, 1.0, 1.0])

    suite = replace_suite(make_suite("smoke"), grid=((1e-3, 0.0), (1e-2, 0.0), (3e-2, 0.1)), seeds=(0, 1))
    base = {"task": "S3", "model": "lstm", "params": 10, "state_size": 4, "family": "group", "chance": 1 / 6}
    records = [
        {**base, "lr": 1e-3, "wd": 0.0, "seed": 0, "accuracy": 0.9, "steps": 50},
        {**base, "lr": 1e-2, "wd": 0.0, "seed": 0, "accuracy": 0.9, "steps": 40},  # same accuracy, earlier stop
        {**base, "lr": 3e-2, "wd": 0.1, "seed": 0, "accuracy": 0.2, "steps": 60},
        {**base, "lr": 1e-2, "wd": 0.0, "seed": 1, "accuracy": 0.7, "steps": 60},
        {**base, "lr": 1e-3, "wd": 0.0, "seed": 1, "accuracy": 0.1, "steps": 60},  # another cell's seed: not counted
    ]
    assert best_cells(records, suite) == {("S3", "lstm"): (1e-2, 0.0)}
    assert best_cells(records[:2], suite) == {}  # the seed-0 grid is not finished yet
    cell = aggregate(records)[("S3", "lstm")]
    assert (cell["lr"], cell["wd"], cell["seeds"]) == (1e-2, 0.0, 2) and cell["accuracy"] == pytest.approx(0.8)
    # the scheduler then runs the other seeds on that best cell
    suite = replace_suite(suite, tasks=(group_tasks(16)["S3"],), models=("lstm",))
    seed0 = [{**r, "key": job_key("S3", "lstm", r["lr"], r["wd"], 0)} for r in records[:3]]
    ready, waiting = pending_jobs(suite, _common(suite, "cpu", "torch"), seed0)
    assert waiting == 0 and [(j["lr"], j["wd"], j["seed"]) for j in ready] == [(1e-2, 0.0, 1)]


def test_early_stop_needs_both_token_and_macro_accuracy(monkeypatch):
    """A run stops early only when token accuracy and MAD's macro accuracy both reach 99.9%: a model right on the
    frequent classes only keeps training."""
    from hlru_lm.synthetic.protocol import _common, _job, run_one

    suite = make_suite("smoke", models=("lstm",), tasks=("memorization",), family="mad")
    suite = replace_suite(suite, steps=(("mad", 4), ("group", 4)), eval_every=2, n_train=32, n_test=8)
    job = {**_job(suite, _common(suite, "cpu", "torch"), suite.tasks[0], "lstm", 1e-3, 0.0, 0), "stop_at": 1e12}
    for macro, status, steps in ((0.5, "done", 4), (1.0, "early_stop", 2)):
        ev = {"accuracy": 1.0, "macro_accuracy": macro, "sequence_accuracy": 1.0, "per_position": [1.0]}
        monkeypatch.setattr(protocol, "_evaluate", lambda *a, ev=ev, **k: ev)
        rec = run_one(job)
        assert (rec["status"], rec["steps"], rec["macro_accuracy"]) == (status, steps, macro)


def test_report_table_scores():
    """results.md: the MAD score averages macro accuracy over all of the suite's MAD tasks (none until every one is
    finished); length generalisation averages only the positions beyond the training length."""
    from hlru_lm.synthetic.report import markdown

    base = {"model": "lstm", "seed": 0, "lr": 1e-3, "wd": 0.0, "steps": 10, "params": 100, "state_size": 8}
    recall = {**base, "task": "in_context_recall", "family": "mad", "chance": 0.1, "accuracy": 0.5}
    memo = {**base, "task": "memorization", "family": "mad", "chance": 0.1, "accuracy": 0.9}
    s3 = {**base, "task": "S3", "family": "group", "chance": 1 / 6, "accuracy": 1.0, "per_position": [1.0, 1.0]}
    s3["length_generalisation"] = {"4": [1.0, 1.0, 0.0, 0.5]}
    tasks = ["in_context_recall", "memorization", "S3"]

    def rows(records):
        md = markdown(records, tasks, ["lstm"], "complete")
        return [ln for ln in md.splitlines() if ln.startswith("| lstm |")]

    first, lengths = rows([{**recall, "macro_accuracy": 0.4}, s3])
    assert first.split(" | ")[-1] == "— |" and lengths == "| lstm | 0.250 |"
    first, _ = rows([{**recall, "macro_accuracy": 0.4}, {**memo, "macro_accuracy": 0.8}, s3])
    assert first.split(" | ")[-1] == "0.600 |" and "| 0.500 (1) | 0.900 (1) | 1.000 (1) |" in first
