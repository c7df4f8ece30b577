"""The comparison report opens from disk in headless Chromium with no console errors, every image
loads, and its tables have one row per variant. Skipped only where Chromium, chromedriver or
selenium is absent."""
import shutil
import tempfile
from pathlib import Path

import pytest

from vaelab.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
VARIANTS = ["vae", "s-vae"]


def _driver():
    if not Path(CHROMIUM).is_file() or not Path(CHROMEDRIVER).is_file():
        pytest.skip(f"headless Chromium not available ({CHROMIUM} / {CHROMEDRIVER} not found)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    profile = tempfile.mkdtemp(prefix="vaelab-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts), profile


@pytest.fixture(scope="module")
def report(tmp_path_factory, mnist5k_quick_classifier):
    """A tiny study: 2 variants (S-VAE on the 2-sphere, so its latent map is the sphere), 1 epoch."""
    out = tmp_path_factory.mktemp("browser") / "study"
    rc = main(["compare", "--variants", ",".join(VARIANTS), "--dataset", "mnist-5k", "--backbone", "small", "--epochs", "1",
               "--latent-dim", "4", "--set", "s-vae:latent_dim=3", "--n-samples", "20", "--iwae-k", "2", "--iwae-n", "10",
               "--map-points", "60", "--no-progress", "--out", str(out)])
    assert rc == 0
    return out / "report" / "index.html"


def test_report_opens_without_errors_and_every_image_loads(report):
    driver, profile = _driver()
    try:
        driver.get(report.resolve().as_uri())
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert severe == [], severe
        imgs = driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        # per variant: samples, reconstructions, map and loss curve; a traversal for the Gaussian one; the bar chart
        assert len(imgs) == 4 * len(VARIANTS) + 1 + 1, imgs
        assert all(complete and width > 0 for _, complete, width in imgs), imgs
        rows = driver.execute_script(
            "return Array.from(document.querySelectorAll('#table2-results tbody tr')).map(r => r.dataset.variant)")
        assert rows == VARIANTS
        n_metric_rows = driver.execute_script("return document.querySelectorAll('#metrics-results tbody tr').length")
        assert n_metric_rows == len(VARIANTS)
        # an absent metric says why on hover; the paper's value sits beside ours
        na = driver.execute_script("return Array.from(document.querySelectorAll('td.na')).map(td => td.title)")
        assert any("does not assign clusters" in t for t in na)
        assert "78.6" in driver.find_element("id", "table2-results").text
        text = driver.find_element("tag name", "body").text
        assert "latent_kind is 'sphere'" in text and "vaelab compare --variants vae,s-vae" in text
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
