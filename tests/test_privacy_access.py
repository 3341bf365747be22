"""API keys (revocable from a file), per-key rate limits and the audit log."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import stat
import threading

import pytest

from aipc.errors import AipcError
from aipc.privacy.access import (
    AuditLog, KeyStore, Limits, RateLimiter, hash_key, new_api_key, parse_bearer, read_audit,
)

ALICE, BOB, CAROL = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef00", "carol-key-0123456789abcdef"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


# --- KeyStore ----------------------------------------------------------------------------------

def test_line_format_with_plain_and_hashed_keys(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(f"# team keys\nalice:{ALICE}\n\nbob:{hash_key(BOB)}\n")
    ks = KeyStore(f)
    assert ks.names() == ["alice", "bob"]
    assert ks.authenticate(ALICE) == "alice"
    assert ks.authenticate(BOB) == "bob"  # the file held only its digest
    assert ks.authenticate(hash_key(BOB)) is None  # the digest is not itself a key
    for wrong in (None, "", ALICE[:-1], ALICE + "x", ALICE.upper(), "alice"):
        assert ks.authenticate(wrong) is None


def test_json_and_toml_formats_carry_limits(tmp_path):
    j = tmp_path / "keys.json"
    j.write_text(json.dumps([{"name": "alice", "key": ALICE, "requests_per_min": 5},
                             {"name": "bob", "sha256": hash_key(BOB)[7:], "tokens_per_min": 1000}]))
    ks = KeyStore(j)
    assert ks.authenticate(BOB) == "bob"
    assert ks.limits_for("alice") == Limits(5.0, None)
    assert ks.limits_for("bob") == Limits(None, 1000.0)
    j2 = tmp_path / "map.json"
    j2.write_text(json.dumps({"carol": CAROL}))
    assert KeyStore(j2).authenticate(CAROL) == "carol"
    t = tmp_path / "keys.toml"
    t.write_text(f'[[keys]]\nname = "alice"\nkey = "{ALICE}"\nrequests_per_min = 2\n')
    ks = KeyStore(t)
    assert ks.authenticate(ALICE) == "alice" and ks.limits_for("alice").requests_per_min == 2


@pytest.mark.parametrize("text,msg", [
    ("alice", "expected name:key"),
    ("alice:short", "at least 16"),
    (f"alice:{ALICE}\nalice:{BOB}", "appears twice"),
    (f"bad name:{ALICE}", "key name"),
    ("alice:sha256:xyz", "malformed sha256"),
])
def test_bad_key_files_are_one_line_errors(tmp_path, text, msg):
    f = tmp_path / "keys.txt"
    f.write_text(text)
    with pytest.raises(AipcError, match=msg) as exc:
        KeyStore(f)
    assert "\n" not in str(exc.value)
    assert ALICE not in str(exc.value) and BOB not in str(exc.value)  # never echo a key


def test_bad_json_limits(tmp_path):
    f = tmp_path / "keys.json"
    f.write_text(json.dumps([{"name": "a", "key": ALICE, "requests_per_min": -1}]))
    with pytest.raises(AipcError, match="positive number"):
        KeyStore(f)
    f.write_text(json.dumps([{"name": "a", "key": ALICE, "rpm": 3}]))
    with pytest.raises(AipcError, match="unknown field"):
        KeyStore(f)


def test_revocation_and_new_keys_take_effect_without_restart(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    clock = Clock()
    ks = KeyStore(f, check_interval_s=1.0, clock=clock)
    assert ks.authenticate(BOB) == "bob"
    f.write_text(f"alice:{ALICE}\ncarol:{CAROL}\n")  # revoke bob, add carol (same size: mtime alone may not tell)
    clock.t += 1.0
    assert ks.authenticate(BOB) is None
    assert ks.authenticate(CAROL) == "carol"
    assert ks.authenticate(ALICE) == "alice"


def test_broken_or_deleted_key_file_fails_closed(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(f"alice:{ALICE}\n")
    ks = KeyStore(f, check_interval_s=0)
    f.write_text(f"alice:{ALICE}\nbroken line\n")
    assert ks.authenticate(ALICE) is None and "expected name:key" in ks.last_error
    f.write_text(f"alice:{ALICE}\n")
    assert ks.authenticate(ALICE) == "alice" and ks.last_error is None
    f.unlink()
    assert ks.authenticate(ALICE) is None and "cannot be read" in ks.last_error


def test_helpers():
    k = new_api_key()
    assert k.startswith("aipc-") and len(k) >= 40 and k != new_api_key()
    assert parse_bearer(f"Bearer {ALICE}") == ALICE
    assert parse_bearer(f"bearer   {ALICE} ") == ALICE
    assert parse_bearer("Basic abc") is None and parse_bearer("Bearer ") is None and parse_bearer(None) is None


# --- RateLimiter -------------------------------------------------------------------------------

def test_requests_per_minute_bucket():
    clock = Clock()
    rl = RateLimiter(requests_per_min=3, clock=clock)
    assert [rl.acquire("alice").allowed for _ in range(4)] == [True, True, True, False]
    d = rl.acquire("alice")
    assert not d.allowed and d.retry_after_s == pytest.approx(20.0) and "requests per minute" in d.reason
    assert rl.acquire("bob").allowed  # buckets are per key
    clock.t += 20.0  # refill rate = 3/60 per s -> one request back after 20 s
    assert rl.acquire("alice").allowed
    assert not rl.acquire("alice").allowed


def test_tokens_per_minute_with_reserve_and_settle():
    clock = Clock()
    rl = RateLimiter(tokens_per_min=600, clock=clock)  # 10 tokens/s
    assert rl.acquire("a", tokens=500).allowed
    d = rl.acquire("a", tokens=200)
    assert not d.allowed and d.retry_after_s == pytest.approx(10.0) and "tokens per minute" in d.reason
    rl.charge("a", -300)  # the request used 200 of the 500 it reserved
    assert rl.acquire("a", tokens=200).allowed
    rl.charge("a", 400)  # a completion that ran 400 over its estimate: 200 - 400 -> 200 tokens of debt
    d = rl.acquire("a", tokens=1)
    assert not d.allowed and d.retry_after_s == pytest.approx((1 + 200) / 10)
    too_big = rl.acquire("b", tokens=601)
    assert not too_big.allowed and math.isinf(too_big.retry_after_s) and "more than the limit" in too_big.reason


def test_per_key_limits_from_the_key_store(tmp_path):
    f = tmp_path / "keys.json"
    f.write_text(json.dumps([{"name": "small", "key": ALICE, "requests_per_min": 1}, {"name": "big", "key": BOB}]))
    ks = KeyStore(f)
    rl = RateLimiter(requests_per_min=5, limits_for=ks.limits_for, clock=Clock())
    assert [rl.acquire("small").allowed for _ in range(2)] == [True, False]
    assert [rl.acquire("big").allowed for _ in range(6)] == [True] * 5 + [False]


def test_rate_limiter_is_exact_under_threads():
    rl = RateLimiter(requests_per_min=100, clock=lambda: 0.0)
    got = []

    def worker():
        got.extend(rl.acquire("k").allowed for _ in range(50))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(got) == 100 and len(got) == 400


# --- AuditLog ----------------------------------------------------------------------------------

def test_audit_record_fields_without_content(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.record(key_name="alice", client="127.0.0.1:5555", endpoint="/v1/chat/completions", status=200,
               prompt_tokens=12, completion_tokens=30, latency_s=0.25, model="tiny",
               prompt="my secret medical question", completion="the secret answer")
    (rec,) = read_audit(tmp_path / "audit.jsonl")
    assert {k: rec[k] for k in ("key_name", "client", "endpoint", "status", "prompt_tokens", "completion_tokens", "latency_s")} == {
        "key_name": "alice", "client": "127.0.0.1:5555", "endpoint": "/v1/chat/completions", "status": 200,
        "prompt_tokens": 12, "completion_tokens": 30, "latency_s": 0.25}
    assert rec["time"].endswith("+00:00")
    raw = (tmp_path / "audit.jsonl").read_text()
    assert "secret" not in raw and "prompt\"" not in raw
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600


def test_audit_content_only_when_opted_in(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl", log_content=True)
    log.record(key_name="bob", client="::1", endpoint="/v1/completions", status=429,
               prompt="line1\nline2 \u2028 \"quoted\"", completion=None, error="rate limited")
    (rec,) = read_audit(tmp_path / "a.jsonl")
    assert rec["prompt"] == "line1\nline2 \u2028 \"quoted\"" and rec["status"] == 429
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 1  # content never breaks the line


def test_audit_record_takes_no_key_argument(tmp_path):
    with pytest.raises(TypeError):
        AuditLog(tmp_path / "a.jsonl").record(key_name="a", client=None, endpoint="/", status=200, api_key=ALICE)


def _write_many(path: str, worker: int, n: int) -> None:
    log = AuditLog(path, log_content=True)
    for i in range(n):
        log.record(key_name=f"w{worker}", client="127.0.0.1", endpoint="/v1/x", status=200,
                   prompt_tokens=i, prompt="x" * (i * 37 % 5000))


def test_audit_concurrent_processes_and_threads_lose_and_mix_nothing(tmp_path):
    path = str(tmp_path / "audit.jsonl")
    ctx = multiprocessing.get_context("fork") if hasattr(os, "fork") else multiprocessing.get_context()
    procs = [ctx.Process(target=_write_many, args=(path, w, 150)) for w in range(3)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=_write_many, args=(path, 10 + w, 150)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    recs = read_audit(path)  # every line parses: no interleaving
    assert len(recs) == 6 * 150
    for w in (0, 1, 2, 10, 11, 12):
        assert sorted(r["prompt_tokens"] for r in recs if r["key_name"] == f"w{w}") == list(range(150))


def test_audit_log_folder_must_exist(tmp_path):
    with pytest.raises(AipcError, match="does not exist"):
        AuditLog(tmp_path / "nope" / "audit.jsonl")
