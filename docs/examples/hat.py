"""HAT on split_digits (task-IL): train five tasks, then check that the first one is not forgotten."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models.hat import build_hat_network
from avalanche_ext.plugins.hat import HATPlugin

torch.set_num_threads(1)  # a small model: one thread is fastest
torch.manual_seed(0)
stream = build_benchmark("split_digits", "task", seed=0)  # task label t, classes 0..1 per task
model = build_hat_network(stream.input_shape, stream.n_outputs, hidden=200, layers=2, s_max=400.0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: HAT rejects momentum/decay/Adam
hat = HATPlugin(c=0.75)
strategy = Naive(
    model=model, optimizer=optimizer, criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=32, train_epochs=10, eval_mb_size=256, plugins=[hat],
    evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
)

first_task_acc = []
for exp in stream.train_stream:
    strategy.train(exp)
    metrics = strategy.eval(stream.test_stream[:1])
    first_task_acc.append(metrics["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"])
    print(f"after task {exp.current_experience}: task-0 accuracy {first_task_acc[-1]:.3f}, "
          f"shared weights held {hat.capacity[-1]:.0%}")

print("memory one more task needs (bytes):", model.memory_report()["bytes_per_task"])
