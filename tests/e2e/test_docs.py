"""Every shell and Python example in README.md and docs/*.md runs as written.

What runs: each fenced block tagged ```sh (or bash, shell) with `bash -euo pipefail`, and each
```python (or py) block with this interpreter. A document's blocks run in order, in one fresh
directory, so a block may use what earlier blocks of the same document made (files, data in
the store). `drumbeat` is the installed command (this venv's bin comes first on PATH) and no
DRUMBEAT_* variable is set: the store is ./drumbeat.db and email goes to
./drumbeat-messages.jsonl, both in that directory.

A document can say more with an HTML comment on the line before a fenced block (a rendered
page shows only the example):

- `<!-- file: NAME -->`: the block (any language) is a file the examples read; the test
  writes it to NAME in the document's directory, so the reader sees it and it cannot drift.
  (A ```sh block may also write one itself: `cat > rule.yaml <<'EOF'` … `EOF`.)
- `<!-- no-run: REASON -->`: a shell or Python block shown but not run (it runs forever,
  needs PostgreSQL, takes minutes). Nothing else is skipped, and these are counted: most
  blocks must run. Keep such lines (`drumbeat run`) in a block of their own.
- `<!-- run-by: TEST [REASON] -->`: the block needs what only that test sets up (a running
  `drumbeat serve`, a key); TEST (a path under the repository) runs it as written, and must
  exist. It counts as run.
- `<!-- exit: N -->`: the shell block must exit with status N (an example of refused input).
- `<!-- output -->`: the block is what the runnable block before it prints; the test checks
  that it does (whitespace collapsed, since Rich wraps to the terminal's width).

A failure names the document, the block's line and what the block printed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from drumbeat.model.campaign import parse_campaign
from drumbeat.model.documents import load_yaml

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "shell"}
PYTHON = {"python", "py"}
DOCUMENT_TIMEOUT = 110.0  # seconds for all of a document's blocks: under the test's 120 s

FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*([\w+-]*)")  # indented inside a list item too
MARKER = re.compile(r"^<!--\s*(file|no-run|run-by|exit|output)\s*(?::\s*(.*?))?\s*-->$")


@dataclass
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{shown(self.document)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.language in SHELL | PYTHON and not {"no-run", "run-by"} & self.markers.keys()


def shown(document: Path) -> str:
    return str(document.relative_to(ROOT)) if document.is_relative_to(ROOT) else str(document)


def parse_blocks(document: Path) -> list[Block]:
    """The fenced blocks of a document, each with the markers on the lines just before it."""
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    markers: dict[str, str] = {}
    number = 0
    while number < len(lines):
        line = lines[number].strip()
        fence = FENCE.match(lines[number])
        marker = MARKER.match(line)
        if marker:
            markers[marker[1]] = marker[2] or ""
        elif fence:
            end = next(
                (i for i in range(number + 1, len(lines)) if lines[i].strip() == fence[2]), None
            )
            assert end is not None, f"{shown(document)}:{number + 1}: unclosed fence"
            indent = len(fence[1])
            text = "".join(f"{line[indent:]}\n" for line in lines[number + 1 : end])
            found.append(Block(document, number + 1, fence[3].lower(), text, markers))
            markers, number = {}, end
        elif line:
            markers = {}
        number += 1
    return found


def check_markers(block: Block) -> None:
    runs = block.language in SHELL | PYTHON
    assert "no-run" not in block.markers or (runs and block.markers["no-run"]), (
        f"{block.where}: no-run needs a reason and a sh or python block"
    )
    runner = block.markers.get("run-by", "").split(" ", 1)[0]
    assert "run-by" not in block.markers or (runs and (ROOT / runner).is_file()), (
        f"{block.where}: run-by needs a sh or python block and the test that runs it"
    )
    assert "exit" not in block.markers or (
        block.language in SHELL and block.markers["exit"].isdigit()
    ), f"{block.where}: exit needs a status and a sh block"
    name = block.markers.get("file")
    assert name is None or (
        name and not PurePosixPath(name).is_absolute() and ".." not in PurePosixPath(name).parts
    ), f"{block.where}: file needs a name inside the example's directory"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRUMBEAT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def command(block: Block) -> list[str]:
    if block.language in SHELL:
        return ["bash", "-euo", "pipefail", "-c", block.text]
    # blank lines first, so a traceback's line numbers are the document's
    return [sys.executable, "-c", "\n" * block.line + block.text]


def run_block(block: Block, directory: Path, deadline: float) -> str:
    """Run one block in `directory`; its output, or a failure naming where it is written."""
    process = subprocess.Popen(
        command(block),
        cwd=directory,
        env=environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a timeout ends what it started
    )
    try:
        output, _ = process.communicate(timeout=max(deadline - time.monotonic(), 1.0))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{block.where}: still running at the document's deadline\n{output}")
    expected = int(block.markers.get("exit", "0"))
    if process.returncode != expected:
        pytest.fail(
            f"{block.where}: ```{block.language} block exited with {process.returncode}"
            f" (expected {expected})\n--- block ---\n{block.text}--- output ---\n{output}"
        )
    return output


def collapsed(text: str) -> str:
    return " ".join(text.split())


def run_document(document: Path, directory: Path, timeout: float = DOCUMENT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: tuple[Block, str] | None = None
    for block in parse_blocks(document):
        check_markers(block)
        if "file" in block.markers:
            target = directory / block.markers["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")
        if "output" in block.markers:
            assert last is not None, f"{block.where}: output with no runnable block before it"
            ran, printed = last
            if collapsed(block.text) not in collapsed(printed):
                pytest.fail(
                    f"{block.where}: not what the block at line {ran.line} prints\n"
                    f"--- shown ---\n{block.text}--- printed ---\n{printed}"
                )
        if block.runnable:
            last = (block, run_block(block, directory, deadline))


@pytest.mark.parametrize("document", DOCUMENTS, ids=shown)
def test_examples_run_as_written(document: Path, tmp_path: Path) -> None:
    run_document(document, tmp_path)
    if document.name == "README.md":  # the walk-through ends with messages sent
        assert (tmp_path / "drumbeat-messages.jsonl").read_text(encoding="utf-8").strip()


def test_most_examples_run() -> None:
    blocks = [b for d in DOCUMENTS for b in parse_blocks(d) if b.language in SHELL | PYTHON]
    skipped = [b.where for b in blocks if not b.runnable and "run-by" not in b.markers]
    ran = len(blocks) - len(skipped)
    assert ran >= 8, f"only {ran} examples run"
    assert ran >= 2 * len(skipped), f"{ran} examples run and {len(skipped)} skip: {skipped}"


def test_campaign_examples_parse() -> None:
    """Campaigns shown but not applied by an example are valid too."""
    documents = [ROOT / "README.md", ROOT / "docs" / "campaigns.md"]
    found = [load_yaml(b.text) for d in documents for b in parse_blocks(d) if b.language == "yaml"]
    campaigns = [data for data in found if isinstance(data, dict) and "steps" in data]
    assert len(campaigns) >= 2
    for data in campaigns:
        parse_campaign(data)


def test_the_conventions_are_seen(tmp_path: Path) -> None:
    """The parser reads the markers this module's docstring describes."""
    sample = tmp_path / "sample.md"
    sample.write_text(
        "<!-- file: a/b.yaml -->\n```yaml\nx: 1\n```\n\ntext\n\n"
        "<!-- no-run: forever -->\n\n```sh\ndrumbeat run\n```\n"
        "<!-- exit: 2 -->\n```sh\nfalse\n```\n"
        "- a list item:\n\n  ```python\n  print(1)\n  ```\n",
        encoding="utf-8",
    )
    blocks = parse_blocks(sample)
    assert [(b.line, b.language, b.markers, b.runnable) for b in blocks] == [
        (2, "yaml", {"file": "a/b.yaml"}, False),
        (10, "sh", {"no-run": "forever"}, False),
        (14, "sh", {"exit": "2"}, True),
        (19, "python", {}, True),
    ]
    assert blocks[-1].text == "print(1)\n"


