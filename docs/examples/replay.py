"""Random experience-balanced replay with Avalanche on split digits (class-IL)."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
from avalanche.training.storage_policy import ExperienceBalancedBuffer

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)
# After experience i the buffer holds mem_size / i random samples of each experience seen.
mem_size = 200
replay = ReplayPlugin(mem_size=mem_size, storage_policy=ExperienceBalancedBuffer(max_size=mem_size, adaptive_size=True))
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("replay", n_experiences=stream.n_experiences)])
strategy = Naive(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=16, train_epochs=1, eval_mb_size=256, plugins=[replay],
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"replay, class-IL: final stream accuracy {acc:.3f} with {len(replay.storage_policy.buffer)} stored samples")
