"""Write docs/snippets/latent_family_split_fmnist.md from the records of perf/gnr_compare.py.

The latent replay, generative latent replay and AR1 pages include the snippet; every number
in it is read from ``perf/results/gnr_compare_n10.txt`` and ``perf/results/gnr_compare_n5.txt``
(one JSON line per run, then the replay memory of each recipe) or from the recipes' settings.

    python scripts/latent_family_table.py            # rewrite the snippet
    python scripts/latent_family_table.py --check    # exit 1 if the snippet is out of date
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "docs" / "snippets" / "latent_family_split_fmnist.md"
RECORDS = {10: ROOT / "perf" / "results" / "gnr_compare_n10.txt", 5: ROOT / "perf" / "results" / "gnr_compare_n5.txt"}
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from snippet_file import write_or_check  # noqa: E402

#: how each method of the record is named in the tables (recipes with a page link to it).
LABELS = {
    "naive": "`naive` (from scratch)",
    "naive_pretrained": "`naive`, pretrained",
    "cwr_star": "`cwr_star`, pretrained",
    "cwr_star_frozen": "`cwr_star_frozen`",
}


def read_record(path: Path) -> tuple[list[dict], dict[str, dict]]:
    """The runs (JSON lines at the start of a line) and the memory rows (indented JSON lines, by recipe)."""
    runs, memory = [], {}
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            runs.append(json.loads(line))
        elif line.startswith("  {"):
            row = json.loads(line)
            memory[row["recipe"]] = row
    return runs, memory


def by_method(runs: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for r in runs:
        grouped.setdefault(r["method"], []).append(r)
    return grouped


def label(method: str) -> str:
    return LABELS.get(method, f"[`{method}`]({method}.md)")


def accuracy(runs: list[dict]) -> tuple[float, float, str]:
    accs = [100 * r["acc"] for r in runs]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return statistics.mean(accs), sd, ", ".join(f"{a:.2f}" for a in accs)


def leader(grouped: dict[str, list[dict]]) -> str:
    return max(grouped, key=lambda m: accuracy(grouped[m])[0])


def rows(grouped: dict[str, list[dict]], detailed: bool) -> list[str]:
    best = leader(grouped)
    out = []
    for method, runs in grouped.items():
        mean, sd, seeds = accuracy(runs)
        acc = f"{mean:.2f} ± {sd:.2f}"
        cells = [label(method), f"**{acc}**" if method == best else acc, seeds]
        if detailed:
            times = [r["train_s"] for r in runs]
            cells += [f"{statistics.mean(r['forgetting'] for r in runs):.2f}",
                      f"{round(min(times))} to {round(max(times))}"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def seeds_of(runs: list[dict]) -> list[int]:
    return sorted({r["seed"] for r in runs})


def memory_paragraph(memory: dict[str, dict]) -> str:
    lr, gen = memory["latent_replay"], memory["gnr"]
    same = [n for n in ("ar1",) if n in memory and memory[n]["memory.latent_bytes"] == lr["memory.latent_bytes"]]
    stores = " and ".join(f"`{n}`" for n in ["latent_replay", *same])
    return (f"Replay memory of the same runs: {stores} keep {lr['memory.samples']:,} latent vectors of "
            f"{lr['memory.latent_dim']} float32 values, {lr['memory.latent_bytes']:,} bytes (the same "
            f"{lr['memory.samples']:,} images would take {lr['memory.raw_bytes_float32']:,} bytes as float32 or "
            f"{lr['memory.raw_bytes_uint8']:,} bytes as 8-bit pixels); `gnr` and `generative_latent_replay` keep no "
            f"sample but a VAE of {gen['memory.generator_params']:,} parameters, {gen['memory.generator_bytes']:,} "
            f"bytes, the size of {gen['memory.equal_bytes.samples']:,} stored latent vectors.")


def snippet() -> str:
    from avalanche_ext.registry import get_recipe

    pretrain_epochs = get_recipe("latent_replay").defaults("split_fmnist")["pretrain_epochs"]
    (long_runs, memory), (short_runs, _) = read_record(RECORDS[10]), read_record(RECORDS[5])
    n_long, n_short = long_runs[0]["n_experiences"], short_runs[0]["n_experiences"]
    n_classes = len(long_runs[0]["final_row"])  # one class per experience in the longer stream
    seeds = seeds_of(long_runs)
    long, short = by_method(long_runs), by_method(short_runs)
    lead_long, lead_short = leader(long), leader(short)
    per_exp = n_classes // n_short
    lines = [
        f"Class-incremental `split_fmnist`, {n_long} experiences of one class each, test stream, {len(seeds)} seeds",
        f"({', '.join(map(str, seeds))}), final average accuracy over all {n_classes} classes (mean ± std, then each "
        f"seed). Every",
        "method but `naive` starts from the same feature extractor, pretrained for "
        f"{pretrain_epochs} epochs on the",
        "MNIST subset (never on the stream). `cwr_star_frozen` is Avalanche's `CWRStar` over that",
        "extractor frozen from the start; the `cwr_star` recipe trains the extractor on the first",
        "experience.",
        "",
        "| method | accuracy (%) | seeds | mean final forgetting | train time per run (s) |",
        "|---|---|---|---|---|",
        *rows(long, detailed=True),
        "",
        f"With {n_short} experiences of {per_exp} classes each (`--n-experiences {n_short}`, output in",
        f"`perf/results/{RECORDS[5].name}`), `{lead_short}` leads"
        + (":" if lead_short == lead_long else f" (with {n_long} experiences: `{lead_long}`):"),
        "",
        "| method | accuracy (%) | seeds |",
        "|---|---|---|",
        *rows(short, detailed=False),
        "",
        memory_paragraph(memory),
        "",
        f"Measured with `python perf/gnr_compare.py --seeds {' '.join(map(str, seeds))} --n-experiences {n_long}` "
        "(one process, one",
        "thread; the full output, one JSON line per run with the final row of the accuracy matrix, is",
        f"in `perf/results/{RECORDS[10].name}`). This text is written by `scripts/latent_family_table.py`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the snippet differs from the records")
    args = ap.parse_args()
    return write_or_check(SNIPPET, snippet(), check=args.check, command="python scripts/latent_family_table.py")


if __name__ == "__main__":
    raise SystemExit(main())
