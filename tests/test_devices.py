"""Devices: the spec is checked before anything starts, every recipe's strategy gets the run's device, pool
workers get a GPU each, Ray asks for GPUs per run, and the data-loader settings reach the loaders.

No test needs a GPU: where one must seem to exist, ``torch.cuda.is_available`` / ``device_count`` are
replaced, and nothing runs a CUDA kernel.
"""

import json
import queue

import pytest
import torch
from mlflow.tracking import MlflowClient

from avalanche_ext import devices
from avalanche_ext.benchmarks import build_benchmark, get_spec
from avalanche_ext.cli import main
from avalanche_ext.devices import DeviceUnavailableError, check_amp, parse_device, resolve_device, worker_device
from avalanche_ext.executors import gpu_slots, ray_cluster
from avalanche_ext.executors.ray_cluster import gpus_per_task, run_ray
from avalanche_ext.recipe import RecipeContext
from avalanche_ext.registry import all_recipes
from avalanche_ext.runner import RunConfig, default_scenario, make_evaluator, run
from avalanche_ext.taxonomy import TaxonomyConfig, plan


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)``: torch seems to see ``n`` CUDA devices (0: none)."""

    def fake(n):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return fake


# ----- the spec --------------------------------------------------------------------------------
def test_auto_is_cuda_where_torch_sees_a_gpu_and_the_cpu_elsewhere(gpus):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1) and resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("n, spec, message", [
    (0, "cuda", "device 'cuda': torch sees no CUDA device here"),
    (0, "cuda:0", "device 'cuda:0': torch sees no CUDA device here"),
    (1, "cuda:7", "device 'cuda:7': torch sees 1 CUDA device(s) here: cuda:0"),
    (2, "cuda:2", "torch sees 2 CUDA device(s) here: cuda:0, cuda:1"),
    (0, "gpu", "device 'gpu' is not a device: use auto"),
    (0, "cpu:1", "device 'cpu:1' is not a device"),
    (0, "cuda:-1", "is not a device"),
], ids=["no cuda", "no cuda:0", "cuda:7 of 1", "cuda:2 of 2", "gpu", "cpu:1", "negative"])
def test_a_device_this_machine_lacks_is_refused_in_one_line(gpus, n, spec, message):
    gpus(n)
    with pytest.raises(DeviceUnavailableError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        resolve_device(spec)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_mps_only_where_torch_has_it(monkeypatch):
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="torch sees no Apple GPU"):
        resolve_device("mps")
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert resolve_device("mps") == torch.device("mps")


def test_mixed_precision_rule_bf16_on_cuda_or_cpu_fp16_on_cuda_only():
    check_amp(None, "cpu")
    check_amp("bf16", "cpu")
    check_amp("bf16", torch.device("cuda", 0))
    check_amp("fp16", "cuda")
    with pytest.raises(ValueError, match="--amp fp16 runs on cuda, and this run's device is cpu"):
        check_amp("fp16", "cpu")
    with pytest.raises(ValueError, match="--amp bf16 runs on cuda or cpu, and this run's device is mps"):
        check_amp("bf16", "mps")
    with pytest.raises(ValueError, match="amp must be one of bf16, fp16"):
        check_amp("int8", "cuda")


@pytest.mark.parametrize("argv, message", [
    (["run", "naive", "--device", "cuda"], "device 'cuda': torch sees no CUDA device here"),
    (["run", "naive", "--device", "tpu"], "device 'tpu' is not a device"),
    (["run", "naive", "--num-workers", "-1"], "--num-workers must be >= 0"),
    (["taxonomy", "--device", "cuda:1"], "device 'cuda:1': torch sees no CUDA device here"),
    (["sweep", "naive", "--grid", "lr=0.1,0.01", "--device", "cuda"], "torch sees no CUDA device here"),
], ids=["run", "malformed", "workers", "taxonomy", "sweep"])
def test_the_command_line_refuses_a_missing_device_with_exit_2_before_anything_starts(argv, message, capsys,
                                                                                       tmp_path, gpus):
    gpus(0)
    assert main(argv + ["--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.db").exists()


def test_a_run_names_its_device_in_json_and_in_mlflow(capsys, tracking_uri):
    assert main(["run", "naive", "--n-experiences", "2", "--epochs", "1", "--json", "-q", "--device", "cpu",
                 "--tracking-uri", tracking_uri, "--no-checkpoint"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "cpu"
    params = MlflowClient(tracking_uri).get_run(result["mlflow_run_id"]).data.params
    assert params["device"] == "cpu" and "amp" not in params


# ----- recipes --------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_every_recipe_gives_its_strategy_the_runs_device(recipe):
    """A device no default has (``cpu:0``) shows which strategies took ``ctx.device`` and which kept their own."""
    scenario = default_scenario(recipe, get_spec("split_digits"))
    stream = build_benchmark("split_digits", scenario, n_experiences=2)
    device = torch.device("cpu", 0)
    ctx = RecipeContext(stream, recipe.resolve("split_digits"), make_evaluator([]), device=device)
    strategy = recipe.build(ctx)
    assert strategy.device == device
    inner = getattr(strategy, "generator_strategy", None)
    assert inner is None or inner.device == device, "generative replay's VAE trains on the run's device too"


def test_the_amp_plugin_comes_last_so_every_penalty_is_computed_under_autocast():
    from avalanche_ext.plugins import AutocastPlugin, FiniteLossGuard
    from avalanche_ext.registry import get_recipe

    recipe = get_recipe("si")
    stream = build_benchmark("split_digits", "class", n_experiences=2)
    ctx = RecipeContext(stream, recipe.resolve("split_digits"), make_evaluator([]), plugins=[FiniteLossGuard()],
                        amp="bf16")
    # Avalanche appends its own clock and evaluator after the strategy's plugins: they compute no loss.
    plugins = [p for p in recipe.build(ctx).plugins if type(p).__module__.startswith("avalanche_ext")]
    assert isinstance(plugins[-1], AutocastPlugin) and plugins[-1].dtype == torch.bfloat16
    assert sum(isinstance(p, AutocastPlugin) for p in plugins) == 1 and len(plugins) >= 3
    ctx.amp = None
    assert not any(isinstance(p, AutocastPlugin) for p in recipe.build(ctx).plugins)


def test_data_loader_settings_reach_the_loaders_and_change_no_number(monkeypatch, tracking_uri):
    """Every loader that yields batches uses the settings (Avalanche's helper loaders that only size a
    stream or make a sampler are never iterated, and are left out)."""
    from torch.utils.data import DataLoader

    iterated = []
    iterate = DataLoader.__iter__

    def recording(self):
        iterated.append((self.num_workers, self.pin_memory))
        return iterate(self)

    def one(**kw):
        return run(RunConfig("replay", benchmark="split_digits", n_experiences=2, epochs=1, device="cpu",
                             tracking_uri=tracking_uri, progress=False, **kw))

    plain = one()
    monkeypatch.setattr(DataLoader, "__iter__", recording)
    loaded = one(num_workers=2, pin_memory=False)
    assert loaded["acc_matrix"] == plain["acc_matrix"], "worker processes load the same batches in the same order"
    assert iterated and set(iterated) == {(2, False)}


# ----- the process pool: one GPU per worker ---------------------------------------------------
def test_workers_are_dealt_gpus_round_robin():
    assert gpu_slots.deal(4, 2) == [0, 1, 0, 1]
    assert gpu_slots.deal(3, 1) == [0, 0, 0]
    assert gpu_slots.deal(2, 3) == [0, 1]
    with pytest.raises(ValueError, match="n_gpus must be >= 1"):
        gpu_slots.deal(2, 0)


def test_the_pool_spreads_only_jobs_that_may_use_cuda(gpus):
    jobs = [RunConfig("naive", device="auto"), RunConfig("naive", device="cpu")]
    gpus(3)
    assert gpu_slots.gpus_for(jobs) == 3
    assert gpu_slots.gpus_for([RunConfig("naive", device="cpu"), RunConfig("naive", device="cuda:1")]) == 0
    gpus(0)
    assert gpu_slots.gpus_for(jobs) == 0


def test_a_worker_pins_its_slots_gpu_its_job_runs_there_and_the_slot_passes_to_its_replacement(monkeypatch):
    pinned, ran = [], []
    monkeypatch.setattr(torch.cuda, "set_device", pinned.append)
    monkeypatch.setattr(gpu_slots, "run_job", lambda cfg, threads: ran.append(cfg["device"]) or {"status": "ok"})

    class Context:
        Queue = queue.Queue

    slots = gpu_slots.make_slots(Context, workers=4, n_gpus=2)
    workers = []
    for _ in range(4):  # four workers start: each takes a slot (the pool's initializer)
        gpu_slots.take_slot(slots)
        workers.append(gpu_slots._slot)
    assert workers == pinned == [0, 1, 0, 1] and slots.empty()

    # The second worker (GPU 1) finishes first, out of order: its replacement gets GPU 1 again.
    monkeypatch.setattr(gpu_slots, "_slot", 1)
    for spec in ("auto", "cuda", "cpu", "cuda:0"):
        assert gpu_slots.run_on_slot({"recipe": "naive", "device": spec}) == {"status": "ok"}
        slots.get_nowait()  # (each call gives the slot back; take it again for the next call)
    assert ran == ["cuda:1", "cuda:1", "cpu", "cuda:0"]
    gpu_slots.run_on_slot({"recipe": "naive", "device": "auto"})
    gpu_slots.take_slot(slots)
    assert gpu_slots._slot == 1 and pinned[-1] == 1, "the replacement takes the freed GPU"


def test_worker_device_rule():
    assert worker_device("auto", 2) == "cuda:2" and worker_device("cuda", 0) == "cuda:0"
    assert worker_device("cpu", 1) == "cpu" and worker_device("cuda:3", 1) == "cuda:3"
    assert worker_device("auto", None) == "auto"
    assert parse_device("CUDA:1") == "cuda:1"


def test_a_taxonomy_on_a_machine_without_the_device_is_refused_before_anything_runs(gpus):
    gpus(0)
    with pytest.raises(DeviceUnavailableError, match="torch sees no CUDA device"):
        plan(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], device="cuda"))
    gpus(2)
    jobs, _ = plan(TaxonomyConfig(benchmark="split_digits", recipes=["naive"], scenarios=["class"], device="cuda"))
    assert [j.device for j in jobs] == ["cuda"]


# ----- Ray: GPUs per run ------------------------------------------------------------------------
class FakeRay:
    """Just enough of ``ray`` to see what the executor asks of it."""

    def __init__(self, cluster_gpus):
        self.cluster_gpus = cluster_gpus
        self.options, self.submitted, self.shut = [], [], False

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        pass

    def cluster_resources(self):
        return {"CPU": 8.0, "GPU": float(self.cluster_gpus)} if self.cluster_gpus else {"CPU": 8.0}

    def remote(self, **options):
        self.options.append(options)
        ray = self

        class Task:
            def remote(self, job, cpus):
                ray.submitted.append(job)
                return len(ray.submitted) - 1

        return lambda function: Task()

    def wait(self, refs, num_returns):
        return refs[:1], refs[1:]

    def get(self, ref):
        return {"status": "ok", "device": self.submitted[ref]["device"]}

    def shutdown(self):
        self.shut = True


def ray_jobs(device):
    return [RunConfig("naive", device=device, seed=s) for s in range(2)]


@pytest.mark.parametrize("cluster, asked, device, expected_gpus, expected_device", [
    (4, 0.25, "auto", 0.25, "auto"),
    (4, None, "auto", 1.0, "auto"),
    (4, None, "cpu", 0.0, "cpu"),
    (0, None, "auto", 0.0, "cpu"),
    (2, 2, "cuda", 2.0, "cuda"),
], ids=["fraction", "default with gpus", "cpu runs", "no gpus", "two per run"])
def test_ray_asks_for_gpus_per_run(monkeypatch, cluster, asked, device, expected_gpus, expected_device):
    fake = FakeRay(cluster)
    monkeypatch.setattr(ray_cluster, "_import_ray", lambda: fake)
    results = []
    run_ray(ray_jobs(device), lambda job, r: results.append(r), gpus_per_run=asked, cpus_per_task=2)
    assert fake.options == [{"num_cpus": 2, "num_gpus": expected_gpus, "max_calls": 1, "max_retries": 0}]
    assert [r["device"] for r in results] == [expected_device] * 2 and fake.shut


@pytest.mark.parametrize("cluster, asked, device, message", [
    (0, 1, "auto", "--gpus-per-run 1: the Ray cluster has no GPU"),
    (0, None, "cuda", "--device cuda on Ray needs GPUs"),
    (4, 0, "cuda", "--device cuda on Ray needs GPUs"),
    (4, 1.5, "auto", "a fraction of one GPU (0 to 1) or a whole number"),
    (4, -1, "auto", "a fraction of one GPU"),
    (2, 3, "auto", "the Ray cluster has 2 GPU(s) in all"),
    (4, 1, "cuda:1", "Ray gives each run its own GPU(s)"),
], ids=["no gpus", "cuda without gpus", "cuda with 0", "1.5", "negative", "more than the cluster", "cuda:N"])
def test_ray_refuses_impossible_gpu_requests_before_any_run(monkeypatch, cluster, asked, device, message):
    fake = FakeRay(cluster)
    monkeypatch.setattr(ray_cluster, "_import_ray", lambda: fake)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_ray(ray_jobs(device), lambda job, r: None, gpus_per_run=asked)
    assert fake.submitted == [] and fake.shut, "nothing submitted, and the local instance stopped"


def test_gpus_per_task_rule_without_ray():
    assert gpus_per_task(ray_jobs("auto"), None, 8.0) == 1.0
    assert gpus_per_task(ray_jobs("auto"), None, 0.0) == 0.0
    assert gpus_per_task(ray_jobs("cpu"), None, 8.0) == 0.0
    assert gpus_per_task(ray_jobs("auto"), 0.5, 1.0) == 0.5


# ----- library defaults follow the model's device -----------------------------------------------
def test_empirical_fisher_runs_where_the_model_is_unless_told_otherwise():
    """The batches (on the CPU) go to the model's device: ``meta`` stands for a GPU here, and a CPU
    default would mix devices in the forward pass."""
    from avalanche_ext.functional.online_ewc import empirical_fisher

    torch.manual_seed(0)
    batches = [(torch.randn(3, 4), torch.tensor([0, 1, 2]))]
    elsewhere = torch.nn.Linear(4, 3).to("meta")
    fisher = empirical_fisher(elsewhere, batches)
    assert {f.device.type for f in fisher.values()} == {"meta"}
    assert {n: f.shape for n, f in fisher.items()} == {n: p.shape for n, p in elsewhere.named_parameters()}

    here = torch.nn.Linear(4, 3)
    default, explicit = empirical_fisher(here, batches), empirical_fisher(here, batches, device="cpu")
    assert all(torch.equal(default[n], explicit[n]) and default[n].abs().sum() > 0 for n in default)
