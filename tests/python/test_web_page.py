"""The operator's web page of `swarmctl serve`, in Debian's headless Chromium driven by Selenium and Debian's
chromium-driver (no browser download): sign-in, live job and fleet updates over server-sent events, a job's video,
the costs CSV against the API, a script in a prompt, console errors, and no request leaving loopback.

Screenshots at 1280 and 390 px wide go to tests/python/artifacts/ (gitignored)."""

import csv
import hashlib
import io
import json
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import Serve, wait_until

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CLIENT_KEY = "client-key-for-web-tests"
WORKER_KEY = "worker-key-for-web-tests"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def api(server, method, path, body=None, key=CLIENT_KEY, raw=None, headers=None):
    """One call to serve's API; returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"{server.base}{path}", data=data, method=method, headers=dict(headers or {}))
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        status = error.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install -y chromium chromium-driver")
    data_dir = tmp_path_factory.mktemp("swarm-web")
    serve = Serve(data_dir, env={"SWARM_API_KEYS": CLIENT_KEY, "SWARM_WORKER_KEYS": WORKER_KEY}, key=CLIENT_KEY)
    yield serve
    serve.stop()


def chromium(scripts=True):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
        "--disable-features=Translate,OptimizationHints,MediaRouter", "--window-size=1280,900",
    ]:
        options.add_argument(argument)
    if not scripts:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


class Requests:
    """Every request the browser sent, read from its performance log (Network.requestWillBeSent)."""

    def __init__(self):
        self.urls = []

    def collect(self, driver):
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") == "Network.requestWillBeSent":
                self.urls.append(message["params"]["request"]["url"])

    def leaving_loopback(self):
        bad = []
        for url in self.urls:
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme in ("data", "blob", "about", "chrome", "devtools"):
                continue
            if parsed.hostname not in LOOPBACK_HOSTS:
                bad.append(url)
        return bad


@pytest.fixture(scope="module")
def requests_seen():
    return Requests()


@pytest.fixture(scope="module")
def console(browser):
    """Console messages at SEVERE level (errors, CSP violations, failed loads), gathered over the whole module."""
    errors = []

    def drain():
        errors.extend(entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE")
        return errors

    return drain


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1280, 390):
        driver.set_window_size(width, 900)
        time.sleep(0.2)
        # The page must hold at this width: nothing wider than the window but the tables' own scrolling regions.
        overflow = driver.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{name} at {width} px overflows by {overflow} px"
        driver.save_screenshot(str(ARTIFACTS / f"{name}-{width}.png"))
    driver.set_window_size(1280, 900)


def wait_text(driver, selector, text, timeout=20):
    WebDriverWait(driver, timeout).until(
        lambda d: any(element.text == text for element in d.find_elements(By.CSS_SELECTOR, selector)),
        f"{selector} to read {text}")


def sign_in(driver, server):
    driver.get(f"{server.base}/")
    assert driver.current_url.endswith("/signin"), "a server with client keys sends a stranger to sign in"
    field = driver.find_element(By.ID, "key")
    assert driver.find_element(By.CSS_SELECTOR, "label[for=key]").text
    field.send_keys(CLIENT_KEY)
    field.submit()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "nav a[aria-current=page]"))
    cookie = driver.get_cookie("swarm_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict"


def take_job(server, worker):
    status, job = api(server, "GET", f"/v2/swarmui/job-take/{worker}?gpu=SIM&job_in_progress=0", key=WORKER_KEY)
    assert status == 200, job
    return job


def upload_output(server, worker, job_id, name, content_type, data):
    """The worker protocol's upload: ask for a target, PUT the bytes, complete; returns the output file entry."""
    status, target = api(server, "POST", f"/v2/swarmui/job-upload/{worker}/{job_id}",
                         {"name": name, "size": len(data), "content_type": content_type}, key=WORKER_KEY)
    assert status == 200, target
    put = urllib.request.Request(target["url"], data=data, method="PUT", headers=target.get("headers") or {})
    with urllib.request.urlopen(put, timeout=30) as response:
        assert response.status in (200, 201, 204)
    status, stored = api(server, "POST", f"/v2/swarmui/job-upload/{worker}/{job_id}/complete", {"target": target, "parts": []}, key=WORKER_KEY)
    assert status == 200, stored
    return {"name": name, "content_type": content_type, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "url": stored["url"]}


