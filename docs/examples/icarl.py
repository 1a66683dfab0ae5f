"""iCaRL with Avalanche on split digits (class-IL): herding exemplars, distillation, nearest-mean-of-exemplars."""

import torch
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import ICaRL
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import ProgressLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
net = build_network(stream.input_shape, stream.n_outputs, hidden=64)
# iCaRL takes the feature extractor and the training head apart; it brings its own loss (no criterion).
evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, stream=True), loss_metrics(epoch=True),
                             loggers=[ProgressLogger("icarl", n_experiences=stream.n_experiences)])
strategy = ICaRL(
    feature_extractor=net.features, classifier=net.classifier,
    optimizer=torch.optim.Adam(net.parameters(), lr=1e-2),
    memory_size=200,  # exemplars in total, shared by the classes seen so far
    buffer_transform=None, fixed_memory=True,
    train_mb_size=16, train_epochs=1, eval_mb_size=256,
    evaluator=evaluator,
)
for experience in stream.train_stream:
    strategy.train(experience)
results = strategy.eval(stream.test_stream)  # classified by the nearest class mean of the exemplars
acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"icarl, class-IL: final stream accuracy {acc:.3f}")
