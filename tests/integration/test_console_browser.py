"""The web console in a real browser: Debian's headless Chromium, driven by Selenium through chromedriver.

The operator signs in with the token from the data directory and watches the conference list; two baresip
phones (TLS + SDES-SRTP, each sending its own tone) make a conference, which appears without a reload.
On the conference page the operator mutes the owner: the other phone's own recording proves it heard the
owner's tone before and not after.  Then the operator kicks that phone: it receives a BYE, and the roster
shows one participant.  A screenshot of the page is kept in ``test-artifacts/``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from audio import assert_hears, tone_levels, write_tone_wav
from baresip import BaresipPhone, free_tcp_port, free_udp_range
from harness import REPO, ServerProcess, free_port_pair
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from test_baresip_conference import established, explained, join_uri, wait_conf_uri

from peers import require_peer

TONES = {"alice": 440.0, "bob": 620.0}
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    chromium = require_peer("chromium")
    driver_path = require_peer("chromedriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root in CI; Chromium's sandbox refuses root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(arg)
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=opts)
    try:
        yield drv
    finally:
        drv.quit()


def wait_for(drv: WebDriver, what: str, check: Callable[[WebDriver], bool], timeout: float = 20.0) -> None:
    """Wait until *check* holds; the page re-renders on every event, so an element found a moment ago may
    be gone (stale): that only means "look again"."""
    wait = WebDriverWait(
        drv, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    wait.until(check, message=f"browser: {what}")


def click(drv: WebDriver, find: Callable[[WebDriver], WebElement], what: str) -> None:
    """Click what *find* finds, finding it again when a re-render replaced it in between."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            find(drv).click()
            return
        except (StaleElementReferenceException, LookupError):
            if time.monotonic() > deadline:
                raise AssertionError(f"browser: {what} kept being re-rendered") from None
            time.sleep(0.05)


def roster_rows(drv: WebDriver) -> list[str]:
    """The roster rows' texts, read in one script run: a re-render between finding a row and reading it
    cannot make the answer stale."""
    texts = drv.execute_script(
        "return Array.from(document.querySelectorAll('#roster tbody tr')).map(r => r.innerText);"
    )
    assert isinstance(texts, list)
    return [str(t) for t in texts]


def row_of(drv: WebDriver, name: str) -> WebElement:
    for r in drv.find_elements(By.CSS_SELECTOR, "#roster tbody tr"):
        if name in r.text:
            return r
    raise LookupError(f"no roster row for {name}: {roster_rows(drv)}")


def button(name: str, action: str) -> Callable[[WebDriver], WebElement]:
    """A finder of the *action* button in *name*'s roster row."""
    return lambda d: row_of(d, name).find_element(By.CSS_SELECTOR, f"button[data-action={action}]")


@pytest.mark.peer
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_console_shows_mutes_and_kicks_in_a_real_browser(browser: WebDriver, tmp_path: Path) -> None:
    require_peer("baresip")
    srv = ServerProcess(tmp_path / "srv", free_port_pair())
    srv.data_dir.mkdir(parents=True)
    lo, hi = free_udp_range(60)
    http_port = free_tcp_port()
    cfg = tmp_path / "imsconf.toml"
    cfg.write_text(f'rtp_port_range = [{lo}, {hi}]\nmedia_host = "127.0.0.1"\nfocus_host = "127.0.0.1"\n')
    srv.start("--config", str(cfg), "--http", f"127.0.0.1:{http_port}", auth="none")
    pki = srv.data_dir / "pki"
    phones = [
        BaresipPhone(
            name,
            tmp_path / name,
            tone_wav=write_tone_wav(tmp_path / f"{name}-{int(f)}.wav", f, seconds=120),
            ca_pem=pki / "ca.pem",
            cert_combined_pem=pki / "server-combined.pem",
        )
        for name, f in TONES.items()
    ]
    alice, bob = phones
    drv = browser
    try:
        with explained(srv, phones):
            token = (srv.data_dir / "api-token").read_text().strip()
            drv.get(f"http://127.0.0.1:{http_port}/")
            wait_for(drv, "the sign-in form", lambda d: d.find_element(By.ID, "login-view").is_displayed())
            drv.find_element(By.ID, "token").send_keys(token)
            drv.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
            wait_for(drv, "the conference list", lambda d: d.find_element(By.ID, "list-view").is_displayed())
            assert "operator" in drv.find_element(By.ID, "status").text

            for p in phones:
                p.start()
            alice.dial(f"sip:conference-factory@127.0.0.1:{srv.tls_port}")
            established(alice)
            conf_uri = wait_conf_uri(srv)
            bob.dial(join_uri(conf_uri, srv.tls_port))
            t_both = max(established(alice), established(bob))

            # the conference appears in the list with two participants, without a reload
            def listed(d: WebDriver) -> bool:
                rows = d.find_elements(By.CSS_SELECTOR, "#conferences tbody tr")
                return any(
                    conf_uri.split("@")[0].split(":")[-1] in r.text and " 2 " in f" {r.text} " for r in rows
                )

            wait_for(drv, f"{conf_uri} listed with 2 participants", listed)
            click(
                drv, lambda d: d.find_element(By.CSS_SELECTOR, "#conferences tbody tr"), "the conference row"
            )
            wait_for(drv, "the roster of two", lambda d: len(roster_rows(d)) == 2)

            # a few seconds of both talking, then mute the owner from the console
            time.sleep(max(0.0, t_both + 4.0 - time.monotonic()))
            t_mute = time.monotonic()
            click(
                drv,
                lambda d: row_of(d, "alice").find_element(By.CSS_SELECTOR, "button[data-action=mute]"),
                "mute",
            )
            wait_for(
                drv, "alice shown muted", lambda d: any("alice" in r and "muted" in r for r in roster_rows(d))
            )
            time.sleep(4.0)

            # kick bob: its phone receives a BYE and the roster shrinks to one, live
            t_kick = time.monotonic()
            click(
                drv,
                lambda d: row_of(d, "bob").find_element(By.CSS_SELECTOR, "button[data-action=kick]"),
                "kick",
            )
            drv.switch_to.alert.accept()
            closed = bob.wait_event("CALL_CLOSED", 5)
            assert alice.alive() and "CALL_CLOSED" not in alice.event_types()
            wait_for(drv, "the roster of one", lambda d: len(roster_rows(d)) == 1)
            assert "alice" in roster_rows(drv)[0]

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "console-conference.png"
            drv.save_screenshot(str(shot))
            shutil.copy(shot, tmp_path / shot.name)
            assert shot.stat().st_size > 10_000

            # bob's own recording: alice's tone before the mute, not after it
            bob.stop()
            decs = bob.dec_wavs()
            assert len(decs) == 1, decs
            closed_at = float(closed["_t"])
            before = tone_levels(
                decs[0],
                [440.0],
                last_seconds=t_mute - t_both - 2.0,
                drop_last_seconds=closed_at - t_mute + 0.2,
            )
            assert_hears(before, present=[440.0], who="bob before the mute")
            after = tone_levels(
                decs[0],
                [440.0],
                last_seconds=t_kick - t_mute - 1.5,
                drop_last_seconds=closed_at - t_kick + 0.3,
            )
            assert_hears(after, present=[], absent=[440.0], who="bob after alice was muted")
            assert "event=operator_kick" in srv.log() and "reason=booted" in srv.log()
    finally:
        for p in phones:
            p.stop()
        srv.stop()
