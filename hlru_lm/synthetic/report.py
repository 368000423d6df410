"""results.md (rows: models, columns: tasks) and PNG plots from the records of `run_suite`."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean


def aggregate(records: list[dict]) -> dict:
    """(task, model) -> means over the seeds of its best seed-0 cell: accuracy, MAD's macro accuracy; params, state."""
    best_cell: dict = {}
    for r in records:
        if r["seed"] == 0:
            k = (r["task"], r["model"])
            if k not in best_cell or (r["accuracy"], -r["steps"]) > best_cell[k][0]:
                best_cell[k] = ((r["accuracy"], -r["steps"]), r["lr"], r["wd"])
    runs = defaultdict(list)
    for r in records:
        k = (r["task"], r["model"])
        if k in best_cell and (r["lr"], r["wd"]) == best_cell[k][1:]:
            runs[k].append(r)
    return {
        k: {
            "accuracy": mean(r["accuracy"] for r in rs),
            "macro_accuracy": mean(r.get("macro_accuracy", r["accuracy"]) for r in rs),
            "params": rs[0]["params"],
            "state_size": rs[0]["state_size"],
            "seeds": len(rs),
            "family": rs[0]["family"],
            "chance": rs[0]["chance"],
            "lr": rs[0]["lr"],
            "wd": rs[0]["wd"],
            "runs": rs,
        }
        for k, rs in runs.items()
    }


GROUPS = ("S3", "S4", "A5", "S5")


def markdown(records: list[dict], tasks: list[str], models: list[str], status: str, body: dict | None = None) -> str:
    agg = aggregate(records)
    mad = [t for t in tasks if t not in GROUPS]
    head = ["model", "params", "state", *tasks] + (["MAD score"] if mad else [])
    left = ""
    if body is not None:
        left = f" {len(records)} runs finished, {body.get('pending', 0)} left"
        n_inc = len(body.get("incomplete", []))
        left += f" ({n_inc} stopped unfinished, not counted)." if n_inc else "."
    lines = [
        f"Suite status: {status}.{left} Token accuracy on the scored positions of the test set, best lr/wd cell "
        "on seed 0, mean over its seeds (seeds finished in parentheses); `—` = not finished."
        + (
            " MAD score: the mean over the suite's MAD tasks of MAD's macro accuracy (torchmetrics' class-averaged "
            "accuracy, MAD's metric)."
            if mad
            else ""
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for m in models:
        cells = [agg.get((t, m)) for t in tasks]
        known = [c for c in cells if c]
        row = [m, str(known[0]["params"]) if known else "—", str(known[0]["state_size"]) if known else "—"]
        row += [f"{c['accuracy']:.3f} ({c['seeds']})" if c else "—" for c in cells]
        if mad:
            macro = [agg[(t, m)]["macro_accuracy"] for t in mad if (t, m) in agg]
            row.append(f"{mean(macro):.3f}" if macro and len(macro) == len(mad) else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Params and state are those of the model built for the first finished task (they vary with the "
        "task's vocabulary).",
    ]
    groups = [t for t in tasks if t in GROUPS]
    lengths = sorted({int(n) for r in records for n in r.get("length_generalisation", {})})
    if groups and lengths:
        lines += ["", "Length generalisation: mean accuracy over the positions beyond the training length.", ""]
        gh = ["model"] + [f"{g}@{n}" for g in groups for n in lengths]
        lines += ["| " + " | ".join(gh) + " |", "|" + "---|" * len(gh)]
        for m in models:
            row = [m]
            for g in groups:
                for n in lengths:
                    a = agg.get((g, m))
                    vals = []
                    for r in a["runs"] if a else []:
                        curve = r.get("length_generalisation", {}).get(str(n))
                        if curve:
                            vals.append(mean(curve[len(r["per_position"]) :]))
                    row.append(f"{mean(vals):.3f}" if vals else "—")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def panels(agg: dict, family: str) -> dict[str, list[tuple[str, dict]]]:
    """task -> [(model, its aggregate)] for the tasks of one family, tasks and models sorted: one plot panel each."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for (task, model), a in sorted(agg.items()):
        if a["family"] == family:
            out.setdefault(task, []).append((model, a))
    return out


def _save(fig, path: Path, dpi: int) -> None:
    """The PNG appears whole or not at all (a run killed mid-write keeps the previous one)."""
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=dpi, format="png")
    tmp.replace(path)


def plots(records: list[dict], out: Path) -> list[str]:
    """accuracy_vs_params.png (one panel per MAD task: every model's mean accuracy over seeds, the seeds' range as a
    bar, against its parameters; state sizes in the legend, equal in the iso-state tier) and group_length.png, if
    matplotlib is importable; returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    agg = aggregate(records)
    written = []
    mad = panels(agg, "mad")
    if mad:
        fig, axes = plt.subplots(1, len(mad), figsize=(3.6 * len(mad), 3.6), squeeze=False)
        for ax, (task, cells) in zip(axes[0], mad.items(), strict=True):
            for m, a in cells:
                accs = [r["accuracy"] for r in a["runs"]]
                err = [[a["accuracy"] - min(accs)], [max(accs) - a["accuracy"]]]
                ax.errorbar(a["params"], a["accuracy"], yerr=err, fmt="o", ms=4, label=f"{m} ({a['state_size']})")
            ax.axhline(cells[0][1]["chance"], color="k", ls=":", lw=0.8)
            ax.set_xscale("log")
            ax.set(title=task, xlabel="parameters", ylim=(0, 1.02))
        axes[0][0].set_ylabel("accuracy (dotted: chance)")
        axes[0][0].legend(fontsize=6, title="model (state)", title_fontsize=6, loc="upper right", ncol=2)
        fig.tight_layout()
        _save(fig, out / "accuracy_vs_params.png", dpi=110)
        plt.close(fig)
        written.append("accuracy_vs_params.png")
    groups = panels(agg, "group")
    if groups:
        fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.5), squeeze=False)
        for ax, (g, cells) in zip(axes[0], groups.items(), strict=True):
            for m, a in cells:
                r = a["runs"][0]
                curve = max(
                    r.get("length_generalisation", {}).items(),
                    key=lambda kv: int(kv[0]),
                    default=(None, r["per_position"]),
                )[1]
                ax.plot(range(1, len(curve) + 1), curve, label=m, lw=1)
            ax.axvline(len(cells[0][1]["runs"][0]["per_position"]), color="k", ls=":", lw=0.8)
            ax.set(title=g, xlabel="position (prefix length)", ylabel="accuracy", ylim=(0, 1.02))
        axes[0][0].legend(fontsize=6, ncol=2)
        fig.tight_layout()
        _save(fig, out / "group_length.png", dpi=120)
        plt.close(fig)
        written.append("group_length.png")
    return written
