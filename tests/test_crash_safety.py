"""A train.py process killed at any moment resumes, with --resume_from_checkpoint last, to the very weights of a run
that was never interrupted: kills land mid-checkpoint (inside the weight, optimizer and state writes), mid-step and
before any checkpoint, with dropout on and a checkpoint every step."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from pydoc_data.topics import topics

import pytest
import torch
from safetensors.torch import load_file

from hf_tinylm.checkpoints import last_complete_checkpoint, missing_parts

ROOT = Path(__file__).resolve().parents[1]
STEPS = 10

# Runs train.py's main() in a child process that SIGKILLs itself on the N-th call of a function: a kill that lands
# exactly inside a checkpoint write ("torch.save": optimizer, scheduler, random states; "save_file": weights), inside
# the final save ("final-save": the finished folder's weights) or in the middle of an evaluation ("evaluate").
PROGRAM = """
import os, signal, sys
import safetensors.torch, torch

target, nth = sys.argv[1], int(sys.argv[2])
calls = 0

def dying(function, applies=lambda *args, **kwargs: True):
    def wrapper(*args, **kwargs):
        global calls
        calls += applies(*args, **kwargs)
        if calls == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return wrapper

if target == "torch.save":
    torch.save = dying(torch.save)
elif target in ("save_file", "final-save"):  # patched before transformers imports it
    in_final_folder = lambda tensors, filename, *args, **kwargs: "checkpoint-" not in str(filename)
    safetensors.torch.save_file = dying(
        safetensors.torch.save_file, in_final_folder if target == "final-save" else lambda *a, **k: True
    )
elif target == "evaluate":
    import transformers
    transformers.Trainer.evaluation_loop = dying(transformers.Trainer.evaluation_loop)
