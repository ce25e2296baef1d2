"""The web page's weight and time to first render, with an empty store and with 10,000 jobs in it, side by side in
one run: `swarmctl serve` on loopback, Debian's headless Chromium through Selenium (see benchmarks/web-page.sh).

Prints, per view: bytes transferred (the HTML, the stylesheet, the script; the event stream is not counted), the
server's time to the HTML's last byte, and the browser's first contentful paint, each the median of 5 cold loads."""

import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from conftest import Serve  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

JOBS = int(os.environ.get("WEB_BENCH_JOBS", "10000"))
LOADS = 5
VIEWS = ["/", "/jobs", "/fleet", "/costs"]


def seed(serve, count):
    prompt = "a slow dolly shot across a rain-soaked neon street at night, reflections, cinematic, 720p"
    for start in range(0, count, 5000):
        batch = {"jobs": [{"input": {"prompt": f"{prompt} #{start + index}"}} for index in range(min(5000, count - start))]}
        request = urllib.request.Request(f"{serve.base}/v2/swarmui/run-batch", data=json.dumps(batch).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                     "--window-size=1280,900", "--disable-cache"]:
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")), options=options)


MEASURE = """
const navigation = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource').filter(r => !r.name.includes('/events'));
const paint = performance.getEntriesByName('first-contentful-paint')[0];
return {
  html: navigation.transferSize, assets: resources.reduce((sum, r) => sum + r.transferSize, 0),
  ttlb: navigation.responseEnd - navigation.requestStart, fcp: paint ? paint.startTime : null,
};
"""


def measure(driver, base):
    rows = {}
    for view in VIEWS:
        samples = []
        for _ in range(LOADS):
            driver.execute_cdp_cmd("Network.clearBrowserCache", {})
            driver.get(base + view)
            time.sleep(0.3)
            samples.append(driver.execute_script(MEASURE))
        rows[view] = {key: statistics.median(s[key] for s in samples if s[key] is not None) for key in samples[0]}
    return rows


def main():
    results = {}
    for label, count in (("empty store", 0), (f"{JOBS} jobs", JOBS)):
        data = Path(tempfile.mkdtemp(prefix="web-bench-"))
        serve = Serve(data)
        driver = browser()
        try:
            driver.execute_cdp_cmd("Network.enable", {})
            seed(serve, count)
            results[label] = measure(driver, serve.base)
        finally:
            driver.quit()
            serve.stop()
    labels = list(results)
    print(f"{'view':8} {'store':>12} {'HTML B':>8} {'CSS+JS B':>9} {'total B':>8} {'HTML ms':>8} {'FCP ms':>7}")
    for view in VIEWS:
        for label in labels:
            row = results[label][view]
            print(f"{view:8} {label:>12} {row['html']:8.0f} {row['assets']:9.0f} {row['html'] + row['assets']:8.0f} {row['ttlb']:8.1f} {row['fcp']:7.1f}")
        first, second = (results[label][view] for label in labels)
        print(f"{'':8} {'ratio':>12} {'':8} {'':9} {(second['html'] + second['assets']) / (first['html'] + first['assets']):8.2f} "
              f"{second['ttlb'] / max(first['ttlb'], 0.1):8.2f} {second['fcp'] / max(first['fcp'], 0.1):7.2f}")


if __name__ == "__main__":
    main()
