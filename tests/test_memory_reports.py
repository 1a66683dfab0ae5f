"""What the mask, embedding and member methods store: ``memory_report()`` and ``collect_memory_reports``."""

from __future__ import annotations

import pytest
import torch

from avalanche_ext.benchmarks import build_benchmark
from avalanche_ext.models import Ensemble, build_network
from avalanche_ext.protocols import MemoryReporting, collect_memory_reports
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import get_recipe

HIDDEN = 200  # split_digits' default width: 64 -> 200 -> 200

EXPECTED = {
    "hat": {"bytes_per_task", "embedding_bytes_per_task", "head_bytes_per_task", "shared_bytes", "attention_bytes"},
    "supsup": {"mask_bytes_per_task", "bn_bytes_per_task", "bytes_per_task", "float32_bytes_per_task_equivalent",
               "compression_vs_float32", "shared_weight_bytes", "score_bytes", "n_masked_weights"},
    "piggyback": {"backbone_bytes", "mask_bytes_per_task", "head_bytes_per_task", "bytes_per_task", "masked_weights"},
    "hnet": {"target_params", "hnet_params", "compression_ratio", "params_per_task", "bytes_per_task", "n_chunks",
             "chunk_size"},
    "ensemble": {"params_per_member", "bytes_per_member"},
    "progress_compress": {"kb_params", "ac_params", "adaptor_params", "total_params"},
}


@pytest.fixture(scope="module")
def task_stream():
    return build_benchmark("split_digits", "task", seed=0)


def build(name, stream):
    recipe = get_recipe(name)
    return recipe.build(RecipeContext(stream, recipe.resolve("split_digits"), evaluator=None))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_strategy_reports_its_memory_under_short_keys(name, task_stream):
    strategy = build(name, task_stream)
    report = collect_memory_reports(strategy)
    assert set(report) == {f"memory.{key}" for key in EXPECTED[name]}
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in report.values())
    assert sum(report.values()) > 0
    assert not hasattr(strategy, "mlflow_params")


def test_reported_bytes_match_the_networks(task_stream):
    hat = collect_memory_reports(build("hat", task_stream))
    assert hat["memory.embedding_bytes_per_task"] == 4 * 2 * HIDDEN  # one float32 per unit of 2 gated layers
    assert hat["memory.head_bytes_per_task"] == 4 * (HIDDEN * 2 + 2)
    assert hat["memory.bytes_per_task"] == hat["memory.embedding_bytes_per_task"] + hat["memory.head_bytes_per_task"]

    piggyback = collect_memory_reports(build("piggyback", task_stream))
    assert piggyback["memory.mask_bytes_per_task"] == (64 * HIDDEN + 7) // 8 + (HIDDEN * HIDDEN + 7) // 8
    assert piggyback["memory.head_bytes_per_task"] == (HIDDEN + 1) * 2 * 4
    assert piggyback["memory.masked_weights"] == 64 * HIDDEN + HIDDEN * HIDDEN

    strategy = build("ensemble", task_stream)
    ensemble = collect_memory_reports(strategy)
    member = build_network(task_stream.input_shape, task_stream.n_outputs, hidden=HIDDEN)
    assert ensemble["memory.params_per_member"] == sum(p.numel() for p in member.parameters())
    assert ensemble["memory.bytes_per_member"] == 4 * ensemble["memory.params_per_member"]

    pnc = collect_memory_reports(build("progress_compress", task_stream))
    assert pnc["memory.total_params"] == pnc["memory.kb_params"] + pnc["memory.ac_params"] + pnc["memory.adaptor_params"]
    assert pnc["memory.kb_params"] == pnc["memory.ac_params"]


def test_supsup_stores_a_task_in_one_bit_per_weight(task_stream):
    report = collect_memory_reports(build("supsup", task_stream))
    weights = report["memory.n_masked_weights"]
    assert report["memory.mask_bytes_per_task"] == sum((n + 7) // 8 for n in (64 * HIDDEN, HIDDEN * HIDDEN,
                                                                               HIDDEN * (2 + 90)))
    assert report["memory.float32_bytes_per_task_equivalent"] == 4 * weights
    assert report["memory.compression_vs_float32"] == round(4 * weights / report["memory.bytes_per_task"], 2)


def test_hnet_reports_compression_and_the_statistics_a_task_adds():
    stream = build_benchmark("split_digits", "class", seed=0)
    from avalanche_ext.models import HyperNetClassifier

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 10))
    model = HyperNetClassifier(net, task_inference=True, embedding_dim=8, chunk_size=100, chunk_embedding_dim=4,
                               hidden=(6,))
    report = model.memory_report()
    assert report["target_params"] == 64 * 16 + 16 + 2 * 16 + 16 * 10 + 10
    assert report["compression_ratio"] == round(model.hnet.num_theta / report["target_params"], 4)
    # an embedding of 8 floats, and running mean, variance (16 floats each) and a batch counter (int64)
    assert report["bytes_per_task"] == 4 * 8 + 4 * 16 * 2 + 8
    before = set(model.state_dict())
    model.register_task(0, stream.train_stream[0].classes_in_this_experience)
    added = {k: v for k, v in model.state_dict().items() if k not in before}
    assert sum(v.numel() * v.element_size() for v in added.values()) == report["bytes_per_task"]


def test_measuring_an_empty_ensemble_leaves_the_members_initialisation_unchanged(task_stream):
    def make():
        return Ensemble(lambda: build_network(task_stream.input_shape, 2, hidden=16), n_outputs=2, mode="task")

    members = []
    for measure in (False, True):
        torch.manual_seed(0)
        model = make()
        if measure:
            assert isinstance(model, MemoryReporting) and model.memory_report()["params_per_member"] > 0
        model.add_member(0, [0, 1])
        members.append([p.detach().clone() for p in model.members[0].parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*members))
