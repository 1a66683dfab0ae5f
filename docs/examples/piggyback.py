"""Piggyback on split_digits (task-IL): task 0 trains the backbone, tasks 1-4 learn binary masks over it."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.models.piggyback import PiggybackNet
from avalanche_ext.plugins.piggyback import PiggybackPlugin

torch.set_num_threads(1)
torch.manual_seed(0)
stream = build_benchmark("split_digits", "task", seed=0)  # task label t, classes 0..1 per task
net = build_network(stream.input_shape, stream.n_outputs, hidden=200)  # net.features: 64 -> 200 -> 200
model = PiggybackNet(net.features, feature_size=200, n_outputs=stream.n_outputs, threshold=5e-3, mask_scale=1e-2)
plugin = PiggybackPlugin()
strategy = Naive(
    model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=5, eval_mb_size=256,
    plugins=[plugin], evaluator=EvaluationPlugin(accuracy_metrics(experience=True), loggers=[]),
)

for exp in stream.train_stream:
    strategy.train(exp)
    metrics = strategy.eval(stream.test_stream[:1])
    task0 = metrics["Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp000"]
    kept = [float(layer.binary_mask(exp.current_experience).mean()) if exp.current_experience else 1.0
            for layer in model.masked_layers()]
    print(f"after task {exp.current_experience}: task-0 accuracy {task0:.3f}, "
          f"weights kept per layer {[round(k, 2) for k in kept]}")

memory = model.memory_report()
print("bytes stored per task after the first (masks + head):", memory["bytes_per_task"])
print("shared backbone bytes:", memory["backbone_bytes"])
