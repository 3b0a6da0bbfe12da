"""`rawtrace trace ... -o forward:... -o syslog:... --json -o FILE -- COMMAND`: the collectors
get the same events as the file, event by event: a Forward receiver that follows the spec
(forward_receiver.py), and a real rsyslogd of the test's own (imtcp on loopback, omfile into
tmp_path). A Forward receiver killed for 5 s mid-trace: the summary's counts add up exactly."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from forward_receiver import ForwardReceiver

# the outputs and the API around the trace, not the kernel: run once, on the host
pytestmark = [pytest.mark.live, pytest.mark.host_only]

SHELL = "for i in 1 2 3; do /bin/true; done; /bin/echo done >/dev/null"
EXPORT = re.compile(
    r"rawtrace: (?P<dest>\S+): (?P<offered>\d+) events: (?P<sent>\d+) sent "
    r"\((?P<acknowledged>\d+) acknowledged\), (?P<dropped>\d+) dropped, (?P<unsent>\d+) unsent; "
    r"(?P<retried>\d+) retried"
)


def _trace(
    tmp_path: Path, *outputs: str, shell: str = SHELL
) -> tuple[list[str], dict[str, dict[str, int]]]:
    events_file = tmp_path / "events.json"
    command = [sys.executable, "-m", "rawtrace", "trace", "vfork,execve,exit", "--json",
               "-o", str(events_file)]  # fmt: skip
    for output in outputs:
        command += ["-o", output]
    result = subprocess.run(
        [*command, "--", "/bin/sh", "-c", shell], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    exports = {
        m["dest"]: {k: int(v) for k, v in m.groupdict().items() if k != "dest"}
        for m in map(EXPORT.match, result.stderr.splitlines())
        if m
    }
    assert len(exports) == len(outputs), result.stderr
    return events_file.read_text().splitlines(), exports


def test_forward_delivers_what_json_writes(tmp_path: Path) -> None:
    with ForwardReceiver() as receiver:
        destination = f"forward:tcp://127.0.0.1:{receiver.port}?tag=rt&requireAck=true"
        lines, exports = _trace(tmp_path, destination)
    assert len(lines) >= 8  # 3 true + echo: vfork/execve/exit each, and the shell's exit
    assert receiver.records() == [{"event": line} for line in lines]
    n = len(lines)
    assert exports[destination] == dict(
        offered=n, sent=n, acknowledged=n, dropped=0, unsent=0, retried=0
    )
    for (tag, seconds, nanos, _), line in zip(receiver.entries, lines):
        event = json.loads(line)
        assert (tag, seconds * 10**9 + nanos) == ("rt", event["timestamp"])
        assert event["hostName"] == socket.gethostname()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.skipif(shutil.which("rsyslogd") is None, reason="rsyslog is not installed")
def test_rsyslog_receives_what_json_writes(tmp_path: Path) -> None:
    port, received = _free_port(), tmp_path / "received.log"
    config = tmp_path / "rsyslog.conf"
    config.write_text(
        f'global(workDirectory="{tmp_path}" maxMessageSize="64k")\n'
        'module(load="imtcp")\n'
        f'input(type="imtcp" address="127.0.0.1" port="{port}")\n'
        'template(name="fields" type="string" '
        'string="%app-name% %msgid% %hostname% %msg%\\n")\n'
        f'*.* action(type="omfile" file="{received}" template="fields")\n'
    )
    pidfile = tmp_path / "rsyslogd.pid"
    daemon = subprocess.Popen(["rsyslogd", "-n", "-f", str(config), "-i", str(pidfile)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_port(port, daemon)
        lines, exports = _trace(tmp_path, f"syslog:tcp://127.0.0.1:{port}")
        expected = [f"rawtrace {json.loads(line)['eventName']} {socket.gethostname()} {line}"
                    for line in lines]  # fmt: skip
        end = time.monotonic() + 10
        while _lines(received) != expected and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        output = daemon.communicate(timeout=10)[0]
    assert _lines(received) == expected, output
    assert next(iter(exports.values()))["sent"] == len(lines)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _wait_for_port(port: int, daemon: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        assert daemon.poll() is None, daemon.communicate()[0]
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("rsyslogd did not listen")


def test_forward_receiver_killed_for_5_s_counts_add_up(tmp_path: Path) -> None:
    """offered == sent + dropped + unsent; every event sent reached a receiver, once, or twice
    where its ack was lost with the first receiver (at most `retried`)."""
    first = ForwardReceiver().start()
    port = first.port
    destination = f"forward:tcp://127.0.0.1:{port}?requireAck=true"
    shell = "end=$(($(date +%s) + 12)); while [ $(date +%s) -lt $end ]; do /bin/true; done"

    def kill_and_restart() -> ForwardReceiver:
        end = time.monotonic() + 30  # the trace starts in about a second; 30 s: a loaded host
        while not first.records() and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.5)
        first.stop()
        time.sleep(5)
        return ForwardReceiver(("127.0.0.1", port)).start()

    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        second_future = pool.submit(kill_and_restart)
        lines, exports = _trace(tmp_path, destination, shell=shell)
        second = second_future.result()
    second.stop()
    counts = exports[destination]
    assert counts["offered"] == len(lines)
    assert counts["offered"] == counts["sent"] + counts["dropped"] + counts["unsent"]
    received = Counter(r["event"] for r in first.records() + second.records())
    assert set(received) <= set(lines)
    assert len(received) >= counts["sent"]  # sent means acknowledged: it arrived
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= counts["retried"]
    assert len(first.records()) > 0 and len(second.records()) > 0


def test_otlp_delivers_what_json_writes(tmp_path: Path) -> None:
    from otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        destination = f"otlp:http://127.0.0.1:{receiver.port}/v1/logs"
        lines, exports = _trace(tmp_path, destination)
    assert [record.body.string_value for record in receiver.records()] == lines
    n = len(lines)
    assert exports[destination] == dict(
        offered=n, sent=n, acknowledged=n, dropped=0, unsent=0, retried=0
    )
