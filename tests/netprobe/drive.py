"""Run one aipc verb with the network probe loaded (``python drive.py SPEC.json``).

SPEC: ``{"argv": [...], "out": DIR, "timeout": s, "serve_port": N or null}``. The verb runs with
``PYTHONPATH`` pointing at this folder (so sitecustomize.py loads in it and in its Python children) and
``AIPC_PROBE_OUT=DIR``; this driver itself is not probed. For ``serve`` it waits for /health, sends one
completion and then SIGTERM. Writes ``DIR/driver.json`` (exit code, stderr tail, what the request got).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _serve(proc: subprocess.Popen, port: int, timeout: float) -> dict:
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        return {"served": "never became healthy"}
    body = json.dumps({"model": "probe", "prompt": "hello", "max_tokens": 4}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            got = {"served": r.status}
    except OSError as e:
        got = {"served": f"request failed: {e}"}
    time.sleep(0.8)  # let the probe's mid-work round run while the server is up
    proc.send_signal(signal.SIGTERM)
    return got


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(spec["out"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "AIPC_PROBE_OUT": str(out)}
    proc = subprocess.Popen(spec["argv"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    extra = _serve(proc, spec["serve_port"], spec["timeout"]) if spec.get("serve_port") else {}
    try:
        _, err = proc.communicate(timeout=spec["timeout"])
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    (out / "driver.json").write_text(json.dumps({"returncode": proc.returncode, "stderr": err[-3000:], **extra}))


if __name__ == "__main__":
    main()
