"""``mlplan catalog refresh --provider azure``: the Azure Retail Prices API through the HTTP seam.

Recorded answers (tests/data/azure_retail_prices, see its README) are replayed by a fake transport; the real
urllib transport is checked against a local HTTP server. Every failure is one line with exit 4 (network, HTTP
429, timeout) or 5 (HTTP 5xx, a body that is not the API's JSON), never an internal error."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mlplan.cli import main
from planner.catalog import Catalog
from planner.errors import CatalogError, InputError
from stacks.deploy import azure_catalog
from stacks.deploy.azure_catalog import fetch_items, linux_prices, query_url, refresh_catalog_azure
from stacks.deploy.http_seam import (
    FetchTimeout,
    HttpResponse,
    PriceSourceError,
    PriceSourceUnreachable,
    get_json,
    urllib_fetch,
)

DATA = Path(__file__).resolve().parent / "data" / "azure_retail_prices"
DAY = date(2026, 11, 30)


def body(name: str) -> bytes:
    return (DATA / name).read_bytes()


class Replay:
    """A Fetch that answers from recorded bodies by URL predicate, recording every URL asked for."""

    def __init__(self, routes: list[tuple[Callable[[str], bool], HttpResponse | Exception]]) -> None:
        self.routes = routes
        self.calls: list[str] = []

    def __call__(self, url: str, timeout_s: float) -> HttpResponse:
        self.calls.append(url)
        for match, answer in self.routes:
            if match(url):
                if isinstance(answer, Exception):
                    raise answer
                return answer
        raise AssertionError(f"unexpected URL {url}")


def region_is(region: str) -> Callable[[str], bool]:
    return lambda url: f"armRegionName eq '{region}'" in urllib.parse.unquote(url) and "$skip" not in url


def skip_100(url: str) -> bool:
    return "$skip=100" in url


def ok(name: str) -> HttpResponse:
    return HttpResponse(200, body(name))


def gpu_replay() -> Replay:
    return Replay([(skip_100, ok("reconstructed_gpu_eastus_page2.json")),
                   (region_is("eastus"), ok("reconstructed_gpu_eastus_page1.json")),
                   (region_is("southcentralus"), ok("reconstructed_gpu_southcentralus.json"))])


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


# --------------------------------------------------------------------------------------- parsing the answers
def test_the_documented_sample_items_are_not_linux_pay_as_you_go_prices() -> None:
    """Microsoft's three samples are a Windows DevTest Spot meter, a Reservation and a EUR price: none is kept."""
    items = json.loads(body("docs_sample_items.json"))
    assert [i["type"] for i in items] == ["DevTestConsumption", "Reservation", "Consumption"]
    assert linux_prices(items) == {}
    linux_usd = [{**items[2], "currencyCode": "USD", "productName": "Virtual Machines FS Series",
                  "skuName": "F16s", "retailPrice": 0.796}]
    assert linux_prices(linux_usd) == {"Standard_F16s": (0.796, None, "2021-04-01")}


def test_linux_on_demand_and_spot_are_picked_from_the_meters() -> None:
    items = json.loads(body("reconstructed_gpu_eastus_page1.json"))["Items"]
    got = linux_prices(items, "eastus")
    # Windows 0.71, DevTest 0.43, non-primary meter 0.45, Low Priority 0.0526 and the Reservation are ignored
    assert got == {"Standard_NC4as_T4_v3": (0.526, 0.062699, "2024-11-01"),
                   "Standard_NC24ads_A100_v4": (3.673, 0.444433, "2024-11-01")}
    assert linux_prices(items, "westus") == {}  # items of another region are not this region's price


def test_the_query_filters_by_region_and_size() -> None:
    url = query_url("eastus", ["Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4"])
    assert url.startswith("https://prices.azure.com/api/retail/prices?%24filter=")
    text = urllib.parse.unquote(url)
    assert ("serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq 'eastus' and "
            "(armSkuName eq 'Standard_NC24ads_A100_v4' or armSkuName eq 'Standard_NC4as_T4_v3')") in text
    assert " " not in url


# ---------------------------------------------------------------------------------------------- pagination
def test_pagination_follows_next_page_link_with_port_443() -> None:
    fetch = Replay([(skip_100, ok("empty_page.json")), (lambda u: True, ok("published_page_westeurope.json"))])
    items = fetch_items(fetch, "https://prices.azure.com/api/retail/prices?$filter=x")
    assert [i["armSkuName"] for i in items] == ["Standard_E64-32ds_v4"]
    assert len(fetch.calls) == 2
    assert fetch.calls[1].startswith("https://prices.azure.com:443/api/retail/prices?")
    assert "$skip=100" in fetch.calls[1]


