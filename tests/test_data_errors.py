"""Every kind of malformed record stops ``harness data check`` with exit 2 and one exact line."""

import json
import subprocess
import sys

import pytest

from tokenpo.harness.cli import main

GOOD = {"prompt": "Say hi.", "chosen": " Hi!", "rejected": " No."}


def _jsonl(tmp_path, lines: list[bytes], name="prefs.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _record(**changes) -> bytes:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


MALFORMED = [
    (
        "invalid JSON",
        b'{"prompt": "a", "chosen": "b" "rejected": "c"}',
        "json: invalid JSON: Expecting ',' delimiter at column 31",
    ),
    ("missing field", _record(rejected=...), "rejected: missing"),
    ("wrong type", _record(chosen=42), "chosen: expected a string, got int"),
    ("null value", _record(prompt=None), "prompt: expected a string, got null"),
    ("empty completion", _record(chosen="   "), "chosen: empty completion"),
    ("chosen identical to rejected", _record(rejected=" Hi!"), "rejected: identical to chosen"),
    (
        "undecodable bytes",
        b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}',
        "prompt: undecodable bytes: invalid UTF-8 byte 0xe9 at column 16",
    ),
    ("not an object", b'["a", "b"]', "json: expected an object, got list"),
    (
        "bad message role",
        json.dumps(
            {
                "prompt": [{"role": "human", "content": "x"}],
                "chosen": [{"role": "assistant", "content": "y"}],
                "rejected": [{"role": "assistant", "content": "z"}],
            }
        ).encode(),
        "prompt[0].role: unknown role 'human'; expected one of system, user, assistant, tool",
    ),
]


@pytest.mark.parametrize(("kind", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_record_stops_with_file_line_field(tmp_path, capsys, kind, line, message):
    path = _jsonl(tmp_path, [_record(), _record(chosen=" Hello."), line])
    assert main(["data", "check", str(path), "--model", "tiny-llama"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {path}:3: {message}\n"
    assert captured.out == ""


def test_the_error_is_one_line_without_traceback_from_the_real_command(tmp_path):
    path = _jsonl(tmp_path, [_record(), _record(chosen=7)])
    result = subprocess.run(
        [sys.executable, "-m", "tokenpo", "data", "check", str(path), "--model", "tiny-llama"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: {path}:2: chosen: expected a string, got int\n"


def test_skip_invalid_counts_skips_and_writes_every_rejected_record(tmp_path, capsys):
    lines = [_record(), _record(chosen=" Hello."), *[line for _, line, _ in MALFORMED]]
    path = _jsonl(tmp_path, lines)
    rejects = tmp_path / "out" / "rejects.jsonl"
    assert main(["data", "check", str(path), "--model", "tiny-llama", "--skip-invalid", "--rejects", str(rejects)]) == 0
    captured = capsys.readouterr()
    assert f"skipped {len(MALFORMED)} invalid records of {len(lines)}; written to {rejects}" in captured.err
    assert f"records:     {len(lines)}  valid: 2  skipped: {len(MALFORMED)}" in captured.out
    written = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(r["location"], f"{r['field']}: {r['error']}") for r in written] == [
        (index + 3, message) for index, (_, _, message) in enumerate(MALFORMED)
    ]
    assert written[1]["record"] == {"prompt": "Say hi.", "chosen": " Hi!"}  # the record itself is kept
    assert written[0]["text"].startswith('{"prompt": "a"')  # unparseable: its text is kept


def test_all_records_invalid_is_an_error_even_when_skipping(tmp_path, capsys):
    path = _jsonl(tmp_path, [_record(chosen=1)])
    assert (
        main(
            [
                "data",
                "check",
                str(path),
                "--model",
                "tiny-llama",
                "--skip-invalid",
                "--rejects",
                str(tmp_path / "r.jsonl"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.endswith(f"error: {path}: file: all 1 records are invalid\n")


def test_missing_file(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl"), "--model", "tiny-llama"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.jsonl'}: file: no such file\n"


def test_csv_and_json_errors_name_the_line_the_record_starts_on(tmp_path, capsys):
    csv_path = tmp_path / "prefs.csv"
    csv_path.write_text('prompt,chosen,rejected\nhi,"a\nmultiline",b\nhey,same,same\n')
    assert main(["data", "check", str(csv_path), "--model", "tiny-llama"]) == 2
    assert capsys.readouterr().err == f"error: {csv_path}:4: rejected: identical to chosen\n"
    json_path = tmp_path / "prefs.json"
    json_path.write_text(json.dumps([GOOD, {**GOOD, "chosen": ""}], indent=1))
    assert main(["data", "check", str(json_path), "--model", "tiny-llama"]) == 2
    assert capsys.readouterr().err == f"error: {json_path}:7: chosen: empty completion\n"
