"""The equal-budget protocol: every recipe's validation grid, the order in which settings apply, and the
selected settings that reach the recipes through an entry point."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import pytest

from avalanche_ext import registry
from avalanche_ext.benchmarks import BENCHMARKS, get_spec
from avalanche_ext.hparams import COMMON_PER_BENCHMARK
from avalanche_ext.recipe import GRID_SIZE, Recipe
from avalanche_ext.registry import all_recipes, get_recipe, register

ROOT = Path(__file__).resolve().parents[1]
#: The benchmarks ``avalanche-ext select`` searches; the others reuse their selections.
SEARCHED = ("split_digits", "split_mnist5k", "permuted_mnist5k")


def _recipe(**kw) -> Recipe:
    args = dict(name="_toy", family="baseline", paper="-", scenarios=("class", "task"), build=lambda ctx: None)
    return Recipe(**{**args, **kw})


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_every_recipe_declares_a_grid_of_the_same_size_holding_its_current_settings(recipe):
    size = 1
    for values in recipe.grid.values():
        size *= len(values)
    assert size == GRID_SIZE, f"{recipe.name}: grid {recipe.grid}"
    for benchmark in SEARCHED:
        for scenario in set(recipe.scenarios) & set(get_spec(benchmark).scenarios):
            points = recipe.grid_points(benchmark, scenario)
            current = recipe.unselected(benchmark, scenario)
            assert len(points) == GRID_SIZE and len({json.dumps(p, sort_keys=True) for p in points}) == GRID_SIZE
            assert points[0] == {k: current[k] for k in recipe.grid}, f"{recipe.name} on {benchmark}/{scenario}"


def test_baselines_search_the_learning_rate_alone():
    for name in ("naive", "joint", "cumulative", "multihead"):
        assert list(get_recipe(name).grid) == ["lr"]


def test_grid_of_another_size_over_the_budget_or_without_the_current_settings_is_refused():
    with pytest.raises(ValueError, match="has 3 configurations"):
        _recipe(grid={"lr": (1e-3, 3e-3, 1e-2)})
    with pytest.raises(ValueError, match="training budget"):
        _recipe(grid={"epochs": (1, 2, 3, 4)})
    with pytest.raises(ValueError, match=r"current settings \{'lr': 0.001\} are not in the grid"):
        _recipe(grid={"lr": (1e-2, 3e-2, 1e-1, 3e-1)})
    with pytest.raises(ValueError, match="on split_mnist5k/task"):
        _recipe(hparams={"k": 1}, per_benchmark={"split_mnist5k/task": {"k": 5}}, grid={"k": (1, 2, 3, 4)})
    with pytest.raises(ValueError, match="not a hyper-parameter"):
        _recipe(grid={"nope": (1, 2, 3, 4)})
    # a benchmark that reuses another one's selections is never searched: its own values need not be in the grid
    assert _recipe(per_benchmark={"split_fmnist": {"lr": 0.5}}, grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)}).grid


def test_register_checks_the_grid_when_the_recipe_registers():
    with pytest.raises(ValueError, match=f"exactly {GRID_SIZE}"):
        register(name="_grid5", family="baseline", paper="-", scenarios=("class",),
                 grid={"lr": (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)})(lambda ctx: None)
    assert "_grid5" not in registry._RECIPES


def test_settings_apply_in_order_common_benchmark_recipe_per_benchmark_scenario_selected_overrides():
    recipe = _recipe(
        hparams={"k": 1, "epochs": 7},
        per_benchmark={"split_mnist5k": {"k": 2, "lr": 0.5}, "split_mnist5k/class": {"k": 3}},
        grid={"k": (1, 2, 3, 9)},
    )
    assert recipe.defaults()["epochs"] == 7 and recipe.defaults()["batch_size"] == 64
    assert recipe.defaults("split_mnist5k")["batch_size"] == COMMON_PER_BENCHMARK["split_mnist5k"]["batch_size"]
    assert recipe.defaults("split_mnist5k")["epochs"] == 7  # the recipe's own value beats the benchmark's
    assert recipe.defaults("split_mnist5k")["k"] == 2 and recipe.defaults("split_mnist5k", "task")["k"] == 2
    assert recipe.defaults("split_mnist5k", "class")["k"] == 3
    chosen = recipe.with_selected({"split_mnist5k/class": {"settings": {"k": 9}, "record": "r.md"}})
    assert chosen.defaults("split_mnist5k", "class")["k"] == 9
    assert chosen.defaults("split_mnist5k", "task")["k"] == 2  # selections are per scenario
    assert chosen.defaults("split_mnist5k")["k"] == 2  # and need the scenario
    assert chosen.unselected("split_mnist5k", "class")["k"] == 3
    assert chosen.resolve("split_mnist5k", {"k": "4"}, scenario="class")["k"] == 4  # overrides win last
    assert chosen.grid_points("split_mnist5k", "class")[0] == {"k": 3}  # the search starts from the unselected


def test_fashion_mnist_reuses_the_mnist_selections_and_cannot_have_its_own():
    assert get_spec("split_fmnist").settings_from == "split_mnist5k"
    assert get_spec("permuted_fmnist").settings_from == "permuted_mnist5k"
    assert all(BENCHMARKS[b].settings_from is None for b in SEARCHED)
    recipe = _recipe(grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)})
    chosen = recipe.with_selected({"split_mnist5k/class": {"settings": {"lr": 3e-3}, "record": "r.md"}})
    assert chosen.defaults("split_fmnist", "class")["lr"] == 3e-3
    assert chosen.defaults("split_fmnist", "class")["batch_size"] == COMMON_PER_BENCHMARK["split_fmnist"]["batch_size"]
    with pytest.raises(ValueError, match="reuses the selections of split_mnist5k"):
        recipe.with_selected({"split_fmnist/class": {"settings": {"lr": 3e-3}}})


@pytest.mark.parametrize("entry, message", [
    ({"split_mnist5k/class": {"settings": {"lr": 0.5}}}, "not a value of its grid"),
    ({"split_mnist5k/class": {"settings": {"epochs": 3}}}, "does not search"),
    ({"split_mnist5k/domain": {"settings": {"lr": 1e-3}}}, "supports the class/task"),
    ({"split_mnist5k": {"settings": {"lr": 1e-3}}}, "per benchmark and scenario"),
    ({"split_mnist5k/online": {"settings": {"lr": 1e-3}}}, "keys are 'benchmark' or 'benchmark/scenario'"),
    ({"split_mnist5k/class": {"lr": 1e-3}}, "needs a 'settings' mapping"),
])
def test_a_bad_selection_is_refused_with_what_is_wrong(entry, message):
    with pytest.raises(ValueError, match=message):
        _recipe(grid={"lr": (3e-4, 1e-3, 3e-3, 1e-2)}).with_selected(entry)


def test_the_builtin_selection_is_declared_in_pyproject_and_valid_for_every_recipe():
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert groups[registry.SELECTED_GROUP] == {"builtin": "avalanche_ext_recipes.selected:load"}
    from avalanche_ext_recipes.selected import load

    for name, entries in load().items():
        get_recipe(name).with_selected(entries)  # raises on a stale or bad entry


@pytest.fixture
def restore_selections(monkeypatch, tmp_path):
    """The pack's own selection is set aside (its file made absent) for the test; the recipes get their
    installed selections back once the test's path and environment are undone."""
    import avalanche_ext_recipes.selected as builtin

    monkeypatch.setattr(builtin, "PATH", tmp_path / "no_builtin_selection.json")
    yield
    monkeypatch.undo()
    registry.apply_selected_settings()


