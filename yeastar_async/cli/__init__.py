"""The ``yeastar-async`` command line (also ``python -m yeastar_async``).

Commands::

    yeastar-async demo [--forever]          the fake PBX, the screening bot and a few calls
    yeastar-async events [--topics 30011,30012] [--json] [--count N]
    yeastar-async webhook --port P [--secret-env NAME] [--path /x] [--json]   no PBX login
    yeastar-async doctor                    checklist: reachability, TLS, login, API, WebSocket
    yeastar-async call query [--call-id ID | --type T | --number EXT]
    yeastar-async call dial CALLER CALLEE
    yeastar-async call hangup CHANNEL_ID
    yeastar-async recording download ID --out PATH
    yeastar-async fake-pbx [--port N] [--host 127.0.0.1] [--client-id ID] [--client-secret S]
    yeastar-async cec route list [--access-code CODE] [--device-type queue|ivr] [--json]
    yeastar-async cec route modify ROUTE_ID --queue ID | --ivr ID
    yeastar-async openvox inroute|outroute list|add|update|delete ...   (OpenVox UC IPPBX)

Commands that talk to a PBX take its address and API credentials from ``--base-url``,
``--client-id``, ``--client-secret`` or the environment variables ``YEASTAR_BASE_URL``,
``YEASTAR_CLIENT_ID``, ``YEASTAR_CLIENT_SECRET`` (prefer the variable for the secret: command
lines are visible to other users). TLS: ``--ca-file PATH``, ``--pin SHA256`` or ``--insecure``.

Exit codes: 0 success (also when the reader of stdout went away: ``events | head -1``), 1 a
failed check or a PBX/network error (one line, no traceback; a rejected login adds a line of
advice), 2 bad usage (one line; also an argument the SDK refuses, e.g. an empty CHANNEL_ID), 130
Ctrl-C, 143 SIGTERM (the commands that run until stopped, ``events``, ``webhook``, ``fake-pbx``
and ``demo --forever``, exit 0 on SIGTERM: a service manager's normal stop).

The ``cec`` commands drive a Huawei Cloud CEC instead; they read ``CEC_DOMAIN``,
``CEC_APP_KEY`` and ``CEC_APP_SECRET`` from the environment.

The modules, in the one direction the data flows (each imports only those above it)::

    _output     stdout/stderr lines, library logs to stderr, UsageError
    _format     event lines and JSON lines
    _connect    connection flags and the YeastarClient they describe
    _fake       fake-pbx (and how to connect to it, also shown by the demo)
    _commands   call query / dial / hangup, recording download
    _cec        cec route list / modify (Huawei Cloud CEC; its own client and credentials)
    _openvox    openvox inroute / outroute ... (OpenVox UC IPPBX; its own flags and OPENVOX_*)
    _events     events
    _webhook    webhook (the receiver of yeastar_async.webhooks; uses _events' --topics)
    _demo       demo
    _doctor     doctor
    _parser     the command table, the argument parser, dispatch, main / amain
"""

from ._format import format_event
from ._parser import amain, build_parser, main

__all__ = ["amain", "build_parser", "format_event", "main"]
