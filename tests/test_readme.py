"""The README's Python snippets run as written (each block in a fresh namespace)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S) if README.exists() else []


@pytest.mark.skipif(not README.exists(), reason="README.md not beside the tests")
def test_readme_has_snippets():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets may write files
    code = BLOCKS[index]
    if "import torch" in code or "tensorpress.torch" in code:
        pytest.importorskip("torch")
    exec(compile(code, f"README.md[python block {index}]", "exec"), {"__name__": "readme"})
