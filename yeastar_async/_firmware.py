"""P-Series firmware versions: parsing, and which API features a firmware has.

A P-Series firmware version is ``<line>.<major>.<minor>.<build>``; the first number names the
edition: ``83`` Software Edition, ``37`` Appliance Edition (P520-P570), ``84`` Cloud Edition.
The same feature arrives at the same ``major.minor.build`` in every edition:

* call reports at ``openapi/v2.0`` from ``x.21.0.117`` (vendor note on the Cloud pages:
  ``https://help.yeastar.com/en/p-series-cloud-edition/developer-guide/query-scheduled-call-report-list.html``);
* the CDR endpoints at ``openapi/v2.0`` from ``x.23.0.123``;
* Webhook event push (``webhook/query``, ``webhook/update``) from ``x.20.0.21``.

The thresholds for the other editions and for the v2.0 CDR endpoints come from a peer project
(see ``catalog/p_series_current.json``); the vendor pages state the Cloud one for reports.
A version in any other format (the manual's ``X.7.0.16``, another product line) parses to
``None``: callers then assume the April 2024 API (``openapi/v1.0`` only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["EDITIONS", "FEATURES", "Feature", "Firmware", "parse_firmware"]

#: First number of the version -> edition.
EDITIONS = {83: "Software Edition", 37: "Appliance Edition", 84: "Cloud Edition"}

#: A feature that depends on the firmware.
Feature = Literal["v2_reports", "v2_cdr", "webhook"]

#: Feature -> the first ``(major, minor, build)`` that has it, in every edition.
FEATURES: dict[Feature, tuple[int, int, int]] = {
    "v2_reports": (21, 0, 117),
    "v2_cdr": (23, 0, 123),
    "webhook": (20, 0, 21),
}

_VERSION = re.compile(r"\s*[vV]?(\d{1,3})\.(\d{1,4})\.(\d{1,4})\.(\d{1,6})\s*")


@dataclass(frozen=True, order=True)
class Firmware:
    """A parsed P-Series firmware version, e.g. ``Firmware(84, 23, 0, 123)``."""

    line: int
    major: int
    minor: int
    build: int

    def __str__(self) -> str:
        return f"{self.line}.{self.major}.{self.minor}.{self.build}"

    @property
    def edition(self) -> str | None:
        """``"Software Edition"``, ``"Appliance Edition"``, ``"Cloud Edition"`` or None."""
        return EDITIONS.get(self.line)

    def has(self, feature: Feature) -> bool:
        """Whether this firmware has ``feature`` (False for a line that is not P-Series)."""
        return (
            self.edition is not None and (self.major, self.minor, self.build) >= FEATURES[feature]
        )

    def first_with(self, feature: Feature) -> str:
        """The first version of this firmware's line with ``feature``, e.g. ``"84.23.0.123"``."""
        major, minor, build = FEATURES[feature]
        return f"{self.line}.{major}.{minor}.{build}"


def parse_firmware(text: object) -> Firmware | None:
    """``"84.23.0.123"`` -> ``Firmware(84, 23, 0, 123)``; anything else -> None."""
    if not isinstance(text, str):
        return None
    found = _VERSION.fullmatch(text)
    if found is None:
        return None
    line, major, minor, build = (int(part) for part in found.groups())
    return Firmware(line, major, minor, build)
