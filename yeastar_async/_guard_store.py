"""Where the lockout guard's count of rejected logins lives: memory, a state file, a token store.

The PBX blocks an IP after 5 rejected logins in a row, counted by the PBX across every process
and restart. A count kept in one process's memory cannot see the others, so by default the count
is also kept in a small JSON file every process of the user shares::

    $XDG_STATE_HOME/yeastar-async/login-guard.json    (~/.local/state/... without XDG_STATE_HOME)

Writers take an ``fcntl`` lock on a sibling ``.lock`` file and replace the file atomically, so
concurrent processes never lose an update and a crash never leaves half a file. A file that
cannot be read or parsed makes the guard refuse to log in (the count is unknown), with a message
naming the file. Only a hash of the client ID and secret is ever written: per PBX, the count
of each pair since the last success, and (beside it, under ``known_good``) the last few pairs
that logged in there, whose unanswered logins the guard takes back.

A :class:`~yeastar_async.TokenStore` may keep the count too (processes sharing a store may run on
several hosts): it offers :class:`GuardStateStore`'s two methods. The document it is handed is
the same JSON-compatible ``dict`` as the file's; it keeps it as given.

No expiry for Yeastar: neither the developer guide ("Remove Blocked API IP Addresses") nor the
field notes document a time after which the PBX forgets failed logins that did not lead to a
block, so a rejection counts until a login to that PBX succeeds (or the record is deleted). A
vendor that documents a lock window (OpenVox: 10 minutes) lets its count lapse after it; that
rule, and each vendor's namespace of keys (``openvox/10.0.0.5``), belong to
:class:`~yeastar_async._guard.GuardPolicy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

from ._fds import OutOfFileDescriptorsError, out_of_fds
from ._fds import advice as fd_advice

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no fcntl; the file is still replaced atomically
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "GuardRecord",
    "GuardState",
    "GuardStateError",
    "GuardStateStore",
    "StateOption",
    "default_state_path",
    "state_path",
]

logger = logging.getLogger("yeastar_async.auth")

#: What ``YeastarClient(login_guard_state=...)`` takes.
StateOption: TypeAlias = "str | os.PathLike[str] | Literal['default'] | None"

_VERSION = 1
#: Credentials remembered as known good per PBX address: the last ones that logged in there.
_KNOWN_GOOD = 8
_APP_DIR = "yeastar-async"
_FILE_NAME = "login-guard.json"
#: A state file is a few hundred bytes; anything far larger is not ours.
_MAX_FILE_SIZE = 1024 * 1024


class GuardStateError(Exception):
    """The persisted count cannot be read or written; the guard refuses to log in."""


@runtime_checkable
class GuardStateStore(Protocol):
    """The optional part of a :class:`~yeastar_async.TokenStore` that keeps the guard's count.

    ``load_login_guard()`` returns what ``save_login_guard()`` was last given (``None`` before
    that): a JSON-compatible ``dict`` with no secret in it. Both may be async or plain methods.
    The client calls them while it holds the store's ``lock()``, when the store has one. A store
    whose ``load_login_guard()`` raises, or returns something else, makes the guard refuse.
    """

    def load_login_guard(self) -> Any:
        """The document last saved, or ``None``."""
        ...

    def save_login_guard(self, state: dict[str, Any]) -> Any:
        """Keep ``state`` (replacing the document saved before)."""
        ...


@dataclass(frozen=True)
class GuardRecord:
    """The count for one PBX: rejected (or unanswered, reserved) logins since the last success.

    ``credentials`` maps the hex SHA-256 of ``client_id\\0client_secret`` to that pair's count;
    ``epoch`` grows with every successful login, so that a reservation made before a success
    is not taken back from the count that follows it. ``known_good`` holds the hashes that
    logged in successfully at this address (the last :data:`_KNOWN_GOOD`, oldest first, until
    the PBX rejects one): an unanswered login with one of them is taken back, since the PBX
    counts only failed logins.
    """

    in_a_row: int = 0
    credentials: Mapping[str, int] = field(default_factory=dict)
    epoch: int = 0
    updated: float = 0.0
    known_good: tuple[str, ...] = ()

    def same(self, credentials: str) -> int:
        """The count of one pair of credentials (by hash)."""
        return self.credentials.get(credentials, 0)

    def knows(self, credentials: str) -> bool:
        """Whether these credentials (a hash) logged in here and were not rejected since."""
        return credentials in self.known_good

    def merged(self, other: GuardRecord) -> GuardRecord:
        """The larger count of two places (a file and a store), field by field."""
        creds = dict(self.credentials)
        for key, value in other.credentials.items():
            creds[key] = max(creds.get(key, 0), value)
        return GuardRecord(
            in_a_row=max(self.in_a_row, other.in_a_row),
            credentials=creds,
            epoch=max(self.epoch, other.epoch),
            updated=max(self.updated, other.updated),
            known_good=_latest((*self.known_good, *other.known_good)),
        )

    def with_attempt(self, credentials: str, now: float) -> GuardRecord:
        """One more login counted (before it is sent)."""
        creds = dict(self.credentials)
        creds[credentials] = creds.get(credentials, 0) + 1
        return replace(self, in_a_row=self.in_a_row + 1, credentials=creds, updated=now)

    def without_attempt(self, credentials: str, epoch: int, now: float) -> GuardRecord:
        """A counted login that got no verdict on its credentials, taken back."""
        if epoch != self.epoch:
            return self  # a login succeeded since: the count it belonged to is gone already
        creds = dict(self.credentials)
        left = creds.get(credentials, 0) - 1
        if left > 0:
            creds[credentials] = left
        else:
            creds.pop(credentials, None)
        return replace(self, in_a_row=max(0, self.in_a_row - 1), credentials=creds, updated=now)

    def cleared(self, now: float) -> GuardRecord:
        """The PBX's count starts again (a login succeeded, or the count lapsed)."""
        return GuardRecord(epoch=self.epoch + 1, updated=now, known_good=self.known_good)

    def succeeded(self, credentials: str, now: float) -> GuardRecord:
        """A login with ``credentials`` succeeded: the count starts again; they are known good."""
        kept = tuple(c for c in self.known_good if c != credentials)
        return replace(self.cleared(now), known_good=_latest((*kept, credentials)))

    def distrusted(self, credentials: str) -> GuardRecord:
        """The PBX rejected ``credentials`` (a secret regenerated on it): no longer known good."""
        if credentials not in self.known_good:
            return self
        return replace(self, known_good=tuple(c for c in self.known_good if c != credentials))

    def to_json(self) -> dict[str, Any]:
        """The record as stored (``known_good`` is stored beside it: see :func:`_document`)."""
        return {
            "in_a_row": self.in_a_row,
            "credentials": dict(self.credentials),
            "epoch": self.epoch,
            "updated": self.updated,
        }

    @classmethod
    def from_json(cls, value: Any) -> GuardRecord:
        """Parse a stored record; :class:`ValueError` unless :meth:`to_json` wrote it."""
        if not isinstance(value, dict) or set(value) != {
            "in_a_row",
            "credentials",
            "epoch",
            "updated",
        }:
            raise ValueError("a record is not an object with in_a_row, credentials, epoch, updated")
        creds = value["credentials"]
        if not isinstance(creds, dict) or not all(
            isinstance(k, str) and _count(v) for k, v in creds.items()
        ):
            raise ValueError("credentials is not an object of counts")
        if not (_count(value["in_a_row"]) and _count(value["epoch"])):
            raise ValueError("in_a_row or epoch is not a count")
        updated = value["updated"]
        if isinstance(updated, bool) or not isinstance(updated, (int, float)):
            raise ValueError("updated is not a number")
        return cls(value["in_a_row"], dict(creds), value["epoch"], float(updated))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def _latest(hashes: tuple[str, ...]) -> tuple[str, ...]:
    """``hashes`` without repeats (first place kept), at most the last :data:`_KNOWN_GOOD`."""
    return tuple(dict.fromkeys(hashes))[-_KNOWN_GOOD:]


