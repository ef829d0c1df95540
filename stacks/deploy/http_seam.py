"""One small HTTP seam for the price refreshers: a ``Fetch`` callable the code calls and tests replace.

``Fetch(url, timeout_s) -> HttpResponse`` performs a GET. The default (:func:`urllib_fetch`) uses the standard
library; tests pass a function that replays recorded responses, the way httpx's ``MockTransport`` would. Failures
become one-line typed errors: the network (timeouts, DNS, refused connections, HTTP 429) is an
:class:`PriceSourceUnreachable` (exit 4, retry later); a service that answers wrongly (HTTP 5xx/4xx, a body that is
not the JSON expected) is a :class:`PriceSourceError` (exit 5).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.errors import DeployError, EnvironmentProblem


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class FetchTimeout(Exception):
    """Raised by a Fetch when the request did not finish in time."""


Fetch = Callable[[str, float], HttpResponse]


class PriceSourceUnreachable(EnvironmentProblem):
    """The price API could not be reached or asked us to back off (exit 4): retry later or check the network."""


class PriceSourceError(DeployError):
    """The price API answered, but not with a usable price list (exit 5)."""


def urllib_fetch(url: str, timeout_s: float) -> HttpResponse:
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "mlplan-catalog-refresh"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return HttpResponse(resp.status, resp.read(), dict(resp.headers.items()))
    except urllib.error.HTTPError as e:
        try:
            return HttpResponse(e.code, e.read() or b"", dict(e.headers.items()) if e.headers else {})
        finally:
            e.close()
    except TimeoutError as e:
        raise FetchTimeout(str(e)) from None


def get_json(fetch: Fetch, url: str, *, timeout_s: float, what: str) -> Any:
    """GET ``url`` and parse JSON, or raise one of the two typed errors with one line."""
    try:
        resp = fetch(url, timeout_s)
    except FetchTimeout:
        raise PriceSourceUnreachable(f"{what}: no answer within {timeout_s:g} s",
                                     fix="retry later, or check the network and proxy settings") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise PriceSourceUnreachable(f"{what}: cannot connect ({reason})",
                                     fix="check the network, DNS and proxy settings, then retry") from None
    if resp.status == 429:
        after = next((v for k, v in resp.headers.items() if k.lower() == "retry-after"), None)
        wait = f", retry after {after} s" if after else ""
        raise PriceSourceUnreachable(f"{what}: rate limited (HTTP 429{wait})",
                                     fix="wait and run the refresh again, for fewer regions at a time")
    if resp.status != 200:
        kind = "server error" if resp.status >= 500 else "request rejected"
        raise PriceSourceError(f"{what}: {kind} (HTTP {resp.status}): {_snippet(resp.body)}",
                               fix="retry later; if it persists the API changed or is down")
    try:
        return json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PriceSourceError(f"{what}: the answer is not JSON ({e.__class__.__name__} at {_where(e)}): "
                               f"{_snippet(resp.body)}", fix="retry later; a proxy or captive portal may be in "
                                                             "the way") from None


def _where(e: Exception) -> str:
    pos = getattr(e, "pos", None) if isinstance(e, json.JSONDecodeError) else getattr(e, "start", None)
    return f"byte {pos}" if pos is not None else "start"


def _snippet(body: bytes, n: int = 80) -> str:
    text = body[:n].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text + ("..." if len(body) > n else ""))
