"""``avalanche-ext leaderboard``: the leaderboard pages, the fidelity page and the page of selected
settings, written from committed reports and selections.

Every recipe of the registry is an entrant; each benchmark's numbers come from its report folder
(:data:`REPORTS`), the published ones from the reference file. Nothing is run: the reports are made by
``avalanche-ext taxonomy`` (the commands are on the pages).
"""

from __future__ import annotations

from pathlib import Path

from .benchmarks import get_spec
from .registry import all_recipes, selected_settings
from .report.fidelity import fidelity_page, load_references
from .report.leaderboard import Entrant, leaderboard_page
from .report.selection import selection_page

#: The benchmark of each leaderboard and the report folder its numbers come from (relative to the repository).
REPORTS = {
    "split_mnist5k": "docs/results/split_mnist5k",
    "permuted_mnist5k": "docs/results/permuted_mnist5k",
    "split_fmnist": "docs/results/split_fmnist",
    "split_digits": "docs/results/split_digits",
}

REFERENCES = "docs/results/references.yaml"

#: The benchmarks ``make select`` searches (split_fmnist takes split_mnist5k's settings).
SEARCHED = ("split_mnist5k", "permuted_mnist5k", "split_digits")


def entrants() -> list[Entrant]:
    """Every registered recipe, in the registry's order."""
    return [Entrant(r.name, r.family, tuple(r.scenarios)) for r in all_recipes()]


def write_pages(root: str | Path = ".", out: str = "docs/results/leaderboards", references: str = REFERENCES,
                fidelity: str = "docs/results/fidelity.md", selection: str = "docs/results/selection.md") -> list[Path]:
    """Write ``<out>/<benchmark>.md`` for each benchmark of :data:`REPORTS`, the fidelity page and the
    page of selected settings (of :data:`SEARCHED`).

    Returns:
        The paths written.

    Raises:
        ValueError: a reference file that does not have the expected shape.
    """
    root = Path(root)
    everyone = entrants()
    written = []
    (root / out).mkdir(parents=True, exist_ok=True)
    for benchmark, folder in REPORTS.items():
        spec = get_spec(benchmark)
        title = f"`{benchmark}`" + (f" (with the settings selected on `{spec.settings_from}`)"
                                     if spec.settings_from else "")
        path = root / out / f"{benchmark}.md"
        path.write_text(leaderboard_page(benchmark, folder, spec.scenarios, everyone, title=title, root=root) + "\n")
        written.append(path)
    path = root / fidelity
    path.write_text(fidelity_page(load_references(root / references), everyone, root, references) + "\n")
    written.append(path)
    path = root / selection
    path.write_text(selection_page(selected_settings(), SEARCHED, "docs/results/selection.md",
                                   [e.name for e in everyone]) + "\n")
    return written + [path]
