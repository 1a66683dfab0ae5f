"""The taxonomy report: per-run rows, per-(recipe, scenario) aggregates, files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..protocols import FAMILIES
from .notes import below_naive, load_notes
from .plots import accuracy_heatmap, comparison_chart
from .stats import STD_CONVENTION, fmt, mean_std, welch_p

#: The p-value below which a recipe's gap under ``naive`` is significant and needs a note.
SIGNIFICANCE = 0.05

#: ``task_inference_acc``: how often a recipe that infers the task (hnet, supsup, ensemble in class- or
#: domain-IL) picks the right one; empty for a recipe that infers none.
COLUMNS = ["recipe", "family", "scenario", "seed", "status", "acc", "forgetting", "bwt", "task_inference_acc",
           "train_s", "peak_rss_mb", "mlflow_run_id", "error", "acc_matrix"]
_NUMERIC = ("acc", "forgetting", "bwt", "train_s", "peak_rss_mb")
_SCENARIOS = ("class", "task", "domain")


def _fmt(mean: float, std: float, pct: bool = True) -> str:
    return fmt(mean, std, pct)


def _optional(text: Any) -> Optional[float]:
    return None if text in (None, "", "None") else float(text)


@dataclass
class ResultTable:
    """Every run of a taxonomy, and the report made from them."""

    benchmark: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    matrices: dict[tuple[str, str], list] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    settings: Optional[dict[str, Any]] = None
    #: the resolved hyper-parameters of each ``"recipe/scenario"`` (written into ``summary.json``)
    hparams: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``"recipe/scenario"`` -> why it sits below ``naive`` (the report folder's ``notes.json``)
    notes: dict[str, str] = field(default_factory=dict)
    command: Optional[str] = None

    def add(self, job: Any, result: dict[str, Any]) -> None:
        """Add the ``result`` of ``job`` (its recipe, scenario and seed); the result names the recipe's family."""
        if result.get("family") not in FAMILIES:
            raise ValueError(f"the result of {job.recipe} has family {result.get('family')!r}: a result row must "
                             f"carry its recipe's family, one of {', '.join(FAMILIES)}")
        row = {k: result.get(k) for k in COLUMNS}
        row.update(recipe=job.recipe, scenario=job.scenario, seed=job.seed)
        row["acc_matrix"] = json.dumps(result["acc_matrix"]) if result.get("acc_matrix") is not None else None
        self.rows.append(row)
        if result.get("status") == "ok":
            self.matrices.setdefault((job.recipe, job.scenario), []).append(result["acc_matrix"])

    @staticmethod
    def result_of(row: dict[str, str]) -> Optional[dict[str, Any]]:
        """The result of a finished run from its ``results.csv`` row; None for a run that did not finish."""
        if row.get("status") != "ok" or not row.get("acc_matrix"):
            return None
        result: dict[str, Any] = {k: float(row[k]) for k in _NUMERIC}
        result.update(status="ok", family=row["family"], mlflow_run_id=row["mlflow_run_id"],
                      acc_matrix=json.loads(row["acc_matrix"]), task_inference_acc=_optional(row.get("task_inference_acc")))
        return result

    @staticmethod
    def read_finished(path: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
        """Finished runs of an earlier report's ``results.csv``, keyed by (recipe, scenario, seed)."""
        done = {}
        if not Path(path).is_file():
            return done
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                result = ResultTable.result_of(row)
                if result is not None:
                    done[(row["recipe"], row["scenario"], int(row["seed"]))] = result
        return done

    @classmethod
    def load(cls, folder: str | Path) -> "ResultTable":
        """The report a taxonomy wrote into ``folder``, read back from ``results.csv`` and ``summary.json``
        (so that every statistic is computed again, with this module's conventions).

        Raises:
            ValueError: ``folder`` holds no report.
        """
        folder = Path(folder)
        if not (folder / "results.csv").is_file() or not (folder / "summary.json").is_file():
            raise ValueError(f"{folder} holds no taxonomy report (results.csv and summary.json): give a folder "
                             f"written by `avalanche-ext taxonomy --out`")
        summary = json.loads((folder / "summary.json").read_text())
        table = cls(summary["benchmark"], skipped=summary.get("skipped", []), settings=summary.get("settings"),
                    hparams=summary.get("hparams", {}), notes=load_notes(folder), command=summary.get("command"))
        with open(folder / "results.csv", newline="") as f:
            for row in csv.DictReader(f):
                for key in _NUMERIC:
                    row[key] = _optional(row.get(key))
                row["task_inference_acc"] = _optional(row.get("task_inference_acc"))
                row["seed"] = int(row["seed"])
                table.rows.append({k: row.get(k) for k in COLUMNS})
                if row["status"] == "ok" and row.get("acc_matrix"):
                    table.matrices.setdefault((row["recipe"], row["scenario"]), []).append(
                        json.loads(row["acc_matrix"]))
        return table

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)

    @property
    def all_ok(self) -> bool:
        return self.n_failed == 0

    def aggregate(self) -> list[dict[str, Any]]:
        """Mean and sample std over seeds per (recipe, scenario), with the time ratio to ``naive``.

        ``task_inference_mean`` is NaN for a recipe that infers no task."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.rows:
            groups.setdefault((r["recipe"], r["scenario"]), []).append(r)
        naive_time = {}
        for (recipe, scenario), rows in groups.items():
            ok = [r for r in rows if r["status"] == "ok"]
            if recipe == "naive" and ok:
                naive_time[scenario] = mean_std(r["train_s"] for r in ok)[0]
        out = []
        for (recipe, scenario), rows in groups.items():
            ok = [r for r in rows if r["status"] == "ok"]
            acc, forg, bwt, infer, train, rss = (mean_std(r[k] for r in ok) for k in (
                "acc", "forgetting", "bwt", "task_inference_acc", "train_s", "peak_rss_mb"))
            base = naive_time.get(scenario)
            out.append({
                "recipe": recipe, "family": rows[0]["family"], "scenario": scenario, "n_ok": len(ok),
                "n_failed": len(rows) - len(ok), "acc_mean": acc[0], "acc_std": acc[1],
                "forgetting_mean": forg[0], "forgetting_std": forg[1], "bwt_mean": bwt[0], "bwt_std": bwt[1],
                "task_inference_mean": infer[0], "task_inference_std": infer[1],
                "train_s_mean": train[0], "time_vs_naive": train[0] / base if base else float("nan"),
                "peak_rss_mb_mean": rss[0], "accs": [r["acc"] for r in ok],
            })
        scen_order = {s: i for i, s in enumerate(_SCENARIOS)}
        return sorted(out, key=lambda a: (scen_order.get(a["scenario"], 9), FAMILIES.index(a["family"]), a["recipe"]))

    def markdown(self, command: Optional[str] = None) -> str:
        """The results table as Markdown, one section per scenario."""
        lines = [f"# Results on `{self.benchmark}`", ""]
        if command:
            lines += ["Reproduce with:", "", "```bash", command, "```", ""]
        lines += [f"Every cell: {STD_CONVENTION}. *Task inference*: how often a recipe that infers the task "
                  f"without task labels picks the right one (`-`: it infers none).", ""]
        aggs = self.aggregate()
        for scenario in _SCENARIOS:
            rows = [a for a in aggs if a["scenario"] == scenario]
            if not rows:
                continue
            n_seeds = max(a["n_ok"] + a["n_failed"] for a in rows)
            lines += [f"## {scenario}-incremental ({n_seeds} seed{'s' if n_seeds > 1 else ''})", "",
                      "| recipe | family | accuracy (%) | forgetting (%) | BWT (%) | task inference (%) "
                      "| train time (s) | time / naive | peak RSS (MB) | failed |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for a in rows:
                ratio = "-" if np.isnan(a["time_vs_naive"]) else f"{a['time_vs_naive']:.2f}"
                train = "-" if np.isnan(a["train_s_mean"]) else f"{a['train_s_mean']:.1f}"
                rss = "-" if np.isnan(a["peak_rss_mb_mean"]) else f"{a['peak_rss_mb_mean']:.0f}"
                lines.append(
                    f"| {a['recipe']} | {a['family']} | {_fmt(a['acc_mean'], a['acc_std'])} | "
                    f"{_fmt(a['forgetting_mean'], a['forgetting_std'])} | {_fmt(a['bwt_mean'], a['bwt_std'])} | "
                    f"{_fmt(a['task_inference_mean'], a['task_inference_std'])} | "
                    f"{train} | {ratio} | {rss} | {a['n_failed']} |"
                )
            lines.append("")
            lines += self.notes_lines(scenario, aggs)
        if self.skipped:
            lines += ["## Skipped", "", "| recipe | scenario | reason |", "|---|---|---|"]
            lines += [f"| {s['recipe']} | {s['scenario']} | {s['reason']} |" for s in self.skipped]
            lines.append("")
        failed = [r for r in self.rows if r["status"] != "ok"]
        if failed:
            lines += ["## Failed runs", "", "| recipe | scenario | seed | error |", "|---|---|---|---|"]
            lines += [f"| {r['recipe']} | {r['scenario']} | {r['seed']} | {str(r['error'])[:200]} |" for r in failed]
            lines.append("")
        return "\n".join(lines)

    def write(self, out: Path, command: Optional[str] = None) -> list[Path]:
        """Write ``results.csv``, ``results.md``, ``summary.json``, charts and heatmaps into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        with open(out / "results.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        files.append(out / "results.csv")
        aggs = self.aggregate()
        self.notes = load_notes(out)
        (out / "summary.json").write_text(json.dumps({"benchmark": self.benchmark, "command": command,
                                                      "settings": self.settings, "aggregate": aggs,
                                                      "skipped": self.skipped, "hparams": self.hparams}, indent=1))
        files.append(out / "summary.json")
        md = self.markdown(command)
        for scenario in ("class", "task", "domain"):
            rows = [a for a in aggs if a["scenario"] == scenario and a["n_ok"]]
            if not rows:
                continue
            chart = comparison_chart([a["recipe"] for a in rows], [a["acc_mean"] for a in rows],
                                     [a["acc_std"] for a in rows], [a["family"] for a in rows],
                                     out / f"chart_{scenario}.png",
                                     title=f"{self.benchmark}, {scenario}-incremental: average accuracy")
            files.append(chart)
            md += f"\n![{scenario}-incremental accuracy](chart_{scenario}.png)\n"
        for (recipe, scenario), mats in sorted(self.matrices.items()):
            mean = np.mean(np.asarray(mats, dtype=float), axis=0)
            files.append(accuracy_heatmap(mean, out / "heatmaps" / f"{scenario}_{recipe}.png",
                                          title=f"{recipe}, {scenario}-IL (mean of {len(mats)} seed(s))"))
        (out / "results.md").write_text(md)
        files.append(out / "results.md")
        files += self.write_recipe_snippets(out / "recipes", aggs, command)
        return files

    def notes_lines(self, scenario: str, aggs: list[dict[str, Any]]) -> list[str]:
        """The lines under a scenario's table: each recipe below ``naive``, with Welch's t-test of its per-seed
        accuracies against naive's, and its note. A recipe whose gap the seeds cannot tell from noise
        (p >= :data:`SIGNIFICANCE`) needs no note; one that is significantly below asks for one."""
        below = [a for a in below_naive(aggs) if a["scenario"] == scenario]
        if not below:
            return []
        naive = next(a for a in aggs if a["recipe"] == "naive" and a["scenario"] == scenario)
        lines = ["Below `naive` in this scenario:", ""]
        for a in below:
            note = self.notes.get(f"{a['recipe']}/{scenario}")
            p = welch_p(a["accs"], naive["accs"])
            test = f"{_fmt(a['acc_mean'], a['acc_std'])} against {_fmt(naive['acc_mean'], naive['acc_std'])}"
            if not np.isnan(p):
                test += f"; Welch's t-test p = {p:.2f} over {a['n_ok']} and {naive['n_ok']} seeds"
            if not np.isnan(p) and p >= SIGNIFICANCE:
                text = f"not distinguishable from `naive` over these seeds ({test})" + (f". {note}" if note else "")
            else:
                text = (note or f"no note yet (add `{a['recipe']}/{scenario}` to notes.json)") + f" ({test})"
            lines.append(f"- `{a['recipe']}`: {text}")
        return lines + [""]

    def write_recipe_snippets(self, folder: Path, aggs: list[dict[str, Any]], command: Optional[str]) -> list[Path]:
        """One small Markdown table per recipe, included by the method pages of the docs."""
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for recipe in sorted({a["recipe"] for a in aggs}):
            rows = [a for a in aggs if a["recipe"] == recipe]
            lines = [f"On `{self.benchmark}`" + (f", reproduced by `{command}`" if command else "")
                     + f" ({STD_CONVENTION}):", "",
                     "| scenario | seeds | accuracy (%) | forgetting (%) | task inference (%) | time / naive |",
                     "|---|---|---|---|---|---|"]
            for a in rows:
                ratio = "-" if np.isnan(a["time_vs_naive"]) else f"{a['time_vs_naive']:.2f}"
                lines.append(f"| {a['scenario']}-IL | {a['n_ok']} | {_fmt(a['acc_mean'], a['acc_std'])} | "
                             f"{_fmt(a['forgetting_mean'], a['forgetting_std'])} | "
                             f"{_fmt(a['task_inference_mean'], a['task_inference_std'])} | {ratio} |")
            skipped = [s for s in self.skipped if s["recipe"] == recipe]
            if skipped:
                lines += ["", "Not run: " + "; ".join(f"{s['scenario']}-IL ({s['reason']})" for s in skipped) + "."]
            path = folder / f"{recipe}.md"
            path.write_text("\n".join(lines) + "\n")
            files.append(path)
        return files
