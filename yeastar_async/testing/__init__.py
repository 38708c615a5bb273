"""A fake Yeastar P-Series PBX for tests: ``from yeastar_async.testing import FakePBX``.

:class:`FakePBX` is an ``aiohttp.web`` server on 127.0.0.1 (a free port) that answers the
OpenAPI v1.0 like a real PBX, quirks included, with switches to make it fail on purpose and a
log of what it received. See its docstring for the options and the switches.

:class:`FakeCec` does the same for the Huawei Cloud CEC's token and called-route API, and
:class:`FakeOpenVox` for the OpenVox UC IPPBX API v0.0.1 (routes, both wire formats).
"""

from ._cec import CecHandler, FakeCec, FakeCecRoute, FakeCecStats
from ._flows import FakeCall, Leg
from ._log import FakePBXStats, RequestRecord
from ._openvox import FakeOpenVox, OpenVoxRecord
from ._server import FakePBX, Handler
from ._ws import FakeSocket

__all__ = [
    "CecHandler",
    "FakeCall",
    "FakeCec",
    "FakeCecRoute",
    "FakeCecStats",
    "FakeOpenVox",
    "FakePBX",
    "FakePBXStats",
    "FakeSocket",
    "Handler",
    "Leg",
    "OpenVoxRecord",
    "RequestRecord",
]
