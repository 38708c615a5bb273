"""The FakePBX's endpoint table, loaded from the packaged ``catalog.json``.

``catalog.json`` is generated from the project's spec by ``tools/build_fake_catalog.py``; it holds,
per endpoint, the method, whether a token is needed, the parameters the manual requires on every
call and the manual's example responses.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Catalog", "EndpointSpec", "load_catalog"]


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint of the manual as the fake answers it.

    Attributes:
        name: the endpoint id, e.g. ``"extension/list"``.
        method: ``"GET"`` or ``"POST"``.
        auth: whether an ``access_token`` is needed (False only for get_token/refresh_token).
        required: parameters the manual requires on every call (conditional ones excluded).
        params: every documented parameter name (templates such as ``press{x}_dest`` as printed).
        paginated: whether the endpoint takes page/page_size and returns total_number.
        download: whether it answers ``file`` + ``download_resource_url``.
        response_keys: the documented top-level response keys.
        manual_line: where the endpoint is described in the manual (None for an endpoint the
            manual does not have).
        source_url: the current vendor page of an endpoint the manual does not have.
        firmware: the first firmware with the endpoint, per edition (``"software"``,
            ``"appliance"``, ``"cloud"``), where the current pages state one.
    """

    name: str
    method: str
    auth: bool
    required: tuple[str, ...]
    params: tuple[str, ...]
    paginated: bool
    download: bool
    response_keys: tuple[str, ...]
    manual_line: int | None
    examples: tuple[dict[str, Any], ...] = field(repr=False)
    source_url: str | None = None
    firmware: dict[str, str] = field(default_factory=dict)

    def example(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """A deep copy of the manual's example response that best fits the given parameters.

        When the manual prints several examples (``system/get_menuoptions`` for ``menu=role``
        and ``menu=org_list``), the one whose request parameters share the most values with
        ``given`` wins; ties go to the first.
        """
        best = self.examples[0]
        if given and len(self.examples) > 1:
            wanted = {k: str(v) for k, v in given.items()}

            def score(ex: dict[str, Any]) -> int:
                return sum(1 for k, v in ex["match"].items() if wanted.get(k) == v)

            best = max(self.examples, key=score)
        return copy.deepcopy(best["body"])


@dataclass(frozen=True)
class Catalog:
    """Endpoints, error messages and event topics of the manual and the current pages.

    Attributes:
        endpoints: the ``openapi/v1.0`` endpoints by name.
        errors: error code -> message.
        events: event topic -> name, ``sn`` and ``msg`` form, example payload.
        endpoints_v2: the ``openapi/v2.0`` endpoints by name (current firmware).
    """

    endpoints: dict[str, EndpointSpec]
    errors: dict[int, str]
    events: dict[int, dict[str, Any]]
    endpoints_v2: dict[str, EndpointSpec] = field(default_factory=dict)

    def errmsg(self, errcode: int) -> str:
        """The manual's message for ``errcode`` (``""`` for codes it does not list)."""
        return self.errors.get(errcode, "")


@cache
def load_catalog() -> Catalog:
    """Load (once) the catalog packaged next to this module."""
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    doc = json.loads(text)

    def specs(table: dict[str, Any]) -> dict[str, EndpointSpec]:
        return {
            name: EndpointSpec(
                name=name,
                method=ep["method"],
                auth=ep["auth"],
                required=tuple(ep["required"]),
                params=tuple(ep["params"]),
                paginated=ep["paginated"],
                download=ep["download"],
                response_keys=tuple(ep["response_keys"]),
                manual_line=ep["manual_line"],
                examples=tuple(ep["examples"]),
                source_url=ep.get("source_url"),
                firmware=dict(ep.get("firmware") or {}),
            )
            for name, ep in table.items()
        }

    errors = {int(code): msg for code, msg in doc["errors"].items()}
    events = {int(topic): info for topic, info in doc["events"].items()}
    v2 = doc.get("endpoints_v2", {})
    return Catalog(
        endpoints=specs(doc["endpoints"]),
        errors=errors,
        events=events,
        endpoints_v2=specs(v2),
    )
