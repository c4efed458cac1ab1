"""Render ``/docs``, ``/redoc`` and an audit report in headless Chromium, and check what shows.

``make check-render`` runs it (``.ci/run`` after the tests; ``make test`` needs no browser):

1. a scratch embedded PostgreSQL under a temporary ``LEDGER_DATA_DIR`` gets a week of history
   (a workspace, exchanges, a revocation, a member removal that revokes; names with markup);
2. ``ledger audit report --workspace …`` writes its page; ``ledger serve`` starts on a free port;
3. Chromium (Debian's ``chromium``) loads each page with every host name but 127.0.0.1
   unresolvable, so anything fetched from elsewhere fails, dumps the rendered DOM and takes a
   screenshot; the checks read both: Swagger UI built its list of operations, ReDoc its
   reference, the report its timelines; each screenshot has the window's size, is not blank
   (many colours, much of it not white) and shows the colours the page is drawn with; the
   report also prints (to PDF, with its print styles).

Without Chromium it says so and exits 0, except under ``CI=true``, where it fails.
Usage: ``python scripts/check_render.py [--out DIR]`` (screenshots kept in DIR).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from ledger import Settings, TokenKind, open_ledger
from ledger.domain.clock import ManualClock

WINDOW = (1280, 1000)
BUDGET_MS = 20_000
READY_TIMEOUT_S = 90
CHROMIUM_TIMEOUT_S = 120
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


class CheckFailed(Exception):
    """A rendered page is not what it should be."""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def seed(data_dir: Path) -> tuple[str, str]:
    """A week of history on the embedded server under ``data_dir``: the workspace's id, and an
    instant in its middle (the report's point in time). ``docs/report.png`` is this report."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=6)
    clock = ManualClock(start)
    day = timedelta(days=1)
    with open_ledger(Settings(data_dir=data_dir), clock=clock) as ledger:
        alice = ledger.create_user("Alice")
        bob = ledger.create_user("Bob")
        mallory = ledger.create_user("Mallory <script>alert('Mallory')</script>")
        owner = ledger.verify(alice.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
        admin = ledger.verify(bob.token, {TokenKind.PERSONAL_ACCESS_TOKEN})
        workspace = ledger.create_workspace(owner, "acme-prod")
        ledger.add_member(owner, workspace.id, bob.user_id, "admin")
        ledger.add_member(owner, workspace.id, mallory.user_id, "member")
        clock.advance(day / 4)
        build = ledger.mint_install_token(admin, workspace.id)
        clock.advance(timedelta(minutes=3))
        ledger.exchange_install_token(build.token, "build-box-1")
        clock.advance(day)
        database = ledger.mint_install_token(owner, workspace.id)
        clock.advance(timedelta(minutes=5))
        db_host = ledger.exchange_install_token(database.token, "db-host-2")
        clock.advance(day)
        ledger.mint_install_token(owner, workspace.id)  # never exchanged: it expires
        clock.advance(day)
        middle = clock.now()
        clock.advance(day / 2)
        ledger.revoke_daemon_token(owner, workspace.id, db_host.token_id)
        clock.advance(day)
        runner = ledger.mint_install_token(owner, workspace.id)
        ledger.exchange_install_token(runner.token, "ci-<b>runner</b>")
        clock.advance(day / 2)
        ledger.remove_member(owner, workspace.id, bob.user_id)
        return str(workspace.id), middle.isoformat()


def run_ledger(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "ledger", *args], env=env, check=True, timeout=READY_TIMEOUT_S
    )


@contextlib.contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[str]:
    """``ledger serve`` on a free port until the block ends; its base URL once ready."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise CheckFailed(f"ledger serve exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise CheckFailed("ledger serve did not become ready")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Browser:
    """Headless Chromium that can reach 127.0.0.1 and nothing else."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.command = [
            executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--virtual-time-budget={BUDGET_MS}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
        ]

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            [*self.command, *args],
            capture_output=True,
            text=True,
            timeout=CHROMIUM_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise CheckFailed(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def dom(self, url: str) -> str:
        return self._run("--dump-dom", url)

    def pdf(self, url: str, path: Path) -> bytes:
        self._run("--no-pdf-header-footer", f"--print-to-pdf={path}", url)
        return path.read_bytes()

    def screenshot(self, url: str, path: Path) -> Image.Image:
        self._run(f"--screenshot={path}", url)
        return Image.open(path).convert("RGB")


def near(colour: tuple[int, int, int], wanted: str, tolerance: int = 24) -> bool:
    rgb = tuple(int(wanted[i : i + 2], 16) for i in (1, 3, 5))
    return all(abs(a - b) <= tolerance for a, b in zip(colour, rgb, strict=True))


def check_screenshot(name: str, image: Image.Image, colours: tuple[str, ...]) -> str:
    """The screenshot has the window's size, is not blank and shows ``colours``."""
    if image.size != WINDOW:
        raise CheckFailed(f"{name}: screenshot is {image.size}, expected {WINDOW}")
    counts = [
        (n, (c[0], c[1], c[2]))
        for n, c in image.getcolors(maxcolors=WINDOW[0] * WINDOW[1]) or []
        if isinstance(c, tuple)
    ]
    pixels = WINDOW[0] * WINDOW[1]
    white = sum(n for n, c in counts if min(c) >= 245)
    inked = 1 - white / pixels
    if len(counts) < 16 or inked < 0.02:
        raise CheckFailed(f"{name}: looks blank ({len(counts)} colours, {inked:.1%} not white)")
    for wanted in colours:
        if not any(n >= 20 and near(c, wanted) for n, c in counts):
            raise CheckFailed(f"{name}: no {wanted} on the screenshot")
    return f"{name}: {len(counts)} colours, {inked:.0%} not white"


def expect(name: str, dom: str, *needles: str) -> None:
    for needle in needles:
        if needle not in dom:
            raise CheckFailed(f"{name}: the rendered page has no {needle!r}")


def check(browser: Browser, base: str, report: Path, out: Path) -> list[str]:
    lines: list[str] = []

    docs = browser.dom(f"{base}/docs")
    # Swagger UI fetched the schema and drew one block per operation.
    expect("/docs", docs, 'class="swagger-ui', "opblock-tag", "opblock-summary-path", "/api/me")
    image = browser.screenshot(f"{base}/docs", out / "docs.png")
    lines.append(check_screenshot("/docs", image, ("#61affe", "#49cc90")))

    redoc = browser.dom(f"{base}/redoc")
    expect("/redoc", redoc, "redoc-wrap", "/api/install-tokens/exchange", "The process is up")
    image = browser.screenshot(f"{base}/redoc", out / "redoc.png")
    lines.append(check_screenshot("/redoc", image, ("#263238",)))

    url = report.as_uri()
    page = browser.dom(url)
    expect("report", page, "<svg", 'class="timeline"', "revoked (member_removed)")
    expect("report", page, "Mallory &lt;script&gt;", "ci-&lt;b&gt;runner&lt;/b&gt;")
    if "<script>alert" in page or "<b>runner" in page:
        raise CheckFailed("report: a stored name became markup")
    image = browser.screenshot(url, out / "report.png")
    lines.append(check_screenshot("report", image, ("#2e7d32", "#c62828", "#6a1b9a")))
    printed = browser.pdf(url, out / "report.pdf")
    pages = len(re.findall(rb"/Type\s*/Page\b", printed))
    if not printed.startswith(b"%PDF") or pages < 1:
        raise CheckFailed("report: printing it made no PDF pages")
    lines.append(f"report printed: {pages} PDF pages, {len(printed)} bytes")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "ledger-render")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI") == "true":
            print("check-render: chromium is required in CI (apt-get install chromium)")
            return 1
        print("check-render: skipped, no chromium (Debian: apt-get install chromium)")
        return 0
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ledger-check-render-") as scratch:
        tmp = Path(scratch)
        env = {k: v for k, v in os.environ.items() if k != "LEDGER_DATABASE_URL"}
        env["LEDGER_DATA_DIR"] = str(tmp / "data")
        workspace, middle = seed(tmp / "data")
        report = out / "report.html"
        report_args = ("--workspace", workspace, "--at", middle, "--out", str(report))
        run_ledger(env, "audit", "report", *report_args)
        browser = Browser(chromium, tmp / "profile")
        try:
            with serving(env, out / "serve.log") as base:
                lines = check(browser, base, report, out)
        except CheckFailed as failure:
            print(f"check-render: FAILED: {failure}")
            return 1
    for line in lines:
        print(f"check-render: {line}")
    print(f"check-render: ok (screenshots in {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
