"""Naive fine-tuning with Avalanche on split digits (class-IL), tracked in a throw-away MLflow store."""

import tempfile

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from mlflow.tracking import MlflowClient

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.logging import MLflowLogger
from avalanche_ext.models import build_network

torch.manual_seed(0)
torch.set_num_threads(1)

stream = build_benchmark("split_digits", "class", n_experiences=2, seed=0)
model = build_network(stream.input_shape, stream.n_outputs, hidden=64)

# Keep the run (database and artifacts) in a temporary folder; use your own path or server instead.
store = tempfile.mkdtemp()
uri = f"sqlite:///{store}/mlflow.db"
MlflowClient(uri).create_experiment("examples", artifact_location=f"{store}/artifacts")
with MLflowLogger("examples", run_name="naive", tracking_uri=uri, params={"benchmark": "split_digits"}) as logger:
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=1, eval_mb_size=256,
                     evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[logger]))
    for experience in stream.train_stream:
        strategy.train(experience)
        results = strategy.eval(stream.test_stream)  # one row of the accuracy matrix per experience

acc = next(v for k, v in results.items() if k.startswith("Top1_Acc_Stream"))
print(f"naive, class-IL: final stream accuracy {acc:.3f}; accuracy matrix {logger.matrix()}")
print(f"browse with: mlflow ui --backend-store-uri {uri}")