def test_sign_in_then_a_job_goes_live_from_queue_to_completed_and_its_video_opens(server, browser, requests_seen, console):
    sign_in(browser, server)
    screenshot(browser, "overview")
    status, submitted = api(server, "POST", "/v2/swarmui/run", {"input": {"prompt": "a lighthouse at dusk, slow pan"}})
    assert status == 200
    job_id = submitted["id"]

    browser.get(f"{server.base}/jobs/{job_id}")
    wait_text(browser, "[data-job-status]", "IN_QUEUE")
    WebDriverWait(browser, 10).until(lambda d: "on" in d.find_element(By.ID, "live").text, "the event stream to open")
    browser.execute_script("window.__notReloaded = true")

    job = take_job(server, "web-worker-1")
    assert job["id"] == job_id
    wait_text(browser, "[data-job-status]", "IN_PROGRESS")
    video = b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096)
    file = upload_output(server, "web-worker-1", job_id, "clip.mp4", "video/mp4", video)
    status, _ = api(server, "POST", f"/v2/swarmui/job-done/web-worker-1/{job_id}?gpu=SIM&isStream=false",
                    {"output": {"files": [file]}}, key=WORKER_KEY)
    assert status == 200

    wait_text(browser, "[data-job-status]", "COMPLETED")
    assert browser.execute_script("return window.__notReloaded") is True, "the status changed without a reload"
    # Its outputs come in with the final status: a player and a download link.
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.TAG_NAME, "video"), "the video player")
    player = browser.find_element(By.TAG_NAME, "video")
    source = player.get_attribute("src")
    assert urllib.parse.urlparse(source).hostname == "127.0.0.1"
    link = browser.find_element(By.CSS_SELECTOR, "a[download]")
    assert link.get_attribute("href") == source
    fetched = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer().then(b => done([r.status, r.headers.get('content-type'), b.byteLength])))", source)
    assert fetched == [200, "video/mp4", len(video)]
    screenshot(browser, "job")
    requests_seen.collect(browser)


def test_the_jobs_list_updates_live_and_filters(server, browser, requests_seen):
    browser.get(f"{server.base}/jobs")
    WebDriverWait(browser, 10).until(lambda d: "on" in d.find_element(By.ID, "live").text)
    status, submitted = api(server, "POST", "/v2/swarmui/run", {"input": {"prompt": "a new job while the list is open"}})
    assert status == 200
    # A job submitted after the page loaded appears as a row without a reload.
    WebDriverWait(browser, 20).until(
        lambda d: any(row.get_attribute("data-job-row") == submitted["id"] for row in d.find_elements(By.CSS_SELECTOR, "[data-job-row]")))
    # Filter with the keyboard: the status select, then the form's button.
    browser.get(f"{server.base}/jobs?status=COMPLETED&since=")
    statuses = {element.text for element in browser.find_elements(By.CSS_SELECTOR, "[data-job-status]")}
    assert statuses == {"COMPLETED"}
    screenshot(browser, "jobs")
    requests_seen.collect(browser)


def test_a_script_in_a_prompt_does_not_run(server, browser, requests_seen):
    prompt = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    status, submitted = api(server, "POST", "/v2/swarmui/run", {"input": {"prompt": prompt}})
    assert status == 200
    for path in ("/jobs", f"/jobs/{submitted['id']}"):
        browser.get(f"{server.base}{path}")
        time.sleep(0.5)
        assert browser.execute_script("return window.__pwned") is None
        # As text: whole in the list, inside the input's JSON (quotes escaped) on the job's page.
        assert "<script>window.__pwned = 1</script><img src=x onerror=" in browser.find_element(By.TAG_NAME, "main").text
        assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")
    requests_seen.collect(browser)


