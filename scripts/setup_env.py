"""Create (or refresh) the project's virtual environment in ./.venv with the pinned dependencies.

Why a script and not a bare `pip install`: a plain `torch` requirement resolves to a multi-GB CUDA
build. Without a GPU we add PyTorch's CPU wheel index (when it can be reached) so the same pin
installs the CPU build; with a GPU the default index gives the CUDA build. Re-running is cheap: the
install is skipped when pyproject.toml and constraints.txt have not changed since the last one.
"""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def main() -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 - runs on whatever python the user has, before the venv exists
        sys.exit("hf_tinylm needs Python 3.10 or newer")
    if not venv_python().exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(
        b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints.txt"))
    ).hexdigest()
    stamp = VENV / ".hf_tinylm-installed"
    if stamp.exists() and stamp.read_text() == digest:
        print("environment is up to date", flush=True)
        return
    cmd = [str(venv_python()), "-m", "pip", "install", "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]"]
    if not has_gpu() and reachable("download.pytorch.org"):
        cmd += ["--extra-index-url", CPU_INDEX]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    stamp.write_text(digest)


if __name__ == "__main__":
    main()
