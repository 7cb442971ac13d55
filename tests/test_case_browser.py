"""The web inbox in a real browser: headless Chromium (Debian's, driven by its chromedriver)
against the real app served by uvicorn, on a real PostgreSQL.

A handler logs in through the form, opens the top case of their queue, adds a note and resolves
it as a false alarm; the JSON API then shows the resolution, the note and the feedback queued for
the scoring side. With ``YUJING_SCREENSHOTS=1`` the screenshots go to ``docs/case-inbox.png`` and
``docs/case-page.png`` (otherwise to the test's temporary directory).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from alerts.policy import AlertPolicy
from alerts.warnings import warning_id
from cases import store
from cases.api import create_app
from cases.config import CaseSettings
from models.calendar import SHANGHAI
from yujing.settings import Settings, TopicNames

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's Chromium: apt-get install -y chromium chromium-driver "
        "(deploy/local/setup.sh installs them)",
    ),
]

PASSWORD = "fengxian-2026"
FEEDBACK_TOPIC = "browser.feedback"

# Indicator explanations as the engine words them (models/indicators/*), with their weights.
READINGS: dict[str, tuple[str, str, float]] = {
    "silence": ("已连续{v:.0f}天无核销且仍有预收余额,超过{t:.0f}天阈值",
                "no redemptions for {v:.0f} days while prepaid balances are outstanding (threshold {t:.0f} days)", 0.30),
    "custody_coverage": ("存管资金仅为应存管金额的{v:.0%},低于{t:.0%}阈值",
                         "custody balance covers {v:.0%} of the required custody (threshold {t:.0%})", 0.20),
    "complaint_surge": ("近14天加权投诉{v:.0f}件,超过{t:.0f}件阈值",
                        "{v:.0f} weighted complaints in 14 days (threshold {t:.0f})", 0.25),
    "liability_months": ("预收资金余额相当于{v:.1f}个月核销量,超过{t:g}个月阈值",
                         "outstanding prepaid balance equals {v:.1f} months of redemptions (threshold {t:g} months)", 0.15),
    "sales_surge": ("近28天售卡金额为自身基线的{v:.1f}倍(已扣除同业整体增幅),超过{t:g}倍阈值",
                    "card sales in the last 28 days are {v:.1f}x the merchant's baseline, beyond what its "
                    "industry sells (threshold {t:g}x)", 0.20),
    "deep_discount_share": ("近28天{v:.0%}的售卡金额附带30%以上赠送,超过{t:.0%}阈值",
                            "{v:.0%} of card sales in 28 days carried a bonus of 30% or more (threshold {t:.0%})", 0.15),
    "redemption_decline": ("近28天核销额仅为自身基线的{v:.0%},低于{t:.0%}阈值",
                           "redemptions in 28 days are {v:.0%} of the merchant's baseline (threshold {t:.0%})", 0.15),
    "refund_pressure": ("近28天退款笔数为自身基线的{v:.1f}倍,超过{t:g}倍阈值",
                        "refunds in 28 days are {v:.1f}x the merchant's usual number (threshold {t:g}x)", 0.15),
    "registry_change": ("{v:.0f}天前变更法定代表人或减少注册资本(回看{t:.0f}天)",
                        "legal representative changed or registered capital cut {v:.0f} days ago "
                        "(look-back {t:.0f} days)", 0.20),
}


def reading(code: str, value: float, threshold: float, score: float) -> dict[str, Any]:
    zh, en, weight = READINGS[code]
    return {"code": code, "value": value, "threshold": threshold, "score": score,
            "explanation_zh": zh.format(v=value, t=threshold), "explanation_en": en.format(v=value, t=threshold),
            "weight": weight, "contribution": round(weight * score, 4)}


def figures(balance: float, sales: float, redeemed: float, refunds: float, complaints: int,
            custody: float | None, required: float | None) -> dict[str, float | None]:
    return {"prepaid_balance": balance, "sales_28d": sales, "redeemed_28d": redeemed, "refunds_28d": refunds,
            "complaints_28d": float(complaints), "custody_balance": custody, "custody_required": required}


def warning(
    merchant_id: str, day: date, transition: str, previous: str | None, level: str, score: float, *,
    name: str, district: str, industry: str, indicators: list[dict[str, Any]],
    numbers: dict[str, float | None] | None, chain_id: str | None = None,
) -> dict[str, Any]:
    raised = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=SHANGHAI)
    return {
        "warning_id": warning_id(merchant_id, day.isoformat(), transition, previous, level),
        "merchant_id": merchant_id, "level": level, "previous_level": previous, "transition": transition,
        "score": score, "raised_at": raised.isoformat(),
        "emitted_at": (raised + timedelta(minutes=3)).isoformat(), "indicators": indicators,
        "industry": industry, "district": district, "thresholds_version": "builtin-1",
        "merchant_name": name, "chain_id": chain_id, "figures": numbers,
    }


def seed(engine: Engine, today: date) -> dict[str, str]:
    """A realistic fortnight in Fengxian: wang's queue with a case at each level, an unassigned
    chain and gym, one of li's; every warning read a few minutes after its day closed."""
    cases = CaseSettings(session_secret="browser-test")
    policy, response = AlertPolicy(), cases.response_policy()
    tokens: dict[str, str] = {}
    with engine.begin() as conn:
        for username, role, name in (("wang", "handler", "王芳"), ("li", "handler", "李强"),
                                     ("chen", "supervisor", "陈静"), ("zhao", "viewer", "赵敏")):
            tokens[username] = store.add_user(conn, username, role, display_name=name, password=PASSWORD)
        boss = store.get_user(conn, "chen")
        assert boss is not None
        for town, handler in (("南桥镇", "wang"), ("奉城镇", "wang"), ("庄行镇", "wang"), ("四团镇", "li")):
            store.add_routing_rule(conn, boss, handler, district=town, industry=None, now=store_now(today, 30))

    d = lambda ago: today - timedelta(days=ago)  # noqa: E731 - event-time days, counted back
    gym = dict(name="力健身(南桥店)", district="南桥镇", industry="fitness")
    salon = dict(name="悦发造型(奉城店)", district="奉城镇", industry="hairdressing")
    yoga = dict(name="青松瑜伽馆", district="南桥镇", industry="fitness")
    nails = dict(name="阿芳美甲美睫", district="庄行镇", industry="beauty")
    spin = dict(name="动感单车工作室", district="柘林镇", industry="fitness")
    tuan = dict(name="四团蓝海游泳健身", district="四团镇", industry="fitness")
    gym_numbers = figures(386_400, 12_800, 0, 1_200, 9, 48_000, 154_560)
    records = [
        # wang's top case: a gym going silent, escalating to red over a fortnight (overdue).
        warning("m-gym", d(13), "raised", None, "blue", 0.33, **gym, numbers=figures(402_000, 31_500, 9_800, 0, 1, 48_000, 160_800),
                indicators=[reading("liability_months", 9.6, 8, 0.16), reading("redemption_decline", 0.61, 0.75, 0.35)]),
        warning("m-gym", d(9), "escalated", "blue", "yellow", 0.52, **gym, numbers=figures(397_200, 22_100, 4_100, 0, 3, 48_000, 158_880),
                indicators=[reading("redemption_decline", 0.31, 0.75, 0.74), reading("liability_months", 14.2, 8, 0.52),
                            reading("custody_coverage", 0.30, 0.9, 0.86)]),
        warning("m-gym", d(6), "escalated", "yellow", "orange", 0.68, **gym, numbers=figures(391_000, 16_400, 600, 400, 6, 48_000, 156_400),
                indicators=[reading("silence", 6, 5, 0.17), reading("custody_coverage", 0.31, 0.9, 0.85),
                            reading("complaint_surge", 9, 6, 0.25), reading("liability_months", 21.5, 8, 0.84)]),
        warning("m-gym", d(3), "escalated", "orange", "red", 0.86, **gym, numbers=gym_numbers,
                indicators=[reading("silence", 13, 5, 0.8), reading("custody_coverage", 0.31, 0.9, 0.85),
                            reading("complaint_surge", 21, 6, 0.83), reading("liability_months", 26.1, 8, 1.0)]),
        # wang's: a hair salon pushing discounted cards (already taken up).
        warning("m-salon", d(4), "raised", None, "orange", 0.71, **salon, numbers=figures(265_300, 118_000, 21_400, 0, 0, 30_000, 106_120),
                indicators=[reading("sales_surge", 4.2, 2.5, 0.88), reading("deep_discount_share", 0.64, 0.4, 0.8),
                            reading("custody_coverage", 0.28, 0.9, 0.87)]),
        # wang's: a yoga studio in slow decline.
        warning("m-yoga", d(2), "raised", None, "yellow", 0.49, **yoga, numbers=figures(88_600, 6_200, 7_900, 1_800, 2, 40_000, 35_440),
                indicators=[reading("redemption_decline", 0.42, 0.75, 0.6), reading("refund_pressure", 3.4, 3, 0.13)]),
        # wang's: yellow a month ago, calmer since (now blue, still open).
        warning("m-nails", d(24), "raised", None, "yellow", 0.47, **nails, numbers=figures(54_000, 3_900, 5_100, 0, 3, 21_600, 21_600),
                indicators=[reading("complaint_surge", 8, 6, 0.33), reading("registry_change", 12, 90, 0.5)]),
        warning("m-nails", d(8), "de-escalated", "yellow", "blue", 0.34, **nails, numbers=figures(51_200, 4_600, 7_300, 0, 1, 21_600, 20_480),
                indicators=[reading("registry_change", 28, 90, 0.5)]),
        # Unassigned: a beauty chain's three stores collapsing together, and a spinning studio.
        *[warning(f"m-mlrs-{i}", d(ago), "raised", None, level, score, name=f"美丽人生美容({store_name})",
                  district=town, industry="beauty", chain_id="CH-MLRS", numbers=figures(*n),
                  indicators=[reading("custody_coverage", cov, 0.9, 0.95), reading("registry_change", 19, 90, 0.5),
                              reading("sales_surge", 3.1, 2.5, 0.3)])
          for i, (ago, level, score, store_name, town, cov, n) in enumerate([
              (5, "orange", 0.66, "金海店", "金海街道", 0.05, (512_000, 96_000, 18_000, 0, 4, 25_000, 204_800)),
              (2, "red", 0.83, "西渡店", "西渡街道", 0.0, (431_500, 88_300, 9_200, 3_500, 11, 0, 172_600)),
              (1, "orange", 0.63, "奉浦店", "奉浦街道", 0.12, (298_000, 61_000, 14_400, 0, 2, 30_000, 119_200)),
          ], start=1)],
        warning("m-spin", d(1), "raised", None, "orange", 0.64, **spin, numbers=figures(143_000, 52_000, 8_800, 0, 1, None, None),
                indicators=[reading("sales_surge", 3.6, 2.5, 0.73), reading("deep_discount_share", 0.55, 0.4, 0.5)]),
        # li's.
        warning("m-tuan", d(2), "raised", None, "orange", 0.62, **tuan, numbers=figures(207_000, 15_000, 2_100, 6_300, 7, 80_000, 82_800),
                indicators=[reading("refund_pressure", 5.2, 3, 0.55), reading("complaint_surge", 12, 6, 0.5)]),
    ]
    opened: dict[str, str] = {}
    for r in sorted(records, key=lambda r: r["raised_at"]):
        received = datetime.fromisoformat(r["raised_at"]) + timedelta(minutes=4)
        with engine.begin() as conn:
            result = store.ingest_warning(conn, r, policy=policy, response=response,
                                          webhook_targets=[("hotline-12345", ["orange", "red"])],
                                          public_url="http://yujing.example", now=received)
        if result.case_id:
            opened.setdefault(r["merchant_id"], result.case_id)
    with engine.begin() as conn:
        wang = store.get_user(conn, "wang")
        assert wang is not None
        store.act(conn, opened["m-salon"], wang, "take", now=store_now(today, 3))
        store.act(conn, opened["m-salon"], wang, "note", now=store_now(today, 3),
                  note="已约谈店长,要求3日内补足存管资金并暂停赠送促销")
    return {**{f"case:{k}": v for k, v in opened.items()}, **{f"token:{k}": v for k, v in tokens.items()}}


