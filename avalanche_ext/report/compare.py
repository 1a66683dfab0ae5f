"""Two taxonomy reports side by side: the same recipes under two settings (e.g. from scratch and
from a pretrained backbone), with the difference per recipe and scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .stats import STD_CONVENTION, fmt as _fmt  # noqa: E402 - "mean ± std" in %, as in the taxonomy tables
from .tables import ResultTable  # noqa: E402


def load_summary(folder: str | Path) -> dict[str, Any]:
    """The ``summary.json`` that ``avalanche-ext taxonomy`` wrote into ``folder``; its aggregate is computed
    again from ``results.csv`` when the folder has one, so that every spread is a sample std."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise ValueError(f"{path} not found: give a folder written by `avalanche-ext taxonomy --out`")
    summary = json.loads(path.read_text())
    if (Path(folder) / "results.csv").is_file():
        summary["aggregate"] = ResultTable.load(folder).aggregate()
    return summary


def compare_reports(a: str | Path, b: str | Path, *, label_a: str, label_b: str, out: str | Path) -> Path:
    """Write ``out/comparison.md`` (and one chart per scenario) comparing reports ``a`` and ``b``.

    Only (recipe, scenario) pairs present in both reports are compared; the table gives mean
    accuracy and forgetting of each and the accuracy difference ``b - a`` in points.
    """
    sa, sb = load_summary(a), load_summary(b)
    if sa["benchmark"] != sb["benchmark"]:
        raise ValueError(f"the reports are on different benchmarks: {sa['benchmark']} and {sb['benchmark']}")
    rows_a = {(r["recipe"], r["scenario"]): r for r in sa["aggregate"]}
    rows_b = {(r["recipe"], r["scenario"]): r for r in sb["aggregate"]}
    common = [k for k in rows_a if k in rows_b]
    if not common:
        raise ValueError("the two reports share no (recipe, scenario) pair")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# `{sa['benchmark']}`: {label_a} vs {label_b}", "",
             "Reproduce each side with:", "", "```bash", sa["command"], sb["command"],
             f"avalanche-ext compare {a} {b} --labels '{label_a}' '{label_b}' --out {out}", "```", "",
             f"Every cell: {STD_CONVENTION}.", ""]
    for scenario in sorted({s for _, s in common}):
        keys = sorted((k for k in common if k[1] == scenario),
                      key=lambda k: -(rows_b[k]["acc_mean"] - rows_a[k]["acc_mean"]))
        lines += [f"## {scenario}-incremental", "",
                  f"| recipe | accuracy, {label_a} (%) | accuracy, {label_b} (%) | difference (points) "
                  f"| forgetting, {label_a} (%) | forgetting, {label_b} (%) |",
                  "|---|---|---|---|---|---|"]
        for k in keys:
            ra, rb = rows_a[k], rows_b[k]
            lines.append(f"| {k[0]} | {_fmt(ra['acc_mean'], ra['acc_std'])} | {_fmt(rb['acc_mean'], rb['acc_std'])} "
                         f"| {100 * (rb['acc_mean'] - ra['acc_mean']):+.1f} "
                         f"| {_fmt(ra['forgetting_mean'], ra['forgetting_std'])} "
                         f"| {_fmt(rb['forgetting_mean'], rb['forgetting_std'])} |")
        chart = _chart(keys, rows_a, rows_b, label_a, label_b, out / f"comparison_{scenario}.png",
                       f"{sa['benchmark']}, {scenario}-incremental")
        lines += ["", f"![{scenario}-incremental: {label_a} vs {label_b}]({chart.name})", ""]
    path = out / "comparison.md"
    path.write_text("\n".join(lines))
    return path


def _chart(keys, rows_a, rows_b, label_a, label_b, path: Path, title: str) -> Path:
    names = [k[0] for k in keys]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(names) + 2), 3.6))
    ax.bar([i - 0.2 for i in x], [100 * rows_a[k]["acc_mean"] for k in keys], 0.4,
           yerr=[100 * rows_a[k]["acc_std"] for k in keys], label=label_a, color="#9aa5b1")
    ax.bar([i + 0.2 for i in x], [100 * rows_b[k]["acc_mean"] for k in keys], 0.4,
           yerr=[100 * rows_b[k]["acc_std"] for k in keys], label=label_b, color="#3f51b5")
    ax.set_xticks(list(x), names, rotation=45, ha="right")
    ax.set_ylabel("average accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
