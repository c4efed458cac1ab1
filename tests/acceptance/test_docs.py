"""``/docs`` and ``/redoc`` work offline: every script, stylesheet and favicon the pages load is
served by the service itself, and the pages are counted under their own routes.

(That the pages also *render* is shown in headless Chromium by ``scripts/check_render.py``,
which ``.ci/run`` runs after the tests.)
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from tests.acceptance.service import Api, ServeProcess

pytestmark = pytest.mark.acceptance

PAGES = ("/docs", "/redoc")


class _References(HTMLParser):
    """Every URL a page loads by itself: ``<script src>``, ``<link href>``, ``<img src>``, and
    the spec URL the page's script fetches."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attribute in ("src", "href", "spec-url"):
            value = values.get(attribute)
            if value:
                self.urls.append(value)
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    # Swagger UI's inline start-up script names the OpenAPI document as ``url: '…'``.
    for script in parser.scripts:
        parser.urls += re.findall(r"\burl: '([^']+)'", script)
    return parser.urls


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_load_every_asset_from_the_service(api: Api, page: str) -> None:
    response = api.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = _references(response.text)
    assert any(u.endswith(".js") for u in urls), urls
    assert "/openapi.json" in urls
    if page == "/docs":
        assert any(u.endswith(".css") for u in urls), urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
        asset = api.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 0, url
    assert "googleapis" not in response.text and "cdn." not in response.text


def test_the_vendored_packages_licences_are_served_with_them(api: Api) -> None:
    manifest = api.get("/docs/assets/MANIFEST.json").json()
    assert set(manifest["packages"]) == {"swagger-ui-dist", "redoc"}
    for name in ("LICENSE.swagger-ui-dist", "NOTICE.swagger-ui-dist", "LICENSE.redoc"):
        licence = api.get(f"/docs/assets/{name}")
        assert licence.status_code == 200 and licence.text.strip(), name
    assert "MIT" in api.get("/docs/assets/LICENSE.redoc").text
    assert "Apache License" in api.get("/docs/assets/LICENSE.swagger-ui-dist").text


@pytest.mark.parametrize("name", ["../app.py", "docs.py", "..%2Fdocs.py", "unknown.js"])
def test_only_the_vendored_files_are_served(api: Api, name: str) -> None:
    assert api.get(f"/docs/assets/{name}").status_code == 404


def test_docs_requests_are_counted_and_logged_under_their_own_routes(
    api: Api, service: ServeProcess
) -> None:
    for page in PAGES:
        assert api.get(page).status_code == 200
    assert api.get("/docs/assets/swagger-ui.css").status_code == 200
    metrics = api.get("/metrics").text
    assert api.get("/openapi.json").status_code == 200
    for route in ("/docs", "/redoc", "/docs/assets/{name}", "/openapi.json"):
        assert f'method="GET",route="{route}",status="200"' in metrics, route
    lines = [json.loads(line) for line in service.log_text().splitlines() if line.startswith("{")]
    routes = {line.get("route") for line in lines if line.get("method") == "GET"}
    assert {"/docs", "/redoc"} <= routes
