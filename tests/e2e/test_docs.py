"""Examples in the docs run as written."""

from __future__ import annotations

import re
from pathlib import Path

from drumbeat.model.campaign import parse_campaign
from drumbeat.model.documents import load_yaml

ROOT = Path(__file__).resolve().parents[2]


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_campaign_examples_parse():
    examples = blocks(ROOT / "docs" / "campaigns.md", "yaml") + blocks(ROOT / "README.md", "yaml")
    assert len(examples) >= 2
    for text in examples:
        parse_campaign(load_yaml(text))


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (code,) = blocks(ROOT / "README.md", "python")
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "drumbeat.db").exists()
