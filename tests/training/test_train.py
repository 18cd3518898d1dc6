"""End-to-end training on the synthetic shop with tiny models (CPU, seconds each)."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from recalign.errors import ConfigError, IncompatibleArtifactError, RecalignError
from recalign.models.loading import load_run_model
from recalign.training.callbacks import StopAtStepCallback
from recalign.training.checkpoints import checkpoint_dirs
from recalign.training.config import make_config
from recalign.training.run import train

from .conftest import TINY_CAUSAL, TINY_T5, make_samples

torch.set_num_threads(1)  # steady timing on a shared 2-core machine


def _config(family: str, **extra):
    values = {
        "max_steps": 30,
        "batch_size": 8,
        "eval_steps": 10,
        "logging_steps": 5,
        # The causal loss is on the answer tokens only, which start from ln(vocab): a
        # higher rate gets it moving within a few dozen steps.
        "learning_rate": 3e-3 if family == "seq2seq" else 1e-2,
        "vocab_size": 300,
        "warmup_ratio": 0.0,
        "model_overrides": TINY_T5 if family == "seq2seq" else TINY_CAUSAL,
    }
    values.update(extra)
    return make_config(values)


def _losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "loss" in r]


@pytest.fixture(scope="module")
def t5_run(shop, tmp_path_factory):
    data, samples = shop
    out = tmp_path_factory.mktemp("t5") / "run"
    return train(data, samples, "tiny-t5", out, config=_config("seq2seq"), progress=False)


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_loss_goes_down(family, shop, t5_run, tmp_path):
    data, samples = shop
    if family == "seq2seq":
        result = t5_run
    else:
        result = train(
            data, samples, "tiny-causal", tmp_path / "run", config=_config("causal"), progress=False
        )
    losses = _losses(result.run_dir)
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert result.steps == 30 and not result.interrupted


def test_run_directory_contract(t5_run, shop):
    from recalign.data.store import load_prepared

    run = t5_run.run_dir
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["kind"] == "run" and manifest["status"] == "done"
    assert manifest["family"] == "seq2seq"
    assert manifest["inputs"]["dataset"]["content_hash"] == load_prepared(shop[0]).data_hash
    assert manifest["steps_done"] == 30 and manifest["best_step"] in (10, 20, 30)
    assert manifest["prompt"]["item_repr"] == "title" and manifest["lora"] is None
    assert manifest["prompt"]["max_source_length"] == 256  # the config's budget
    assert {"model/model.safetensors", "config.yaml"} <= set(manifest["files"])
    # How the prompts were fitted to max_source_length, over every batch of the run.
    assert set(manifest["prompt_fit"]) <= {"shortened", "over_budget", "cut_without_bounds"}
    assert not manifest["prompt_fit"].get("cut_without_bounds")
    assert manifest["model"]["source"] == "tiny-t5"
    assert (run / "config.yaml").is_file()
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "tokenizer.json").is_file()
    assert (run / "checkpoints" / "checkpoint-30" / "optimizer.pt").is_file()
    evals = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    best = min((r for r in evals if "eval_loss" in r), key=lambda r: r["eval_loss"])
    assert best["step"] == manifest["best_step"]
    assert manifest["best_eval_loss"] == pytest.approx(best["eval_loss"])
    loaded = load_run_model(run)
    assert loaded.family == "seq2seq"


def _same_weights(a, b, tol=1e-5):
    params_b = dict(b.named_parameters())
    for name, p in a.named_parameters():
        torch.testing.assert_close(p, params_b[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("stop", [13, 23])
def test_resume_matches_uninterrupted(stop, shop, t5_run, tmp_path):
    """Stop mid-evaluation-interval (in the first epoch, and in the second), resume: the
    same weights as one run."""
    data, samples = shop
    out = tmp_path / "run"
    first = train(
        data,
        samples,
        "tiny-t5",
        out,
        config=_config("seq2seq"),
        progress=False,
        callbacks=[StopAtStepCallback(stop)],
    )
    assert first.steps == stop and not (out / "model").exists()
    steps_per_epoch = -(-json.loads((out / "manifest.json").read_text())["train_samples"] // 8)
    assert (stop < steps_per_epoch) == (stop == 13)  # 23 is in the second epoch
    assert json.loads((out / "manifest.json").read_text())["status"] == "stopped"
    resumed = train(data, samples, "tiny-t5", out, resume=True, progress=False)
    assert resumed.steps == 30
    whole = load_run_model(t5_run.run_dir, which="last").model
    again = load_run_model(out, which="last").model
    _same_weights(whole, again)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_skips_a_damaged_checkpoint_and_matches_uninterrupted(
    shop, t5_run, tmp_path, caplog
):
    """A kill while saving leaves a truncated model.safetensors in the newest checkpoint:
    the resume says so, starts from the previous one, and still ends where one run does."""
    data, samples = shop
    out = tmp_path / "run"
    cfg = _config("seq2seq")
    train(
        data,
        samples,
        "tiny-t5",
        out,
        config=cfg,
        progress=False,
        callbacks=[StopAtStepCallback(25)],
    )
    assert [s for s, _ in checkpoint_dirs(out)] == [10, 20, 25]
    _truncate(out / "checkpoints" / "checkpoint-25" / "model.safetensors")

    with caplog.at_level(logging.WARNING, logger="recalign.training.checkpoints"):
        resumed = train(data, samples, "tiny-t5", out, resume=True, progress=False)
    warned = caplog.text
    assert "checkpoint-25" in warned and "model.safetensors" in warned and "truncated" in warned
    assert "resuming from the previous good checkpoint, checkpoint-20" in warned
    assert resumed.steps == 30
    assert (out / "checkpoints" / "corrupt-checkpoint-25" / "model.safetensors").is_file()
    records = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    marker = next(r for r in records if r.get("event") == "resume")
    assert marker["from_step"] == 20 and marker["checkpoint"] == "checkpoint-20"
    assert "model.safetensors" in marker["skipped"][0] and marker["dropped_records"] >= 1
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20, 25, 30]
    whole = load_run_model(t5_run.run_dir, which="last").model
    _same_weights(whole, load_run_model(out, which="last").model)


def test_existing_run_dir_needs_resume(shop, t5_run):
    data, samples = shop
    with pytest.raises(RecalignError, match="--resume"):
        train(data, samples, "tiny-t5", t5_run.run_dir, config=_config("seq2seq"))


class _SigintAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_a_checkpoint(shop, tmp_path):
    data, samples = shop
    out = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the tests run in the background
    result = train(
        data,
        samples,
        "tiny-causal",
        out,
        config=_config("causal", max_steps=8),
        callbacks=[_SigintAt(3)],
        progress=False,
    )
    assert result.interrupted and result.steps == 3
    assert (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file()
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back
    resumed = train(data, samples, "tiny-causal", out, resume=True, progress=False)
    assert resumed.steps == 8 and (out / "model").is_dir()


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_lora_saves_adapter_and_reloads_same_outputs(family, shop, tmp_path):
    data, samples = shop
    spec = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    cfg = _config(family, max_steps=10, eval_steps=5, lora={"enabled": True, "r": 4})
    result = train(data, samples, spec, tmp_path / "run", config=cfg, progress=False)
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "adapter_config.json").is_file()
    assert (model_dir / "adapter_model.safetensors").is_file()
    assert not (model_dir / "model.safetensors").exists()
    adapter_bytes = (model_dir / "adapter_model.safetensors").stat().st_size
    base_bytes = (tmp_path / "run" / "base" / "model.safetensors").stat().st_size
    assert adapter_bytes < base_bytes / 4

    reloaded = load_run_model(tmp_path / "run")
    ids = torch.tensor([[5, 6, 7, 8, 9, 1]])
    extra = {"decoder_input_ids": torch.tensor([[0, 5, 6]])} if family == "seq2seq" else {}
    trained = result.model.eval()
    with torch.no_grad():
        expected = trained(input_ids=ids, **extra).logits
        got = reloaded.model(input_ids=ids, **extra).logits
        with reloaded.model.disable_adapter():
            base = reloaded.model(input_ids=ids, **extra).logits
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(base, expected, atol=1e-4)  # the adapter changed something


def test_oom_risk_is_refused_with_advice(shop, tmp_path):
    data, samples = shop
    cfg = _config("seq2seq", batch_size=10**7, model_overrides={**TINY_T5, "d_model": 64})
    with pytest.raises(ConfigError, match="run out of memory"):
        train(data, samples, "tiny-t5", tmp_path / "run", config=cfg, progress=False)


def test_samples_from_another_dataset_are_refused(shop, tmp_path):
    from recalign.data.store import load_prepared

    data, _ = shop
    other = make_samples(load_prepared(data), tmp_path / "samples", data_hash="0" * 64)
    with pytest.raises(IncompatibleArtifactError, match="another dataset"):
        train(data, other, "tiny-t5", tmp_path / "run", config=_config("seq2seq"))
    assert not (tmp_path / "run").exists()


def test_progress_bar_keeps_log_records_off_stdout(shop, tmp_path, capsys):
    data, samples = shop
    config = _config("seq2seq", max_steps=4, logging_steps=1, eval_steps=2)
    train(data, samples, "tiny-t5", tmp_path / "run", config=config, progress=True)
    captured = capsys.readouterr()
    assert "'loss'" not in captured.out and "'eval_loss'" not in captured.out
    assert "loss=" in captured.err and "4/4" in captured.err  # in the bar, on stderr
    assert len(_losses(tmp_path / "run")) == 4  # the records are in train_log.jsonl


def test_cli_train_and_python_api(shop, tmp_path):
    from typer.testing import CliRunner

    import recalign
    from recalign.cli import app

    assert recalign.train is train
    data, samples = shop
    config = tmp_path / "train.yaml"
    config.write_text(
        "batch_size: 8\neval_steps: 2\nlogging_steps: 1\nvocab_size: 300\n"
        "model_overrides: {d_model: 32, d_ff: 64, d_kv: 8, num_heads: 4}\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(data),
            "--samples",
            str(samples),
            "--model",
            "tiny-t5",
            "--out",
            str(out),
            "--config",
            str(config),
            "--max-steps",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trained 4 steps" in result.output
    assert json.loads((out / "manifest.json").read_text())["steps_done"] == 4


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_trains_on_samples_stage_output(family, generated_shop, tmp_path):
    """The real samples contract (all paper tasks, both families) trains end to end."""
    data, samples = generated_shop[family]
    spec = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    result = train(data, samples, spec, tmp_path / "run", config=_config(family), progress=False)
    losses = _losses(result.run_dir)
    assert losses[-1] < 0.8 * losses[0], losses
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["family"] == family and manifest["prompt"]["item_repr"] == "title"
    assert manifest["prompt"]["tasks"] == ["retrieval", "ranking", "mim", "bpr", "mlm"]


def test_lora_merged_saves_a_full_model(shop, tmp_path):
    data, samples = shop
    cfg = _config("causal", max_steps=4, eval_steps=2, lora={"enabled": True, "save": "merged"})
    result = train(data, samples, "tiny-causal", tmp_path / "run", config=cfg, progress=False)
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "model.safetensors").is_file()
    assert not (model_dir / "adapter_config.json").exists()
    reloaded = load_run_model(tmp_path / "run")
    ids = torch.tensor([[3, 5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(ids).logits, result.model(ids).logits)


def test_load_run_model_names_missing_checkpoints(t5_run):
    with pytest.raises(RecalignError, match="no checkpoint 'step-7'"):
        load_run_model(t5_run.run_dir, which="step-7")
    assert load_run_model(t5_run.run_dir, which="step-30").spec["weights"].endswith("checkpoint-30")


def test_num_processes_relaunches_through_accelerate():
    from recalign.cli.train import launch_command

    argv = ["train", "--data", "d", "--num-processes", "2", "--out", "o", "--num-processes=4"]
    command = launch_command(argv, 2)
    assert command[1:] == [
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--multi_gpu",
        "-m",
        "recalign",
        "train",
        "--data",
        "d",
        "--out",
        "o",
    ]


def test_relaunch_keeps_the_root_options():
    from recalign.cli.train import launch_command

    command = launch_command(["--threads", "1", "train", "--data", "d", "--num-processes", "2"], 2)
    assert command[-6:] == ["recalign", "--threads", "1", "train", "--data", "d"]


def test_sample_flags_subset_and_are_kept_on_resume(shop, tmp_path):
    from typer.testing import CliRunner

    from recalign.cli import app

    data, samples = shop
    config = tmp_path / "train.yaml"
    config.write_text(
        "batch_size: 4\neval_steps: 2\nlogging_steps: 1\nvocab_size: 300\n"
        "model_overrides: {d_model: 32, d_ff: 64, d_kv: 8, num_heads: 4}\n"
    )
    out = tmp_path / "run"
    common = ["train", "--data", str(data), "--samples", str(samples), "--out", str(out)]
    flags = ["--max-train-samples", "24", "--max-eval-samples", "8"]
    runner = CliRunner()
    result = runner.invoke(app, [*common, "--config", str(config), "--max-steps", "2", *flags])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["train_samples"], manifest["valid_samples"]) == (24, 8)
    assert "max_train_samples: 24" in (out / "config.yaml").read_text()
    assert not (out / "data-cache").exists()  # the streamed texts go with the run
    changed = runner.invoke(app, [*common, "--resume", "--max-train-samples", "30"])
    assert changed.exit_code != 0
    assert "differs from the resumed run" in str(changed.exception)
    same = runner.invoke(app, [*common, "--resume", "--max-steps", "4", *flags])
    assert same.exit_code == 0, same.output
    assert json.loads((out / "manifest.json").read_text())["train_samples"] == 24


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize(
    ("family", "lora"), [("seq2seq", False), ("causal", False), ("causal", True)]
)
def test_happy_path_runs_and_reloads_without_warnings(family, lora, shop, tmp_path):
    """Best-model reload of tied weights and LoRA: no missing keys, no FutureWarning."""
    import warnings

    data, samples = shop
    spec = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    cfg = _config(family, max_steps=4, eval_steps=2, lora={"enabled": lora})
    records = _Records()
    watched = [logging.getLogger(name) for name in ("transformers", "recalign.training")]
    for logger in watched:
        logger.addHandler(records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", UserWarning)
            result = train(data, samples, spec, tmp_path / "run", config=cfg, progress=False)
            load_run_model(tmp_path / "run")
    finally:
        for logger in watched:
            logger.removeHandler(records)
    assert result.best_step in (2, 4)  # the best checkpoint was reloaded at the end
    unexpected = [m for m in records.messages if "samples were generated for" not in m]
    unexpected = [m for m in unexpected if "mtime may not be reliable" not in m]
    assert unexpected == []


def test_tied_aliases_are_told_from_missing_weights():
    from recalign.models.tiny import build_tiny_t5, train_tokenizer
    from recalign.training.trainer import tied_aliases

    tok = train_tokenizer(["red lipstick blue polish"] * 20, vocab_size=300)
    model = build_tiny_t5(tok, **TINY_T5)
    aliases = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]
    real = "encoder.block.0.layer.0.SelfAttention.q.weight"
    assert tied_aliases(model, {"shared.weight"}, [*aliases, real]) == set(aliases)
    # Without their source in the checkpoint, the aliases are really missing.
    assert tied_aliases(model, {real}, aliases) == set()


def test_checkpoint_keys_of_single_and_sharded_checkpoints(tmp_path):
    from safetensors.torch import save_file

    from recalign.training.trainer import checkpoint_keys

    save_file({"shared.weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert checkpoint_keys(tmp_path) == {"shared.weight"}
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    index = {"weight_map": {"shared.weight": "a.safetensors", "x.weight": "b.safetensors"}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert checkpoint_keys(sharded) == {"shared.weight", "x.weight"}
    assert checkpoint_keys(tmp_path / "missing") == set()
