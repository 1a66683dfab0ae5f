"""ExStream: capacity, the merge rule, the nearest pair, counts, Avalanche plumbing, state."""

from __future__ import annotations

import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from avalanche_ext.storage.exstream import ClusterStore, ExStreamBuffer

ROOT = Path(__file__).resolve().parents[1]


def brute_nearest(points: np.ndarray) -> tuple[int, int, float]:
    best = (None, None, np.inf)
    for a, b in itertools.combinations(range(len(points)), 2):
        d = float(((points[a].astype(np.float64) - points[b]) ** 2).sum())
        if d < best[2]:
            best = (a, b, d)
    return best


# ---------------------------------------------------------------- the merge rule
def test_merge_is_count_weighted_mean_hand_checked():
    buf = ExStreamBuffer(max_size=3, per_class=3)
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 1.0]])
    buf.add(x, torch.zeros(3, dtype=torch.long))
    # the nearest pair is (10,0)-(10,1): merged to (10, 0.5) with count 2; (0,0) is kept
    buf.add(torch.tensor([[-5.0, 0.0]]), torch.tensor([0]))
    pts, _, _, counts = buf.tensors()
    stored = {tuple(p.tolist()): int(c) for p, c in zip(pts, counts)}
    assert stored == {(0.0, 0.0): 1, (10.0, 0.5): 2, (-5.0, 0.0): 1}
    # next sample: the nearest pair is now (0,0)-(-5,0) (25 < 100.25): mean (-2.5, 0), count 2
    buf.add(torch.tensor([[3.0, 3.0]]), torch.tensor([0]))
    pts, _, _, counts = buf.tensors()
    stored = {tuple(round(v, 6) for v in p.tolist()): int(c) for p, c in zip(pts, counts)}
    assert stored == {(-2.5, 0.0): 2, (10.0, 0.5): 2, (3.0, 3.0): 1}
    buf.add(torch.tensor([[100.0, 100.0]]), torch.tensor([0]))
    # pairs: (-2.5,0)-(10,0.5) 156.5, (-2.5,0)-(3,3) 39.25, (10,0.5)-(3,3) 55.25
    # -> merge (-2.5,0) w=2 with (3,3) w=1: ((2*-2.5 + 3)/3, (2*0 + 3)/3) = (-2/3, 1), count 3
    pts, _, _, counts = buf.tensors()
    stored = {tuple(round(v, 5) for v in p.tolist()): int(c) for p, c in zip(pts, counts)}
    assert stored == {(round(-2 / 3, 5), 1.0): 3, (10.0, 0.5): 2, (100.0, 100.0): 1}


def test_per_class_one_keeps_the_running_mean():
    buf = ExStreamBuffer(max_size=2, per_class=1)
    buf.add(torch.tensor([[1.0], [3.0], [8.0], [5.0]]), torch.tensor([0, 0, 0, 1]))
    x, y, _, c = buf.tensors()
    got = {int(label): (float(v), int(n)) for v, label, n in zip(x[:, 0], y, c)}
    assert got == {0: (4.0, 3), 1: (5.0, 1)}


