"""Hypernetworks on split digits: task-IL with task labels, then class-IL with entropy task inference."""

import torch
from avalanche.training import Naive
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.metrics import task_inference_metrics
from avalanche_ext.models import HyperNetClassifier, build_network
from avalanche_ext.plugins import HypernetworkPlugin

torch.manual_seed(0)
torch.set_num_threads(1)

for scenario in ("task", "class"):
    stream = build_benchmark("split_digits", scenario)
    # an ordinary single-head network; the hypernetwork generates all its weights per task
    target = build_network(stream.input_shape, stream.n_outputs, hidden=100, layers=2)
    model = HyperNetClassifier(target, task_inference=scenario != "task",  # HNET+ENT without task labels
                               embedding_dim=32, chunk_size=800, chunk_embedding_dim=16, hidden=(16,))
    hnet = HypernetworkPlugin(beta=0.05)
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=4, eval_mb_size=512,
                     evaluator=EvaluationPlugin(accuracy_metrics(experience=True), *task_inference_metrics(),
                                                loggers=[]),
                     plugins=[hnet])
    for experience in stream.train_stream:
        strategy.train(experience)
    results = strategy.eval(stream.test_stream)
    acc = [v for k, v in sorted(results.items()) if k.startswith("Top1_Acc_Exp/")]
    print(f"{scenario}-IL: compression ratio {model.memory_report()['compression_ratio']:.2f}, "
          f"accuracy per experience {[round(a, 3) for a in acc]}, mean {sum(acc) / len(acc):.3f}")
    if "TaskInference_Acc_Stream/eval_phase/test_stream" in results:  # only when the task is inferred
        print(f"  task-inference accuracy {results['TaskInference_Acc_Stream/eval_phase/test_stream']:.3f}")