def test_a_failure_names_the_document_line_and_output(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text("intro\n\n```sh\necho made it\necho broken >&2\nfalse\n```\n")
    with pytest.raises(pytest.fail.Exception) as failed:
        run_document(sample, tmp_path)
    message = str(failed.value)
    assert f"{sample}:3: ```sh block exited with 1 (expected 0)" in message
    assert "made it" in message and "broken" in message


def test_shown_output_must_be_printed(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text("```sh\necho 'error:  one'\n```\n<!-- output -->\n```\nerror: two\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"sample\.md:5: not what the block at line 1"):
        run_document(sample, tmp_path)
    sample.write_text("```sh\necho 'error:  one'\n```\n<!-- output -->\n```\nerror:\n one\n```\n")
    run_document(sample, tmp_path)


def test_a_block_past_the_deadline_is_ended_and_named(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text("```sh\necho started\nsleep 30 &\nsleep 30\n```\n")
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"sample\.md:1: still running") as failed:
        run_document(sample, tmp_path, timeout=1.0)
    assert "started" in str(failed.value)
    assert time.monotonic() - started < 10  # the background sleep did not hold the pipe open


def test_the_complete_campaign_example_is_the_demo_file() -> None:
    """docs/campaigns.md says its complete example is the demo's trial-to-paid.yaml."""
    demo = ROOT / "src" / "drumbeat" / "demo" / "campaigns" / "trial-to-paid.yaml"
    shown_data = [
        data
        for block in parse_blocks(ROOT / "docs" / "campaigns.md")
        if block.language == "yaml" and isinstance(data := load_yaml(block.text), dict)
    ]
    assert load_yaml(demo.read_text(encoding="utf-8")) in shown_data
