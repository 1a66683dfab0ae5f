"""The command line: bad input fails before training with a clear message; results are JSON."""

import json

import pytest

from avalanche_ext.cli import main

from bad_inputs import CASES


@pytest.mark.parametrize("what, argv, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_message(what, argv, message, capsys, tmp_path):
    argv = argv + ([] if "--tracking-uri" in argv else ["--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "m.db").exists(), "a refused run must not create a tracking store"


def test_run_json_last_line(capsys, tracking_uri):
    assert main(["run", "naive", "--n-experiences", "2", "--epochs", "1", "--json", "-q",
                 "--tracking-uri", tracking_uri]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert {"recipe", "benchmark", "scenario", "seed", "acc", "forgetting", "bwt", "acc_matrix", "train_s",
            "peak_rss_mb", "mlflow_run_id"} <= set(result)
    assert result["recipe"] == "naive" and result["scenario"] == "class" and len(result["acc_matrix"]) == 2


def test_run_prints_progress_without_json(capsys, tracking_uri):
    assert main(["run", "naive", "--n-experiences", "2", "--epochs", "1", "--tracking-uri", tracking_uri]) == 0
    captured = capsys.readouterr()
    assert "exp 1/2 epoch 1/1" in captured.err and "acc" in captured.out


def test_list_and_benchmarks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for family in ("baseline", "replay", "regularization", "architectural", "hybrid"):
        assert family in out
    assert main(["list", "--json"]) == 0
    recipes = json.loads(capsys.readouterr().out)
    assert any(r["name"] == "ewc" and r["family"] == "regularization" for r in recipes)
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    digits = next(i for i, line in enumerate(lines) if line.startswith("split_digits "))
    assert "present" in lines[digits] and "layout: nothing: ships with scikit-learn" in lines[digits + 1]
    cifar = next(i for i, line in enumerate(lines) if line.startswith("split_cifar10 "))
    assert "missing" in lines[cifar] and "cifar-10-batches-py" in lines[cifar + 1]


def test_online_protocol_evaluates_after_each_original_experience(capsys, tracking_uri):
    assert main(["run", "replay", "--online", "--online-size", "50", "--n-experiences", "2", "--json", "-q",
                 "--tracking-uri", tracking_uri]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["online"] is True and len(result["acc_matrix"]) == 2


def test_pretrained_backbone_option_changes_the_start(capsys, tracking_uri):
    """``--set pretrain=mnist5k`` starts from features trained on another data set (cached)."""
    from avalanche_ext.benchmarks import build_benchmark
    from avalanche_ext.recipe import RecipeContext
    from avalanche_ext.registry import get_recipe

    stream = build_benchmark("split_mnist5k", "class", n_experiences=2, seed=0)
    stream.name = "split_fmnist"  # stands for a stream of another data set with the same input shape
    hp = get_recipe("naive").resolve("split_fmnist", {"pretrain": "mnist5k", "pretrain_epochs": 1, "hidden": 16})
    scratch = get_recipe("naive").resolve("split_fmnist", {"hidden": 16})
    import torch

    torch.manual_seed(0)
    a = RecipeContext(stream, hp, evaluator=None).model()
    torch.manual_seed(0)
    b = RecipeContext(stream, scratch, evaluator=None).model()
    assert not torch.equal(a.features[1].weight, b.features[1].weight)
    torch.manual_seed(1)
    c = RecipeContext(stream, hp, evaluator=None).model()  # from the cache: same weights, any init seed
    assert torch.equal(a.features[1].weight, c.features[1].weight)
    assert main(["run", "naive", "--set", "pretrain=cifar7", "--tracking-uri", tracking_uri]) == 2
    assert "pretrain must be 'none' or one of" in capsys.readouterr().err
    stream.name = "split_mnist5k"
    with pytest.raises(ValueError, match="stream's own data"):
        RecipeContext(stream, hp, evaluator=None).model()
