"""Forward transfer of Progress & Compress: does the active column learn a new task faster with adaptors?

Two runs per seed on the same stream and settings: ``lateral="auto"`` (adaptors from the
knowledge base into every layer of the active column but the first) and ``lateral=()``
(no adaptor: the active column learns alone, as if from scratch). During the progress
phase of every experience after the first, the active column is evaluated on that
experience's test data every ``--every`` mini-batches and at the end of every epoch.

Reported, averaged over experiences 2..T and seeds:

* ``first``: the active column's accuracy after ``--every`` mini-batches;
* ``epoch1``: its accuracy after one epoch;
* ``auc``: the mean of all its evaluations during the progress phase (area under the
  learning curve, normalised);
* the final average accuracy of the knowledge base over the stream.

Forward transfer is the difference "with adaptors" minus "without".

    python perf/progress_compress_transfer.py --benchmark split_mnist5k --scenario task --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.evaluation.metrics import accuracy_metrics  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin  # noqa: E402

from avalanche_ext.benchmarks import build_benchmark  # noqa: E402
from avalanche_ext.functional import average_accuracy  # noqa: E402
from avalanche_ext.hparams import COMMON, COMMON_PER_BENCHMARK  # noqa: E402
from avalanche_ext.models import build_network  # noqa: E402
from avalanche_ext.models.progress_compress import ProgressCompressNet  # noqa: E402
from avalanche_ext.registry import get_recipe  # noqa: E402
from avalanche_ext.runner import seed_everything  # noqa: E402
from avalanche_ext.templates import ProgressCompress  # noqa: E402


@torch.no_grad()
def column_accuracy(net: ProgressCompressNet, dataset, column: str, batch_size: int = 512) -> float:
    was_training = net.training
    net.eval()
    correct = total = 0
    try:
        with net.use(column):
            for x, y, t in torch.utils.data.DataLoader(dataset, batch_size=batch_size):
                correct += int((net(x, t).argmax(1) == y).sum())
                total += len(y)
    finally:
        net.train(was_training)
    return correct / max(total, 1)


class LearningCurve(SupervisedPlugin):
    """The active column's test accuracy on the current experience during the progress phase."""

    def __init__(self, test_stream, every: int):
        super().__init__()
        self.test_stream = test_stream
        self.every = every
        self.curves: dict[int, list[tuple[str, float]]] = {}
        self._iters = 0

    def before_training_exp(self, strategy, *args, **kwargs):
        self._iters = 0
        self.curves[strategy.clock.train_exp_counter] = []

    def _record(self, strategy, label: str) -> None:
        exp = strategy.clock.train_exp_counter
        data = self.test_stream[exp].dataset.eval()
        self.curves[exp].append((label, column_accuracy(strategy.model, data, "ac")))

    def after_training_iteration(self, strategy, *args, **kwargs):
        if strategy.phase != "progress":
            return
        self._iters += 1
        if self._iters % self.every == 0:
            self._record(strategy, f"iter{self._iters}")

    def after_training_epoch(self, strategy, *args, **kwargs):
        if strategy.phase == "progress":
            self._record(strategy, f"epoch{strategy.phase_epoch + 1}")


def run_one(args, seed: int, lateral) -> dict:
    hp = get_recipe("progress_compress").defaults(args.benchmark)
    stream = build_benchmark(args.benchmark, args.scenario, seed=seed, validation=args.validation)
    seed_everything(seed)
    column = build_network(stream.input_shape, stream.n_outputs, arch=hp["arch"], hidden=hp["hidden"],
                           layers=hp["layers"], multihead=stream.multihead)
    net = ProgressCompressNet(column, lateral=lateral)
    curve = LearningCurve(stream.test_stream, args.every)
    evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    strategy = ProgressCompress(
        model=net, optimizer=torch.optim.Adam(net.parameters(), lr=hp["lr"]),
        progress_epochs=args.epochs or hp["epochs"], compress_epochs=args.compress_epochs or hp["compress_epochs"],
        ewc_lambda=args.ewc_lambda if args.ewc_lambda is not None else hp["ewc_lambda"], gamma=hp["gamma"],
        train_mb_size=hp["batch_size"], eval_mb_size=512, plugins=[curve], evaluator=evaluator,
    )
    matrix = []
    t0 = time.perf_counter()
    for exp in stream.train_stream:
        strategy.train(exp)
        metrics = strategy.eval(stream.test_stream)
        matrix.append([metrics[k] for k in sorted(metrics) if k.startswith("Top1_Acc_Exp/eval_phase/test_stream")])
    later = [c for e, c in curve.curves.items() if e > 0]
    return {
        "seed": seed, "lateral": "auto" if lateral == "auto" else "none",
        "first": statistics.mean(c[0][1] for c in later),
        "epoch1": statistics.mean(dict(c)["epoch1"] for c in later),
        "auc": statistics.mean(statistics.mean(v for _, v in c) for c in later),
        "final_acc": average_accuracy(matrix),
        "params": net.n_parameters(),
        "seconds": time.perf_counter() - t0,
        "curves": {e: c for e, c in curve.curves.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--benchmark", default="split_mnist5k")
    p.add_argument("--scenario", default="task")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=None, help="progress epochs (default: the recipe's)")
    p.add_argument("--compress-epochs", type=int, default=None)
    p.add_argument("--ewc-lambda", type=float, default=None)
    p.add_argument("--every", type=int, default=5, help="evaluate the active column every N mini-batches")
    p.add_argument("--validation", action="store_true", help="evaluate on a split of the training data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write every record to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    records = []
    for seed in args.seeds:
        for lateral in ("auto", ()):
            r = run_one(args, seed, lateral)
            records.append(r)
            print(f"seed {seed} adaptors {r['lateral']:4}: first {r['first']:.4f}  epoch1 {r['epoch1']:.4f}  "
                  f"auc {r['auc']:.4f}  final acc {r['final_acc']:.4f}  ({r['seconds']:.0f}s)", flush=True)
    print(f"\n{args.benchmark} {args.scenario}-IL, seeds {args.seeds}, active column on experiences 2..T")
    print(f"{'measure':10} {'with':>8} {'without':>8} {'transfer':>9}")
    for key in ("first", "epoch1", "auc", "final_acc"):
        with_ = statistics.mean(r[key] for r in records if r["lateral"] == "auto")
        without = statistics.mean(r[key] for r in records if r["lateral"] == "none")
        print(f"{key:10} {with_:8.4f} {without:8.4f} {with_ - without:+9.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
