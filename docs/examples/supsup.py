"""SupSup on three permuted-digits tasks: learn one supermask per task, infer the task at test."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.metrics import task_inference_metrics
from avalanche_ext.models import build_network, build_supsup_network
from avalanche_ext.plugins import SupSupPlugin

torch.manual_seed(0)
stream = build_benchmark("permuted_digits", "domain", n_experiences=3, seed=0)

# An ordinary MLP becomes a supermask network: fixed random signed weights, one mask per task.
# 90 extra ("superfluous") output units sharpen task inference.
net = build_supsup_network(build_network(stream.input_shape, stream.n_outputs, hidden=200), extra_outputs=90)

# GNs: experiences name the tasks while training; at test the task of each sample is inferred.
supsup = SupSupPlugin(mode="gns", task_ids="experiences", inference="oneshot", infer_per="sample")
strategy = Naive(
    model=net,
    optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),  # only the live task's scores are parameters
    criterion=torch.nn.CrossEntropyLoss(),
    train_mb_size=32,
    train_epochs=3,
    eval_mb_size=256,
    plugins=[supsup],
    evaluator=EvaluationPlugin(accuracy_metrics(stream=True), *task_inference_metrics(), loggers=[]),
)

for experience in stream.train_stream:
    strategy.train(experience)
    metrics = strategy.eval(stream.test_stream)

print(f"masks learned: {net.num_masks}, {net.memory_report()['mask_bytes_per_task']} bytes each")
print(f"accuracy: {metrics['Top1_Acc_Stream/eval_phase/test_stream/Task000']:.3f}")
print(f"task-inference accuracy: {metrics['TaskInference_Acc_Stream/eval_phase/test_stream']:.3f}")
