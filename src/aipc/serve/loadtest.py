"""Load-test any OpenAI-compatible server (aipc serve, vLLM, llama.cpp server, Ollama).

Definitions (as vLLM's ``bench serve``; stated in the output):
* TTFT — request sent to first token received (includes queueing and prefill);
* TPOT — (time of last token − TTFT) / (output tokens − 1): the first token is excluded;
* ITL — gaps between consecutive streamed chunks;
* e2e — request sent to stream finished;
* goodput — requests per second that met every SLO given (TTFT, TPOT, e2e).

Load: a fixed number of concurrent clients, each sending its next request when the last finished,
or open-loop Poisson arrivals at a given rate. Both stop at ``num_requests`` or ``duration_s``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from aipc.errors import AipcError

DEFINITIONS = {
    "ttft_s": "request sent to first token (includes queueing and prefill)",
    "tpot_s": "(last token time - TTFT) / (output tokens - 1); excludes the first token",
    "itl_s": "gap between consecutive streamed chunks",
    "e2e_s": "request sent to stream end",
    "goodput_rps": "requests per second meeting every SLO given",
}
PROMPT_WORDS = ("the quick brown fox jumps over the lazy dog while a small robot counts tokens on a local "
                "machine and measures how fast the answers come back ").split()


@dataclass(kw_only=True)
class LoadConfig:
    url: str
    model: str | None = None           # None: the first id from GET /v1/models
    endpoint: str = "completions"      # completions | chat
    prompt: str | None = None
    prompt_words: int = 32
    max_tokens: int = 64
    ignore_eos: bool = False
    temperature: float = 0.0
    concurrency: int | None = 1        # closed loop; None when rate is set
    rate: float | None = None          # requests/s, Poisson
    num_requests: int = 32
    duration_s: float | None = None
    timeout_s: float = 120.0
    api_key: str | None = None
    slo_ttft_s: float | None = None
    slo_tpot_s: float | None = None
    slo_e2e_s: float | None = None
    seed: int = 0


@dataclass
class Sample:
    ok: bool
    status: int
    error: str | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    output_tokens: int = 0
    start_s: float = 0.0               # since the level started


def base_url(url: str, allow_remote: bool = False) -> str:
    """'http(s)://host:port[/prefix]' without a trailing '/v1'; refuses non-loopback hosts unless allowed."""
    from aipc.serve.auth import is_loopback

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AipcError(f"'{url}' is not an http(s) URL; pass e.g. http://127.0.0.1:8000")
    if not allow_remote and not is_loopback(parts.hostname):
        raise AipcError(f"'{parts.hostname}' is not a loopback address; load-testing another machine needs "
                        "--allow-remote (and its owner's permission)")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"


def percentiles(xs: list[float]) -> dict | None:
    """mean, p50, p90, p95, p99, max of ``xs`` (None when empty)."""
    if not xs:
        return None
    from aipc.measure import percentile

    s = sorted(xs)
    return {"mean": sum(s) / len(s), "p50": percentile(s, 50), "p90": percentile(s, 90),
            "p95": percentile(s, 95), "p99": percentile(s, 99), "max": s[-1]}


def _prompt(cfg: LoadConfig) -> str:
    if cfg.prompt:
        return cfg.prompt
    return " ".join(PROMPT_WORDS[i % len(PROMPT_WORDS)] for i in range(cfg.prompt_words))


def _payload(cfg: LoadConfig, model: str) -> dict:
    body = {"model": model, "max_tokens": cfg.max_tokens, "temperature": cfg.temperature, "stream": True,
            "stream_options": {"include_usage": True}}
    if cfg.ignore_eos:
        body["ignore_eos"] = True
    if cfg.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": _prompt(cfg)}]
    else:
        body["prompt"] = _prompt(cfg)
    return body


def _headers(cfg: LoadConfig) -> dict:
    return {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}


async def _one(client, cfg: LoadConfig, base: str, body: dict, t_level: float) -> Sample:
    path = "/v1/chat/completions" if cfg.endpoint == "chat" else "/v1/completions"
    t0 = time.perf_counter()
    s = Sample(ok=False, status=0, start_s=t0 - t_level)
    times: list[float] = []
    try:
        async with client.stream("POST", base + path, json=body, headers=_headers(cfg), timeout=cfg.timeout_s) as r:
            s.status = r.status_code
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                try:
                    s.error = json.loads(text)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    s.error = text[:200]
                return s
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                msg = json.loads(data)
                if msg.get("error"):
                    s.error = str(msg["error"].get("message", msg["error"]))
                    return s
                if msg.get("usage"):
                    s.prompt_tokens = msg["usage"].get("prompt_tokens")
                    s.output_tokens = msg["usage"].get("completion_tokens") or 0
                for ch in msg.get("choices") or []:
                    if cfg.endpoint == "chat":
                        delta = ch.get("delta") or {}
                        piece = None if "role" in delta else delta.get("content")  # the role chunk is no token
                    else:
                        piece = ch.get("text")
                    if piece is not None and (piece or ch.get("finish_reason") is None):
                        times.append(time.perf_counter())
    except Exception as e:  # network errors, timeouts, bad JSON: a failed request, not a crash
        s.error = f"{type(e).__name__}: {e}"[:200]
        return s
    end = time.perf_counter()
    s.e2e_s = end - t0
    if times:
        s.ttft_s = times[0] - t0
        s.itl_s = [b - a for a, b in zip(times, times[1:])]
    if not s.output_tokens:
        s.output_tokens = len(times)
    if s.ttft_s is not None and s.output_tokens > 1:
        s.tpot_s = (times[-1] - t0 - s.ttft_s) / (s.output_tokens - 1)
    s.ok = True
    return s


async def _level(cfg: LoadConfig, base: str, model: str) -> tuple[list[Sample], float]:
    import httpx

    body = _payload(cfg, model)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        t_level = time.perf_counter()
        deadline = t_level + cfg.duration_s if cfg.duration_s else None
        samples: list[Sample] = []
        started = 0

        def more() -> bool:
            return started < cfg.num_requests and (deadline is None or time.perf_counter() < deadline)

        if cfg.rate is None:
            async def worker():
                nonlocal started
                while more():
                    started += 1
                    samples.append(await _one(client, cfg, base, body, t_level))

            await asyncio.gather(*(worker() for _ in range(cfg.concurrency or 1)))
        else:
            rng = random.Random(cfg.seed)
            tasks = []
            next_t = t_level
            while more():
                started += 1
                tasks.append(asyncio.create_task(_one(client, cfg, base, body, t_level)))
                next_t += rng.expovariate(cfg.rate)
                await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
            samples = list(await asyncio.gather(*tasks))
        return samples, time.perf_counter() - t_level


def _meets(s: Sample, cfg: LoadConfig) -> bool:
    checks = ((cfg.slo_ttft_s, s.ttft_s), (cfg.slo_tpot_s, s.tpot_s), (cfg.slo_e2e_s, s.e2e_s))
    return s.ok and all(lim is None or (v is not None and v <= lim) for lim, v in checks)


def summarize(samples: list[Sample], wall_s: float, cfg: LoadConfig) -> dict:
    """Throughput, latency percentiles and goodput of one load level."""
    ok = [s for s in samples if s.ok]
    out_tokens = sum(s.output_tokens for s in ok)
    in_tokens = sum(s.prompt_tokens or 0 for s in ok)
    good = [s for s in ok if _meets(s, cfg)]
    errors: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            key = f"{s.status}: {s.error}" if s.status else str(s.error)
            errors[key] = errors.get(key, 0) + 1
    return {
        "requests": len(samples), "requests_ok": len(ok), "requests_failed": len(samples) - len(ok),
        "duration_s": wall_s, "request_throughput_rps": len(ok) / wall_s if wall_s else None,
        "output_tokens": out_tokens, "prompt_tokens": in_tokens,
        "output_tokens_per_s": out_tokens / wall_s if wall_s else None,
        "total_tokens_per_s": (out_tokens + in_tokens) / wall_s if wall_s else None,
        "ttft_s": percentiles([s.ttft_s for s in ok if s.ttft_s is not None]),
        "tpot_s": percentiles([s.tpot_s for s in ok if s.tpot_s is not None]),
        "itl_s": percentiles([x for s in ok for x in s.itl_s]),
        "e2e_s": percentiles([s.e2e_s for s in ok if s.e2e_s is not None]),
        "goodput_rps": len(good) / wall_s if wall_s else None,
        "slo_attainment": len(good) / len(samples) if samples else None,
        "slo": {"ttft_s": cfg.slo_ttft_s, "tpot_s": cfg.slo_tpot_s, "e2e_s": cfg.slo_e2e_s},
        "errors": errors,
    }


async def _model_id(cfg: LoadConfig, base: str) -> str:
    import httpx

    async with httpx.AsyncClient(trust_env=False) as c:
        try:
            r = await c.get(base + "/v1/models", headers=_headers(cfg), timeout=10.0)
        except httpx.HTTPError as e:
            raise AipcError(f"cannot reach {base}/v1/models ({type(e).__name__}); is the server running?") from None
    if r.status_code == 401:
        raise AipcError(f"{base} wants an API key; pass --api-key (or set AIPC_API_KEY)")
    try:
        return r.json()["data"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise AipcError(f"{base}/v1/models answered {r.status_code} without a model list; pass --model") from None


def run(cfg: LoadConfig, levels: list[dict], *, allow_remote: bool = False) -> list[dict]:
    """Run each load level (``{"concurrency": c}`` or ``{"rate": r}``) in turn; one result dict each."""
    base = base_url(cfg.url, allow_remote)
    model = cfg.model or asyncio.run(_model_id(cfg, base))
    results = []
    for lv in levels:
        c = LoadConfig(**{**asdict(cfg), "model": model, "concurrency": lv.get("concurrency"), "rate": lv.get("rate")})
        samples, wall = asyncio.run(_level(c, base, model))
        mode = f"concurrency={c.concurrency}" if c.rate is None else f"rate={c.rate:g}/s"
        results.append({"scenario": mode, "target": base, "model": model, "endpoint": c.endpoint,
                        "workload": {"mode": "concurrency" if c.rate is None else "rate", "concurrency": c.concurrency,
                                     "rate_rps": c.rate, "num_requests": c.num_requests, "duration_s": c.duration_s,
                                     "prompt_words": None if c.prompt else c.prompt_words, "max_tokens": c.max_tokens,
                                     "ignore_eos": c.ignore_eos, "temperature": c.temperature, "endpoint": c.endpoint},
                        "metrics": summarize(samples, wall, c), "samples": [asdict(s) for s in samples]})
    return results


def store(results: list[dict], db_path=None) -> list[str]:
    """Save each level as one ``loadtest`` run in the results database; returns the run ids."""
    import platform

    from aipc.bench.store import ResultsDB

    db = ResultsDB(db_path)
    ids = []
    for r in results:
        ids.append(db.add_run(kind="loadtest", scenario=r["scenario"], device=None, model=r["model"],
                              workload=r["workload"], metrics=r["metrics"], samples=r["samples"],
                              context={"target": r["target"], "tool": "aipc loadtest", "client_host": platform.node(),
                                       "definitions": DEFINITIONS}))
    return ids
