"""How many epochs latent replay needs: latent replay and naive on split_mnist5k at several epoch counts.

Class-incremental split_mnist5k (5 experiences of two classes), the recipes' own settings
(latent replay: the MLP's ``features`` frozen after the first experience, 1,000 stored
latents), only ``epochs`` changed. Latent replay trains the layers above the cut on a few
replayed latents per mini-batch; with few epochs the head does not catch up with the new
classes' pull and the method is close to naive.

Usage (one process, one thread; the record says how long it took):

    python perf/latent_replay_epochs.py --seeds 0 1 --epochs 5 20

Writes ``perf/results/latent_replay_epochs.json`` (one record per run: final accuracy,
forgetting, final row of the accuracy matrix, training time) and
``perf/results/latent_replay_epochs.md`` (the table the latent replay page includes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from avalanche_ext.report.stats import mean_spread as spread  # noqa: E402

RESULTS = ROOT / "perf" / "results"
BENCHMARK = "split_mnist5k"
METHODS = ("naive", "latent_replay")


def table(record: dict) -> str:
    """The markdown table of ``record`` (what :func:`main` wrote): mean +- std of the final accuracy per setting."""
    runs = record["runs"]
    epochs = sorted({r["epochs"] for r in runs})
    lines = [f"Class-incremental `{record['benchmark']}`, {record['n_experiences']} experiences, seeds "
             f"{', '.join(str(s) for s in record['seeds'])}: final average accuracy over the test stream "
             f"(mean ± std, %) and mean final forgetting.", "",
             "| method | " + " | ".join(f"{e} epochs" for e in epochs) + " |",
             "|---|" + "---|" * len(epochs)]
    for method in record["methods"]:
        cells = []
        for e in epochs:
            sel = [r for r in runs if r["method"] == method and r["epochs"] == e]
            accs = [100 * r["acc"] for r in sel]
            mean, sd = spread(accs)
            fgt = statistics.mean(r["forgetting"] for r in sel)
            cells.append(f"{mean:.2f} ± {sd:.2f} (forgetting {fgt:.2f})")
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    lines += ["", f"Written by `{record['command']}` in {record['wall_s']:.0f} s ({record['cpu_s']:.0f} s of CPU, "
                  f"{record['threads']} thread); the runs are in `perf/results/latent_replay_epochs.json`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--tracking-uri", default="sqlite:////tmp/latent_replay_epochs.db")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS / "latent_replay_epochs.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from avalanche_ext.runner import RunConfig, run

    t_start, cpu_start = time.time(), time.process_time()
    runs = []
    for method in METHODS:
        for epochs in args.epochs:
            for seed in args.seeds:
                out = run(RunConfig(recipe=method, benchmark=BENCHMARK, scenario="class", seed=seed, epochs=epochs,
                                    tracking_uri=args.tracking_uri, progress=False, threads=args.threads))
                runs.append({"method": method, "epochs": epochs, "seed": seed, "acc": out["acc"],
                             "forgetting": out["forgetting"], "final_row": out["acc_matrix"][-1],
                             "train_s": round(out["train_s"], 1)})
                print(json.dumps(runs[-1]), flush=True)
    record = {"benchmark": BENCHMARK, "scenario": "class", "n_experiences": len(runs[0]["final_row"]),
              "seeds": args.seeds, "methods": list(METHODS), "threads": args.threads,
              "command": "python perf/latent_replay_epochs.py --seeds " + " ".join(map(str, args.seeds))
                         + " --epochs " + " ".join(map(str, args.epochs)),
              "wall_s": round(time.time() - t_start, 1), "cpu_s": round(time.process_time() - cpu_start, 1),
              "runs": runs}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(table(record))
    print(table(record))


if __name__ == "__main__":
    main()