def store_now(today: date, days_ago: int) -> datetime:
    """10:30 in Shanghai, ``days_ago`` days before ``today``."""
    day = today - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, 10, 30, tzinfo=SHANGHAI)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(engine: Engine) -> Iterator[str]:
    """The real app (API and inbox) under uvicorn on a free port, in a background thread."""
    app = create_app(Settings(topics=TopicNames(feedback=FEEDBACK_TOPIC)),
                     CaseSettings(session_secret="browser-test"), engine)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(15)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    selenium = pytest.importorskip("selenium", reason="selenium is a test dependency: pip install -e '.[test]'")
    del selenium
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Debian's browser and driver, never a downloaded one: selenium-manager stays offline.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--lang=zh-CN", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir(tmp_path: Path) -> Path:
    if os.environ.get("YUJING_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        return ROOT / "docs"
    return tmp_path


def full_page_screenshot(driver: Any, path: Path, width: int = 1280) -> None:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, min(max(height + 100, 800), 4000))
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, 800)


def click_and_wait_for_new_page(driver: Any, wait: Any, element: Any) -> None:
    """Click something that loads a new page; return only once the old page is gone.

    Waiting straight for text on the next page can read the old page's element
    while it is being replaced (Chrome then raises "Node ... does not belong to
    the document", which no wait ignores). Waiting for the old root to go stale
    first makes every later lookup see the new page.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    old_root = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait.until(ec.staleness_of(old_root))


def test_a_handler_works_the_top_case_of_their_queue_in_a_browser(
    engine: Engine, server: str, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    today = datetime.now(SHANGHAI).date()
    seeded = seed(engine, today)
    wait = WebDriverWait(browser, 15)
    shots = screenshot_dir(tmp_path)

    # Not logged in: the inbox leads to the login form, which leads back to the inbox.
    browser.get(f"{server}/inbox")
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    assert "/login" in browser.current_url
    browser.find_element(By.ID, "username").send_keys("wang")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_wait_for_new_page(browser, wait, browser.find_element(By.ID, "login-submit"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=section-mine]")))
    assert browser.current_url.endswith("/inbox")
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=current-user]").get_attribute("data-username") == "wang"

    # wang's queue: a case at each level, most severe first; the chain and the gym to take.
    mine = browser.find_elements(By.CSS_SELECTOR, "[data-testid=section-mine] [data-testid=case-row]")
    assert [r.get_attribute("data-level") for r in mine] == ["red", "orange", "yellow", "blue"]
    unassigned = browser.find_elements(By.CSS_SELECTOR, "[data-testid=section-unassigned] [data-testid=case-row]")
    assert [r.get_attribute("data-case-id") for r in unassigned] == [seeded["case:m-mlrs-1"], seeded["case:m-spin"]]
    top = mine[0]
    case_id = top.get_attribute("data-case-id")
    assert case_id == seeded["case:m-gym"]
    assert "已超时" in top.text and "力健身(南桥店)" in top.text and "健身" in top.text
    browser.save_screenshot(str(shots / "case-inbox.png"))

    # The case page: history with the reasons in Chinese, the merchant's figures.
    click_and_wait_for_new_page(browser, wait, top.find_element(By.CSS_SELECTOR, "[data-testid=case-link]"))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=case-header]")))
    assert browser.current_url.endswith(f"/cases/{case_id}")
    history = browser.find_elements(By.CSS_SELECTOR, "[data-testid=warning-row]")
    assert len(history) == 3  # yellow, orange, red (the blue came before the case)
    assert "已连续13天无核销且仍有预收余额,超过5天阈值" in history[0].text
    figures_text = browser.find_element(By.CSS_SELECTOR, "[data-testid=figures]").text
    assert "¥386,400" in figures_text and "31%" in figures_text
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=other-warnings]")  # the blue watch warning

    # Add a note.
    note = "已电话联系店长,称因装修暂停营业两周,承诺下周一恢复核销"
    browser.find_element(By.ID, "note-text").send_keys(note)
    click_and_wait_for_new_page(browser, wait, browser.find_element(By.ID, "note-button"))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=flash]"), "备注已添加"))
    notes = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "[data-testid=audit-note]")]
    assert note in notes
    full_page_screenshot(browser, shots / "case-page.png")

    # Resolve it as a false alarm.
    Select(browser.find_element(By.ID, "resolve-disposition")).select_by_value("false_alarm")
    resolution = "现场核查:门店装修,会员课程已顺延并公示,预收资金无异常,判定误报"
    browser.find_element(By.ID, "resolve-note").send_keys(resolution)
    click_and_wait_for_new_page(browser, wait, browser.find_element(By.ID, "resolve-button"))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "[data-testid=flash]"), "已办结"))
    status = browser.find_element(By.CSS_SELECTOR, "[data-testid=case-status]")
    assert status.get_attribute("data-status") == "resolved"
    assert "误报" in browser.find_element(By.CSS_SELECTOR, "[data-testid=case-disposition]").text
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid=form-resolve]")

    # The JSON API agrees: resolved as a false alarm, the note in the trail, feedback queued.
    def api(user: str, path: str) -> Any:
        response = httpx.get(f"{server}{path}", headers={"Authorization": f"Bearer {seeded['token:' + user]}"})
        response.raise_for_status()
        return response.json()

    case = api("wang", f"/api/cases/{case_id}")
    assert case["status"] == "resolved" and case["disposition"] == "false_alarm"
    assert case["resolution"] == resolution and case["assignee"] == "wang"
    trail = [(e["actor"], e["action"], e["note"]) for e in case["events"] if e["actor"] == "wang"]
    assert trail == [("wang", "note", note), ("wang", "resolve", resolution)]
    feedback = [d for d in api("chen", "/api/deliveries?kind=feedback") if d["case_id"] == case_id]
    assert len(feedback) == 1
    assert feedback[0]["status"] == "pending" and feedback[0]["target"] == FEEDBACK_TOPIC
    assert feedback[0]["payload"]["merchant_id"] == "m-gym"
    assert feedback[0]["payload"]["disposition"] == "false_alarm"
    assert feedback[0]["payload"]["decided_by_role"] == "handler"

    # Logging out ends access.
    click_and_wait_for_new_page(browser, wait, browser.find_element(By.CSS_SELECTOR, "[data-testid=logout]"))
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    browser.get(f"{server}/cases/{case_id}")
    wait.until(ec.presence_of_element_located((By.ID, "login-form")))
    assert "力健身" not in browser.page_source
