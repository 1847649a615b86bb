"""The player's web app in a real browser: headless Chromium (Debian's) driven
by Playwright, against the API under uvicorn and a real database. Each test
saves what the player saw in .local/screenshots/ (git-ignored)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from oidc import run_oidc_server
from ox_sidecar.web import GOOGLE_BUTTON, STATIC
from support import SYMBOLS, free_port, open_session_for, running_api, service

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / ".local" / "screenshots"
OXP = Path(sys.executable).parent / "oxp"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"
)


def oxp(*args: str) -> str:
    result = subprocess.run(
        [OXP, *args], capture_output=True, text=True, check=False, env=os.environ
    )
    assert result.returncode == 0, f"oxp {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def api(env: None, calendar: None, db: psycopg.Connection) -> Iterator[str]:
    # Tuesday 24 Nov 2026, 09:00 KST: New York's Tuesday session is open
    # (cutoff 23:25 KST); a reward for 100 points is in the shop.
    open_session_for(db, "2026-11-24", "2026-11-24T09:00+09:00")
    service(db, "select crypto.upsert_reward('HAT', 'A hat', 100, 5)")
    with running_api() as base:
        yield base


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("dialog", lambda d: self.errors.append(f"dialog: {d.message}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def unexpected(self, *refused: int) -> list[str]:
        """Errors other than the browser's own note of an answer we meant
        to provoke (a 409 after the cutoff, a 401 for a wrong password)."""
        allowed = tuple(f"status of {status}" for status in refused)
        return [e for e in self.errors if not (allowed and any(a in e for a in allowed))]


def new_page(browser: Browser, locale: str = "ko-KR") -> tuple[Page, Console]:
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, locale=locale, device_scale_factor=1
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page, Console(page)


SIZES = ({"width": 360, "height": 740}, {"width": 1280, "height": 800})


def shot(page: Page, name: str) -> None:
    """The page as a phone (360x740) and a desktop (1280x800) show it, and
    at 360 px nothing sticks out sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    for size in SIZES:
        page.set_viewport_size(size)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= size["width"], f"{name}: {width} px wide at {size['width']}"
        page.screenshot(path=SHOTS / f"{name}-{size['width']}x{size['height']}.png", full_page=True)
    if before:
        page.set_viewport_size(before)


def sign_up(page: Page, email: str) -> None:
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[name=signup]")
    expect(page.locator("#who")).to_have_text(email)


