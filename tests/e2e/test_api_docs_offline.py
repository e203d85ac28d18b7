"""The API browsers work on a machine without internet: their scripts come from this server, not a CDN
(QA: `/docs` rendered a blank page on an offline host)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_peer
from tests.e2e.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_docs_and_redoc_load_only_from_this_server_and_render_offline(
    database_url: str, tmp_path: Path
) -> None:
    require_peer(Path(CHROMIUM).exists(), "Debian's chromium")
    with ServerProcess(database_url=database_url, config=None, data_dir=tmp_path) as server:
        for page in ("/docs", "/redoc"):
            html = httpx.get(server.url + page).text
            sources = re.findall(r"""(?:src|href)=["']?([^"' >]+)""", html)
            sources += re.findall(r"""(?:url|openapi_url)\s*[:=]\s*["']([^"']+)""", html)
            assert sources, html
            assert not [source for source in sources if "://" in source or source.startswith("//")], html
            for source in sources:
                if source.startswith("/docs-assets/"):
                    assert httpx.get(server.url + source).status_code == 200, source
        # A real browser with its network to the outside off: Swagger UI builds the operations from the
        # schema (it renders nothing at all when its script cannot load).
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--proxy-server=http://127.0.0.1:9",  # everything but the bypassed loopback fails
                "--proxy-bypass-list=127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                server.url + "/docs",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        ).stdout
        assert "opblock" in dom and "/api/v1/incidents" in dom, dom[:2000]
