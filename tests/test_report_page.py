"""aipc report's page in headless Chromium: no console errors, no request outside the file, every
chart drawn (its screenshot region is not blank), key numbers in the page text.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4
out, NUL-separated JSON), so no port and no extra package is needed; screenshots are decoded by the
small PNG reader below. A negative control (an external image and a blank chart) proves the checks
can fail. Needs Debian's ``chromium``: installed here when running as root in CI, skipped otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe"]


def _chromium() -> str | None:
    found = shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium") or None
    if found or not (os.environ.get("CI") and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return found
    subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True, capture_output=True, timeout=600)
    return shutil.which("chromium")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
                                                         "the CI script installs it")


# ------------------------------------------------------------------------------ PNG decoding

def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit non-interlaced RGB/RGBA/grey PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and interlace == 0 and ctype in (0, 2, 4, 6), (depth, ctype, interlace)
            ch = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw, stride, out, prev = zlib.decompress(idat), w * ch, bytearray(), bytearray(w * ch)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return w, h, ch, bytes(out)


def ink(png: bytes) -> tuple[float, int]:
    """(fraction of pixels that are not near-white, number of distinct colours) of a screenshot."""
    w, h, ch, px = decode_png(png)
    colours, dark = set(), 0
    for i in range(0, len(px), ch * 2):  # every other pixel is plenty
        rgb = px[i:i + 3] if ch >= 3 else px[i:i + 1] * 3
        colours.add(rgb)
        dark += min(rgb) < 235
    return dark / (len(px) / (ch * 2)), len(colours)


# ------------------------------------------------------------------------------ DevTools over a pipe

class Browser:
    def __init__(self, profile_dir: str):
        r_in, w_in = os.pipe()    # we write, chromium reads fd 3
        r_out, w_out = os.pipe()  # chromium writes fd 4, we read
        a, b = os.dup2(r_in, 40), os.dup2(w_out, 41)  # above 4, so the child's dup2 never clobbers them

        def child():
            os.dup2(40, 3)
            os.dup2(41, 4)

        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                     preexec_fn=child, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for fd in (r_in, w_out, a, b):
            os.close(fd)
        self.w, self.r, self.buf, self.n, self.events = w_in, r_out, b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.n += 1
        msg = {"id": self.n, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.n

    def wait(self, pred, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if "id" not in m:
                    self.events.append(m)
                if pred(m):
                    return m
            ready, _, _ = select.select([self.r], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self.buf += chunk

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        i = self.send(method, params, session)
        m = self.wait(lambda m: m.get("id") == i)
        if "error" in m:
            raise RuntimeError(f"{method}: {m['error']}")
        return m["result"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        finally:
            os.close(self.w)
            os.close(self.r)


def inspect_page(path: Path, tmp: Path) -> dict:
    """Load the page from disk; return its text, requests, console errors and each chart's ink."""
    b = Browser(str(tmp / "chromium-profile"))
    try:
        target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            b.call(f"{domain}.enable", session=s)
        b.call("Emulation.setDeviceMetricsOverride", {"width": 1000, "height": 900, "deviceScaleFactor": 1,
                                                      "mobile": False}, s)
        url = path.resolve().as_uri()
        b.call("Page.navigate", {"url": url}, s)
        b.wait(lambda m: m.get("method") == "Page.loadEventFired")
        js = ("JSON.stringify({text: document.body.innerText, charts: [...document.querySelectorAll('figure.chart')]"
              ".map(f => {const r = f.querySelector('svg').getBoundingClientRect(); return {id: f.dataset.chart, "
              "x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};})})")
        page = json.loads(b.call("Runtime.evaluate", {"expression": js, "returnByValue": True}, s)["result"]["value"])
        for c in page["charts"]:
            shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
                "x": c["x"], "y": c["y"], "width": max(c["w"], 1), "height": max(c["h"], 1), "scale": 1}}, s)
            c["ink"], c["colours"] = ink(base64.b64decode(shot["data"]))
        pdf = base64.b64decode(b.call("Page.printToPDF", {"printBackground": True}, s)["data"])
        page["pdf_pages"] = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
        b.call("Runtime.evaluate", {"expression": "1"}, s)  # flush events queued during the screenshots
    finally:
        b.close()
    ev = b.events
    requests = [e["params"]["request"]["url"] for e in ev if e.get("method") == "Network.requestWillBeSent"]
    errors = [e["params"]["entry"]["text"] for e in ev if e.get("method") == "Log.entryAdded"
              and e["params"]["entry"]["level"] in ("error", "warning")]
    errors += [str(e["params"].get("args")) for e in ev if e.get("method") == "Runtime.consoleAPICalled"
               and e["params"]["type"] in ("error", "warning", "assert")]
    errors += [e["params"]["exceptionDetails"].get("text", "exception") for e in ev
               if e.get("method") == "Runtime.exceptionThrown"]
    failed = [e["params"].get("errorText") for e in ev if e.get("method") == "Network.loadingFailed"]
    return {"url": url, "text": page["text"], "charts": page["charts"], "requests": requests, "errors": errors,
            "failed": failed, "pdf_pages": page["pdf_pages"]}


