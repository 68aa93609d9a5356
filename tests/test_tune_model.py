"""tune-model end to end on a tiny network: CLI, artifact in a fresh process, ONNX, resume, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import chameleon_in_process

pytestmark = pytest.mark.slow


def chameleon(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "chameleon_tune.cli", *args], capture_output=True, text=True, timeout=600, env=env
    )


def _tiny():
    import torch
    from torch import nn

    class Tiny(nn.Module):
        """conv + relu + pool + linear on 1x3x16x16: five tuning tasks (:data:`TINY_TASKS`)."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(8 * 8 * 8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    torch.manual_seed(0)
    return Tiny().eval(), torch.randn(1, 3, 16, 16)


TINY_TASKS = 5
"""The tiny model's tasks: the convolution (ReLU fused), the pooling, the linear layer, and the
transposes into and out of the NHWC layout."""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("models")
    model, x = _tiny()
    torch.export.save(torch.export.export(model, (x,)), root / "tiny.pt2")
    torch.onnx.export(model, (x,), root / "tiny.onnx", dynamo=False)  # the TorchScript exporter works offline

    class KthValue(torch.nn.Module):
        def forward(self, x):
            return torch.kthvalue(x, 2, dim=3)[0]

    torch.export.save(torch.export.export(KthValue(), (x,)), root / "kth.pt2")
    (root / "notes.onnx").write_text("not a model")
    (root / "notes.txt").write_text("not a model")
    return root


def _summary(out) -> dict:
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tuned(models, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tuned") / "run"
    out = chameleon("tune-model", "--model", str(models / "tiny.pt2"), "--trials", "6", "--round-trials", "2",
                    "--output", str(out_dir), "--records", str(out_dir.parent / "records"), "--json")  # fmt: skip
    return out_dir, _summary(out), out.stdout, models / "tiny.pt2"


def test_tiny_model_end_to_end(tuned):
    out_dir, s, stdout, _ = tuned
    for key in ("model", "strategy", "trials", "tuned_latency_s", "untuned_latency_s", "reference_latency_s",
                "tuning_wall_s", "max_abs_error", "artifact"):  # fmt: skip
        assert s[key] is not None, key
    assert s["strategy"] == "chameleon" and s["reference"] == "pytorch" and s["trials"] == 6
    assert s["max_abs_error"] <= s["tolerance"]
    assert sum(t["trials"] for t in s["tasks"]) == 6 and len(s["tasks"]) == TINY_TASKS
    # every task with a valid record is compiled with it; the others with a fallback schedule, never TVM's default
    assert s["records_not_applied"] == [] and s["tasks_applied"] == TINY_TASKS
    assert sum(t["valid"] > 0 for t in s["tasks"]) + len(s["fallbacks"]) == TINY_TASKS
    assert os.path.isfile(s["artifact"]) and (out_dir / "report.md").is_file()
    assert "| task | weight | trials |" in (out_dir / "report.md").read_text()
    assert "tuned" in stdout and "untuned" in stdout
    # every reference a user would pick: timed (its output checked first) or left out with its reason
    assert s["references"]["pytorch"] == s["reference_latency_s"]
    for name in ("torch.compile", "onnxruntime"):
        assert (name in s["references"]) != (name in s["reference_notes"]), name
        assert name in stdout
    assert set(s["speedup"]) == set(s["references"])
    # the latency curve over tuning time, calibrated by the real build, and when it beat each reference
    assert len(s["curve"]["seconds"]) == len(s["curve"]["latency_s"]) > 0 and s["curve"]["calibration"] > 0
    assert s["curve"]["latency_s"][-1] == pytest.approx(s["tuned_latency_s"], rel=0.5)
    assert set(s["time_to_reference_s"]) == set(s["beats"]) == set(s["references"])
    assert os.path.isfile(s["curve_plot"]) and "latency_curve.png" in (out_dir / "report.md").read_text()
    assert all(s["speedup"][n] == pytest.approx(s["references"][n] / s["tuned_latency_s"]) for n in s["references"])


def test_artifact_in_a_fresh_process_matches_pytorch(tuned, tmp_path):
    import torch

    model, _ = _tiny()
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    # the snippet documented in README.md and model_build.py
    snippet = f"""
import numpy as np, tvm
from tvm import relax
vm = relax.VirtualMachine(tvm.runtime.load_module({str(tuned[0] / "model.so")!r}), tvm.cpu())
out = vm["main"](tvm.runtime.tensor(np.load({str(tmp_path / "x.npy")!r})))
np.save({str(tmp_path / "y.npy")!r}, out.numpy())
"""
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-4, atol=1e-5)

    run = chameleon("run", str(tuned[0]), "--input", str(tmp_path / "x.npy"), "--json")
    np.testing.assert_allclose(np.array(_summary(run)["values"][0]), want, rtol=1e-4, atol=1e-5)


