"""Examples in the docs run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from drumbeat.model.campaign import parse_campaign

ROOT = Path(__file__).resolve().parents[2]


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), flags=re.S)


def test_campaign_examples_parse():
    examples = blocks(ROOT / "docs" / "campaigns.md", "yaml") + blocks(ROOT / "README.md", "yaml")
    assert len(examples) >= 2
    for text in examples:
        parse_campaign(yaml.safe_load(text))


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (code,) = blocks(ROOT / "README.md", "python")
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "drumbeat.db").exists()


def test_python_md_examples_run(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("DRUMBEAT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    examples = blocks(ROOT / "docs" / "python.md", "python")
    assert len(examples) == 2
    for code in examples:
        exec(compile(code, "docs/python.md", "exec"), {})
    assert (tmp_path / "campaigns" / "welcome.yaml").exists()
