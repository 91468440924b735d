"""The file channel after a writer was killed in the middle of its append (SIGKILL cuts a
write short: a `drumbeat worker` of the dispatch lane killed while sending, say)."""

from __future__ import annotations

import orjson

from drumbeat.channels.file import FileChannel, message_record
from drumbeat.config import Settings
from tests.contract.test_channels import make_message


def test_a_line_torn_by_a_killed_writer_is_cut_off_by_the_next_write(tmp_path):
    out = tmp_path / "messages.jsonl"
    whole, torn = (
        orjson.dumps(message_record(make_message("ws", n)), option=orjson.OPT_APPEND_NEWLINE)
        for n in (1, 2)
    )
    out.write_bytes(whole + torn[: len(torn) // 2])  # what the killed writer left
    channel = FileChannel(Settings(outbox_file=str(out)))
    try:  # the torn message is sent again (it was not recorded as sent), and another
        channel.send_batch([make_message("ws", 2), make_message("ws", 3)])
    finally:
        channel.close()
    *lines, end = out.read_bytes().split(b"\n")
    assert end == b""
    assert [orjson.loads(line)["user_id"] for line in lines] == ["u1", "u2", "u3"]


def test_a_torn_first_line_is_cut_off_whole(tmp_path):
    out = tmp_path / "messages.jsonl"
    out.write_bytes(b'{"message_id": "ws/tri')
    channel = FileChannel(Settings(outbox_file=str(out)))
    try:
        channel.send_batch([make_message("ws", 1)])
    finally:
        channel.close()
    assert [orjson.loads(line)["user_id"] for line in out.read_bytes().splitlines()] == ["u1"]


def test_a_whole_json_line_without_its_newline_is_kept(tmp_path):
    """Added by hand, or by a tool that ends no line: ended, not cut off."""
    out = tmp_path / "messages.jsonl"
    out.write_bytes(b'{"user_id": "by hand"}')
    channel = FileChannel(Settings(outbox_file=str(out)))
    try:
        channel.send_batch([make_message("ws", 1)])
    finally:
        channel.close()
    lines = out.read_bytes().splitlines()
    assert [orjson.loads(line)["user_id"] for line in lines] == ["by hand", "u1"]