def test_rerun_resumes_without_new_trials(tuned):
    out_dir, first, _, model = tuned
    histories = {p: p.read_text() for p in out_dir.glob("tasks/*/history.jsonl")}
    again = _summary(chameleon_in_process("tune-model", "--model", str(model), "--trials", "6", "--round-trials", "2",
                                          "--output", str(out_dir), "--references", "pytorch", "--json"))  # fmt: skip
    assert again["resumed"] == 6 and again["trials"] == 6
    assert {p: p.read_text() for p in out_dir.glob("tasks/*/history.jsonl")} == histories  # nothing new measured
    assert again["tasks_applied"] == first["tasks_applied"] and again["max_abs_error"] <= again["tolerance"]


def test_each_round_is_logged_with_why_and_first_turns_start_from_a_similar_task(tuned):
    out_dir, s, _, _ = tuned
    rounds = [json.loads(line) for line in (out_dir / "scheduler.jsonl").read_text().splitlines()]
    assert sum(r["trials"] for r in rounds) == s["trials"]
    assert rounds[0]["why"].startswith(f"warm-up, 1 of {TINY_TASKS}") and "conv2d" in rounds[0]["task"]
    assert "the first of its kind: a full round" in rounds[0]["why"] and rounds[0]["trials"] == 2
    assert len(rounds) == TINY_TASKS  # the warm-up reached every task
    assert s["fallbacks"] == {} and "Every task runs a measured schedule" in (out_dir / "report.md").read_text()


