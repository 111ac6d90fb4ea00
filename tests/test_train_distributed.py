"""train.py under two CPU processes: torchrun and accelerate launch split the batches, so a run takes as many
optimizer steps as one process with twice the batch size (two processes each training alone would take twice as
many)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hf_tinylm import training
from tests import training_data

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

ARGS = [
    "--model_size", "tiny", "--vocab_size", "400", "--block_size", "32", "--num_train_epochs", "1",
    "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--max_eval_samples", "40",
]  # fmt: skip


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def launch(command: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def steps(folder: Path) -> int:
    return json.loads((folder / "trainer_state.json").read_text())["global_step"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return training_data.shakespeare_txt(tmp_path_factory.mktemp("data"), chars=8000)


@pytest.fixture(scope="module")
def single_process_steps(text_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("single") / "model"
    training.main(
        [*ARGS, "--train_file", str(text_file), "--per_device_train_batch_size", "8", "--output_dir", str(folder)]
    )
    return steps(folder)


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_take_the_steps_of_one_with_twice_the_batch(tmp_path, text_file, single_process_steps, launcher):
    if launcher == "torchrun":
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            free_port(),
        ]
    else:
        config = ROOT / "configs" / "accelerate_cpu_2proc.yaml"
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
        command += ["--main_process_port", free_port()]
    folder = tmp_path / "model"
    args = [*ARGS, "--train_file", str(text_file), "--per_device_train_batch_size", "4", "--output_dir", str(folder)]
    launch([*command, str(ROOT / "train.py"), *args], cwd=tmp_path)

    assert steps(folder) == single_process_steps
    assert "eval_perplexity" in json.loads((folder / "eval_results.json").read_text())
    assert (folder / "model.safetensors").is_file()


def test_a_time_budget_stops_both_processes_at_the_same_step(tmp_path, text_file, single_process_steps):
    """Each process measures its own CPU time; counting the slowest one's every step keeps their learning rates and
    their last step the same (a process stopping alone would leave the other waiting in a collective)."""
    folder = tmp_path / "model"
    args = [*ARGS, "--train_file", str(text_file), "--per_device_train_batch_size", "4", "--output_dir", str(folder)]
    args += ["--num_train_epochs", "100", "--max_train_seconds", "2"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port()]
    launch([*command, str(ROOT / "train.py"), *args], cwd=tmp_path)
    state = json.loads((folder / "trainer_state.json").read_text())
    assert 0 < state["global_step"] < 100 * single_process_steps  # stopped by the budget, on both processes
