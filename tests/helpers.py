"""Test helpers shared by the test modules."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

# Small slices of the shared data sets, in their own layouts and under their own paths (tests/fixtures/README.md;
# scripts/make_test_fixtures.py cuts them from ../shared/data, which only the benchmarks read).
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Installed first in the child interpreter: makes `import hf_tinylm` fail as on a machine without the package.
_BLOCK_HF_TINYLM = """
import importlib.abc, sys
class _NoHfTinylm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "hf_tinylm" or name.startswith("hf_tinylm."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: simulating a machine without hf_tinylm)")
sys.meta_path.insert(0, _NoHfTinylm())
try:
    import hf_tinylm
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("hf_tinylm is still importable; the fresh-process check would prove nothing")
"""


def run_without_hf_tinylm(code: str, cwd: Path, timeout: int = 300):
    """Run `code` in a fresh Python where hf_tinylm cannot be imported and the Hub is offline.

    The code must print exactly one JSON document on its last stdout line; it is returned parsed.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(Path(cwd) / "hf_home"))
    program = _BLOCK_HF_TINYLM + "\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"fresh process failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])
