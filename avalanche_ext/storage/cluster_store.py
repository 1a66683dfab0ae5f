"""The points of one ExStream class: count-weighted cluster means and a cached nearest pair.

A store holds up to ``max_points`` vectors, each the mean of a cluster of stream samples
with its count. Merging the two "nearest" points replaces them by their count-weighted mean.
``linkage="centroid"`` (ExStream's) measures "nearest" by the squared L2 distance;
``linkage="ward"`` (an option, not in the paper) by the increase of the within-cluster sum of
squares that the merge causes,

$$
\\Delta_{ab} = \\frac{c_a c_b}{c_a + c_b} \\lVert x_a - x_b \\rVert_2^2 ,
$$

so a large cluster stops absorbing its neighbours and isolated points get merged instead.
With plain distances a class drifts towards one heavy mean plus its outliers; Ward keeps
clusters of similar weight, like k-means. The merged point is the same count-weighted mean.

Finding the nearest pair from scratch costs $O(k^2 d)$ per sample for a class of $k$
points in $d$ dimensions. :class:`ClusterStore` keeps the pairwise distance matrix of its
points and, for every point, its nearest neighbour; a merge or an insert recomputes the
distances of the one or two rows that changed ($O(k d)$) and the neighbours of the rows
that pointed at them, so the nearest pair is an $O(k)$ arg-min.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_INF = np.float32(np.inf)
LINKAGES = ("centroid", "ward")


def check_size(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int``; a ``ValueError`` naming ``name`` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_linkage(value: Any) -> str:
    """``value`` if it is one of :data:`LINKAGES`, else a ``ValueError`` that lists them."""
    if value not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {value!r}")
    return value


class ClusterStore:
    """The points of one class, their counts, and a cached nearest-pair structure.

    Arrays are grown by doubling up to ``max_points``. ``dist[a, b]`` is the merge cost
    (see ``linkage``) of live points ``a`` and ``b`` (``inf`` on the diagonal); ``nn_idx[a]``
    and ``nn_dist[a]`` are the nearest other point of ``a`` and its distance.

    Args:
        dim: dimension of the stored vectors.
        max_points: the most points this store will ever hold.
        linkage: ``"centroid"`` (the paper's: squared L2 distance between the stored points)
            or ``"ward"`` (that distance times ``c_a c_b / (c_a + c_b)``); ``dist`` holds it.
    """

    def __init__(self, dim: int, max_points: int, linkage: str = "centroid"):
        self.linkage = check_linkage(linkage)
        self.dim = check_size("dim", dim)
        self.max_points = check_size("max_points", max_points)
        self.n = 0
        self.rows_computed = 0
        """Distance rows computed so far (each costs O(n d)); two per full-class insert."""
        self._alloc(min(self.max_points, 8))

    # ----------------------------------------------------------------- storage
    def _alloc(self, cap: int) -> None:
        old_n = self.n
        x = np.zeros((cap, self.dim), dtype=np.float32)
        counts = np.zeros(cap, dtype=np.int64)
        dist = np.full((cap, cap), _INF, dtype=np.float32)
        nn_dist = np.full(cap, _INF, dtype=np.float32)
        nn_idx = np.full(cap, -1, dtype=np.int64)
        if old_n:
            x[:old_n] = self.x[:old_n]
            counts[:old_n] = self.counts[:old_n]
            dist[:old_n, :old_n] = self.dist[:old_n, :old_n]
            nn_dist[:old_n] = self.nn_dist[:old_n]
            nn_idx[:old_n] = self.nn_idx[:old_n]
        self.x, self.counts, self.dist, self.nn_dist, self.nn_idx = x, counts, dist, nn_dist, nn_idx

    @property
    def capacity(self) -> int:
        """Rows currently allocated (grows up to ``max_points``)."""
        return len(self.x)

    def points(self) -> np.ndarray:
        """The live points, ``(n, dim)`` (a view)."""
        return self.x[: self.n]

    def weights(self) -> np.ndarray:
        """How many stream samples each live point stands for, ``(n,)`` (a view)."""
        return self.counts[: self.n]

    # ------------------------------------------------------- distance upkeep
    def _cost_rows(self, rows) -> np.ndarray:
        """Merge costs from point(s) ``rows`` (an index, or a list of them) to every live point."""
        n = self.n
        rows = np.asarray(rows)
        diff = self.x[:n] - self.x[rows][..., None, :]
        cost = np.einsum("...ij,...ij->...i", diff, diff)
        if self.linkage == "ward":
            c = self.counts[:n].astype(np.float32)
            own = c[rows][..., None]
            cost *= c * own / (c + own)
        return cost

    def _row(self, s: int) -> np.ndarray:
        """Recompute row and column ``s`` of the distance matrix; return the row."""
        n = self.n
        d = self._cost_rows(s)
        self.rows_computed += 1
        d[s] = _INF
        self.dist[s, :n] = d
        self.dist[:n, s] = d
        return d

    def _rescan(self, rows: np.ndarray) -> None:
        """Recompute the nearest neighbour of ``rows`` from the cached matrix."""
        if rows.size == 0:
            return
        n = self.n
        if n < 2:
            self.nn_dist[rows] = _INF
            self.nn_idx[rows] = -1
            return
        sub = self.dist[rows, :n]
        j = np.argmin(sub, axis=1)
        self.nn_idx[rows] = j
        self.nn_dist[rows] = sub[np.arange(len(rows)), j]

    def _changed(self, s: int) -> None:
        """Point ``s`` moved: refresh its row and every neighbour that may have changed."""
        n = self.n
        d = self._row(s)
        stale = self.nn_idx[:n] == s  # their distance to s may have grown
        closer = d < self.nn_dist[:n]
        closer &= ~stale
        self.nn_dist[:n][closer] = d[closer]
        self.nn_idx[:n][closer] = s
        stale[s] = True
        self._rescan(np.flatnonzero(stale))

    # ------------------------------------------------------------ operations
    def append(self, v: np.ndarray, count: int = 1) -> int:
        """Store ``v`` as a new point of weight ``count``; return its slot."""
        if self.n >= self.max_points:
            raise RuntimeError(f"store is full ({self.max_points} points): merge first")
        if self.n == self.capacity:
            self._alloc(min(self.max_points, 2 * self.capacity))
        s = self.n
        self.x[s] = v
        self.counts[s] = count
        self.n += 1
        d = self._row(s)
        closer = d[:s] < self.nn_dist[:s]
        self.nn_dist[:s][closer] = d[:s][closer]
        self.nn_idx[:s][closer] = s
        self._rescan(np.array([s]))
        return s

    def nearest_pair(self) -> tuple[int, int, float]:
        """The two nearest live points ``(i, j)`` (``i < j``) and their squared distance."""
        if self.n < 2:
            raise RuntimeError("nearest_pair needs at least two points")
        i = int(np.argmin(self.nn_dist[: self.n]))
        j = int(self.nn_idx[i])
        return min(i, j), max(i, j), float(self.nn_dist[i])

    def merge_nearest(self) -> int:
        """Replace the nearest pair by its count-weighted mean; return the merged point's slot."""
        i, j, _ = self.nearest_pair()
        ci, cj = int(self.counts[i]), int(self.counts[j])
        merged = (ci * self.x[i].astype(np.float64) + cj * self.x[j].astype(np.float64)) / (ci + cj)
        self.x[i] = merged
        self.counts[i] = ci + cj
        i = self._remove(j, keep=i)
        self._changed(i)
        return i

    def replace_nearest(self, v: np.ndarray, count: int = 1) -> tuple[int, int]:
        """Merge the nearest pair into one slot and store ``v`` in the other (a full class's
        insert). Two distance rows are recomputed. Returns ``(merged slot, new slot)``."""
        i, j, _ = self.nearest_pair()
        ci, cj = int(self.counts[i]), int(self.counts[j])
        self.x[i] = (ci * self.x[i].astype(np.float64) + cj * self.x[j].astype(np.float64)) / (ci + cj)
        self.counts[i] = ci + cj
        self.x[j] = v
        self.counts[j] = count
        n = self.n
        rows = self._cost_rows([i, j])
        self.rows_computed += 2
        rows[0, i] = rows[1, j] = _INF
        rows[1, i] = rows[0, j]
        self.dist[i, :n], self.dist[j, :n] = rows
        self.dist[:n, i], self.dist[:n, j] = rows
        nn = self.nn_idx[:n]
        stale = (nn == i) | (nn == j)  # their distance to i or j may have grown
        best = np.minimum(rows[0], rows[1])
        closer = (best < self.nn_dist[:n]) & ~stale
        self.nn_dist[:n][closer] = best[closer]
        self.nn_idx[:n][closer] = np.where(rows[0] <= rows[1], i, j)[closer]
        stale[i] = stale[j] = True
        self._rescan(np.flatnonzero(stale))
        return i, j

    def absorb(self, v: np.ndarray, count: int = 1) -> None:
        """Fold ``v`` into the only stored point (a store of capacity one keeps the running mean)."""
        if self.n != 1:
            raise RuntimeError("absorb is for a store holding exactly one point")
        c = int(self.counts[0])
        self.x[0] = (c * self.x[0].astype(np.float64) + count * np.asarray(v, dtype=np.float64)) / (c + count)
        self.counts[0] = c + count

    def _remove(self, j: int, keep: int) -> int:
        """Delete point ``j`` by moving the last point into its slot; return ``keep``'s new slot."""
        n = self.n
        last = n - 1
        stale = self.nn_idx[:n] == j
        if j != last:
            self.x[j] = self.x[last]
            self.counts[j] = self.counts[last]
            self.dist[j, :n] = self.dist[last, :n]
            self.dist[:n, j] = self.dist[:n, last]
            self.dist[j, j] = _INF
            self.nn_dist[j] = self.nn_dist[last]
            self.nn_idx[j] = self.nn_idx[last]
            stale[j] = stale[last]
            self.nn_idx[:n][self.nn_idx[:n] == last] = j
            if keep == last:
                keep = j
        self.dist[last, :n] = _INF
        self.dist[:n, last] = _INF
        self.nn_dist[last] = _INF
        self.nn_idx[last] = -1
        self.counts[last] = 0
        self.n = last
        self._rescan(np.flatnonzero(stale[: self.n]))
        return keep

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The live points and the cached structure, as torch tensors and plain Python values only
        (a state saved with ``torch.save`` loads with ``torch.load``'s default ``weights_only=True``)."""
        n = self.n
        arrays = {"x": self.x[:n], "counts": self.counts[:n], "dist": self.dist[:n, :n], "nn_dist": self.nn_dist[:n],
                  "nn_idx": self.nn_idx[:n]}
        return {"dim": self.dim, "max_points": self.max_points, "linkage": self.linkage,
                **{k: torch.from_numpy(a.copy()) for k, a in arrays.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "ClusterStore":
        """A store holding :meth:`state_dict`'s points (its arrays may be tensors or numpy arrays)."""
        store = cls(int(state["dim"]), int(state["max_points"]), state.get("linkage", "centroid"))
        n = len(state["counts"])
        if n > store.capacity:
            store._alloc(min(store.max_points, max(n, 2 * store.capacity)))
        store.n = n
        store.x[:n] = np.asarray(state["x"], dtype=np.float32)
        store.counts[:n] = np.asarray(state["counts"], dtype=np.int64)
        store.dist[:n, :n] = np.asarray(state["dist"], dtype=np.float32)
        store.nn_dist[:n] = np.asarray(state["nn_dist"], dtype=np.float32)
        store.nn_idx[:n] = np.asarray(state["nn_idx"], dtype=np.int64)
        return store


__all__ = ["LINKAGES", "ClusterStore", "check_linkage", "check_size"]
