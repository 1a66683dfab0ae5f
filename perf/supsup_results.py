"""Measure the SupSup recipe (and ``naive`` for reference) over several seeds.

Runs ``avalanche-ext``'s runner for each setting and prints one JSON line per run, then a Markdown
table with one row per setting: mean ± sample std over seeds of average accuracy (%), forgetting
(points) and SupSup's task-inference accuracy (%) (read back from the MLflow run, where the plugin
publishes it, as it does the number of masks).

Usage:
    python perf/supsup_results.py --seeds 0 1 2 --threads 1 --tracking-uri sqlite:////tmp/supsup.db
    python perf/supsup_results.py --only gns_permuted --set infer_per=batch

The record the SupSup page includes, ``perf/results/supsup_permuted10_test.txt``, is the output of::

    python perf/supsup_results.py --seeds 0 1 2 --only gg_permuted gns_permuted gnu_permuted gns_permuted_no_extra_outputs
    python perf/supsup_results.py --seeds 0 1 2 --only gns_permuted_10task_lr gnu_permuted_10task_lr
    python perf/supsup_results.py --seeds 0 1 2 --only gns_permuted_10task_lr_no_extra_outputs

The first runs the recipe's settings, chosen on 5 tasks; the others the learning rate chosen on the
validation split of 10 tasks.
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
    "gns_permuted_no_extra_outputs": ("supsup", "permuted_mnist5k", "domain", 10, {"extra_outputs": 0}),
    "gns_split_class": ("supsup", "split_mnist5k", "class", None, {}),  # inference=auto -> exhaustive
    "gns_split_class_batch": ("supsup", "split_mnist5k", "class", None, {"infer_per": "batch"}),
    "gns_split_class_oneshot": ("supsup", "split_mnist5k", "class", None, {"inference": "oneshot"}),
    "gns_split_class_oneshot_batch": ("supsup", "split_mnist5k", "class", None,
                                      {"inference": "oneshot", "infer_per": "batch"}),
    "naive_split_class": ("naive", "split_mnist5k", "class", None, {}),
    "gnu_permuted": ("supsup", "permuted_mnist5k", "domain", 10, {"mode": "gnu"}),
    # 10 tasks with the learning rate that the validation split of 10 tasks chose (seed 0, one-shot inference):
    # 0.001 against the 0.01 that the 5-task search chose (perf/results/supsup_permuted_inference_val.jsonl)
    "gns_permuted_10task_lr": ("supsup", "permuted_mnist5k", "domain", 10, {"lr": 0.001}),
    "gnu_permuted_10task_lr": ("supsup", "permuted_mnist5k", "domain", 10, {"mode": "gnu", "lr": 0.001}),
    "gns_permuted_10task_lr_no_extra_outputs": ("supsup", "permuted_mnist5k", "domain", 10,
                                                {"lr": 0.001, "extra_outputs": 0}),
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
    table = ["| setting | benchmark | scenario | accuracy (%) | forgetting (points) | task inference (%) | masks |",
             "|---|---|---|---|---|---|---|"]
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
            rows.append((res["acc"], res["forgetting"], inf, masks))
            print(json.dumps({"setting": name, "seed": seed, "acc": res["acc"], "forgetting": res["forgetting"],
                              "task_inference_acc": inf, "masks": masks, "train_s": round(res["train_s"], 1),
                              "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)

        def stat(i: int) -> str:
            vals = [r[i] for r in rows if r[i] is not None]
            if not vals:
                return "-"
            return fmt(*mean_std(vals), digits=2)

        masks = sorted({int(r[3]) for r in rows if r[3] is not None})
        where = f"{bench}, {n_exp} tasks" if n_exp else bench
        table.append(f"| {name} | {where} | {scenario} | {stat(0)} | {stat(1)} | {stat(2)} "
                     f"| {', '.join(map(str, masks)) or '-'} |")
    print("\n".join(["", f"mean ± sample std over seeds {', '.join(map(str, args.seeds))}", ""] + table), flush=True)


if __name__ == "__main__":
    main()
