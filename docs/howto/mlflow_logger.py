"""MLflowLogger with Avalanche's Replay: in a `with` block, and opened and closed by hand."""

import os

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training import Replay
from avalanche.training.plugins import EvaluationPlugin
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset

from avalanche_ext.logging import MLflowLogger

EPOCHS = int(os.environ.get("HOWTO_EPOCHS", 5))
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # always name the store
torch.manual_seed(0)
x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
train, test = TensorDataset(x[::2], y[::2]), TensorDataset(x[1::2], y[1::2])
train.targets, test.targets = y[::2], y[1::2]
# classes in the order of SplitMNIST's default: 0 and 1 first, then 2 and 3, ...
benchmark = nc_benchmark(train, test, n_experiences=5, task_labels=False, fixed_class_order=list(range(10)))


def train_replay(logger: MLflowLogger) -> None:
    """Avalanche's Replay with the logger in its evaluator: every metric goes to the logger's run."""
    model = nn.Sequential(nn.Linear(64, 200), nn.ReLU(), nn.Linear(200, 10))
    strategy = Replay(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                      criterion=nn.CrossEntropyLoss(), mem_size=200, train_mb_size=32, train_epochs=EPOCHS,
                      evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                                 loss_metrics(epoch=True), loggers=[logger]))
    for experience in benchmark.train_stream:
        strategy.train(experience)
        strategy.eval(benchmark.test_stream)


# 1. `with`: the run opens when the logger is made and ends when the block is left:
#    FINISHED, or FAILED with the traceback if the block raises
with MLflowLogger(experiment_name="howto", run_name="replay-with", tracking_uri=TRACKING_URI,
                  params={"data": "digits"}) as logger:
    train_replay(logger)
first = logger.client.get_run(logger.run_id)

# 2. by hand: the run is already open after __init__; close() ends it (FINISHED unless told otherwise)
logger = MLflowLogger(experiment_name="howto", run_name="replay-close", tracking_uri=TRACKING_URI)
try:
    train_replay(logger)
except BaseException as error:
    logger.fail(error)  # ends the run as FAILED, with the traceback as an artifact
    raise
logger.close()
second = logger.client.get_run(logger.run_id)

for run in (first, second):
    accuracy = run.data.metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
    print(f"run {run.info.run_name}: status {run.info.status}, accuracy {accuracy:.3f}")
print("accuracy matrix of the last run (row i: after training experience i):",
      [[round(a, 2) for a in row] for row in logger.matrix()])