def _package_with_selection(tmp_path: Path, selection: dict) -> None:
    """An installed package (a module and its dist-info on sys.path) that ships ``selection``."""
    (tmp_path / "my_selection.py").write_text(f"def load():\n    return {selection!r}\n")
    info = tmp_path / "my_selection-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-selection\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{registry.SELECTED_GROUP}]\nmine = my_selection:load\n")


def test_another_package_ships_selected_settings_through_the_entry_point(tmp_path, monkeypatch, restore_selections):
    _package_with_selection(tmp_path, {"naive": {"split_digits/class": {"settings": {"lr": 0.003},
                                                                        "record": "naive.md"}}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.apply_selected_settings()
    naive = get_recipe("naive")
    assert naive.defaults("split_digits", "class")["lr"] == 0.003
    assert naive.defaults("split_digits", "task")["lr"] == 1e-3
    assert naive.selection("split_digits", "class")["record"] == "naive.md"
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    registry.apply_selected_settings()
    assert get_recipe("naive").defaults("split_digits", "class")["lr"] == 1e-3


def test_a_selection_file_named_in_the_environment_is_tried_without_committing_it(tmp_path, monkeypatch,
                                                                                   restore_selections):
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"ewc": {"split_digits/task": {"settings": {"ewc_lambda": 1000.0}}},
                                "_gone": {"split_digits/task": {"settings": {}}}}))
    monkeypatch.setenv(registry.SELECTED_ENV, str(path))
    with pytest.warns(UserWarning, match="not installed: _gone"):
        registry.apply_selected_settings()
    assert get_recipe("ewc").resolve("split_digits", scenario="task")["ewc_lambda"] == 1000.0
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must map recipe"):
        registry.apply_selected_settings()
