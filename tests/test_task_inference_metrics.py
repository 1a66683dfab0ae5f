"""Task-inference accuracy as Avalanche metrics: hand counts, and silence where no task is inferred."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks import tensors_benchmark
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch import nn

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.metrics import InfersTasks, TaskInferenceAccuracy, task_inference_metrics
from avalanche_ext.models import Ensemble, HyperNetClassifier, build_network
from avalanche_ext.plugins import EnsemblePlugin

EXP = "TaskInference_Acc_Exp/eval_phase/test_stream/Exp{:03d}"
STREAM = "TaskInference_Acc_Stream/eval_phase/test_stream"

# first input feature of the test samples of three experiences; the fake plugin infers task 1 where it is > 0
FEATURES = [[1.0, -1.0, 2.0, 3.0], [-1.0, -2.0, 5.0], [4.0, 4.0]]


class SignInference(SupervisedPlugin):
    """Infers task ``int(x[0] > 0)`` for each sample; experiences 0 and 1 are 'learned', 2 is not."""

    def __init__(self):
        super().__init__()
        self.batch = None

    def after_eval_forward(self, strategy, *args, **kwargs):
        self.batch = (strategy.mb_x[:, 0] > 0).long()

    def inferred_tasks(self, experience):
        expected = int(experience.current_experience)
        return None if expected == 2 else (self.batch, expected)


def tiny_stream():
    tensors = []
    for feats in FEATURES:
        x = torch.zeros(len(feats), 3)
        x[:, 0] = torch.tensor(feats)
        tensors.append((x, torch.zeros(len(feats), dtype=torch.long)))
    return tensors_benchmark(train_tensors=tensors, test_tensors=tensors, task_labels=[0, 0, 0])


def strategy_for(model, plugins, *, metrics=None):
    evaluator = EvaluationPlugin(*(task_inference_metrics() if metrics is None else metrics), loggers=[])
    return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=nn.CrossEntropyLoss(),
                 train_mb_size=4, eval_mb_size=2, evaluator=evaluator, plugins=plugins)


def task_inference_values(metrics):
    return {k: v for k, v in metrics.items() if k.startswith("TaskInference")}


def test_values_are_the_hand_count_over_learned_experiences():
    plugin = SignInference()
    assert isinstance(plugin, InfersTasks)
    strategy = strategy_for(nn.Linear(3, 2), [plugin])
    values = task_inference_values(strategy.eval(tiny_stream().test_stream))
    # experience 0 expects task 0: only the sample with feature -1 is right (1 of 4); experience 1 expects
    # task 1: only the feature 5 (1 of 3); experience 2 is not learned and is not counted
    assert values == {EXP.format(0): 1 / 4, EXP.format(1): 1 / 3, STREAM: 2 / 7}


def test_each_metric_can_be_asked_for_alone_and_resets_between_evaluations():
    plugin = SignInference()
    strategy = strategy_for(nn.Linear(3, 2), [plugin], metrics=task_inference_metrics(experience=False))
    stream = tiny_stream().test_stream
    assert task_inference_values(strategy.eval(stream)) == {STREAM: 2 / 7}
    assert task_inference_values(strategy.eval(stream[1:])) == {STREAM: 1 / 3}
    assert task_inference_metrics(experience=False, stream=False) == []


def test_nothing_is_emitted_for_models_that_do_not_infer_tasks():
    stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)
    plain = build_network(stream.input_shape, stream.n_outputs, hidden=8, multihead=True)
    assert task_inference_values(strategy_for(plain, []).eval(stream.test_stream)) == {}
    hnet = HyperNetClassifier(build_network(stream.input_shape, stream.n_outputs, hidden=8), embedding_dim=4,
                              chunk_size=64, chunk_embedding_dim=4, hidden=(4,))
    strategy = strategy_for(hnet, [])
    strategy.train(stream.train_stream[0])
    assert task_inference_values(strategy.eval(stream.test_stream)) == {}


def test_standalone_metric_counts_samples_and_is_none_before_any():
    metric = TaskInferenceAccuracy()
    assert metric.result() is None
    metric.update(torch.tensor([2, 2, 0]), 2)
    metric.update(torch.tensor([1]), 2)
    assert metric.result() == 2 / 4
    metric.reset()
    assert metric.result() is None


@pytest.mark.parametrize("combine", ["mean_softmax", "max_confidence"])
def test_ensemble_infers_the_member_that_gives_the_prediction(combine):
    stream = build_benchmark("split_digits", "class", n_experiences=3, seed=0)
    torch.manual_seed(0)
    model = Ensemble(lambda: build_network(stream.input_shape, stream.n_outputs, hidden=16), stream.n_outputs,
                     mode="class", combine=combine)
    opt = torch.optim.Adam([{"params": []}], lr=1e-2)
    strategy = Naive(model=model, optimizer=opt, criterion=nn.CrossEntropyLoss(), train_mb_size=32, eval_mb_size=64,
                     evaluator=EvaluationPlugin(*task_inference_metrics(), loggers=[]), plugins=[EnsemblePlugin()])
    for exp in stream.train_stream[:2]:
        strategy.train(exp)
    values = task_inference_values(strategy.eval(stream.test_stream))
    model.eval()
    correct = total = 0
    for e in (0, 1):
        xs = torch.stack([x for x, *_ in stream.test_stream[e].dataset])
        with torch.no_grad():
            probs = torch.stack([torch.softmax(model.member_logits(k, xs), 1) for k in range(2)])
            predicted = model(xs).argmax(1)
        members = probs[:, torch.arange(len(xs)), predicted].argmax(0)  # who gives the predicted class most
        assert torch.equal(model.last_members, members)
        assert values[EXP.format(e)] == pytest.approx(float((members == e).float().mean()))
        correct += int((members == e).sum())
        total += len(xs)
    assert values[STREAM] == pytest.approx(correct / total)
    assert EXP.format(2) not in values  # no member for experience 2 yet


def test_ensemble_in_task_mode_infers_nothing():
    stream = build_benchmark("split_digits", "task", n_experiences=2, seed=0)
    model = Ensemble(lambda: build_network(stream.input_shape, stream.n_outputs, hidden=8), stream.n_outputs)
    strategy = Naive(model=model, optimizer=torch.optim.SGD([{"params": []}], lr=0.1), criterion=nn.CrossEntropyLoss(),
                     evaluator=EvaluationPlugin(*task_inference_metrics(), loggers=[]), plugins=[EnsemblePlugin()])
    strategy.train(stream.train_stream[0])
    assert task_inference_values(strategy.eval(stream.test_stream)) == {}
