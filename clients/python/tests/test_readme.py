"""The README's example runs as it is against a real daemon."""
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(daemon):
    example = re.search(r"## Example.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    done = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "MODELSYNC_SOCKET": daemon.socket})
    assert done.returncode == 0, done.stderr
    assert "daemon of node-a" in done.stdout
    assert "not found:" in done.stdout
