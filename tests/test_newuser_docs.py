"""What a newcomer reads is true: the README's option tables name every constructor parameter,
its words on the CLI's defaults match the code, and every command's ``--help`` explains itself."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from yeastar_async import YeastarClient, cli
from yeastar_async.cli._events import DEFAULT_TOPICS
from yeastar_async.huawei_cec import CecClient
from yeastar_async.openvox import OpenVoxClient
from yeastar_async.testing import FakePBX
from yeastar_async.webhooks import WebhookReceiver

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The README's text from ``heading`` (a ``## `` or ``### `` line) to the next heading of
    the same level or above."""
    level = "### " if f"\n### {heading}\n" in README else "## "
    start = README.index(f"\n{level}{heading}\n")
    ends = [README.find(f"\n{mark}", start + 1) for mark in {"## ", level}]
    end = min((e for e in ends if e != -1), default=len(README))
    return README[start:end]


def _option_names(section: str) -> set[str]:
    """The names in the first column of the section's ``| option | default | meaning |`` table."""
    table = section[section.index("| option | default | meaning |") :]
    names: set[str] = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names.update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return names


#: Each client's README section and its parameters, read at import: the suite's secret watch
#: later wraps ``YeastarClient.__init__`` in a ``(*args, **kwargs)`` function.
CLIENTS = [
    (heading, cls.__name__, frozenset(inspect.signature(cls).parameters))
    for heading, cls in [
        ("Configuration", YeastarClient),
        ("OpenVox UC IPPBX", OpenVoxClient),
        ("Huawei Cloud CEC", CecClient),
        ("Webhooks", WebhookReceiver),
    ]
]


@pytest.mark.parametrize(("heading", "name", "parameters"), CLIENTS, ids=[c[1] for c in CLIENTS])
def test_each_client_has_an_option_table_naming_every_parameter(
    heading: str, name: str, parameters: frozenset[str]
) -> None:
    documented = _option_names(_section(heading))
    assert parameters - documented == set(), f"{name}: missing from the README table"
    assert documented - parameters == set(), f"{name}: the README names no such option"


def test_readme_says_what_events_tails_by_default() -> None:
    # The command subscribes to the manual's topics only (newer ones on request): the README
    # said "every topic it has a class for" in two places after the merge of the new topics.
    said = f"the manual's {len(DEFAULT_TOPICS)} topics ({DEFAULT_TOPICS[0]}–{DEFAULT_TOPICS[-1]})"
    assert said in _section("The command line")
    assert "`--topics`" in _section("Using it")
    assert "every typed topic by default" not in README
    assert "every topic it has a class for" not in README


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command tree, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


COMMANDS = list(_parsers(cli.build_parser()))
COMMAND_IDS = [" ".join(path) or "yeastar-async" for path, _ in COMMANDS]


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_help_has_a_description_and_every_option_a_help_line(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    assert parser.description, f"yeastar-async {' '.join(path)} --help has no description"
    silent = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert silent == [], f"yeastar-async {' '.join(path)}: options without a help line"


def test_openvox_help_says_where_the_password_comes_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The epilog sat on the parent parser, which argparse does not carry over to its children.
    assert cli.main(["openvox", "inroute", "list", "--help"]) == 0
    assert "The password is read from OPENVOX_PASSWORD only." in capsys.readouterr().out


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
async def test_a_lockout_refusal_does_not_advise_just_running_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # After 4 rejections in a row the guard refuses even the right credentials until its state
    # file goes; the advice for a rejected login ("fix them before running again") was printed.
    async with FakePBX() as pbx:

        async def call_query(secret: str) -> int:
            argv = ["call", "query", "--base-url", pbx.base_url, "--client-id", pbx.client_id]
            async with asyncio.timeout(20):
                return await cli.amain([*argv, "--client-secret", secret])

        for n in range(4):
            assert await call_query(f"wrong-secret-{n % 2}") == 1
        capsys.readouterr()
        assert await call_query(pbx.client_secret) == 1
        error, advice = capsys.readouterr().err.splitlines()
        assert "get_token: not logging in" in error
        assert advice.startswith("No login was sent.")
        assert "state file it names is deleted" in advice
        assert pbx.stats.login_attempts == 4
