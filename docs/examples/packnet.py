"""PackNet with Avalanche on split digits (task-IL): prune after each task, freeze what the task kept."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.models.packnet import PackNetModel
from avalanche.training import PackNet
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)  # PackNet selects weights by task label
# PackNetModel wraps every Linear/Conv layer so that each task owns a frozen subset of its weights.
model = PackNetModel(build_network(stream.input_shape, stream.n_outputs, hidden=64))
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("packnet", n_experiences=stream.n_experiences)])
strategy = PackNet(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), criterion=torch.nn.CrossEntropyLoss(),
    prune_proportion=0.5,  # share of this task's free weights released for later tasks
    post_prune_epochs=1,  # fine-tuning after pruning; it must be < train_epochs, hence 1 + 1 epochs
    train_mb_size=16, train_epochs=2, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)
results = strategy.eval(stream.test_stream)
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"packnet, task-IL: final stream accuracy {acc:.3f}")
