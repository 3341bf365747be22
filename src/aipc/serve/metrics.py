"""Prometheus metrics for ``aipc serve`` in the text exposition format (version 0.0.4), no dependency.

Exposed at ``/metrics``: request counts by endpoint and status, prompt and generated tokens, TTFT,
time per output token and end-to-end latency histograms, running/waiting requests and decode batch
sizes. TTFT includes queueing and prefill; TPOT excludes the first token.
"""

from __future__ import annotations

import threading

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _labels(names: tuple[str, ...], values: tuple) -> str:
    if not names:
        return ""
    esc = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc)) + "}"


def _num(x: float) -> str:
    if x == float("inf"):
        return "+Inf"
    return repr(float(x)) if isinstance(x, float) and not float(x).is_integer() else str(int(x))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.labelnames = name, help, labels
        self.values: dict[tuple, float] = {} if labels else {(): 0.0}
        self.lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels) -> None:
        key = tuple(labels.get(n, "") for n in self.labelnames)
        with self.lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels) -> float:
        return self.values.get(tuple(labels.get(n, "") for n in self.labelnames), 0.0)

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self.lock:
            out += [f"{self.name}{_labels(self.labelnames, k)} {_num(v)}" for k, v in sorted(self.values.items())]
        return out


class Gauge:
    def __init__(self, name: str, help: str, fn):
        self.name, self.help, self.fn = name, help, fn

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {_num(self.fn())}"]


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...]):
        self.name, self.help = name, help
        self.buckets = tuple(sorted(buckets)) + (float("inf"),)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0
        self.lock = threading.Lock()

    def observe(self, x: float) -> None:
        with self.lock:
            self.sum += x
            self.count += 1
            for i, b in enumerate(self.buckets):
                if x <= b:
                    self.counts[i] += 1
                    break

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self.lock:
            acc = 0
            for b, c in zip(self.buckets, self.counts):
                acc += c
                out.append(f'{self.name}_bucket{{le="{_num(b)}"}} {acc}')
            out += [f"{self.name}_sum {_num(self.sum)}", f"{self.name}_count {self.count}"]
        return out


class ServerMetrics:
    """All of the server's metrics; ``render()`` gives the /metrics body."""

    def __init__(self, load_fn=lambda: (0, 0)):
        self.requests = Counter("aipc_requests_total", "HTTP requests by endpoint and status code.", ("endpoint", "status"))
        self.prompt_tokens = Counter("aipc_prompt_tokens_total", "Prompt tokens processed.")
        self.generation_tokens = Counter("aipc_generation_tokens_total", "Tokens generated.")
        self.finished = Counter("aipc_request_finish_total", "Finished generations by reason.", ("reason",))
        self.ttft = Histogram("aipc_time_to_first_token_seconds", "Time to first token (includes queueing and prefill).",
                              LATENCY_BUCKETS)
        self.tpot = Histogram("aipc_time_per_output_token_seconds",
                              "Mean time per output token of a request, first token excluded.", TPOT_BUCKETS)
        self.e2e = Histogram("aipc_e2e_request_latency_seconds", "End-to-end generation latency.", LATENCY_BUCKETS)
        self.batch = Histogram("aipc_decode_batch_size", "Requests decoded together per engine step.", BATCH_BUCKETS)
        self.running = Gauge("aipc_requests_running", "Requests holding a KV-cache slot.", lambda: load_fn()[0])
        self.waiting = Gauge("aipc_requests_waiting", "Requests queued for a slot.", lambda: load_fn()[1])

    def observe_batch(self, n: int) -> None:
        self.batch.observe(n)

    def observe_request(self, req) -> None:
        """Token counts and latencies of a finished engine request."""
        self.prompt_tokens.inc(len(req.prompt_ids))
        self.generation_tokens.inc(req.output_tokens)
        self.finished.inc(reason=req.finish_reason or "unknown")
        if req.t_first is not None:
            self.ttft.observe(req.t_first - req.t_submit)
            if req.output_tokens > 1 and req.t_done is not None:
                self.tpot.observe((req.t_done - req.t_first) / (req.output_tokens - 1))
        if req.t_done is not None:
            self.e2e.observe(req.t_done - req.t_submit)

    def render(self) -> str:
        parts = (self.requests, self.prompt_tokens, self.generation_tokens, self.finished, self.ttft, self.tpot,
                 self.e2e, self.batch, self.running, self.waiting)
        return "\n".join(line for m in parts for line in m.render()) + "\n"