def test_the_fleets_download_progress_moves_live(server, browser, requests_seen):
    def ping(done):
        report = {"stage": "DOWNLOADING", "download": {"done_bytes": done, "total_bytes": 40_000_000_000}, "log_tail": ["fetching wan2.2 <gguf>"]}
        status, _ = api(server, "POST", "/v2/swarmui/ping/swarm-web-1?gpu=SIM", report, key=WORKER_KEY)
        assert status == 200

    ping(4_000_000_000)
    browser.get(f"{server.base}/fleet")
    WebDriverWait(browser, 10).until(lambda d: "on" in d.find_element(By.ID, "live").text)
    bar = browser.find_element(By.CSS_SELECTOR, "progress[data-progress='swarm-web-1']")
    assert float(bar.get_attribute("value")) == pytest.approx(10.0)
    browser.execute_script("window.__notReloaded = true")
    seen = []
    for done in (12_000_000_000, 26_000_000_000):
        ping(done)
        expected = done / 400_000_000
        WebDriverWait(browser, 10).until(
            lambda d: float(d.find_element(By.CSS_SELECTOR, "progress[data-progress='swarm-web-1']").get_attribute("value")) == pytest.approx(expected))
        seen.append(browser.find_element(By.CSS_SELECTOR, "[data-percent='swarm-web-1']").text)
    assert seen == ["30.0%", "65.0%"]
    assert browser.execute_script("return window.__notReloaded") is True
    screenshot(browser, "fleet")
    # Actions are confirmed on a page of their own before anything changes.
    browser.find_element(By.XPATH, "//button[normalize-space()='Down…']").click()
    WebDriverWait(browser, 10).until(lambda d: "/fleet/confirm" in d.current_url)
    assert "Set the fleet to 0 instances?" in browser.find_element(By.TAG_NAME, "main").text
    screenshot(browser, "fleet-confirm")
    requests_seen.collect(browser)


def test_the_costs_csv_export_sums_to_the_api(server, browser, requests_seen):
    today = time.strftime("%Y-%m-%d", time.gmtime())
    week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 6 * 86400))
    status, report = api(server, "GET", f"/v2/swarmui/costs?group=day&from={week_ago}&to={today}")
    browser.get(f"{server.base}/costs?from={week_ago}&to={today}")
    screenshot(browser, "costs")
    requests_seen.collect(browser)
    assert status == 200, report
    link = browser.find_element(By.CSS_SELECTOR, "a[data-export]")
    href = link.get_attribute("href")
    assert "format=csv" in href and f"from={week_ago}" in href and f"to={today}" in href
    text = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text().then(t => done([r.status, t])))", href)
    assert text[0] == 200, text
    rows = list(csv.DictReader(io.StringIO(text[1])))
    header = list(rows[0]) if rows else []
    assert {"day", "spend_usd", "fal_equivalent_usd"} <= set(header), f"the CSV's columns: {header}"
    days = [row for row in rows if row["day"].count("-") == 2]
    assert len(days) == len(report["days"])
    for column, total in (("spend_usd", "spend_usd"), ("fal_equivalent_usd", "fal_equivalent_usd")):
        assert sum(float(row[column]) for row in days) == pytest.approx(report["totals"][total], abs=0.01)
    assert browser.find_element(By.CSS_SELECTOR, "svg.cost-chart")


def test_sign_in_and_the_tables_work_with_scripts_off(server):
    driver = chromium(scripts=False)
    try:
        sign_in(driver, server)
        driver.get(f"{server.base}/jobs?since=")
        statuses = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "[data-job-status]")]
        assert "COMPLETED" in statuses and "IN_QUEUE" in statuses, statuses
        assert driver.find_element(By.ID, "live").text == "", "no script ran"
        driver.get(f"{server.base}/fleet")
        assert driver.find_element(By.CSS_SELECTOR, "progress[data-progress='swarm-web-1']").get_attribute("value") == "65"
    finally:
        driver.quit()


