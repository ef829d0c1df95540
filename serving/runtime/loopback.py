"""Keep in-process gRPC servers of a local Ray session on the loopback address.

Ray 2.60's Serve replicas open an inter-deployment gRPC server on ``[::]:0`` (all interfaces, whatever the node's
address: ``ray/serve/_private/replica.py``, ``_on_initialized``). In a session that ``serving.launch`` started
for ``mlplan deploy --target local`` (the environment names the address in ``MLPLAN_BIND_HOST``),
:func:`bind_loopback_only` makes every grpc server of the process bind that address instead of a wildcard one:
``add_insecure_port`` / ``add_secure_port`` of grpcio's sync and asyncio servers rewrite ``[::]``, ``0.0.0.0``
and an empty host. :class:`serving.runtime.ray_app.OnnxModel` calls it first thing in its constructor, which
every replica runs before it starts that server. ``serving.launch`` checks the session's sockets after
start-up, so a Ray version that binds elsewhere fails the deploy instead of listening publicly.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

ENV = "MLPLAN_BIND_HOST"
_WILDCARDS = ("[::]", "0.0.0.0", "", "[::0]", "::", "[0:0:0:0:0:0:0:0]")


def loopback_address(address: str, host: str) -> str:
    """``[::]:0`` -> ``127.0.0.1:0``; an address with a concrete host is kept."""
    name, sep, port = address.rpartition(":")
    if not sep:  # no port: the whole address is a host
        name, port = address, "0"
    return f"{host}:{port}" if name in _WILDCARDS else address


def _wrap(method: Callable[..., Any], host: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def bind(self: Any, address: str, *args: Any, **kwargs: Any) -> Any:
        return method(self, loopback_address(address, host), *args, **kwargs)

    bind.__mlplan_loopback__ = True  # type: ignore[attr-defined]
    return bind


def bind_loopback_only(host: str | None = None) -> bool:
    """Patch grpcio's servers in this process to bind ``host`` (default: ``$MLPLAN_BIND_HOST``); False when
    neither names one (a Ray session mlplan did not start: nothing changes)."""
    host = host or os.environ.get(ENV)
    if not host:
        return False
    import grpc._server  # type: ignore[import-untyped]
    from grpc.aio import _server as aio_server  # type: ignore[import-untyped]

    for cls in (grpc._server._Server, aio_server.Server):
        for name in ("add_insecure_port", "add_secure_port"):
            method = getattr(cls, name)
            if not getattr(method, "__mlplan_loopback__", False):
                setattr(cls, name, _wrap(method, host))
    return True