def row(page: Page, symbol: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#universe li[data-symbol="{symbol}"]')


def predictions(db: psycopg.Connection, symbol: str) -> list[str]:
    rows = db.execute("select choice::text from crypto.predictions where symbol = %s", (symbol,))
    return [r[0] for r in rows]


def test_a_new_player_plays_a_whole_day(
    browser: Browser, api: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    page, console = new_page(browser)
    page.goto(api)
    # Signed out, and Google not configured here: no Google button.
    expect(page.locator("button[name=signup]")).to_be_visible()
    assert page.locator("#google").count() == 0
    shot(page, "player-signed-out")
    sign_up(page, "web@example.com")

    # Today: the day, a live countdown to 23:25 KST, New York beside it.
    expect(page.locator("#day")).to_have_text("2026-11-24")
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^14:2\d:\d\d$"))
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first or "", timeout=3000)  # it ticks
    expect(page.locator("#cutoff-kst")).to_contain_text("23:25 KST")
    expect(page.locator("#cutoff-ny")).to_contain_text("09:25 New York")
    expect(row(page, "AAPL")).to_contain_text("AAPL")
    shot(page, "player-today")

    # UP on AAPL, and a double click of DOWN on MSFT: one prediction each.
    row(page, "AAPL").get_by_role("button", name=re.compile("^UP AAPL")).click()
    expect(row(page, "AAPL").get_by_role("button", name=re.compile("UP"))).to_be_disabled()
    row(page, "MSFT").get_by_role("button", name=re.compile("^DOWN MSFT")).dblclick()
    expect(row(page, "MSFT").get_by_role("button", name=re.compile("DOWN"))).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(row(page, "MSFT").get_by_role("button", name=re.compile("UP"))).to_be_disabled()
    expect(page.locator("#remaining")).to_contain_text("1/3")
    assert predictions(db, "AAPL") == ["UP"]
    assert predictions(db, "MSFT") == ["DOWN"]
    # Each submission carried an Idempotency-Key (kept with its answer).
    keys = "select count(*) from crypto.idempotent_requests where scope like 'prediction:%'"
    assert db.execute(keys).fetchone() == (2,)
    shot(page, "player-predicted")

    # After the cutoff: the page still shows GOOGL's buttons (no refresh
    # yet); the server refuses, the player reads why, the buttons close.
    service(db, "select crypto.clock_set('2026-11-24T23:26+09:00')")
    row(page, "GOOGL").get_by_role("button", name=re.compile("^UP GOOGL")).click()
    expect(page.locator("#message")).to_have_text("오늘 예측은 마감되었습니다.")
    expect(row(page, "GOOGL").get_by_role("button", name=re.compile("UP"))).to_be_disabled()
    expect(row(page, "NVDA").get_by_role("button", name=re.compile("DOWN"))).to_be_disabled()
    expect(countdown).to_have_text("마감됨")
    assert predictions(db, "GOOGL") == []
    shot(page, "player-after-cutoff")

    # New York closes; the closes are loaded and the day settles.
    oxp("clock", "set", "2026-11-25T07:00")
    oxp("schedule", "tick")
    closes = tmp_path / "closes.csv"
    lines = ["trading_day,symbol,close"]
    lines += [f"2026-11-23,{s},100.00" for s in SYMBOLS]
    lines += [f"2026-11-24,{s},{'101.50' if s == 'AAPL' else '99.00'}" for s in SYMBOLS]
    closes.write_text("\n".join(lines) + "\n")
    oxp("eod", "load", str(closes))
    oxp("session", "settle", "--day", "2026-11-24")
    service(db, "select crypto.rollup_metrics()")  # as pg_cron would: metrics and the leaderboard

    page.get_by_role("button", name="내 예측").click()
    aapl = page.locator('#predictions li[data-symbol="AAPL"]')
    expect(aapl).to_contain_text("적중")
    expect(aapl).to_contain_text("100.00 → 101.50 (+1.50%)")
    expect(aapl).to_contain_text("+100점")
    expect(page.locator('#predictions li[data-symbol="MSFT"]')).to_contain_text("적중")
    expect(page.locator('#stats [data-stat="stat_current_streak"]')).to_have_text("2연승")
    shot(page, "player-result")

    # The day's public settlement, from the day's block: both closes, the
    # market's move, where the closes came from and when.
    day = page.locator('[data-day-block="2026-11-24"]')
    day.get_by_role("button", name="정산 보기").click()
    expect(page.locator("#settlement-title")).to_have_text("2026-11-24 정산")
    source = db.execute(
        "select source from crypto.current_settlements"
        " where trading_day = '2026-11-24' and symbol = 'AAPL'"
    ).fetchone()
    assert source and source[0]
    aapl = page.locator('#settled li[data-symbol="AAPL"]')
    expect(aapl).to_contain_text("100.00 → 101.50 (+1.50%)")
    expect(aapl).to_contain_text("상승")
    expect(aapl).to_contain_text(f"출처 {source[0]} · 수집 ")
    expect(aapl).to_contain_text("KST")
    expect(page.locator('#settled li[data-symbol="MSFT"]')).to_contain_text("하락")
    expect(page.locator("#settled li")).to_have_count(len(SYMBOLS))
    shot(page, "player-settlement")

    page.get_by_role("button", name="포인트").click()
    expect(page.locator("#balance")).to_have_text("200점")
    expect(page.locator("#ledger li")).to_have_count(2)

    page.get_by_role("button", name="상점").click()
    hat = page.locator('#rewards li[data-sku="HAT"]')
    expect(hat).to_contain_text("A hat")
    hat.get_by_role("button", name="교환").dblclick()
    expect(page.locator("#message")).to_have_text("A hat 교환을 신청했습니다")
    expect(page.locator("#redemptions li")).to_have_count(1)
    shot(page, "player-shop")
    assert db.execute("select count(*) from crypto.rewards_redemptions").fetchone() == (1,)
    page.get_by_role("button", name="포인트").click()
    expect(page.locator("#balance")).to_have_text("100점")

    # The ranking: a nickname made of markup is shown as the characters it
    # is (20 characters: the issue's <img ...> is longer than a nickname may be).
    evil = "<svg onload=alert()>"
    page.get_by_role("button", name="순위").click()
    page.fill("input[name=nickname]", evil)
    page.get_by_role("button", name="저장").click()
    expect(page.locator("#message")).to_have_text("닉네임을 저장했습니다")
    first_place = page.locator('#board li[data-rank="1"]')
    expect(first_place).to_contain_text(f"1. {evil}")
    expect(first_place).to_contain_text("200점 · 2승 0패")
    assert page.locator("#board svg").count() == 0
    shot(page, "player-ranking")

    # 360 px wide: nothing sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert console.unexpected(409) == []


def test_text_stays_text_and_english_on_request(
    browser: Browser, api: str, db: psycopg.Connection
) -> None:
    evil = "<img src=x onerror=alert(1)>"
    service(db, "select crypto.upsert_reward('EVIL', %s, 5, 1)", evil)
    page, console = new_page(browser, locale="en-US")
    page.goto(api)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()

    # Settlements are public: a visitor opens one (this day is not settled yet).
    page.get_by_role("button", name="Settlement").click()
    expect(page.get_by_role("button", name="Log in")).to_be_hidden()
    page.fill("#settlement-form input[name=trading_day]", "2026-11-24")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#settlement-title")).to_have_text("Settlement of 2026-11-24")
    expect(page.locator("#settled")).to_have_text("Not settled yet")
    expect(page.locator("#tabs")).to_be_hidden()  # signed out: no tabs
    page.locator("#back-today").click()

    # A wrong password: the problem by its code, in English.
    page.fill("input[name=email]", "nobody@example.com")
    page.fill("input[name=password]", "wrong password")
    page.click("button[name=login]")
    expect(page.locator("#message")).to_have_text("Wrong email or password.")

    sign_up(page, "text@example.com")
    page.get_by_role("button", name="Shop").click()
    evil_row = page.locator('#rewards li[data-sku="EVIL"]')
    expect(evil_row).to_contain_text(evil)  # shown as the characters it is
    assert page.locator("#rewards img").count() == 0
    # Switched to Korean, and the buttons keep UP and DOWN in their names.
    page.get_by_role("button", name="한국어").click()
    expect(page.get_by_role("button", name="상점")).to_be_visible()
    page.get_by_role("button", name="오늘").click()
    expect(row(page, "AAPL").get_by_role("button", name=re.compile("^DOWN AAPL"))).to_be_enabled()
    assert console.unexpected(401) == [], "no dialog, no error"


def test_pages_carry_security_headers(api: str) -> None:
    for path in ("/", "/admin", "/web/app.js", "/web/admin.js", "/web/style.css"):
        r = httpx.get(api + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
        assert "'unsafe-eval'" not in csp and "connect-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    # No inline script or style in the page itself.
    page = httpx.get(api + "/").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    # Google is not configured in this deployment: no button that could only fail
    # (test_google_sign_in_from_the_page has it where it is configured).
    assert 'id="google"' not in page and 'data-t="or"' not in page
    assert GOOGLE_BUTTON in (STATIC / "index.html").read_text(), "what is left out still matches"
    assert httpx.get(api + "/web/nothing.js").status_code == 404
    assert httpx.get(api + "/web/../app.py").status_code == 404


def test_an_admin_signs_in_with_a_code_sees_charts_and_sets_the_universe(
    browser: Browser, api: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    import pyotp

    # A settled day with a winner and a loser, counted by the metrics rollup.
    with httpx.Client(base_url=api) as http:
        tokens = []
        for email in ("p1@example.com", "p2@example.com", "boss@example.com"):
            r = http.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
            tokens.append({"Authorization": f"Bearer {r.json()['access_token']}"})
        http.post("/v1/predictions/AAPL", json={"choice": "UP"}, headers=tokens[0])
        http.post("/v1/predictions/AAPL", json={"choice": "DOWN"}, headers=tokens[1])
    secret = oxp("users", "create-admin", "boss@example.com").split("TOTP secret (shown once): ")[1]
    secret = secret.split()[0]
    oxp("clock", "set", "2026-11-25T07:00")
    oxp("schedule", "tick")
    closes = tmp_path / "closes.csv"
    lines = ["trading_day,symbol,close"] + [f"2026-11-23,{s},100.00" for s in SYMBOLS]
    lines += [f"2026-11-24,{s},101.00" for s in SYMBOLS]
    closes.write_text("\n".join(lines) + "\n")
    oxp("eod", "load", str(closes))
    oxp("session", "settle", "--day", "2026-11-24")
    service(db, "select crypto.rollup_metrics()")

    page, console = new_page(browser, locale="en-US")
    page.set_viewport_size({"width": 1024, "height": 900})
    page.goto(api + "/admin")
    # A player's password is not an admin's sign-in.
    page.fill("input[name=email]", "p1@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=otp]", "123456")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#message")).to_have_text("This account is not an admin")
    expect(page.locator("#console")).to_be_hidden()

    page.fill("input[name=email]", "boss@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=otp]", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("boss@example.com")
    expect(page.locator("#dashboard")).to_contain_text("2026-11-25 (OPEN)")
    bar = page.locator('#chart-participants rect[data-day="2026-11-24"]').last
    expect(bar).to_have_attribute("data-value", "2")
    win = page.locator('#chart-winrate rect[data-day="2026-11-24"]')
    expect(win).to_have_attribute("data-value", "0.5")
    issued = page.locator('#chart-points rect[data-day="2026-11-24"]').first
    expect(issued).to_have_attribute("data-value", "100")
    shot(page, "admin-dashboard")

    page.locator("#tabs").get_by_role("button", name="Universe").click()
    page.fill("#universe-form input[name=trading_day]", "2026-11-25")
    page.fill("#universe-form input[name=symbols]", "aapl, msft, tsla")
    page.get_by_role("button", name="Set universe").click()
    expect(page.locator("#message")).to_have_text("Universe of 2026-11-25: AAPL, MSFT, TSLA")
    page.locator("#tabs").get_by_role("button", name="Audit").click()
    page.fill("input[name=audit_action]", "universe.set")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#audit-list li").first).to_contain_text("universe.set")
    shot(page, "admin-audit")
    universe = db.execute(
        "select array_agg(symbol::text order by position) from crypto.active_universe"
        " where trading_day = '2026-11-25'"
    ).fetchone()
    assert universe == (["AAPL", "MSFT", "TSLA"],)
    assert console.unexpected() == []


def admin_page(browser: Browser, api: str, email: str, secret: str) -> tuple[Page, Console]:
    import pyotp

    page, console = new_page(browser, locale="en-US")
    page.goto(api + "/admin")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=otp]", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(email)
    return page, console


def make_admin(api: str, email: str) -> str:
    httpx.post(api + "/v1/auth/signup", json={"email": email, "password": PASSWORD})
    out = oxp("users", "create-admin", email)
    return out.split("TOTP secret (shown once): ")[1].split()[0]


def tab(page: Page, name: str) -> None:
    page.locator("#tabs").get_by_role("button", name=name).click()


def test_admin_screens_change_what_players_see(
    browser: Browser, api: str, db: psycopg.Connection
) -> None:
    secret = make_admin(api, "boss@example.com")
    admin, admin_console = admin_page(browser, api, "boss@example.com", secret)

    # Rewards inventory: a new SKU, then the player's shop shows it.
    tab(admin, "Rewards")
    expect(admin.locator('#inventory li[data-sku="HAT"]')).to_contain_text("stock 5")
    form = admin.locator("#inventory-form")
    form.locator("input[name=sku]").fill("MUG")
    form.locator("input[name=name]").fill("A mug")
    form.locator("input[name=cost_points]").fill("50")
    form.locator("input[name=stock]").fill("3")
    form.get_by_role("button", name="Save reward").click()
    expect(admin.locator("#message")).to_have_text("Reward MUG: A mug, 50 points, stock 3, active")
    expect(admin.locator('#inventory li[data-sku="MUG"]')).to_contain_text("available 3")
    shot(admin, "admin-rewards")

    # Ads: a new one giving a prediction slot.
    tab(admin, "Ads")
    form = admin.locator("#ad-form")
    form.locator("input[name=id]").fill("bonus-slot")
    form.locator("input[name=title]").fill("Bonus prediction")
    form.locator("select[name=reward_kind]").select_option("SLOT")
    form.get_by_role("button", name="Save ad").click()
    expect(admin.locator("#message")).to_have_text("Ad bonus-slot: Bonus prediction, SLOT, active")
    expect(admin.locator('#ad-list li[data-ad="bonus-slot"]')).to_contain_text("SLOT")
    expect(admin.locator("#ad-caps")).to_contain_text(
        "7 slot unlocks, 5 point rewards, 50 ads shown"
    )
    shot(admin, "admin-ads")

    # Settings: two slot unlocks per session instead of seven.
    tab(admin, "Settings")
    setting = admin.locator('#setting-list li[data-key="ads.max_slot_unlocks"]')
    setting.locator("input[name=value]").fill("2")
    setting.get_by_role("button", name="Save").click()
    expect(admin.locator("#message")).to_have_text("Setting ads.max_slot_unlocks = 2")
    value = "select value #>> '{}' from crypto.settings where key = 'ads.max_slot_unlocks'"
    assert db.execute(value).fetchone() == ("2",)
    # A value against the rule: the rule's words, nothing changed.
    setting = admin.locator('#setting-list li[data-key="ads.max_slot_unlocks"]')
    setting.locator("input[name=value]").fill("-1")
    setting.get_by_role("button", name="Save").click()
    expect(admin.locator("#message")).to_contain_text("[VALIDATION_FAILED")
    assert db.execute(value).fetchone() == ("2",)
    shot(admin, "admin-settings")

    # The player: the ad with its cap (the new setting), the view recorded
    # once under an Idempotency-Key (a double click), the mug in the shop.
    page, console = new_page(browser)
    page.goto(api)
    sign_up(page, "player@example.com")
    ad = page.locator('#ads li[data-ad="bonus-slot"]')
    expect(ad).to_contain_text("Bonus prediction")
    expect(ad).to_contain_text("예측 1회 추가")
    expect(ad).to_contain_text("오늘 남은 횟수 2")
    ad.get_by_role("button", name="보기").dblclick()
    expect(page.locator("#message")).to_contain_text("광고를 보여 드렸습니다")
    shown = db.execute(
        "select count(*), count(idempotency_key) from crypto.ad_impressions where ad_id = 'bonus-slot'"
    ).fetchone()
    assert shown == (1, 1)
    expect(ad).to_contain_text("오늘 남은 횟수 2")  # a view pays nothing by itself
    row(page, "AAPL").get_by_role("button", name=re.compile("^UP AAPL")).click()
    expect(row(page, "AAPL").get_by_role("button", name=re.compile("UP"))).to_be_disabled()
    shot(page, "player-today-ads")
    page.get_by_role("button", name="상점").click()
    expect(page.locator('#rewards li[data-sku="MUG"]')).to_contain_text("A mug")
    expect(page.locator('#rewards li[data-sku="MUG"]')).to_contain_text("50점 · 재고 3")

    # EOD before New York has closed: refused, in words, with the code.
    tab(admin, "Settlement")
    admin.fill("#eod-form input[name=trading_day]", "2026-11-24")
    admin.get_by_role("button", name="Fetch the closes now").click()
    expect(admin.locator("#message")).to_contain_text(
        "New York has not closed yet. [MARKET_NOT_CLOSED"
    )
    jobs = "select count(*) from crypto.jobs where dedupe_key like 'eod.fetch:2026-11-24:admin:%'"
    assert db.execute(jobs).fetchone() == (0,)

    # After the close: the tick from the console, the fetch asked for, the
    # closes typed in (a price outage), the day settled by hand.
    oxp("clock", "set", "2026-11-25T07:00")
    admin.get_by_role("button", name="Run schedule-tick").click()
    expect(admin.locator("#message")).to_contain_text("schedule-tick:")
    phase = "select phase::text from crypto.session_control where trading_day = '2026-11-24'"
    assert db.execute(phase).fetchone() == ("SETTLING",)
    admin.get_by_role("button", name="Fetch the closes now").click()
    expect(admin.locator("#message")).to_contain_text("Closes of 2026-11-24 asked for (job ")
    assert db.execute(jobs).fetchone() == (1,)
    lines = [f"2026-11-23,{s},100.00" for s in SYMBOLS]
    lines += [f"2026-11-24,{s},{'101.50' if s == 'AAPL' else '99.00'}" for s in SYMBOLS]
    admin.fill("#prices-form textarea[name=closes]", "\n".join(lines))
    admin.get_by_role("button", name="Load closes").click()
    expect(admin.locator("#message")).to_have_text(f"{len(lines)} closes loaded")
    admin.fill("#settle-form input[name=trading_day]", "2026-11-24")
    admin.get_by_role("button", name="Settle the day").click()
    expect(admin.locator("#message")).to_have_text("Settlement of 2026-11-24 done")
    expect(admin.locator("#settle-result")).to_be_visible()
    assert db.execute(phase).fetchone() == ("SETTLED",)
    shot(admin, "admin-settlement")
    assert admin_console.unexpected(409, 422) == []  # the two refusals above

    # The player reads the day's settlement from today's screen.
    page.get_by_role("button", name="오늘").click()
    page.get_by_role("button", name="정산 결과").click()
    page.fill("#settlement-form input[name=trading_day]", "2026-11-24")
    page.get_by_role("button", name="보기").click()
    aapl = page.locator('#settled li[data-symbol="AAPL"]')
    expect(aapl).to_contain_text("100.00 → 101.50 (+1.50%)")
    expect(aapl).to_contain_text("출처 admin")
    expect(aapl).not_to_contain_text("출처 admin:")  # which admin is in the audit, not public
    page.get_by_role("button", name="내 예측").click()
    expect(page.locator('#predictions li[data-symbol="AAPL"]')).to_contain_text("+100점")
    assert console.unexpected() == []


def test_a_429_says_when_to_retry(browser: Browser, api: str, db: psycopg.Connection) -> None:
    with db.transaction():
        db.execute(
            "update crypto.settings set value = '1' where key = 'ratelimit.point_reads_per_minute'"
        )
    page, console = new_page(browser)
    page.goto(api)
    sign_up(page, "hasty@example.com")
    page.get_by_role("button", name="포인트").click()  # the balance and the ledger: two reads
    expect(page.locator("#message")).to_have_text(
        re.compile(r"^요청이 너무 많습니다\. \d+초 후에 다시 시도하세요\.$")
    )
    assert console.unexpected(429) == []


def test_google_sign_in_from_the_page(
    browser: Browser, env: None, calendar: None, db: psycopg.Connection, tmp_path: Path
) -> None:
    open_session_for(db, "2026-11-24", "2026-11-24T09:00+09:00")
    with run_oidc_server(tmp_path) as idp:
        port = free_port()
        settings = {
            "GOOGLE_OIDC_ISSUER": idp.issuer,
            "GOOGLE_CLIENT_ID": "oxp-test-client",
            "GOOGLE_CLIENT_SECRET": "oxp-test-secret",
            # The page itself is the redirect URI: it hands code and state to the API.
            "OAUTH_REDIRECT_URI": f"http://127.0.0.1:{port}/",
        }
        idp.set_claims(email="web.google@example.com", sub="g-web")
        with running_api(port, env=settings) as base:
            page, console = new_page(browser, locale="en-US")
            page.goto(base)
            page.get_by_role("link", name="Continue with Google").click()
            expect(page.locator("#who")).to_have_text("web.google@example.com")
            assert page.url == base + "/"  # the code and state are gone from the address
            expect(
                row(page, "AAPL").get_by_role("button", name=re.compile("^UP AAPL"))
            ).to_be_enabled()
            assert console.unexpected() == []
    user = "select google_sub from crypto.users where email = 'web.google@example.com'"
    assert db.execute(user).fetchone() == ("g-web",)


def test_every_problem_code_has_words_in_both_languages(
    browser: Browser, api: str, db: psycopg.Connection
) -> None:
    """Each code the API can answer with (crypto.error_codes and the shim's
    own) reads as a sentence in Korean and English, not as the fallback."""
    from ox_sidecar.problems import _BY_CODE

    codes = sorted(
        {r[0] for r in db.execute("select code from crypto.error_codes")} | set(_BY_CODE)
    )
    page, console = new_page(browser)
    page.goto(api)
    missing = page.evaluate(
        """async (codes) => {
            const i18n = await import('/web/i18n.js');
            return codes.flatMap((code) => ['ko', 'en']
                .filter((language) => !i18n.has(code, language))
                .map((language) => `${code} (${language})`));
        }""",
        codes,
    )
    assert missing == [], f"add these to python_sidecar/ox_sidecar/web/i18n.js: {missing}"
    # A 429 in words with its wait, in each language.
    words = page.evaluate(
        """async () => {
            const i18n = await import('/web/i18n.js');
            const problem = { code: 'RATE_LIMITED', retryAfter: '7' };
            return [i18n.problemMessage(problem, 'ko'), i18n.problemMessage(problem, 'en')];
        }"""
    )
    assert words == [
        "요청이 너무 많습니다. 7초 후에 다시 시도하세요.",
        "Too many requests. Try again in 7 s.",
    ]
    assert console.unexpected() == []