def check(result: dict) -> list[str]:
    """Every problem the page has (empty: the page is good)."""
    problems = [f"request outside the file: {u}" for u in result["requests"] if u != result["url"]]
    problems += [f"console: {e}" for e in result["errors"]]
    problems += [f"failed load: {e}" for e in result["failed"]]
    for c in result["charts"]:
        if c["w"] < 100 or c["h"] < 100 or c["ink"] < 0.01 or c["colours"] < 3:
            problems.append(f"chart {c['id']} looks blank: {c['w']:.0f}x{c['h']:.0f} px, ink {c['ink']:.3f}, "
                            f"{c['colours']} colours")
    return problems


# ------------------------------------------------------------------------------ the tests

@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="aipc-report-page-") as d:
        yield Path(d)


def test_fixture_page_in_chromium(workdir):
    from test_report_render import fixture_data

    from aipc.report.html import write_report

    write_report(fixture_data(), workdir / "fx")
    res = inspect_page(workdir / "fx" / "index.html", workdir)
    assert check(res) == []
    assert 3 <= res["pdf_pages"] <= 20, res["pdf_pages"]  # it prints (A4, print stylesheet)
    assert sorted(c["id"] for c in res["charts"]) == sorted(
        ["roofline", "tokens", "speedup", "memory", "speed", "cost-months", "cost-utilization"])
    for key in ("132 TFLOP/s", "165 TFLOP/s", "4,520 tokens/s", "R = 116.80", "$12.34/month", "$765/month",
                "break-even 4.2 months", "EIA Electric Power Annual 2023", "aipc report -o out"):
        assert key in res["text"], key


def test_negative_control_is_caught(workdir):
    """An external image and an empty chart must be reported: the checks can fail."""
    d = workdir / "bad"
    d.mkdir()
    (d / "index.html").write_text(
        '<!doctype html><html><head><meta charset="utf-8"><title>bad</title></head><body><p>x</p>'
        '<img src="http://example.invalid/pixel.png" width="1" height="1">'
        '<figure class="chart" data-chart="empty"><svg width="600" height="300"></svg></figure></body></html>')
    problems = check(inspect_page(d / "index.html", workdir))
    assert any("request outside the file: http://example.invalid/pixel.png" in p for p in problems), problems
    assert any("chart empty looks blank" in p for p in problems), problems


def test_generated_report_in_chromium(workdir, tiny_llama_dir):
    """The real command end to end (profile, bench, estimate, decide) on a tiny model, then the page."""
    from helpers import run_cli

    out = workdir / "real"
    code, stdout, err = run_cli("report", "--model", str(tiny_llama_dir), "-o", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["index"] == str(out / "index.html") and summary["page_bytes"] <= 5 * 2**20
    assert os.path.getsize(out / "index.html") == summary["page_bytes"]
    assert {k: v["available"] for k, v in summary["sections"].items()} == \
        {"machine": True, "bench": True, "estimates": True, "decision": True}, summary["sections"]
    data = json.loads((out / "report.json").read_text())
    assert {r["scenario"] for r in data["bench"]["results"] if r["device"] == "cpu"} == {"prefill", "decode", "train"}
    assert all((out / f).is_file() for f in ("needs.json", "workload-1.json", "workload-2.json", "workload-3.json"))
    res = inspect_page(out / "index.html", workdir)
    assert check(res) == []
    assert {"roofline", "tokens", "memory", "speed"} <= {c["id"] for c in res["charts"]}
    cpu = next(r for r in data["bench"]["results"] if r["device"] == "cpu" and r["scenario"] == "prefill")
    tps = cpu["tokens_per_s"]
    shown = f"{tps:,.0f} tokens/s" if tps >= 1000 else f"{tps:.3g} tokens/s"
    assert shown in res["text"]  # a measured number from report.json is on the page
    assert data["machine"]["cpu"]["model"] in res["text"]