# ---------------------------------------------------------- nearest pair, capacity
@pytest.mark.parametrize("dim", [2, 16])
def test_merged_pair_is_the_brute_force_nearest(dim):
    rng = np.random.default_rng(dim)
    store = ClusterStore(dim, max_points=12)
    for step in range(200):
        v = rng.normal(size=dim).astype(np.float32) * rng.uniform(0.1, 3.0)
        if store.n == store.max_points:
            before = store.points().copy()
            weights = store.weights().copy()
            a, b, d = brute_nearest(before)
            i, j, dist = store.nearest_pair()
            assert (i, j) == (a, b), f"step {step}"
            assert dist == pytest.approx(d, rel=1e-4)
            store.merge_nearest()
            expected = (weights[a] * before[a].astype(np.float64) + weights[b] * before[b]) / (weights[a] + weights[b])
            rows = [k for k in range(store.n) if np.allclose(store.points()[k], expected, atol=1e-5)]
            assert rows and store.weights()[rows[0]] == weights[a] + weights[b]
        store.append(v)
        # the cached matrix and neighbours agree with a fresh computation
        p = store.points().astype(np.float64)
        full = ((p[:, None] - p[None]) ** 2).sum(-1)
        np.fill_diagonal(full, np.inf)
        np.testing.assert_allclose(store.dist[: store.n, : store.n], full, rtol=1e-4, atol=1e-4)
        if store.n > 1:
            np.testing.assert_allclose(store.nn_dist[: store.n], full.min(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("per_class,max_size", [(4, 40), (None, 15), (3, 10), (1, 5)])
def test_never_exceeds_capacity_and_counts_sum_to_seen(per_class, max_size):
    g = torch.Generator().manual_seed(0)
    buf = ExStreamBuffer(max_size=max_size, per_class=per_class)
    seen: dict[int, int] = {}
    for _ in range(30):
        x = torch.randn(7, 5, generator=g)
        y = torch.randint(0, 5, (7,), generator=g)
        buf.add(x, y)
        for c in y.tolist():
            seen[c] = seen.get(c, 0) + 1
        assert len(buf) <= max_size
        assert len(buf.buffer) == len(buf)
        if per_class is not None:
            assert max(buf.sizes().values()) <= per_class
        assert {k[1]: v for k, v in buf.counts().items()} == seen
    assert len(buf) == min(max_size, sum(min(per_class or max_size, n) for n in seen.values()))


def test_global_capacity_merges_in_the_largest_class():
    buf = ExStreamBuffer(max_size=6)
    buf.add(torch.arange(6.0).reshape(6, 1), torch.zeros(6, dtype=torch.long))
    buf.add(torch.tensor([[50.0], [60.0], [70.0]]), torch.ones(3, dtype=torch.long))
    assert buf.sizes() == {(0, 0): 3, (0, 1): 3}
    assert sum(buf.counts().values()) == 9


def test_task_labels_keep_classes_apart():
    buf = ExStreamBuffer(max_size=10, per_class=2)
    buf.add(torch.randn(6, 3), torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([0, 0, 0, 1, 1, 1]))
    assert set(buf.sizes()) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    _, y, t, _ = buf.tensors()
    ds = buf.buffer
    assert len(ds) == 6  # (0,0) x2, (0,1), (1,1) x2, (1,0)
    assert sorted(zip(t.tolist(), y.tolist())) == sorted(zip(ds.targets_task_labels, ds.targets))


@pytest.mark.parametrize(
    "kwargs",
    [dict(max_size=0), dict(max_size=-3), dict(max_size=2.5), dict(max_size=True),
     dict(max_size=10, per_class=0), dict(max_size=10, per_class=11), dict(max_size=10, per_class=1.0),
     dict(max_size=10, batch_size=0)],
)
def test_bad_capacities_fail_at_construction(kwargs):
    with pytest.raises(ValueError):
        ExStreamBuffer(**kwargs)


def test_new_class_beyond_global_capacity_is_a_clear_error():
    buf = ExStreamBuffer(max_size=2)
    buf.add(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="raise max_size"):
        buf.add(torch.randn(1, 3), torch.tensor([2]))


def test_resize_shrinks_by_merging():
    buf = ExStreamBuffer(max_size=20)
    buf.add(torch.randn(20, 4), torch.arange(20) % 2)
    buf.resize(None, 8)
    assert len(buf) == 8 and sum(buf.counts().values()) == 20
    with pytest.raises(ValueError):
        buf.resize(None, 0)


def test_state_round_trip_continues_identically():
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(120, 6, generator=g), torch.randint(0, 3, (120,), generator=g)
    a = ExStreamBuffer(max_size=12, per_class=5)
    a.add(xs[:60], ys[:60])
    b = ExStreamBuffer(max_size=1, per_class=1)
    b.load_state_dict(a.state_dict())
    assert b.max_size == 12 and b.per_class == 5
    for buf in (a, b):
        buf.add(xs[60:], ys[60:])
    for ta, tb in zip(a.tensors(), b.tensors()):
        assert torch.equal(ta, tb)
    assert a.seen == b.seen


# ------------------------------------------------------------ latent features
def test_latent_mode_stores_features():
    fe = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    fe.train()
    buf = ExStreamBuffer(max_size=6, per_class=3, feature_extractor=fe)
    x = torch.randn(5, 3, 4)
    buf.add(x, torch.tensor([0, 0, 1, 1, 1]))
    stored, _, _, _ = buf.tensors()
    assert stored.shape == (5, 4)
    assert fe.training  # restored
    with torch.no_grad():
        feats = fe(x)
    assert torch.allclose(stored, feats, atol=1e-6)


# ----------------------------------------------------------- Avalanche plumbing
def _tiny_stream(n_exp: int = 3, dim: int = 6, seed: int = 0):
    from avalanche.benchmarks import tensors_benchmark

    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for e in range(n_exp):
        y = torch.tensor([2 * e, 2 * e + 1]).repeat(30)
        x = torch.randn(60, dim, generator=g) + y[:, None].float()
        train.append((x, y))
        test.append((x[:10], y[:10]))
    return tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0] * n_exp)


