"""Progress & Compress on split_digits (task-IL): an active column learns, a knowledge base keeps."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import build_network
from avalanche_ext.models.progress_compress import ProgressCompressNet
from avalanche_ext.templates import ProgressCompress

torch.manual_seed(0)
stream = build_benchmark("split_digits", "task")  # 5 experiences of 2 digits, one head per task
column = build_network(stream.input_shape, stream.n_outputs, hidden=64, multihead=True)
net = ProgressCompressNet(column)  # knowledge base = column, active column = fresh copy + adaptors

strategy = ProgressCompress(
    model=net,
    optimizer=torch.optim.Adam(net.parameters(), lr=1e-3),
    progress_epochs=2,  # active column + adaptors learn the task, knowledge base frozen
    compress_epochs=1,  # knowledge base distils the active column under online EWC
    ewc_lambda=100.0,
    gamma=1.0,
    train_mb_size=32,
    eval_mb_size=256,
    evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
)
for experience in stream.train_stream:
    strategy.train(experience)
    metrics = strategy.eval(stream.test_stream)  # always evaluates the knowledge base
    acc = [v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream")][0]
    print(f"after experience {experience.current_experience}: accuracy {acc:.3f}, parameters {net.n_parameters()}")
print("last compress epoch:", strategy.phase_log[-1])
