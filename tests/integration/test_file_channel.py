"""The file channel after a writer was killed in the middle of its append (SIGKILL cuts a
write short: a `drumbeat worker` of the dispatch lane killed while sending, say), or a
person edited its file."""

from __future__ import annotations

from pathlib import Path

import orjson

from drumbeat.channels.file import FileChannel, message_record
from drumbeat.config import Settings
from tests.contract.test_channels import make_message


def lines_after_sending(out: Path, found: bytes, users: list[int]) -> list[bytes]:
    """The file's lines (split at each newline: the last is what follows the last one)
    after the channel sent to `users` into a file that held `found`."""
    out.write_bytes(found)
    channel = FileChannel(Settings(outbox_file=str(out)))
    try:
        channel.send_batch([make_message("ws", n) for n in users])
    finally:
        channel.close()
    return out.read_bytes().split(b"\n")


def user_ids(lines: list[bytes]) -> list[str]:
    return [orjson.loads(line)["user_id"] for line in lines]


def test_a_line_torn_by_a_killed_writer_is_cut_off_by_the_next_write(tmp_path):
    whole, torn = (
        orjson.dumps(message_record(make_message("ws", n)), option=orjson.OPT_APPEND_NEWLINE)
        for n in (1, 2)
    )
    # what the killed writer left; the torn message is sent again (it was not recorded as
    # sent), and another
    found = whole + torn[: len(torn) // 2]
    *lines, end = lines_after_sending(tmp_path / "messages.jsonl", found, [2, 3])
    assert end == b""
    assert user_ids(lines) == ["u1", "u2", "u3"]


def test_a_torn_first_line_is_cut_off_whole(tmp_path):
    *lines, _ = lines_after_sending(tmp_path / "messages.jsonl", b'{"message_id": "ws/tri', [1])
    assert user_ids(lines) == ["u1"]


def test_a_whole_json_line_without_its_newline_is_kept(tmp_path):
    """Added by hand, or by a tool that ends no line: ended, not cut off."""
    *lines, _ = lines_after_sending(tmp_path / "messages.jsonl", b'{"user_id": "by hand"}', [1])
    assert user_ids(lines) == ["by hand", "u1"]
