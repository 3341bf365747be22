"""Load-test arithmetic and guards, without a server."""

from __future__ import annotations

import pytest

from aipc.errors import AipcError
from aipc.serve.loadtest import LoadConfig, Sample, base_url, percentiles, summarize
from helpers import run_cli


def test_base_url_normalizes_and_refuses_remote():
    assert base_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000"
    assert base_url("http://localhost:9/") == "http://localhost:9"
    assert base_url("http://[::1]:8000") == "http://[::1]:8000"
    with pytest.raises(AipcError, match="--allow-remote"):
        base_url("http://10.0.0.5:8000")
    with pytest.raises(AipcError, match="--allow-remote"):
        base_url("https://api.example.com/v1")
    assert base_url("https://api.example.com/v1", allow_remote=True) == "https://api.example.com"
    with pytest.raises(AipcError, match="http"):
        base_url("ftp://127.0.0.1")


def test_percentiles_interpolate():
    p = percentiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert p["p50"] == 3.0 and p["p90"] == pytest.approx(4.6) and p["mean"] == 3.0 and p["max"] == 5.0
    assert percentiles([]) is None


def test_summary_throughput_goodput_and_errors():
    cfg = LoadConfig(url="http://127.0.0.1:1", slo_ttft_s=0.5, slo_tpot_s=0.05)
    samples = [
        Sample(ok=True, status=200, ttft_s=0.2, tpot_s=0.04, e2e_s=1.0, itl_s=[0.04] * 9, prompt_tokens=5, output_tokens=10),
        Sample(ok=True, status=200, ttft_s=0.9, tpot_s=0.04, e2e_s=1.5, itl_s=[0.04] * 9, prompt_tokens=5, output_tokens=10),
        Sample(ok=True, status=200, ttft_s=0.1, tpot_s=0.10, e2e_s=2.0, itl_s=[0.1] * 9, prompt_tokens=5, output_tokens=10),
        Sample(ok=False, status=429, error="rate limit"),
    ]
    m = summarize(samples, 2.0, cfg)
    assert m["requests"] == 4 and m["requests_ok"] == 3 and m["requests_failed"] == 1
    assert m["output_tokens_per_s"] == 15.0 and m["total_tokens_per_s"] == 22.5
    assert m["request_throughput_rps"] == 1.5
    assert m["goodput_rps"] == 0.5 and m["slo_attainment"] == 0.25  # only the first meets both SLOs
    assert m["errors"] == {"429: rate limit": 1}
    assert m["itl_s"]["p50"] == pytest.approx(0.04)


@pytest.mark.parametrize("args, msg", [
    (["http://192.168.1.20:8000"], "--allow-remote"),
    (["http://127.0.0.1:1", "-c", "0"], "--concurrency"),
    (["http://127.0.0.1:1", "--rate", "-2"], "--rate"),
    (["http://127.0.0.1:1", "-c", "2", "--rate", "1"], "not both"),
    (["http://127.0.0.1:1", "--endpoint", "embeddings"], "--endpoint"),
    (["http://127.0.0.1:1", "--slo-ttft", "0"], "--slo-ttft"),
])
def test_cli_bad_input(args, msg):
    code, out, err = run_cli("loadtest", *args)
    assert code == 2 and msg in err and "Traceback" not in err


def test_cli_unreachable_server_is_a_clean_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run_cli("loadtest", f"http://127.0.0.1:{port}", "-n", "1", "--no-store")
    assert code == 2 and "cannot reach" in err
