"""PBX events: typed event models and frame decoding (``events.decode``).

One class per topic (``CallStatusChanged`` for 30011 ...), :class:`UnknownEvent` for anything
else, the local link events :class:`Connected` / :class:`Disconnected`, the CDRs of a gap
recovered over REST (:class:`CdrRecovered`, a :class:`NewCdr`) and the :class:`Checkpoint` a
restarted process passes to ``listen(since=...)``.
"""

from yeastar_async.events import models
from yeastar_async.events._decode import decode
from yeastar_async.events._dispatch import Overflow, StreamStats, Subscription
from yeastar_async.events._recovery import Checkpoint
from yeastar_async.events._stream import EventStream, StreamOptions

# Every model is public here under the name it has in `models` (whose __all__ lists them once).
from yeastar_async.events.models import *  # noqa: F403

__all__ = [
    "Checkpoint",
    "EventStream",
    "Overflow",
    "StreamOptions",
    "StreamStats",
    "Subscription",
    "decode",
]
__all__ += models.__all__
