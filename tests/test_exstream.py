"""ExStream: capacity, the merge rule, the nearest pair, counts, Avalanche plumbing, state."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from avalanche_ext.storage import ClusterStore, ExStreamBuffer
from tiny_streams import BatchLabels, tiny_naive, two_class_stream


def merge_cost(points: np.ndarray, weights: np.ndarray, linkage: str) -> np.ndarray:
    """All pairwise merge costs, computed from scratch (``inf`` on the diagonal)."""
    p = points.astype(np.float64)
    cost = ((p[:, None] - p[None]) ** 2).sum(-1)
    if linkage == "ward":
        w = weights.astype(np.float64)
        cost *= w[:, None] * w[None] / (w[:, None] + w[None])
    np.fill_diagonal(cost, np.inf)
    return cost


def brute_nearest(points: np.ndarray, weights: np.ndarray, linkage: str = "centroid") -> tuple[int, int, float]:
    cost = merge_cost(points, weights, linkage)
    best = (None, None, np.inf)
    for a, b in itertools.combinations(range(len(points)), 2):
        if cost[a, b] < best[2]:
            best = (a, b, float(cost[a, b]))
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


@pytest.mark.parametrize("linkage,merged", [("centroid", (0.2, 5)), ("ward", (10.6, 2))])
def test_ward_linkage_spares_a_heavy_cluster_hand_checked(linkage, merged):
    # a cluster of 4 samples at 0 next to a sample at 1, and two samples at 10 and 11.2.
    # distances: (0,1) 1 < (10,11.2) 1.44; Ward costs: (0,1) 4*1/5 = 0.8 > (10,11.2) 1.44/2 = 0.72
    store = ClusterStore(1, max_points=4, linkage=linkage)
    store.append(np.array([0.0], dtype=np.float32), count=4)
    for v in (1.0, 10.0, 11.2):
        store.append(np.array([v], dtype=np.float32))
    slot = store.merge_nearest()
    assert (round(float(store.points()[slot, 0]), 5), int(store.weights()[slot])) == merged
    assert int(store.weights().sum()) == 7


def test_per_class_one_keeps_the_running_mean():
    buf = ExStreamBuffer(max_size=2, per_class=1)
    buf.add(torch.tensor([[1.0], [3.0], [8.0], [5.0]]), torch.tensor([0, 0, 0, 1]))
    x, y, _, c = buf.tensors()
    got = {int(label): (float(v), int(n)) for v, label, n in zip(x[:, 0], y, c)}
    assert got == {0: (4.0, 3), 1: (5.0, 1)}


# ---------------------------------------------------------- nearest pair, capacity
@pytest.mark.parametrize("linkage", ["centroid", "ward"])
@pytest.mark.parametrize("dim,replace", [(2, True), (16, True), (2, False), (16, False)])
def test_merged_pair_is_the_brute_force_nearest(dim, replace, linkage):
    rng = np.random.default_rng(dim)
    store = ClusterStore(dim, max_points=12, linkage=linkage)
    for step in range(200):
        v = rng.normal(size=dim).astype(np.float32) * rng.uniform(0.1, 3.0)
        if store.n == store.max_points:
            before = store.points().copy()
            weights = store.weights().copy()
            a, b, d = brute_nearest(before, weights, linkage)
            i, j, dist = store.nearest_pair()
            assert (i, j) == (a, b), f"step {step}"
            assert dist == pytest.approx(d, rel=1e-4)
            if replace:
                store.replace_nearest(v)
            else:
                store.merge_nearest()
            expected = (weights[a] * before[a].astype(np.float64) + weights[b] * before[b]) / (weights[a] + weights[b])
            rows = [k for k in range(store.n) if np.allclose(store.points()[k], expected, atol=1e-5)]
            assert rows and store.weights()[rows[0]] == weights[a] + weights[b]
        if not replace or store.n < store.max_points:
            store.append(v)
        assert any(np.array_equal(p, v) for p in store.points())
        # the cached matrix and neighbours agree with a fresh computation
        full = merge_cost(store.points(), store.weights(), linkage)
        np.testing.assert_allclose(store.dist[: store.n, : store.n], full, rtol=1e-4, atol=1e-4)
        if store.n > 1:
            np.testing.assert_allclose(store.nn_dist[: store.n], full.min(1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("linkage", ["centroid", "ward"])
@pytest.mark.parametrize("per_class,max_size", [(4, 40), (None, 15), (3, 10), (1, 5)])
def test_never_exceeds_capacity_and_counts_sum_to_seen(per_class, max_size, linkage):
    g = torch.Generator().manual_seed(0)
    buf = ExStreamBuffer(max_size=max_size, per_class=per_class, linkage=linkage)
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
     dict(max_size=10, batch_size=0), dict(max_size=10, linkage="single")],
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


@pytest.mark.parametrize("linkage", ["centroid", "ward"])
def test_state_round_trip_continues_identically(linkage):
    g = torch.Generator().manual_seed(1)
    xs, ys = torch.randn(120, 6, generator=g), torch.randint(0, 3, (120,), generator=g)
    a = ExStreamBuffer(max_size=12, per_class=5, linkage=linkage)
    a.add(xs[:60], ys[:60])
    b = ExStreamBuffer(max_size=1, per_class=1)
    b.load_state_dict(a.state_dict())
    assert b.max_size == 12 and b.per_class == 5 and b.linkage == linkage
    for buf in (a, b):
        buf.add(xs[60:], ys[60:])
    for ta, tb in zip(a.tensors(), b.tensors()):
        assert torch.equal(ta, tb)
    assert a.seen == b.seen


@pytest.mark.parametrize("linkage", ["centroid", "ward"])
def test_saved_state_loads_with_plain_torch_load_and_continues_identically(linkage, tmp_path):
    """torch.load defaults to weights_only=True: the state holds tensors and plain Python values only."""
    g = torch.Generator().manual_seed(2)
    xs, ys = torch.randn(90, 5, generator=g), torch.randint(0, 3, (90,), generator=g)
    a = ExStreamBuffer(max_size=10, per_class=4, linkage=linkage)
    a.add(xs[:50], ys[:50])
    torch.save(a.state_dict(), tmp_path / "buffer.pt")
    state = torch.load(tmp_path / "buffer.pt")
    store = state["groups"][0][1]
    assert isinstance(store["x"], torch.Tensor) and isinstance(store["nn_idx"], torch.Tensor)
    b = ExStreamBuffer(max_size=1)
    b.load_state_dict(state)
    for buf in (a, b):
        buf.add(xs[50:], ys[50:])
    for ta, tb in zip(a.tensors(), b.tensors()):
        assert torch.equal(ta, tb)
    assert a.seen == b.seen and a.sizes() == b.sizes()
    one = a.groups[(0, 0)]
    again = ClusterStore.from_state(torch.load(_saved(one.state_dict(), tmp_path / "store.pt")))
    assert again.nearest_pair() == one.nearest_pair()
    assert np.array_equal(again.points(), one.points()) and np.array_equal(again.weights(), one.weights())


def _saved(state, path):
    torch.save(state, path)
    return path


def test_state_with_an_unknown_linkage_is_refused():
    state = ExStreamBuffer(max_size=4, per_class=2).state_dict()
    state["linkage"] = "single"
    with pytest.raises(ValueError, match="linkage"):
        ExStreamBuffer(max_size=4).load_state_dict(state)


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
def test_works_as_storage_policy_of_avalanche_replay_plugin():
    from avalanche.training.plugins import ReplayPlugin

    torch.manual_seed(0)
    bm = two_class_stream(per_class=30)
    buf = ExStreamBuffer(max_size=12, per_class=2)
    replay = ReplayPlugin(mem_size=12, storage_policy=buf)
    spy = BatchLabels()
    strategy = tiny_naive([replay, spy], train_mb_size=20)
    for i, exp in enumerate(bm.train_stream):
        strategy.train(exp)
        if i == 2:  # replayed classes of earlier experiences appear in the last experience's batches
            assert {0, 1, 2, 3} & set(spy.labels)
        assert len(buf) <= 12
        assert max(buf.sizes().values()) <= 2
    assert {k[1]: v for k, v in buf.counts().items()} == {c: 30 for c in range(6)}


def test_latent_buffer_refuses_avalanche_replay_plugin():
    from avalanche.training import Naive
    from avalanche.training.plugins import ReplayPlugin

    bm = two_class_stream(n_exp=1, per_class=30)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    buf = ExStreamBuffer(max_size=4, per_class=2, feature_extractor=model[:2])
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=30, evaluator=None,
                     plugins=[ReplayPlugin(mem_size=4, storage_policy=buf)])
    with pytest.raises(ValueError, match="ExStreamPlugin"):
        strategy.train(bm.train_stream[0])


def test_an_insert_recomputes_two_distance_rows_not_the_matrix():
    """The nearest pair is kept incrementally: a full-class insert computes two rows, not k."""
    buf = ExStreamBuffer(max_size=50, per_class=50)
    buf.add(torch.randn(50, 8), torch.zeros(50, dtype=torch.long))
    store = buf.groups[(0, 0)]
    assert store.rows_computed == 50  # one row per stored point while filling
    for _ in range(5):
        buf.add(torch.randn(1, 8), torch.zeros(1, dtype=torch.long))
    assert store.rows_computed == 60  # the merged point and the new one, per insert


# ---------------------------------------------------------------- the plugin
def _net(dim: int = 6, n_out: int = 6):
    from avalanche_ext.models import build_network

    return build_network((dim,), n_out, hidden=16, layers=1)


def test_plugin_replays_latent_features_into_the_head():
    from avalanche.core import SupervisedPlugin
    from avalanche.training import Naive

    from avalanche_ext.plugins import ExStreamPlugin

    torch.manual_seed(0)
    bm = two_class_stream(per_class=30)
    model = _net()
    for p in model.features.parameters():
        p.requires_grad_(False)
    frozen = [p.clone() for p in model.features.parameters()]
    buf = ExStreamBuffer(max_size=12, per_class=2, feature_extractor=model.features)
    plugin = ExStreamPlugin(buf, batch_size_mem=8)
    head_inputs: list[torch.Size] = []
    model.classifier.register_forward_pre_hook(lambda m, args: head_inputs.append(args[0].shape))

    class LossSpy(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.extra = []

        def after_forward(self, strategy, **kw):
            self.before = float(strategy._criterion(strategy.mb_output.detach(), strategy.mb_y))

        def after_backward(self, strategy, **kw):
            self.extra.append(float(strategy.loss.detach()) - self.before)

    spy = LossSpy()
    strategy = Naive(model=model, optimizer=torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=20, evaluator=None, plugins=[plugin, spy])
    for exp in bm.train_stream:
        strategy.train(exp)
    stored, _, _, _ = buf.tensors()
    assert stored.shape == (12, 16)  # latent vectors of the 16 hidden units, 2 for each of 6 classes
    assert (8, 16) in head_inputs  # replay batches went straight into the head
    n_first = 3  # 60 samples / 20 per batch: no replay during the first experience
    assert all(e == pytest.approx(0.0, abs=1e-6) for e in spy.extra[:n_first])
    assert all(e > 0 for e in spy.extra[n_first:])
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.features.parameters()))


def test_plugin_rejects_a_model_without_the_head_before_training():
    from avalanche.training import Naive

    from avalanche_ext.plugins import ExStreamPlugin

    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6))
    buf = ExStreamBuffer(max_size=6, per_class=1, feature_extractor=model[:2])
    plugin = ExStreamPlugin(buf, head="classifier")
    before = [p.clone() for p in model.parameters()]
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=20, evaluator=None, plugins=[plugin])
    with pytest.raises(ValueError, match="head"):
        strategy.train(two_class_stream(n_exp=1, per_class=30).train_stream[0])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("kwargs", [dict(batch_size_mem=0), dict(head=""), dict(replay_weight=-1.0)])
def test_plugin_bad_hyper_parameters(kwargs):
    from avalanche_ext.plugins import ExStreamPlugin

    with pytest.raises(ValueError):
        ExStreamPlugin(ExStreamBuffer(4), **kwargs)
    with pytest.raises(ValueError):
        ExStreamPlugin("not a buffer")


def test_plugin_state_round_trip():
    from avalanche_ext.plugins import ExStreamPlugin

    a = ExStreamPlugin(ExStreamBuffer(10, per_class=5), seed=3)
    a.buffer.add(torch.randn(30, 4), torch.arange(30) % 2)
    a.replay_batch()
    b = ExStreamPlugin(ExStreamBuffer(10, per_class=5), seed=99)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        for ta, tb in zip(a.replay_batch(), b.replay_batch()):
            assert torch.equal(ta, tb)


# ------------------------------------------------------ the streaming protocol
def test_online_stream_sees_every_sample_once_in_small_experiences():
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.benchmarks.online import online_train_stream, with_boundaries

    stream = build_benchmark("split_digits", "class", seed=0)
    sizes, ends, xs = [], [], []
    for exp, last in with_boundaries(online_train_stream(stream, 10)):
        sizes.append(len(exp.dataset))
        ends.append(last)
        xs.append(torch.stack([exp.dataset[i][0] for i in range(len(exp.dataset))]).reshape(len(exp.dataset), -1))
    assert max(sizes) == 10
    assert sum(ends) == stream.n_experiences and ends[-1]
    seen = torch.cat(xs)
    full = torch.cat([torch.stack([e.dataset[i][0] for i in range(len(e.dataset))]).reshape(len(e.dataset), -1)
                      for e in stream.train_stream])
    assert len(seen) == len(full)
    assert torch.unique(seen, dim=0).shape == torch.unique(full, dim=0).shape
    with pytest.raises(ValueError):
        online_train_stream(stream, 0)


# ----------------------------------------------------------------- the recipe
def test_recipe_runs_and_keeps_its_memory(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    out = run(RunConfig("exstream", benchmark="split_digits", scenario="class", seed=0, epochs=1,
                        overrides={"mem_size": 50}, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                        progress=False, threads=1))
    assert 0.0 <= out["acc"] <= 1.0 and len(out["acc_matrix"]) == 5


def test_recipe_streams_with_whole_buffer_rehearsal(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    out = run(RunConfig("exstream", benchmark="split_digits", scenario="class", seed=0, online=True, online_size=20,
                        overrides={"mem_size": 50, "rehearsal": "buffer"}, tracking_uri=f"sqlite:///{tmp_path}/m.db",
                        progress=False, threads=1))
    # the buffer alone teaches the model: well above chance on 10 digits after one pass
    assert out["acc"] > 0.5 and len(out["acc_matrix"]) == 5


def test_recipe_rejects_bad_settings(tmp_path):
    from avalanche_ext.runner import RunConfig, run

    for overrides in ({"balance": "nope"}, {"space": "pixels"}, {"mem_size": 5}, {"rehearsal": "all"},
                      {"rehearsal": "buffer", "space": "latent"}, {"linkage": "single"}):
        with pytest.raises(ValueError):
            run(RunConfig("exstream", benchmark="split_digits", scenario="class", overrides=overrides,
                          tracking_uri=f"sqlite:///{tmp_path}/m.db", progress=False, threads=1))