def test_works_as_storage_policy_of_avalanche_replay_plugin():
    from avalanche.training import Naive
    from avalanche.training.plugins import ReplayPlugin

    torch.manual_seed(0)
    bm = _tiny_stream()
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 6))
    buf = ExStreamBuffer(max_size=12, per_class=2)
    replay = ReplayPlugin(mem_size=12, storage_policy=buf)
    seen_in_batches: list[int] = []

    from avalanche.core import SupervisedPlugin

    class Spy(SupervisedPlugin):
        def before_forward(self, strategy, **kw):
            seen_in_batches.extend(strategy.mb_y.tolist())

    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=20, train_epochs=1,
                     eval_mb_size=64, plugins=[replay, Spy()], evaluator=None)
    for i, exp in enumerate(bm.train_stream):
        seen_in_batches.clear()
        strategy.train(exp)
        if i == 2:  # replayed classes of earlier experiences appear in the last experience's batches
            assert {0, 1, 2, 3} & set(seen_in_batches)
        assert len(buf) <= 12
        assert max(buf.sizes().values()) <= 2
    assert {k[1]: v for k, v in buf.counts().items()} == {c: 30 for c in range(6)}


def test_latent_buffer_refuses_avalanche_replay_plugin():
    from avalanche.training import Naive
    from avalanche.training.plugins import ReplayPlugin

    bm = _tiny_stream(n_exp=1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    buf = ExStreamBuffer(max_size=4, per_class=2, feature_extractor=model[:2])
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=30, evaluator=None,
                     plugins=[ReplayPlugin(mem_size=4, storage_policy=buf)])
    with pytest.raises(ValueError, match="ExStreamPlugin"):
        strategy.train(bm.train_stream[0])


def test_an_insert_recomputes_at_most_two_distance_rows(monkeypatch):
    """The nearest pair is kept incrementally: a full-class insert touches two rows, not k."""
    calls = []
    original = ClusterStore._row

    def counting_row(self, s):
        calls.append(s)
        return original(self, s)

    monkeypatch.setattr(ClusterStore, "_row", counting_row)
    buf = ExStreamBuffer(max_size=50, per_class=50)
    buf.add(torch.randn(50, 8), torch.zeros(50, dtype=torch.long))
    assert len(calls) == 50  # one row per stored point while filling
    calls.clear()
    buf.add(torch.randn(1, 8), torch.zeros(1, dtype=torch.long))
    assert len(calls) == 2  # the merged point and the new one
