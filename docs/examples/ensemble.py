"""The Ensemble baseline on split_digits: one network per experience, task-IL and class-IL."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.models.ensemble import Ensemble
from avalanche_ext.plugins.ensemble import EnsemblePlugin

torch.set_num_threads(1)
torch.manual_seed(0)

for scenario, mode in (("task", "task"), ("class", "class")):
    stream = build_benchmark("split_digits", scenario, seed=0)
    model = Ensemble(lambda: build_network(stream.input_shape, stream.n_outputs, hidden=200),
                     n_outputs=stream.n_outputs, mode=mode, combine="mean_softmax")
    strategy = Naive(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),  # the plugin points it at each new member
        criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=5, eval_mb_size=256,
        plugins=[EnsemblePlugin()],
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
    )
    for exp in stream.train_stream:
        strategy.train(exp)
    metrics = strategy.eval(stream.test_stream)
    per_exp = [v for k, v in metrics.items() if k.startswith("Top1_Acc_Exp/eval_phase/test_stream")]
    print(f"{scenario}-IL: {len(model.members)} members, mean accuracy over experiences "
          f"{sum(per_exp) / len(per_exp):.3f}")