def test_a_budget_below_the_task_count_leaves_no_task_at_the_naive_default(models, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    s = _summary(chameleon_in_process("tune-model", "--model", str(models / "tiny.pt2"), "--trials", "2", "--output", str(tmp_path / "o"),
                                      "--references", "pytorch", "--no-records", "--json", env=env))  # fmt: skip
    assert not (tmp_path / "cache" / "chameleon").exists()  # --no-records: no record store
    assert s["trials"] == 2 and len(s["fallbacks"]) == TINY_TASKS - 2 and s["tasks_applied"] == TINY_TASKS and s["records"] is None
    assert all("no trial in the budget: unmeasured schedule" in why for why in s["fallbacks"].values())
    assert s["max_abs_error"] <= s["tolerance"]


def test_the_naive_default_is_still_there_for_the_ablation(models, tmp_path, monkeypatch):
    from chameleon_tune import tune_model
    from chameleon_tune.model.scheduler import SchedulerConfig

    monkeypatch.setenv("TVM_NUM_THREADS", "2")
    result = tune_model(
        str(models / "tiny.pt2"), "random", trials=2, output=str(tmp_path / "o"), references=("pytorch",),
        scheduler=SchedulerConfig(round_trials=2, ranked_warmup=False, sane_fallbacks=False),
    )  # fmt: skip
    s = result.summary
    # the budget reaches the model's first tasks; the others are compiled without a schedule
    assert s["scheduler"]["sane_fallbacks"] is False and s["tasks_applied"] == TINY_TASKS - len(s["fallbacks"]) <= 2
    assert all(why == "no trial in the budget: TVM's default schedule" for why in s["fallbacks"].values())
    assert s["max_abs_error"] <= s["tolerance"]


def test_every_trial_goes_to_the_record_store_and_a_new_run_starts_from_it(tuned, tmp_path):
    out_dir, first, _, model = tuned
    store = str(out_dir.parent / "records")
    listed = json.loads(chameleon("records", "--records", store, "--json").stdout)
    assert sum(w["trials"] for w in listed["workloads"]) == first["trials"] and len(listed["workloads"]) == TINY_TASKS
    again = json.loads(chameleon("records", "import", str(out_dir), "--records", store, "--json").stdout)
    assert again["imported"] == 0  # its trials are in the store already

    second = _summary(chameleon_in_process("tune-model", "--model", str(model), "--trials", "4", "--round-trials", "2",
                                           "--output", str(tmp_path / "o"), "--records", store, "--references", "pytorch", "--json"))  # fmt: skip
    rounds = [json.loads(line) for line in (tmp_path / "o" / "scheduler.jsonl").read_text().splitlines()]
    # the same operators, measured by the first run: each first turn starts from its own stored best
    assert rounds and all(r["starts_from"] == f"{r['task']} (record store)" for r in rounds)
    listed = json.loads(chameleon("records", "--records", store, "--json").stdout)
    assert sum(w["trials"] for w in listed["workloads"]) == first["trials"] + second["trials"]
    assert second["records"] == store


def test_until_stops_tuning_once_a_verified_build_beats_the_goal(models, tmp_path):
    # a budget of 12 trials: a warm-up of one trial a task, then rounds of 16 (tune-model's default);
    # random search, the cheapest: the goal is checked the same whatever proposes the trials
    s = _summary(chameleon_in_process("tune-model", "--model", str(models / "tiny.pt2"), "--strategy", "random",
                                      "--trials", "12", "--until", "1s", "--output", str(tmp_path), "--references", "pytorch",
                                      "--json"))  # fmt: skip
    until = s["until"]
    assert until["reached"] and len(until["checks"]) == 1 and until["checks"][0]["tuned_s"] < 1.0
    assert s["trials"] == until["checks"][0]["trials"] < 12  # stopped at the check, after the warm-up
    assert "Goal `--until 1s`: reached" in (tmp_path / "report.md").read_text()


def test_time_budget_stops_tuning(models, tmp_path):
    s = _summary(chameleon_in_process("tune-model", "--model", str(models / "tiny.pt2"), "--time-budget", "1s",
                                      "--output", str(tmp_path), "--references", "pytorch", "--json"))  # fmt: skip
    assert s["budget"] is None and s["time_budget_s"] == 1.0 and s["trials"] < 10  # the clock includes the import
    assert s["tasks_applied"] == TINY_TASKS and s["max_abs_error"] <= s["tolerance"]


def test_onnx_model_is_checked_against_onnxruntime(models, tmp_path, monkeypatch):
    from chameleon_tune import tune_model
    from chameleon_tune.model.scheduler import SchedulerConfig

    monkeypatch.setenv("TVM_NUM_THREADS", "2")  # tune_model pins it; keep it from leaking into other tests

    result = tune_model(
        str(models / "tiny.onnx"), "random", trials=TINY_TASKS, scheduler=SchedulerConfig(round_trials=1),
        output=str(tmp_path / "o"),
        references=("onnxruntime", "pytorch"),
    )  # fmt: skip
    s = result.summary
    assert s["reference"] == "onnxruntime" and s["trials"] == TINY_TASKS and s["max_abs_error"] <= s["tolerance"]
    # a reference that cannot run the model is left out with one line saying why
    assert list(s["references"]) == ["onnxruntime"] and "not a PyTorch model" in s["reference_notes"]["pytorch"]
    assert "\n" not in s["reference_notes"]["pytorch"]
    assert "pytorch: not timed: the model is not a PyTorch model" in (tmp_path / "o" / "report.md").read_text()
    assert [t.trials for t in result.tasks] == [1] * TINY_TASKS and os.path.isfile(s["artifact"])


BAD_MODELS = [
    ("resnet99", "unknown model 'resnet99'; choices: alexnet, vgg16, resnet18, mobilenet_v2, resnet50"),
    ("missing.pt2", "does not exist"),
    ("notes.txt", "is not a model file"),
    ("notes.onnx", "is not an ONNX model"),
    ("kth.pt2", "kthvalue"),  # an operator TVM's PyTorch frontend has no converter for
]


def _spec(models, name):
    return name if name == "resnet99" else str(models / name)


@pytest.mark.parametrize("model, message", BAD_MODELS)
def test_bad_model_is_named_in_one_line(models, model, message):
    from chameleon_tune.model.importer import ModelError, load_model

    with pytest.raises(ModelError, match=message) as error:
        load_model(_spec(models, model), threads=1)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("model, message", [BAD_MODELS[0], BAD_MODELS[4]])
def test_bad_model_exits_2_with_one_line(models, tmp_path, model, message):
    out = chameleon("tune-model", "--model", _spec(models, model), "--trials", "2", "--output", str(tmp_path / "o"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and message in lines[0], out.stderr
    assert not (tmp_path / "o" / "tasks").exists()


def test_unknown_reference_exits_2_before_any_work(tmp_path):
    out = chameleon("tune-model", "--trials", "2", "--references", "pytorch,tensorrt", "--output", str(tmp_path / "o"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown reference 'tensorrt'" in out.stderr
    assert not (tmp_path / "o").exists()


def test_mismatching_output_is_an_error():
    from chameleon_tune.model.build import VerificationError, tolerance, verify

    want = [np.array([[1.0, -2.0, 3.0]], dtype="float32")]
    assert verify([want[0] + 1e-4], want, "x") == pytest.approx(1e-4, rel=1e-2)
    assert tolerance(want) == pytest.approx(3e-3 + 1e-6)
    with pytest.raises(VerificationError, match="max abs error"):
        verify([want[0] + 0.01], want, "the tuned model's")
    with pytest.raises(VerificationError, match="shape"):
        verify([want[0].ravel()], want, "the tuned model's")


def test_loader_runs_the_artifact_on_the_thread_count_it_was_tuned_for(tuned):
    out_dir, s, _, _ = tuned
    snippet = f"""
import tvm, chameleon_tune
model, manifest = chameleon_tune.load_artifact({str(out_dir)!r})
print(tvm.runtime.num_threads(), manifest["threads"])
"""
    env = {k: v for k, v in os.environ.items() if k != "TVM_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    running, tuned_for = map(int, done.stdout.split())
    assert running == tuned_for == s["threads"]


def test_builtin_resnets_have_torchvisions_layer_shapes():
    from chameleon_tune.model.networks import build_model

    # torchvision's parameter counts: resnet18 11,689,512; resnet50 25,557,032
    for name, params in (("resnet18", 11_689_512), ("resnet50", 25_557_032)):
        assert sum(p.numel() for p in build_model(name).parameters()) == params, name


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_builtin_models_outputs_depend_on_their_input(name):
    """Otherwise checking a compiled model against PyTorch would check nothing: with batch norms
    left at their initial statistics, MobileNetV2's output was the same for every input."""
    import torch

    from chameleon_tune.model.networks import build_model, input_shape

    torch.manual_seed(0)
    model = build_model(name)
    with torch.no_grad():
        a, b = (model(torch.randn(input_shape(name))) for _ in range(2))
    assert (a - b).abs().max() > 0.1 * a.abs().max()


def test_resnet50_is_a_many_task_model_ranked_for_the_warm_up():
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.scheduler import GradientScheduler, extract_tasks
    from chameleon_tune.tvm_space import host_target

    target = host_target(num_cores=2)
    pipeline = Pipeline()
    tasks = extract_tasks(pipeline.fuse(pipeline.prepare(load_model("resnet50", threads=1).mod), target), target)
    assert len(tasks) == 29 and all(t.cost_estimate_s > 0 for t in tasks)
    scheduler = GradientScheduler([t.weight for t in tasks], costs=[t.cost_estimate_s for t in tasks])
    first, last = tasks[scheduler.warmup_order[0]], tasks[scheduler.warmup_order[-1]]
    assert "conv2d" in first.name and first.weight * first.cost_estimate_s > 100 * last.weight * last.cost_estimate_s


def test_bert_base_layer_is_a_built_in_transformer_layer():
    from chameleon_tune.model.importer import load_model
    from chameleon_tune.model.pipeline import Pipeline
    from chameleon_tune.model.scheduler import extract_tasks
    from chameleon_tune.tvm_space import host_target

    target = host_target(num_cores=2)
    imported = load_model("bert_base_layer", threads=1)
    assert imported.inputs == [((1, 128, 768), "float32")]
    params = sum(p.numel() for p in imported.torch_module.parameters())
    assert params == 4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768 + 4 * 768  # BERT-base's per-layer count
    pipeline = Pipeline()
    names = [t.name for t in extract_tasks(pipeline.fuse(pipeline.prepare(imported.mod), target), target)]
    for op in ("matmul", "softmax", "layer_norm"):
        assert any(op in name for name in names), op
    assert any("matmul" in name and "fast_erf" in name for name in names)  # GELU, as its matmul's epilogue
