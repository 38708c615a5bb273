"""The in-process lockout guard: never send the password that would lock the caller's IP.

An OpenVox UC PBX locks the caller's IP for 10 minutes after 5 wrong passwords in a row, whoever
sends them. So the count is per PBX *address* (the resolved IP, shared by every client and user
name of this process), and a login is refused before it is sent when the rejections so far plus
the logins still in flight reach 4. A successful login clears the count.

The guard sees only this process: other processes and hosts behind the same NAT count at the PBX
but not here.
"""

from __future__ import annotations

import threading

__all__ = ["MAX_REJECTED", "LoginGuard", "forget_login_failures", "guard_for"]

#: Rejected logins in a row this process allows per PBX address: the vendor locks at 5.
MAX_REJECTED = 4


class LoginGuard:
    """Consecutive rejected logins to one PBX address, and logins awaiting an answer."""

    __slots__ = ("_lock", "in_flight", "rejected")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rejected = 0
        self.in_flight = 0

    def reserve(self) -> bool:
        """Take a login attempt; False when it could be the one that locks the IP."""
        with self._lock:
            if self.rejected + self.in_flight >= MAX_REJECTED:
                return False
            self.in_flight += 1
            return True

    def settle(self, *, accepted: bool | None) -> None:
        """The reserved attempt ended: accepted, rejected, or (None) no verdict (network)."""
        with self._lock:
            self.in_flight -= 1
            if accepted:
                self.rejected = 0
            elif accepted is False:
                self.rejected += 1

    def __repr__(self) -> str:
        return f"LoginGuard(rejected={self.rejected}, in_flight={self.in_flight})"


_guards: dict[str, LoginGuard] = {}
_guards_lock = threading.Lock()


def guard_for(address: str) -> LoginGuard:
    """The process-wide guard of the PBX at ``address`` (its resolved IP)."""
    with _guards_lock:
        guard = _guards.get(address)
        if guard is None:
            guard = _guards[address] = LoginGuard()
        return guard


def forget_login_failures(address: str | None = None) -> None:
    """Forget the rejected logins counted for ``address`` (a resolved IP), or for every PBX.

    For an operator who fixed the password after the PBX's 10-minute lock ran out, and for tests.
    """
    with _guards_lock:
        if address is None:
            _guards.clear()
        else:
            _guards.pop(address, None)
