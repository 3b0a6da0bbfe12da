"""`-o` values: files stay files, destinations parse strictly, and a malformed one exits 2
before anything is loaded (no root needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rawtrace.errors import RawtraceError
from rawtrace.outputs.destinations import Destination, parse_output


@pytest.mark.parametrize(
    "text", ["events.json", "./forward:x", "/tmp/a:b", "-", "1forward:tcp://h:1", ""]
)
def test_files_stay_files(text: str) -> None:
    assert parse_output(text) == text


def test_forward_tcp_with_tracees_options() -> None:
    parsed = parse_output("forward:tcp://127.0.0.1:24225?tag=fleet&requireAck=true")
    assert isinstance(parsed, Destination)
    assert (parsed.kind, parsed.transport, parsed.address) == (
        "forward",
        "tcp",
        ("127.0.0.1", 24225),
    )
    assert (parsed.tag, parsed.require_ack) == ("fleet", True)


def test_defaults() -> None:
    forward = parse_output("forward:unix:///run/fluent.sock")
    otlp = parse_output("otlp:http://collector")
    syslog = parse_output("syslog:tcp://[::1]")
    assert isinstance(forward, Destination) and forward.address == "/run/fluent.sock"
    assert (forward.tag, forward.require_ack) == ("rawtrace", False)
    assert isinstance(otlp, Destination) and (otlp.address, otlp.path) == (
        ("collector", 4318),
        "/v1/logs",
    )
    assert isinstance(syslog, Destination) and syslog.address == ("::1", 514)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("fluent:tcp://h:1", "unknown output destination 'fluent:'"),
        ("forward:udp://h:1", "the transport must be tcp or unix"),
        ("forward:tcp:h:1", "the transport must be tcp or unix"),
        ("forward:tcp://h:99999", "the port must be a number"),
        ("forward:tcp://h:x", "the port must be a number"),
        ("forward:tcp://:1", "it names no host"),
        ("forward:tcp://h:1?tags=x", "unknown option 'tags'"),
        ("forward:tcp://h:1?requireAck=yes", "requireAck is true or false"),
        ("forward:tcp://h:1?tag=", "the tag is empty"),
        ("forward:unix://host/path", "unix:///ABSOLUTE/PATH"),
        ("syslog:tcp://h:1/path", "syslog takes no path"),
        ("otlp:https://h/v1/logs", "the transport must be http"),
        ("forward:tcp://u:p@h:1", "credentials"),
    ],
)
def test_malformed_destinations_say_why(text: str, why: str) -> None:
    with pytest.raises(RawtraceError) as caught:
        parse_output(text)
    assert why in str(caught.value), caught.value


def test_cli_exits_2_before_loading_anything() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "-o", "x.json",
         "-o", "forward:tcp://127.0.0.1:notaport"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "malformed output destination 'forward:tcp://127.0.0.1:notaport'" in result.stderr
    assert "tracing" not in result.stderr
