"""TLS options shared by REST and the WebSocket: verified by default, CA file, or a SHA-256 pin.

Many PBXes serve a self-signed certificate on port 8088. Rather than telling users to switch
verification off, the client accepts the PBX's CA file or pins the certificate's SHA-256
fingerprint (``openssl x509 -noout -fingerprint -sha256 -in pbx.crt`` prints it).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import aiohttp

from ._fds import OutOfFileDescriptorsError, out_of_fds
from ._fds import advice as fd_advice
from .errors import TransportError

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["SslOption", "TlsPolicy", "checked_connection", "parse_pin"]

logger = logging.getLogger("yeastar_async")

#: What ``YeastarClient(ssl=...)`` accepts.
SslOption: TypeAlias = "ssl.SSLContext | str | os.PathLike[str] | bool | None"

#: A label before the hex digits: ``sha256:``, ``sha256/`` or openssl's ``sha256 Fingerprint=``.
_PIN_LABEL = re.compile(r"^sha256(?:\s*fingerprint\s*=|[:/])", re.IGNORECASE)
_PIN_HEX = re.compile(r"[0-9a-fA-F]{64}")


def parse_pin(text: str) -> bytes | None:
    """The 32 bytes of a SHA-256 fingerprint written as openssl prints it, with colons or
    spaces, or as 64 hex digits (``sha256:`` prefix allowed); ``None`` if it is none."""
    digits = re.sub(r"[\s:]", "", _PIN_LABEL.sub("", text.strip()))
    return bytes.fromhex(digits) if _PIN_HEX.fullmatch(digits) else None


def checked_connection(check: Callable[[ssl.SSLObject | None], None]) -> type[ClientConnection]:
    """A websockets connection class that runs ``check`` on the TLS session before it sends
    the HTTP upgrade, whose URL carries the access token: a certificate that fails a pin
    never sees the token. (websockets cannot pin by itself: its context verifies nothing
    when a pin replaces verification.)"""
    from websockets.asyncio.client import ClientConnection

    class CheckedConnection(ClientConnection):
        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            check(self.transport.get_extra_info("ssl_object"))
            await super().handshake(*args, **kwargs)

    return CheckedConnection


#: SSL contexts shared by every client of the process with the same TLS choice: building one
#: loads the system trust store (about 17 ms and 0.8 MB), which a process holding a thousand
#: PBX clients must not pay a thousand times. Contexts are safe to share between connections;
#: the SDK never changes one after building it.
_shared_contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
_shared_lock = threading.Lock()


def _shared_context(key: tuple[str, ...], build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    with _shared_lock:
        context = _shared_contexts.get(key)
        if context is None:
            context = _shared_contexts[key] = build()
        return context


def _system_context() -> ssl.SSLContext:
    """``ssl.create_default_context()``, refused when the trust store could not be read.

    OpenSSL skips a default CA file it cannot open: out of descriptors, the context would come
    back trusting nothing and, shared, fail every later verification of the process. An empty
    store beside an existing CA file is loaded again explicitly, which says why it failed.
    """
    context = ssl.create_default_context()
    cafile = ssl.get_default_verify_paths().cafile
    if cafile is not None and not context.cert_store_stats()["x509_ca"]:
        try:
            context.load_verify_locations(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:  # a file with no CA in it stays as it was
            if out_of_fds(exc):
                raise OutOfFileDescriptorsError(
                    f"cannot read the system trust store {cafile}: {fd_advice()}", sent=False
                ) from None
    return context


def _default_context() -> ssl.SSLContext:
    return _shared_context(("default",), _system_context)


def _unverified_context() -> ssl.SSLContext:
    def build() -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    return _shared_context(("unverified",), build)


def _ca_file_context(path: str) -> ssl.SSLContext:
    # Keyed by the file's content: a CA file replaced on disk is read anew.
    with open(path, "rb") as file:
        digest = hashlib.sha256(file.read()).hexdigest()
    return _shared_context(("cafile", digest), lambda: ssl.create_default_context(cafile=path))


class TlsPolicy:
    """One resolved TLS choice, turned into what aiohttp and websockets each expect.

    * ``None`` / ``True``: verify against the system trust store (the default).
    * an ``ssl.SSLContext``: used as given.
    * a SHA-256 fingerprint (64 hex digits, colons allowed, optional ``sha256:`` prefix): the
      chain is not verified, but the certificate must match the pin exactly.
    * a path to a CA file (PEM): verify against that CA.
    * ``False``: no verification at all (logged as a warning; prefer a pin).

    Contexts the SDK builds are shared by every policy of the process with the same choice, and
    the default one is built at first use, not at construction (a plain-``http://`` PBX never
    builds one).
    """

    def __init__(self, option: SslOption) -> None:
        self.pin: bytes | None = None
        self.verify = True
        self._context: ssl.SSLContext | None = None
        #: The default trust store, resolved lazily (see :meth:`_verified`).
        self._default = False
        if option is None or option is True:
            self._default = True
        elif isinstance(option, ssl.SSLContext):
            self._context = option
        elif option is False:
            self.verify = False
            logger.warning(
                "TLS certificate verification is OFF for this client; anyone on the path can "
                "read the API credentials. Pin the PBX certificate (ssl='<sha256 fingerprint>') "
                "or pass its CA file instead."
            )
        elif isinstance(option, str | os.PathLike):
            text = os.fspath(option)
            pin = parse_pin(text) if isinstance(option, str) else None
            if pin is not None:
                self.pin = pin
            elif os.path.isfile(text):
                # Loaded now (a broken CA file is an error at construction), once per file.
                self._context = _ca_file_context(text)
            else:
                raise ValueError(
                    f"ssl={text!r} is neither a SHA-256 certificate fingerprint (64 hex digits) "
                    "nor an existing CA file"
                )
        else:
            raise TypeError(
                "ssl must be an ssl.SSLContext, a CA file path, a SHA-256 fingerprint, "
                f"True/None or False, not {type(option).__name__}"
            )

    def _verified(self) -> ssl.SSLContext | None:
        """The verifying context of this policy, if it has one."""
        if self._default:
            return _default_context()
        return self._context

    def for_aiohttp(self) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
        """The value for aiohttp's ``ssl=`` argument."""
        if self.pin is not None:
            return aiohttp.Fingerprint(self.pin)
        context = self._verified()
        if context is not None:
            return context
        return False

    def for_websocket(self) -> ssl.SSLContext:
        """The websockets ``SSLContext``; with a pin, :func:`checked_connection` runs
        :meth:`check_peer` after the TLS handshake, before the upgrade request."""
        context = self._verified()
        if context is not None:
            return context
        return _unverified_context()

    def check_peer(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> None:
        """Raise :class:`TransportError` when a pinned certificate does not match the peer's."""
        if self.pin is None:
            return
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise TransportError("TLS certificate pin set, but the peer sent no certificate")
        got = hashlib.sha256(der).digest()
        if not hmac.compare_digest(got, self.pin):
            raise TransportError(
                f"the PBX certificate's SHA-256 fingerprint {got.hex(':')} does not match the pin "
                f"{self.pin.hex(':')}"
            )

    def __repr__(self) -> str:
        if self.pin is not None:
            return f"TlsPolicy(pin={self.pin.hex(':')})"
        return f"TlsPolicy(verify={self.verify})"
