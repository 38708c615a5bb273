"""Errors of the OpenVox UC client: ``status: Failed`` answers, typed, with the raw ``errno``.

OpenVox publishes no errno list, so the class says only what is certain: which call failed
(:class:`OpenVoxAuthError` for a rejected login), and :attr:`OpenVoxError.errno` keeps the
vendor's code as sent. Network faults and bodies that are not an answer raise
:class:`~yeastar_async.errors.TransportError`, as for the Yeastar client.
"""

from __future__ import annotations

from ..errors import AuthenticationError, LockoutGuardError, YeastarError

__all__ = [
    "OpenVoxAuthError",
    "OpenVoxError",
    "OpenVoxLockoutError",
    "OpenVoxTokenError",
]


class OpenVoxError(YeastarError):
    """The OpenVox UC PBX answered ``{"status": "Failed", "errno": ...}``.

    Attributes:
        errno: the vendor's error number exactly as sent (a string; ``""`` when absent).
        endpoint: the call that failed, e.g. ``"inroute/update"``.
        request_params: the route names the failed request was about (``"name=test2"``), or ``""``.
    """

    def __init__(self, endpoint: str, errno: str, *, about: str = "") -> None:
        self.errno = errno
        where = f" for {about}" if about else ""
        super().__init__(
            f"{endpoint}: OpenVox answered status Failed, errno {errno or '(none)'}{where}"
            f"{'. ' + self.hint if self.hint else ''}",
            errmsg="Failed",
            endpoint=endpoint,
        )
        self.request_params = about


class OpenVoxAuthError(OpenVoxError, AuthenticationError):
    """``login`` was refused: wrong user name or password (or the IP is locked already)."""

    hint = (
        "Check the API user name and password on the OpenVox PBX. It locks the caller's IP for "
        "10 minutes after 5 wrong passwords in a row"
    )


class OpenVoxTokenError(OpenVoxError):
    """A call was refused for its token again right after a fresh login."""


class OpenVoxLockoutError(OpenVoxAuthError, LockoutGuardError):
    """The client refuses to try a 5th password on an OpenVox PBX that refused 4 in a row
    (counted across processes, see ``login_guard_state``): the 5th would lock the caller's IP
    for 10 minutes. Fix the credentials; see
    :func:`yeastar_async.openvox.forget_login_failures`."""

    hint = ""

    def __init__(self, message: str) -> None:
        self.errno = ""
        YeastarError.__init__(self, message, endpoint="login")
