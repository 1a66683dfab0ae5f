"""Measure the SupSup recipe (and ``naive`` for reference) over several seeds.

Runs ``avalanche-ext``'s runner for each setting and prints one row per setting: mean and
standard deviation over seeds of average accuracy, forgetting and SupSup's task-inference
accuracy (read back from the MLflow run, where the plugin publishes it, as it does the
number of masks).

Usage:
    python perf/supsup_results.py --seeds 0 1 2 --threads 1 --tracking-uri sqlite:////tmp/supsup.db
    python perf/supsup_results.py --only gns_permuted --set infer_per=batch
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from avalanche_ext.report.stats import fmt, mean_std
from avalanche_ext.runner import RunConfig, run

#: name -> (recipe, benchmark, scenario, n_experiences, overrides)
SETTINGS = {
    "gg_split": ("supsup", "split_mnist5k", "task", None, {}),
    "gg_permuted": ("supsup", "permuted_mnist5k", "task", 10, {}),
    "gns_permuted": ("supsup", "permuted_mnist5k", "domain", 10, {}),
    "gns_split_class": ("supsup", "split_mnist5k", "class", None, {}),  # inference=auto -> exhaustive
    "gns_split_class_batch": ("supsup", "split_mnist5k", "class", None, {"infer_per": "batch"}),
    "gns_split_class_oneshot": ("supsup", "split_mnist5k", "class", None, {"inference": "oneshot"}),
    "gns_split_class_oneshot_batch": ("supsup", "split_mnist5k", "class", None,
                                      {"inference": "oneshot", "infer_per": "batch"}),
    "naive_split_class": ("naive", "split_mnist5k", "class", None, {}),
    "gnu_permuted": ("supsup", "permuted_mnist5k", "domain", 10, {"mode": "gnu"}),
}


def last_metric(tracking_uri: str, run_id: str, name: str) -> float | None:
    from mlflow.tracking import MlflowClient

    history = MlflowClient(tracking_uri=tracking_uri).get_metric_history(run_id, name)
    return max(history, key=lambda m: (m.step, m.timestamp)).value if history else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(SETTINGS), default=None)
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value overrides for the supsup runs")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tracking-uri", default="sqlite:////tmp/supsup_results.db")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extra = dict(kv.split("=", 1) for kv in args.set)
    for name in args.only or list(SETTINGS):
        recipe, bench, scenario, n_exp, overrides = SETTINGS[name]
        over = {**overrides, **(extra if recipe == "supsup" else {})}
        rows = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            res = run(RunConfig(recipe=recipe, benchmark=bench, scenario=scenario, seed=seed, n_experiences=n_exp,
                                epochs=args.epochs, overrides=over, tracking_uri=args.tracking_uri,
                                progress=False, threads=args.threads))
            inf = masks = None
            if recipe == "supsup":
                inf = last_metric(args.tracking_uri, res["mlflow_run_id"], "TaskInference_Acc_Stream/eval_phase/test_stream")
                masks = last_metric(args.tracking_uri, res["mlflow_run_id"], "SupSup_Masks/train_phase")
            rows.append((res["acc"], res["forgetting"], inf))
            print(json.dumps({"setting": name, "seed": seed, "acc": res["acc"], "forgetting": res["forgetting"],
                              "task_inference_acc": inf, "masks": masks, "train_s": round(res["train_s"], 1),
                              "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)

        def stat(i: int) -> str:
            vals = [r[i] for r in rows if r[i] is not None]
            if not vals:
                return "-"
            return fmt(*mean_std(vals), digits=2)

        print(f"| {name} | {bench} | {scenario} | {stat(0)} | {stat(1)} | {stat(2)} |", flush=True)


if __name__ == "__main__":
    main()
