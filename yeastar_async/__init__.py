"""yeastar_async: the asyncio SDK for the Yeastar P-Series PBX OpenAPI.

REST endpoints as typed methods (``client.extension.list()``), tokens handled for you, and a
supervised WebSocket that delivers typed events to your handlers::

    from yeastar_async import YeastarClient, events

    async with YeastarClient("https://pbx.example.com:8088", client_id, client_secret) as pbx:
        info = await pbx.system.information()
"""

from . import errors, events
from ._auth import MemoryTokenStore, TokenSet, TokenStore
from ._version import __version__
from .client import YeastarClient
from .errors import YeastarError

__all__ = [
    "MemoryTokenStore",
    "TokenSet",
    "TokenStore",
    "YeastarClient",
    "YeastarError",
    "__version__",
    "errors",
    "events",
]