def test_pagination_stops_at_links_to_other_hosts_and_runaway_paging() -> None:
    page = json.loads(body("published_page_westeurope.json"))
    for link in ("https://prices.azure.com.evil.example/api", "http://prices.azure.com/api/retail/prices?$skip=100"):
        fetch = Replay([(lambda u: True, HttpResponse(200, json.dumps({**page, "NextPageLink": link}).encode()))])
        with pytest.raises(PriceSourceError, match=r"does not point at prices\.azure\.com"):
            fetch_items(fetch, "https://prices.azure.com/api/retail/prices")
        assert len(fetch.calls) == 1
    loop = Replay([(lambda u: True, ok("published_page_westeurope.json"))])
    with pytest.raises(PriceSourceError, match="more than 3 pages") as e:
        fetch_items(loop, "https://prices.azure.com/api/retail/prices", max_pages=3)
    assert e.value.exit_code == 5 and len(loop.calls) == 3


# ----------------------------------------------------------------------------------------------- the refresh
def test_refresh_writes_overlay_rows_with_their_own_prices_and_sources(tmp_path: Path, cat: Catalog) -> None:
    out = tmp_path / "overlay.yaml"
    fetch = gpu_replay()
    refresh_catalog_azure(regions=["eastus", "southcentralus"], out_path=out, catalog=cat, fetch=fetch, today=DAY)
    over = Catalog.load(out)
    rows = {i.key: i for i in over.instances if i.provider == "azure" and i.price_observed == DAY}
    t4 = rows[("azure", "Standard_NC4as_T4_v3", "eastus")]
    assert (t4.on_demand_usd_per_h, t4.spot_usd_per_h, t4.spot_observed) == (0.526, 0.062699, DAY)
    assert t4.price_source and "Azure Retail Prices API" in t4.price_source
    assert "effective 2024-11-01" in t4.price_source
    south = rows[("azure", "Standard_NC24ads_A100_v4", "southcentralus")]
    assert (south.on_demand_usd_per_h, south.spot_usd_per_h) == (4.408, 0.57304)  # its own figure, not eastus's
    nd = rows[("azure", "Standard_ND96isr_H100_v5", "eastus")]
    assert (nd.on_demand_usd_per_h, nd.spot_usd_per_h, nd.accelerator_count) == (98.32, None, 8)
    assert (nd.vcpu, nd.accelerator) == (96, "h100-sxm")  # shape from the catalog's row of the same size
    text = out.read_text()
    assert text.startswith("# mlplan catalog overlay. Azure rows refreshed")
    assert "# note: Standard_NC8as_T4_v3 in eastus: no Linux pay-as-you-go price in the API; row skipped" in text
    assert len(fetch.calls) == 3  # eastus page 1 + page 2, southcentralus


def test_refresh_keeps_other_overlay_rows_and_lists_unknown_sizes(tmp_path: Path, cat: Catalog) -> None:
    out = tmp_path / "overlay.yaml"
    g5 = next(i for i in cat.instances if i.key == ("aws", "g5.xlarge", "us-east-1")).model_dump(mode="json")
    stale = next(i for i in cat.instances if i.key == ("azure", "Standard_NC4as_T4_v3", "eastus"))
    out.write_text(yaml.safe_dump({"instances": [{**g5, "on_demand_usd_per_h": 0.7},
                                                 {**stale.model_dump(mode="json"), "on_demand_usd_per_h": 9.0}]}))
    refresh_catalog_azure(regions=["eastus"], out_path=out, catalog=cat, fetch=gpu_replay(), today=DAY,
                          skus=["Standard_NC4as_T4_v3", "Standard_NC8ads_A10_v4"])
    data = yaml.safe_load(out.read_text())
    keys = {(r["provider"], r["instance"], r["region"]): r for r in data["instances"]}
    assert keys[("aws", "g5.xlarge", "us-east-1")]["on_demand_usd_per_h"] == 0.7
    assert keys[("azure", "Standard_NC4as_T4_v3", "eastus")]["on_demand_usd_per_h"] == 0.526
    assert "sizes the catalog has no shape for" in out.read_text() and "Standard_NC8ads_A10_v4" in out.read_text()


def test_refresh_input_errors(tmp_path: Path, cat: Catalog) -> None:
    with pytest.raises(InputError, match="Azure region 'marsnorth' is not in the catalog"):
        refresh_catalog_azure(regions=["marsnorth"], out_path=tmp_path / "o.yaml", catalog=cat, fetch=gpu_replay())
    with pytest.raises(InputError, match="at least one region"):
        refresh_catalog_azure(regions=[], out_path=tmp_path / "o.yaml", catalog=cat, fetch=gpu_replay())
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(CatalogError, match="is not a catalog overlay"):
        refresh_catalog_azure(regions=["eastus"], out_path=bad, catalog=cat, fetch=gpu_replay())