def _is_hash(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def _parse(document: Any) -> dict[str, GuardRecord]:
    """Every PBX's record of a state document; :class:`ValueError` when it is not one.

    The known-good credentials sit in a ``known_good`` object beside ``pbx``, keyed like it:
    a reader of the first release of this format ignores that key (it checks ``version`` and
    each ``pbx`` record's exact keys only), and when it rewrites the file it drops the key,
    which only makes unanswered logins count again (towards refusing).
    """
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        raise ValueError(f"not a version {_VERSION} login guard document")
    pbx = document.get("pbx")
    if not isinstance(pbx, dict):
        raise ValueError("no 'pbx' object")
    records = {str(key): GuardRecord.from_json(value) for key, value in pbx.items()}
    good = document.get("known_good", {})
    if not isinstance(good, dict) or not all(
        isinstance(hashes, list) and all(_is_hash(h) for h in hashes) for hashes in good.values()
    ):
        raise ValueError("known_good is not an object of lists of credential hashes")
    for key, hashes in good.items():
        record = records.get(str(key), GuardRecord())
        records[str(key)] = replace(record, known_good=_latest(tuple(hashes)))
    return records


def _document(records: Mapping[str, GuardRecord]) -> dict[str, Any]:
    good = {key: list(rec.known_good) for key, rec in records.items() if rec.known_good}
    document: dict[str, Any] = {
        "version": _VERSION,
        "pbx": {key: rec.to_json() for key, rec in records.items()},
    }
    if good:
        document["known_good"] = good
    return document


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/yeastar-async/login-guard.json``, or under ``~/.local/state``."""
    base = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec: a relative path in the variable is invalid and is ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / _APP_DIR / _FILE_NAME


def state_path(option: Any) -> Path | None:
    """The state file an option names (``None``: no file); :class:`ValueError` if not usable."""
    if option is None:
        return None
    if isinstance(option, str) and option == "default":
        return default_state_path()
    if not isinstance(option, (str, os.PathLike)):
        raise TypeError(
            "login_guard_state must be 'default', None or a file path, got "
            f"{type(option).__name__} {option!r}"
        )
    raw = os.fspath(option)
    if not isinstance(raw, str) or not raw or "\0" in raw:
        raise ValueError(f"login_guard_state must be a file path, got {option!r}")
    path = Path(raw).expanduser()
    if path.is_dir():
        raise ValueError(f"login_guard_state {raw!r} is a directory; name a file in it")
    return path


class _StateFile:
    """One state file: read-modify-write under an exclusive lock, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A sibling lock file: the state file itself is replaced, so a lock on it would lock
        # an inode the next writer no longer opens.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def _read(self) -> dict[str, GuardRecord]:
        try:
            with open(self.path, "rb") as file:
                raw = file.read(_MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            return {}
        if len(raw) > _MAX_FILE_SIZE:
            raise ValueError(f"larger than {_MAX_FILE_SIZE} bytes")
        return _parse(json.loads(raw))

    def _write(self, records: Mapping[str, GuardRecord]) -> None:
        data = json.dumps(_document(records), indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def update(
        self, key: str, change: Callable[[GuardRecord], GuardRecord]
    ) -> tuple[GuardRecord, GuardRecord]:
        """Apply ``change`` to the record of ``key``; returns (before, after)."""
        try:
            with self._locked():
                records = self._read()
                before = records.get(key, GuardRecord())
                after = change(before)
                if after != before:
                    records[key] = after
                    self._write(records)
                return before, after
        except (OSError, ValueError) as exc:  # json's errors are ValueErrors
            raise self._failure(exc) from None

    def forget(self, keys: Callable[[str], bool]) -> None:
        """Drop the records whose key ``keys`` matches."""
        try:
            with self._locked():
                records = self._read()
                kept = {key: record for key, record in records.items() if not keys(key)}
                if len(kept) != len(records):
                    self._write(kept)
        except (OSError, ValueError) as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: Exception) -> Exception:
        """What a failed read or write of the file raises. Out of file descriptors, the file is
        not at fault and the condition passes: a transient :class:`OutOfFileDescriptorsError`
        (no login is sent either way), not a refusal that would end an event stream."""
        if out_of_fds(exc):
            return OutOfFileDescriptorsError(
                f"get_token: cannot open the login guard state file {str(self.path)!r}: "
                f"{fd_advice()}",
                endpoint="get_token",
                sent=False,
            )
        return GuardStateError(self._unusable(exc))

    def _unusable(self, exc: Exception) -> str:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        # An OSError is about access (permissions, a missing folder); anything else is content.
        fix = "Fix its permissions" if isinstance(exc, OSError) else "It is corrupt: repair it"
        return (
            f"the login guard state file {str(self.path)!r} is unusable ({type(exc).__name__}: "
            f"{reason}), so the count of rejected logins is unknown and no login is sent. "
            f"{fix}, or delete it once the credentials are right (the PBX blocks "
            "the IP after 5 rejected logins in a row), or choose another file with "
            "login_guard_state= / XDG_STATE_HOME"
        )


class GuardState:
    """Where one client's guard count is kept: memory only, a state file, and/or a token store.

    Memory is always kept too (for ``repr`` and messages); with a file or a store the count
    read from them decides.
    """

    def __init__(self, path: Path | None = None, store: object | None = None) -> None:
        self.path = path
        self._file = _StateFile(path) if path is not None else None
        self._store = store if isinstance(store, GuardStateStore) else None

    def __repr__(self) -> str:
        path = str(self.path) if self.path is not None else None
        return f"GuardState(path={path!r}, store={self._store is not None})"

    @property
    def persistent(self) -> bool:
        """Whether the count outlives the process."""
        return self._file is not None or self._store is not None

    def where(self) -> str:
        """Where the count is kept, for messages."""
        places = []
        if self._file is not None:
            places.append(f"in {str(self._file.path)!r}")
        if self._store is not None:
            places.append("in the token store")
        return " and ".join(places) if places else "in this process only (login_guard_state=None)"

    async def update(
        self, key: str, memory: GuardRecord, change: Callable[[GuardRecord], GuardRecord]
    ) -> tuple[GuardRecord, GuardRecord]:
        """Apply ``change`` to the count of ``key``; returns (before, after).

        ``memory`` is the in-process record, which decides only when nothing persists.
        """
        if not self.persistent:
            return memory, change(memory)
        store_records: dict[str, GuardRecord] | None = None
        if self._store is not None:
            store_records = await self._load_store()
        from_store = store_records.get(key) if store_records is not None else None

        def combined(record: GuardRecord) -> GuardRecord:
            return change(record.merged(from_store) if from_store is not None else record)

        if self._file is not None:
            # A thread: the file lock may wait for another process, and the loop must not.
            file_before, after = await asyncio.to_thread(self._file.update, key, combined)
            before = file_before.merged(from_store) if from_store is not None else file_before
        else:
            before = from_store if from_store is not None else GuardRecord()
            after = change(before)
        if store_records is not None and after != before:
            store_records[key] = after
            await self._save_store(store_records)
        return before, after

    def forget(self, keys: Callable[[str], bool]) -> None:
        """Drop the file's records whose key ``keys`` matches (the store's are left to its
        owner)."""
        if self._file is not None:
            self._file.forget(keys)

    async def _load_store(self) -> dict[str, GuardRecord]:
        assert self._store is not None
        try:
            answer = self._store.load_login_guard()
            document = await answer if inspect.isawaitable(answer) else answer
            return {} if document is None else _parse(document)
        except Exception as exc:
            raise GuardStateError(
                f"the token store's login guard state is unusable ({type(exc).__name__}), so "
                "the count of rejected logins is unknown and no login is sent: fix the store "
                "(load_login_guard) and try again"
            ) from None

    async def _save_store(self, records: Mapping[str, GuardRecord]) -> None:
        assert self._store is not None
        try:
            saved = self._store.save_login_guard(_document(records))
            if inspect.isawaitable(saved):
                await saved
        except Exception as exc:
            # The file and memory still hold the count; other hosts of the store miss it.
            logger.warning(
                "token store save_login_guard failed (%s); the count of rejected logins is "
                "kept in this host's state only",
                type(exc).__name__,
            )
