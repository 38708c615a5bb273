"""OpenVox's rule for the shared lockout guard (:mod:`yeastar_async._guard`).

An OpenVox UC PBX locks the caller's IP for 10 minutes after 5 wrong passwords in a row, whoever
sends them. So the count is per PBX *address* (the resolved IP, across clients and user names),
kept where every process of the user sees it (``login_guard_state=``, as for the Yeastar client),
and a login is refused before it is sent once 4 are counted. A successful login clears the count;
so does 10 minutes without a counted login, the vendor's documented lock window (a count that old
is one the PBX has forgotten or has served its lock for).

OpenVox counts apart from Yeastar: its records live in a namespace of their own in the state.
"""

from __future__ import annotations

from typing import Final

from .._guard import GuardPolicy, Refusal, forget_login_guard
from .errors import OpenVoxLockoutError

__all__ = ["LOCK_WINDOW", "MAX_REJECTED", "OPENVOX_GUARD", "forget_login_failures"]

#: Rejected logins in a row allowed per PBX address: the vendor locks at 5.
MAX_REJECTED: Final = 4
#: Seconds the vendor locks an IP for (and after which a count lapses here).
LOCK_WINDOW: Final = 600.0


def _refusal(why: Refusal) -> str:
    return (
        f"login: not sent: the OpenVox PBX at {why.address} refused {why.count} logins in a row, "
        f"counted {why.state.where()}, and it locks the caller's IP for 10 minutes after the "
        "5th. Fix the user name / password, then create a new client; the count lapses 10 "
        "minutes after the last login counted (yeastar_async.openvox.forget_login_failures() "
        "clears it now)"
    )


#: The OpenVox UC rule: 4 logins in a row at most, forgotten after the 10-minute lock window.
OPENVOX_GUARD: Final = GuardPolicy(
    namespace="openvox",
    limit=MAX_REJECTED,
    window=LOCK_WINDOW,
    endpoint="login",
    refusal=_refusal,
    error=OpenVoxLockoutError,
)


def forget_login_failures(address: str | None = None, state: object = "default") -> None:
    """Forget the logins counted for the OpenVox PBX at ``address`` (an IP or host), or for
    every OpenVox PBX, in this process and in ``state`` (a ``login_guard_state`` value; default:
    the default state file). Yeastar counts are left alone.

    For an operator who fixed the password after the PBX's 10-minute lock ran out, and for tests.
    """
    forget_login_guard(address, state, OPENVOX_GUARD)