# ------------------------------------------------------------------------------------------- failure answers
FAILURES: list[tuple[HttpResponse | Exception, type[Exception], int, str]] = [
    (HttpResponse(429, b'{"error": "Too many requests"}', {"Retry-After": "30"}), PriceSourceUnreachable, 4,
     "rate limited (HTTP 429, retry after 30 s)"),
    (HttpResponse(500, b"<html><body>Internal Server Error</body></html>"), PriceSourceError, 5,
     "server error (HTTP 500): '<html><body>Internal Server Error</body></html>'"),
    (HttpResponse(200, body("published_page_westeurope.json")[:300]), PriceSourceError, 5,
     "the answer is not JSON (JSONDecodeError at byte"),
    (HttpResponse(200, b"[]"), PriceSourceError, 5, "the answer has no 'Items' list (keys: list)"),
    (HttpResponse(200, b'{"Message": "Invalid filter"}'), PriceSourceError, 5,
     "the answer has no 'Items' list (keys: Message)"),
    (FetchTimeout("timed out"), PriceSourceUnreachable, 4, "no answer within 30 s"),
    (OSError(101, "Network is unreachable"), PriceSourceUnreachable, 4, "cannot connect"),
]


@pytest.mark.parametrize(("answer", "kind", "code", "text"), FAILURES)
def test_failures_are_one_typed_line(tmp_path: Path, cat: Catalog, answer: HttpResponse | Exception,
                                     kind: type[Exception], code: int, text: str) -> None:
    out = tmp_path / "overlay.yaml"
    with pytest.raises(kind) as e:
        refresh_catalog_azure(regions=["eastus"], out_path=out, catalog=cat, fetch=Replay([(lambda u: True, answer)]))
    err = e.value
    assert getattr(err, "exit_code", None) == code
    line = str(err)
    assert "\n" not in line and text in line and "To fix:" in line and "Azure Retail Prices API page 1" in line
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize(("answer", "code", "text"), [(a, c, t) for a, _, c, t in FAILURES])
def test_the_cli_prints_one_line_and_the_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str], answer: HttpResponse | Exception,
                                                   code: int, text: str) -> None:
    monkeypatch.setattr(azure_catalog, "urllib_fetch", Replay([(lambda u: True, answer)]))
    with pytest.raises(SystemExit) as e:
        main(["catalog", "refresh", "--provider", "azure", "--out", str(tmp_path / "o.yaml")])
    assert e.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("mlplan: error: ") and err.count("\n") == 1 and text in err
    assert "internal error" not in err


def test_the_cli_refreshes_with_the_default_transport_seam(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(azure_catalog, "urllib_fetch", gpu_replay())
    out = tmp_path / "o.yaml"
    with pytest.raises(SystemExit) as e:
        main(["catalog", "refresh", "--provider", "azure", "--region", "southcentralus", "--out", str(out)])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    rows = yaml.safe_load(out.read_text())["instances"]
    assert {r["instance"] for r in rows} == {"Standard_NC4as_T4_v3", "Standard_NC24ads_A100_v4",
                                             "Standard_NC40ads_H100_v5"}
    with pytest.raises(SystemExit) as e:
        main(["catalog", "refresh", "--provider", "azure", "--endpoint-url", "http://x", "--out", str(out)])
    assert e.value.code == 2


# ------------------------------------------------------------------ the real urllib transport, on localhost
class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/slow"):
            time.sleep(1.0)
        status, payload, headers = {
            "/ok": (200, body("published_page_westeurope.json"), {}),
            "/throttle": (429, b"slow down", {"Retry-After": "7"}),
            "/broken": (503, b"Service Unavailable", {}),
            "/slow": (200, b"{}", {}),
        }.get(path.split("?")[0], (404, b"not found", {}))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def test_urllib_transport_against_a_local_server(server: str) -> None:
    page = get_json(urllib_fetch, f"{server}/ok", timeout_s=5, what="local")
    assert page["Count"] == 100 and page["Items"][0]["armSkuName"] == "Standard_E64-32ds_v4"
    with pytest.raises(PriceSourceUnreachable, match=r"rate limited \(HTTP 429, retry after 7 s\)"):
        get_json(urllib_fetch, f"{server}/throttle", timeout_s=5, what="local")
    with pytest.raises(PriceSourceError, match=r"server error \(HTTP 503\): 'Service Unavailable'"):
        get_json(urllib_fetch, f"{server}/broken", timeout_s=5, what="local")
    with pytest.raises(PriceSourceError, match=r"request rejected \(HTTP 404\)"):
        get_json(urllib_fetch, f"{server}/nope", timeout_s=5, what="local")
    with pytest.raises(PriceSourceUnreachable, match=r"no answer within 0.2 s"):
        get_json(urllib_fetch, f"{server}/slow", timeout_s=0.2, what="local")
    with pytest.raises(PriceSourceUnreachable, match="cannot connect"):
        get_json(urllib_fetch, "http://127.0.0.1:9/none", timeout_s=2, what="local")
