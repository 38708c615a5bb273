"""PBX events: typed event models and frame decoding (``events.decode``).

One class per topic (``CallStatusChanged`` for 30011 ...), :class:`UnknownEvent` for anything
else, and the local link events :class:`Connected` / :class:`Disconnected`.
"""

from yeastar_async.events import models
from yeastar_async.events._decode import decode
from yeastar_async.events._dispatch import Overflow, StreamStats, Subscription
from yeastar_async.events._stream import EventStream, StreamOptions

# Every model is public here under the name it has in `models` (whose __all__ lists them once).
from yeastar_async.events.models import *  # noqa: F403

__all__ = ["EventStream", "Overflow", "StreamOptions", "StreamStats", "Subscription", "decode"]
__all__ += models.__all__
