"""Synaptic Intelligence with Avalanche on split digits (task-IL, multi-head)."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network
from avalanche_ext.plugins import SafeSynapticIntelligencePlugin

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64, multihead=True)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("si", n_experiences=stream.n_experiences)])
# Avalanche's SynapticIntelligence learns no importance on the CPU (its weight snapshots are views);
# this plugin is the same algorithm with copied snapshots
si = SafeSynapticIntelligencePlugin(
    si_lambda=1000.0,  # weight of the quadratic penalty (Avalanche clips each importance to 1e-3)
    eps=0.1,  # damping of the importance denominator
)
strategy = Naive(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=16, train_epochs=1, eval_mb_size=256, plugins=[si], evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)  # importances accumulate along the optimisation path
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"si, task-IL: final stream accuracy {acc:.3f}")
omega = torch.cat([v.data for v in si.ewc_data[1].values()])
print(f"importances: {int((omega > 0).sum())} of {omega.numel()} weights have a positive one")
