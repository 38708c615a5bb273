"""The PBX connection flags (address, credentials, TLS) and the client they describe."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Final

from .._tls import parse_pin
from ..client import YeastarClient
from ._output import PROG, UsageError, err

ENV_BASE_URL: Final = "YEASTAR_BASE_URL"
ENV_CLIENT_ID: Final = "YEASTAR_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "YEASTAR_CLIENT_SECRET"
#: TLS from the environment, as YeastarClient.from_env() reads it (a flag wins).
ENV_PIN: Final = "YEASTAR_PIN"
ENV_CA_FILE: Final = "YEASTAR_CA_FILE"


def connection_parent() -> argparse.ArgumentParser:
    """The PBX address, credentials and TLS flags shared by every command that talks to a PBX.

    Defaults are SUPPRESS so the flags work before or after the command name.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("PBX connection (flags override the environment)")
    hide = argparse.SUPPRESS
    group.add_argument(
        "--base-url",
        default=hide,
        metavar="URL",
        help=f"https://pbx.example.com:8088 (env {ENV_BASE_URL})",
    )
    group.add_argument(
        "--client-id", default=hide, metavar="ID", help=f"API client ID (env {ENV_CLIENT_ID})"
    )
    group.add_argument(
        "--client-secret",
        default=hide,
        metavar="SECRET",
        help=f"API client secret; prefer env {ENV_CLIENT_SECRET} (never printed)",
    )
    group.add_argument(
        "--timeout",
        default=hide,
        type=positive_float,
        metavar="S",
        help="request timeout in seconds (default 30; doctor: 10)",
    )
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--ca-file",
        default=hide,
        metavar="PATH",
        help=f"verify against this CA (env {ENV_CA_FILE})",
    )
    tls.add_argument(
        "--pin",
        default=hide,
        metavar="SHA256",
        help="trust exactly the certificate with this SHA-256 fingerprint (self-signed PBX; "
        f"as openssl prints it, or 64 hex digits; env {ENV_PIN})",
    )
    tls.add_argument(
        "--insecure",
        default=hide,
        action="store_true",
        help="no certificate verification (avoid: use --pin)",
    )
    return parent


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def opt(args: argparse.Namespace, name: str) -> Any:
    """The value of a connection flag, None when not given (its default is SUPPRESS)."""
    return getattr(args, name, None)


def tls_option(
    *,
    pin: str | None,
    ca_file: str | None,
    env_pin: str,
    env_ca_file: str,
    insecure: bool = False,
    pin_hint: str = "",
) -> str | bool | None:
    """The client's ``ssl=`` from a command's TLS flags, else from the environment.

    ``pin`` / ``ca_file`` / ``insecure`` are the flags' values (``None`` / ``False``: not
    given); ``env_pin`` / ``env_ca_file`` name the variables read when no TLS flag is given (any
    flag wins over both, so a ``--ca-file`` is never overridden by a pin left in the
    environment). ``pin_hint`` ends the bad-pin message (where to find the fingerprint).
    Raises :class:`UsageError` naming the flag or variable at fault.
    """
    if insecure:
        return False
    flags = pin is not None or ca_file is not None
    if not flags:
        pin = os.environ.get(env_pin) or None
        ca_file = os.environ.get(env_ca_file) or None
    if pin is not None:
        if parse_pin(pin) is None:
            raise UsageError(
                f"{'--pin' if flags else env_pin} takes a SHA-256 certificate fingerprint: 64 hex "
                f"digits, as openssl prints it or with colons or spaces{pin_hint}"
            )
        return pin.strip()
    if ca_file is not None and not os.path.isfile(ca_file):
        raise UsageError(f"{'--ca-file' if flags else env_ca_file}: no such file: {ca_file}")
    return ca_file


def _ssl_option(args: argparse.Namespace) -> str | bool | None:
    return tls_option(
        pin=opt(args, "pin"),
        ca_file=opt(args, "ca_file"),
        env_pin=ENV_PIN,
        env_ca_file=ENV_CA_FILE,
        insecure=bool(opt(args, "insecure")),
        pin_hint=f" ({PROG} doctor prints the PBX's)",
    )


def _setting(args: argparse.Namespace, name: str, env: str, flag: str) -> str:
    value = opt(args, name) or os.environ.get(env, "")
    if not value:
        raise UsageError(f"missing {flag} (or set {env})")
    return str(value)


INSECURE_WARNING: Final = (
    f"{PROG}: warning: TLS certificate verification is OFF (--insecure): anyone on the path can "
    "read the API credentials. Pin the PBX certificate instead: --pin <sha256 fingerprint> "
    f"({PROG} doctor prints it), or --ca-file PATH."
)


class _TlsWarningFilter(logging.Filter):
    """Holds back the library's "verification is OFF" warning, which names the Python option
    (``ssl=...``); the command line prints its own with the flag (``--pin``)."""

    def __init__(self) -> None:
        super().__init__()
        self.caught = False

    def filter(self, record: logging.LogRecord) -> bool:
        # Matched by origin (the TLS module's warnings), not by its wording.
        if record.levelno == logging.WARNING and record.module == "_tls":
            self.caught = True
            return False
        return True


@contextlib.contextmanager
def _cli_tls_warning() -> Iterator[None]:
    """While a client is built: the library's TLS warning, reworded for the command line."""
    library = logging.getLogger("yeastar_async")
    held = _TlsWarningFilter()
    library.addFilter(held)
    try:
        yield
    finally:
        library.removeFilter(held)
    if held.caught:
        err(INSECURE_WARNING)


def make_client(args: argparse.Namespace, **options: Any) -> YeastarClient:
    """A client for the PBX the flags / environment name; UsageError when something is missing."""
    base_url = _setting(args, "base_url", ENV_BASE_URL, "--base-url")
    client_id = _setting(args, "client_id", ENV_CLIENT_ID, "--client-id")
    secret = _setting(args, "client_secret", ENV_CLIENT_SECRET, "--client-secret")
    timeout = opt(args, "timeout")
    if timeout is not None:
        options.setdefault("timeout", timeout)
        options.setdefault("connect_timeout", min(timeout, 10.0))
    try:
        with _cli_tls_warning():
            return YeastarClient(base_url, client_id, secret, ssl=_ssl_option(args), **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
