"""The field app in real headless Chromium at 768 × 1024 with touch: installable, and a report written offline
arrives once when the network is back (select with -k offline or -k browser)."""

from __future__ import annotations

import io

import pytest
import requests
from test_browser import CHROMIUM, app_url, browser  # noqa: F401 - the server and Chromium, as fixtures

from gridwatch import services

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)"),
]

TABLET = {"width": 768, "height": 1024}


def _jpeg(width: int = 1600, height: int = 1200) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), "olive").save(buf, "JPEG")
    return buf.getvalue()


def _api(app_url: str) -> tuple[str, dict]:
    token = requests.post(app_url + "api/v1/sessions", timeout=30,
                          json={"username": "inspector", "password": services.DEMO_PASSWORD}).json()["token"]
    return app_url + "api/v1", {"Authorization": f"Bearer {token}"}


def test_the_field_app_installs_and_a_report_written_offline_arrives_once(app_url, browser):  # noqa: F811
    api, head = _api(app_url)
    task_id = requests.get(api + "/tasks", params={"mine": "true", "limit": 1}, headers=head,
                           timeout=30).json()["tasks"][0]["id"]
    place = requests.get(api + f"/tasks/{task_id}", headers=head, timeout=30).json()["place"]
    context = browser.new_context(viewport=TABLET, has_touch=True, locale="zh-CN", permissions=["geolocation"],
                                  geolocation={"latitude": place["lat"], "longitude": place["lng"],
                                               "accuracy": 12})
    try:
        page = context.new_page()
        page.goto(app_url + "field/")
        # installable: the manifest is linked and valid, the service worker registers and controls the app
        manifest = page.evaluate("""async () => {
            const link = document.querySelector('link[rel=manifest]');
            return (await fetch(link.href)).json();
        }""")
        assert manifest["name"] == "网格巡查" and manifest["start_url"] == "/field/"
        assert manifest["display"] == "standalone"
        assert {i["sizes"] for i in manifest["icons"]} == {"192x192", "512x512"}
        assert page.evaluate("navigator.serviceWorker.ready.then(r => Boolean(r.active))") is True

        # sign in online: the tasks are loaded into IndexedDB
        page.fill("#username", "inspector")
        page.fill("#password", services.DEMO_PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_selector(f"[data-task='{task_id}']", timeout=60000)

        # offline: open the task, write a report with a photo and the GPS fix, saved to the outbox at once
        context.set_offline(True)
        page.wait_for_selector("#net.offline")
        page.click(f"[data-task='{task_id}']")
        page.select_option("#finding", index=1)
        finding = page.eval_on_selector("#finding", "s => s.value")
        page.fill("#note", "离线写的上报")
        page.set_input_files("#photo", files=[{"name": "field.jpg", "mimeType": "image/jpeg", "buffer": _jpeg()}])
        page.wait_for_selector("#photo-note:has-text('已选 1 张照片')")
        page.wait_for_selector("#fix:has-text('位置')")
        page.click("#save")
        page.wait_for_selector("[data-status='waiting']")
        page.close()

        # a new page of the same context, still offline: the app opens from the cache, the report waits
        page = context.new_page()
        page.goto(app_url + "field/")
        page.wait_for_selector(f"[data-task='{task_id}']")
        page.click("#to-outbox")
        page.wait_for_selector("[data-status='waiting']")  # the outbox is drawn from IndexedDB, not at once
        assert page.locator("[data-status='waiting']").count() == 1

        # the network is back: it is sent, once
        context.set_offline(False)
        page.wait_for_selector("[data-status='sent']", timeout=60000)
        assert page.locator("[data-status='waiting']").count() == 0
        page.click("#sync")  # sending again changes nothing
        page.wait_for_timeout(1000)
    finally:
        context.close()

    events = requests.get(api + f"/tasks/{task_id}", headers=head, timeout=30).json()["events"]
    reports = [e for e in events if e["to_state"] == "reported"]
    assert len(reports) == 1
    detail = reports[0]["detail"]
    assert detail["finding"] == finding and detail["note"] == "离线写的上报"
    assert len(detail["photos"]) == 1
    assert abs(detail["gps"]["lat"] - place["lat"]) < 1e-6 and detail["gps"]["accuracy_m"] == 12
    assert "observed_at" in detail["gps"]
