"""HAT's defining property, checked the same way on any HAT network: with task 0's attention saturated,
learning the next task moves no weight task 0 holds, none of task 0's own parameters, and no output of it."""

from __future__ import annotations

import torch


def task_inputs(stream, i: int, split: str = "test") -> torch.Tensor:
    """Every input of experience ``i`` of ``stream``'s test (or train) stream, stacked."""
    ds = getattr(stream, f"{split}_stream")[i].dataset
    return torch.stack([ds[j][0] for j in range(len(ds))])


def snapshot(net) -> dict[str, torch.Tensor]:
    """Copies of every parameter and buffer, by name."""
    state = {n: p.detach().clone() for n, p in net.named_parameters()}
    state.update({n: b.detach().clone() for n, b in net.named_buffers()})
    return state


def saturate(net, task: int) -> list[torch.Tensor]:
    """Set ``task``'s embeddings to +-6: at s_max = 400 its gates are then exactly 0 or 1."""
    with torch.no_grad():
        for e in net.task_embeddings(task):
            e.copy_(torch.where(e >= 0, 6.0, -6.0))
    gates = net.gates(task)
    assert all(((g == 0) | (g == 1)).all() for g in gates)
    assert 0 < sum(int(g.sum()) for g in gates) < sum(net.units)  # some units held, some free
    return gates


def check_saturated_task_survives(net, plugin, strategy, x0, next_experience, own=("heads.0.", "embeddings.0.")):
    """Saturate task 0 (trained already), train ``next_experience``, and check what HAT promises.

    Returns the snapshots ``(before, after)`` for further checks.
    """
    saturate(net, 0)
    plugin.consolidate(net, 0)
    net.eval()
    with torch.no_grad():
        before_out = net(x0, 0).clone()
    before = snapshot(net)
    masks = net.parameter_masks(plugin.cumulative)

    strategy.train(next_experience)
    net.eval()
    with torch.no_grad():
        after_out = net(x0, 0)
    after = snapshot(net)

    moved_free = 0
    for name, mask in masks.items():
        held = mask == 1
        assert held.any(), f"{name}: task 0 holds none of it"
        assert torch.equal(after[name][held], before[name][held]), f"{name}: a protected weight moved"
        moved_free += int((after[name][~held] != before[name][~held]).sum())
    assert moved_free > 0  # the new task learned, in the free weights
    mine = [n for n in before if n.startswith(own)]
    assert mine and all(torch.equal(after[n], before[n]) for n in mine), "task 0's own parameters moved"
    assert torch.equal(after_out, before_out)
    return before, after
