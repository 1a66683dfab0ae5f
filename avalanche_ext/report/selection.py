"""The page of selected settings: what the equal-budget search chose for each recipe, benchmark and scenario.

Written from the selections (``recipe -> {"benchmark/scenario": {"settings", "val_acc", "seeds", "record"}}``,
as ``avalanche-ext select`` writes them); a benchmark without any selection says so and gives the
command that searches it.
"""

from __future__ import annotations

import os
from typing import Any, Sequence


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _seeds(counts: set[Any]) -> str:
    """``"2 seeds"``; ``"1 or 2 seeds"`` for a mixed selection; an older selection recorded no count."""
    known = sorted(c for c in counts if isinstance(c, int))
    if not known:
        return "the seeds its records give"
    text = " or ".join(str(c) for c in known)
    return f"{text} seed{'s' if known != [1] else ''}" + (" (and the seeds older records give)" if None in counts else "")


def selection_page(selected: dict[str, dict[str, dict[str, Any]]], benchmarks: Sequence[str], page: str,
                   order: Sequence[str] = ()) -> str:
    """Markdown: per benchmark, one row per recipe and scenario with the chosen settings and the record.

    Args:
        selected: the selections.
        benchmarks: the benchmarks searched by ``make select``, in page order.
        page: the page's path, so that links to records (paths from the repository root) are relative to it.
        order: recipe names in the order of the rows (others follow by name).
    """
    rank = {name: i for i, name in enumerate(order)}
    lines = [
        "# Selected settings",
        "",
        "`avalanche-ext select` (`make select`) gives every recipe the same search budget on the",
        "**validation split** (the test stream is never used): its declared grid of 4 configurations,",
        "on the same seeds, in every scenario it supports, at the recipe's own epochs and batch size. Each",
        "row links the record of its search; the chosen settings are what `run`, `taxonomy` and the",
        "leaderboards use on that benchmark and scenario. `split_fmnist` takes the `split_mnist5k`",
        "selection unchanged, which shows how well each method's settings carry to new data.",
        "",
        "`AVALANCHE_EXT_NO_SELECTED=1` runs every recipe with its own defaults instead;",
        "`AVALANCHE_EXT_SELECTED=my_selection.json` tries a selection of the same shape before it is committed.",
    ]
    for benchmark in benchmarks:
        rows, seeds = [], set()
        for recipe in sorted(selected, key=lambda r: (rank.get(r, len(rank)), r)):
            for key, entry in sorted(selected[recipe].items()):
                bench, _, scenario = key.partition("/")
                if bench != benchmark:
                    continue
                chosen = ", ".join(f"`{k}={_value(v)}`" for k, v in sorted(entry.get("settings", {}).items()))
                acc = entry.get("val_acc")
                record = entry.get("record")
                seeds.add(entry.get("seeds"))
                link = f"[record]({os.path.relpath(record, os.path.dirname(page))})" if record else ""
                rows.append(f"| `{recipe}` | {scenario} | {chosen or 'the defaults'} | "
                            f"{'' if acc is None else f'{100 * acc:.2f}'} | {link} |")
        lines += ["", f"## `{benchmark}`", ""]
        if not rows:
            lines += ["Not searched yet; the recipes run with their defaults there. To search it:", "",
                      "```bash", f"avalanche-ext select --benchmark {benchmark} --seeds 2 --resume", "```"]
            continue
        lines += [f"{len(rows)} recipe/scenario pairs, each configuration run with {_seeds(seeds)}. Validation "
                  "accuracy: the chosen configuration's mean over its seeds (each record gives mean ± sample std).", "",
                  "| recipe | scenario | chosen | val acc (%) | record |", "|---|---|---|---|---|", *rows]
    return "\n".join(lines)