def test_keyboard_reaches_every_control_with_a_visible_focus(server, browser):
    browser.get(f"{server.base}/fleet")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("\t")
    first = browser.switch_to.active_element
    assert first.get_attribute("class") == "skip", "the first Tab lands on the skip link"
    outline = first.value_of_css_property("outline-style")
    assert outline != "none", "focus is visible"
    reached = set()
    for _ in range(40):
        browser.switch_to.active_element.send_keys("\t")
        element = browser.switch_to.active_element
        reached.add((element.tag_name, element.text or element.get_attribute("id") or ""))
    labels = {text for _, text in reached}
    assert {"Overview", "Jobs", "Fleet", "Costs", "Sign out", "up-count"} <= labels
    for control in browser.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select"):
        control_id = control.get_attribute("id")
        assert control_id and browser.find_elements(By.CSS_SELECTOR, f"label[for='{control_id}']"), control_id


def test_no_console_errors_and_no_request_left_loopback(server, browser, requests_seen, console):
    requests_seen.collect(browser)
    assert requests_seen.urls, "the performance log recorded the page's requests"
    assert requests_seen.leaving_loopback() == []
    errors = console()
    assert errors == [], errors


def test_sign_out_ends_the_session(server, browser):
    browser.get(f"{server.base}/")
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait_until(lambda: browser.current_url.endswith("/signin"), 10, "the sign-in page")
    browser.get(f"{server.base}/jobs")
    assert browser.current_url.endswith("/signin")


def test_the_fleet_view_follows_emulated_instances_booting_and_replaces_one(tmp_path, browser):
    """A real emulated fleet (vast_fleet.py): serve rents an instance whose worker downloads its models slowly; the Fleet
    view shows vast's GPU, the download bar moving without a reload, then READY; Replace, confirmed, destroys it and serve
    rents another. The server has no client keys: on loopback the page is open."""
    from vast_fleet import Fleet

    with Fleet(tmp_path, seconds_per_file=6, serve_args=["--fleet-size", "1"]) as fleet:
        base = fleet.serve.base

        def instance_rows(driver):
            driver.get(f"{base}/fleet")
            return driver.find_elements(By.CSS_SELECTOR, "progress[data-progress^='swarm-']")

        WebDriverWait(browser, 90, poll_frequency=1).until(instance_rows, "serve to rent an instance")
        label = browser.find_element(By.CSS_SELECTOR, "progress[data-progress^='swarm-']").get_attribute("data-progress")
        WebDriverWait(browser, 10).until(lambda d: "on" in d.find_element(By.ID, "live").text)
        browser.execute_script("window.__notReloaded = true")
        readings = []

        def progressed(driver):
            stage = driver.find_element(By.CSS_SELECTOR, f"[data-stage='{label}']").text
            value = float(driver.find_element(By.CSS_SELECTOR, f"progress[data-progress='{label}']").get_attribute("value"))
            if stage == "DOWNLOADING" and (not readings or readings[-1] != value):
                readings.append(value)
            return stage == "READY"

        WebDriverWait(browser, 120, poll_frequency=0.2).until(progressed, "the instance to download its models and be READY")
        assert browser.execute_script("return window.__notReloaded") is True
        assert len(readings) >= 2 and readings == sorted(readings) and readings[-1] > readings[0], readings
        screenshot(browser, "fleet-emulated")

        browser.get(f"{base}/fleet")
        row = browser.find_element(By.XPATH, f"//tr[th[contains(., '{label}')]]")
        assert "vast running" in row.text, row.text
        old = [instance["id"] for instance in fleet.vast.live()]
        row.find_element(By.XPATH, ".//button[starts-with(normalize-space(), 'Replace')]").click()
        WebDriverWait(browser, 10).until(lambda d: "/fleet/confirm" in d.current_url)
        browser.find_element(By.XPATH, "//button[normalize-space()='Confirm replace']").click()
        WebDriverWait(browser, 30).until(lambda d: "done=" in d.current_url)
        assert "Destroy of instance" in browser.find_element(By.CSS_SELECTOR, ".notice").text
        wait_until(lambda: fleet.vast.live() and all(instance["id"] not in old for instance in fleet.vast.live()), 90,
                   "the instance destroyed and another rented")
