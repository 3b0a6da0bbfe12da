"""Where events go: an `-o` value is a network destination when it starts with a URI scheme,
else a file path, as it always was (`./forward:x` names a file).

    forward:tcp://HOST[:PORT][?tag=T&requireAck=true]   Fluent Forward (Tracee's syntax)
    forward:unix:///PATH[?tag=T&requireAck=true]
    otlp:http://HOST[:PORT][/PATH]                      OTLP/HTTP, JSON encoding
    syslog:tcp://HOST[:PORT]                            RFC 5424, octet-counted framing

Parsing is pure and strict: a malformed value raises a RawtraceError naming what is wrong and
how to write it, before anything is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from rawtrace.errors import RawtraceError

# RFC 3986's scheme: a letter, then letters, digits, "+", "-" or "."
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class _Kind:
    transports: tuple[str, ...]
    port: int  # the receiver's usual port, taken when the value names none
    options: tuple[str, ...]  # the query keys it accepts
    example: str


KINDS: Mapping[str, _Kind] = {
    # 24224: Fluent Bit's and fluentd's forward input
    "forward": _Kind(
        ("tcp", "unix"),
        24224,
        ("tag", "requireAck"),
        "forward:tcp://127.0.0.1:24224?tag=rawtrace or forward:unix:///run/fluent.sock",
    ),
    # 4318: OTLP/HTTP's registered port
    "otlp": _Kind(("http",), 4318, (), "otlp:http://127.0.0.1:4318/v1/logs"),
    # 514: rsyslog's customary imtcp port (RFC 6587 names none for plain TCP)
    "syslog": _Kind(("tcp",), 514, (), "syslog:tcp://127.0.0.1:514"),
}
_DEFAULT_TAG = "rawtrace"


@dataclass(frozen=True)
class Destination:
    """A parsed network destination. `address` is (host, port) for tcp and http, the socket's
    path for unix."""

    kind: str  # forward, otlp or syslog
    transport: str  # tcp, unix or http
    address: tuple[str, int] | str
    path: str = ""  # the HTTP path of an otlp destination
    options: Mapping[str, str] = field(default_factory=dict)
    text: str = ""  # the value as given, for messages and stats

    @property
    def tag(self) -> str:
        return self.options.get("tag", _DEFAULT_TAG)

    @property
    def require_ack(self) -> bool:
        return self.options.get("requireAck", "false") == "true"


def parse_output(text: str) -> str | Destination:
    """A file path (returned unchanged) or a Destination; RawtraceError if the value has a
    scheme that is not a destination or a destination that is malformed."""
    if not _SCHEME.match(text):
        return text
    kind_name, _, rest = text.partition(":")
    kind = KINDS.get(kind_name)
    if kind is None:
        raise RawtraceError(
            f"unknown output destination {kind_name + ':'!r} in {text!r}",
            f"use one of {', '.join(k + ':' for k in KINDS)}, or ./{text} for a file",
        )
    url = urlsplit(rest)
    if url.scheme not in kind.transports or not rest.startswith(url.scheme + "://"):
        raise _malformed(text, kind, f"the transport must be {' or '.join(kind.transports)}")
    options = _options(text, kind, url.query)
    if url.fragment or url.username or url.password:
        raise _malformed(text, kind, "credentials and #fragments are not supported")
    if url.scheme == "unix":
        if url.netloc or not url.path:
            raise _malformed(text, kind, "a unix socket is unix:///ABSOLUTE/PATH")
        return Destination(kind_name, "unix", url.path, options=options, text=text)
    try:
        port = url.port or kind.port
    except ValueError:
        raise _malformed(text, kind, "the port must be a number from 1 to 65535") from None
    if not url.hostname:
        raise _malformed(text, kind, "it names no host")
    if url.path and kind_name != "otlp":
        raise _malformed(text, kind, f"{kind_name} takes no path")
    path = url.path or "/v1/logs"
    return Destination(kind_name, url.scheme, (url.hostname, port), path, options, text)


def _options(text: str, kind: _Kind, query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _malformed(text, kind, f"the query {query!r} is not KEY=VALUE&...") from None
    options = dict(pairs)
    unknown = sorted(set(options) - set(kind.options))
    if unknown:
        allowed = ", ".join(kind.options) or "none"
        raise _malformed(text, kind, f"unknown option {unknown[0]!r} (allowed: {allowed})")
    if options.get("requireAck", "false") not in ("true", "false"):
        raise _malformed(text, kind, "requireAck is true or false")
    if "tag" in options and not options["tag"]:
        raise _malformed(text, kind, "the tag is empty")
    return options


def _malformed(text: str, kind: _Kind, why: str) -> RawtraceError:
    return RawtraceError(f"malformed output destination {text!r}: {why}", f"e.g. {kind.example}")
