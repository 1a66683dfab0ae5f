"""GDumb with Avalanche on split digits (class-IL): a class-balanced memory, a model retrained from scratch on it."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import GDumb
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("gdumb", n_experiences=stream.n_experiences)])
strategy = GDumb(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    mem_size=200,  # total memory, split evenly between the classes seen so far
    # GDumb trains only on the small memory, so a few epochs cost about as much as one epoch of the others.
    train_mb_size=16, train_epochs=5, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)  # resets the model, updates the memory, trains on the memory only
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"gdumb, class-IL: final stream accuracy {acc:.3f}")