torch.set_num_threads(1)
from hf_tinylm import training
training.main(sys.argv[3:])
"""


def arguments(text: Path, output_dir: Path, cache: Path) -> list[str]:
    return [
        "--train_file", str(text), "--model_size", "tiny", "--vocab_size", "300", "--tokenizer_type", "char",
        "--block_size", "32", "--max_steps", str(STEPS), "--per_device_train_batch_size", "4",
        "--config_overrides", "hidden_dropout=0.2,attention_dropout=0.1", "--eval_strategy", "steps",
        "--eval_steps", "4", "--max_eval_samples", "8",
        "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "2", "--max_new_tokens", "2",
        "--report_to", "none", "--cache_dir", str(cache), "--output_dir", str(output_dir), "--seed", "7",
    ]  # fmt: skip


def launch(args: list[str], target: str = "none", nth: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, target, str(nth), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.slow
def test_a_run_killed_at_any_moment_resumes_to_identical_weights(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(" ".join(topics.values())[:30_000])
    uninterrupted = launch(arguments(text, tmp_path / "uninterrupted", tmp_path / "cache"))
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()

    output_dir = tmp_path / "interrupted"
    args = [*arguments(text, output_dir, tmp_path / "cache"), "--resume_from_checkpoint", "last"]
    rng = random.Random(0)
    # Inside the writes of a checkpoint, before the first checkpoint, during an evaluation, inside the final save,
    # and at random moments of the run.
    kills = [
        ("save_file", 3), ("torch.save", 1), ("evaluate", 1), ("torch.save", 9), ("save_file", 4), ("time", 0),
        ("final-save", 1), ("time", 0),
    ]  # fmt: skip
    killed = 0
    for target, nth in kills:
        process = launch(args, *(("none", 0) if target == "time" else (target, nth)))
        if target == "time":
            time.sleep(rng.uniform(4.0, 12.0))
            process.send_signal(signal.SIGKILL)
        code = process.wait(timeout=300)
        stderr = process.stderr.read()
        assert code in (0, -signal.SIGKILL), stderr
        assert target == "time" or code == -signal.SIGKILL, f"the kill at {target} #{nth} never came: {stderr}"
        killed += code == -signal.SIGKILL
        for checkpoint in output_dir.glob("checkpoint-*"):  # what a kill leaves is either whole or recognised
            if missing_parts(checkpoint):
                assert last_complete_checkpoint(output_dir) != str(checkpoint)
    assert killed >= 6, "the kills did not land; the test proves nothing"

    finished = launch(args)
    assert finished.wait(timeout=300) == 0, finished.stderr.read()
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS
    expected, resumed = weights(tmp_path / "uninterrupted"), weights(output_dir)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    checkpoints = sorted(output_dir.glob("checkpoint-*"))
    assert len(checkpoints) <= 2 and not any(missing_parts(folder) for folder in checkpoints)


def test_incomplete_checkpoints_are_named_skipped_and_removed(tmp_path, caplog):
    for step in (1, 2, 3):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in ("config.json", "tokenizer_config.json", "model.safetensors", "optimizer.pt", "scheduler.pt"):
            (folder / name).write_text("{}")
        (folder / "rng_state.pth").write_text("")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-3" / "optimizer.pt").unlink()  # killed mid-write
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_st')  # killed while writing the state
    assert missing_parts(tmp_path / "checkpoint-3") == ["optimizer.pt"]
    assert missing_parts(tmp_path / "checkpoint-2") == ["a readable trainer_state.json"]
    assert missing_parts(tmp_path / "checkpoint-1", with_optimizer=True) == []

    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1")
    assert "checkpoint-3 is an incomplete checkpoint (no optimizer.pt): skipping it." in caplog.text
    assert (tmp_path / "checkpoint-3").is_dir()
    assert last_complete_checkpoint(tmp_path, remove_incomplete=True) == str(tmp_path / "checkpoint-1")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-1"]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_weights_file_is_named_when_loading(tmp_path, damage):
    from hf_tinylm import TinyRNNConfig, TinyRNNForCausalLM

    TinyRNNForCausalLM(TinyRNNConfig(vocab_size=40, hidden_size=8)).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not safetensors" * 8)
    with pytest.raises(OSError, match=f"^{weights}: not a readable safetensors file .* truncated or corrupt"):
        TinyRNNForCausalLM.from_pretrained(tmp_path)


def test_generation_stops_at_the_context_limit_and_keeps_what_it_made(caplog):
    """Asked for more tokens than the context holds, generate() and the stock pipeline return what fits, with a
    warning; a prompt that leaves no room fails at once."""
    from transformers import pipeline

    from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM
    from hf_tinylm.tokenization import train_tokenizer

    tokenizer = train_tokenizer(["the tower stands in paris"], "char", vocab_size=300)
    torch.manual_seed(0)
    config = TinyAttentionConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_attention_heads=2, num_hidden_layers=1,
        max_position_embeddings=24, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = TinyAttentionForCausalLM(config).eval()
    ids = tokenizer("the tower", return_tensors="pt").input_ids  # 9 tokens
    longest = model.generate(ids, max_new_tokens=200, do_sample=False)
    assert longest.shape == (1, 24)
    assert "Generating at most 15 new tokens instead of 200" in caplog.text
    assert torch.equal(model.generate(ids, max_new_tokens=15, do_sample=False), longest)  # the same tokens
    assert model.generate(ids, max_length=500, min_new_tokens=100, do_sample=False).shape == (1, 24)

    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    text = generator("the tower", max_new_tokens=200, do_sample=False, return_full_text=False)[0]["generated_text"]
    assert text == tokenizer.decode(longest[0, 9:], skip_special_tokens=True)

    with pytest.raises(ValueError, match="The prompt is 24 tokens long; this model reads at most 24 tokens"):
        model.generate(torch.ones(1, 24, dtype=torch.long), max_new_tokens=1)


@pytest.mark.parametrize("family", ["attention", "rnn"])
def test_model_inputs_without_tokens_or_of_the_wrong_kind_fail_at_once(family):
    from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM, TinyRNNConfig, TinyRNNForCausalLM

    if family == "attention":
        model = TinyAttentionForCausalLM(TinyAttentionConfig(vocab_size=30, hidden_size=8, num_attention_heads=2))
    else:
        model = TinyRNNForCausalLM(TinyRNNConfig(vocab_size=30, hidden_size=8))
    ids = torch.ones(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="must hold integer token ids, got dtype torch.float32"):
        model(ids.float())
    with pytest.raises(ValueError, match=r"`input_ids` has shape \(1, 0\): no tokens"):
        model(ids[:1, :0])
    with pytest.raises(ValueError, match=r"`input_ids` has shape \(0, 3\): no tokens"):
        model(ids[:0])
    with pytest.raises(ValueError, match="Row 1 of `attention_mask` is all zeros"):
        model(ids, attention_mask=torch.tensor([[1, 1, 1], [0, 0, 0]]))
    model(ids, attention_mask=torch.tensor([[1, 1, 1], [0, 1, 1]]))  # padding is fine


@pytest.mark.parametrize("family", ["attention", "rnn"])
@pytest.mark.parametrize(("name", "value"), [("num_beams", 0), ("num_beams", -2), ("num_return_sequences", 0)])
def test_meaningless_generation_counts_fail_at_our_boundary(family, name, value):
    from hf_tinylm import TinyAttentionConfig, TinyAttentionForCausalLM, TinyRNNConfig, TinyRNNForCausalLM

    if family == "attention":
        model = TinyAttentionForCausalLM(TinyAttentionConfig(vocab_size=30, hidden_size=8, num_attention_heads=2))
    else:
        model = TinyRNNForCausalLM(TinyRNNConfig(vocab_size=30, hidden_size=8))
    with pytest.raises(ValueError, match=f"`{name}` must be a positive whole number, got {value}"):
        model.generate(torch.ones(1, 3, dtype=torch.long), max_new_tokens=2, **{name: value})
