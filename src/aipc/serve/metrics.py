"""Prometheus metrics for ``aipc serve``, kept and rendered by ``prometheus_client``.

Exposed at ``/metrics``: request counts by endpoint and status, prompt and generated tokens, TTFT,
time per output token and end-to-end latency histograms, running/waiting requests and decode batch
sizes. TTFT includes queueing and prefill; TPOT excludes the first token.

Each :class:`ServerMetrics` owns its own ``CollectorRegistry``, so several servers (or tests) in one
process never share or collide on a metric.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus version scrapes

# No "<name>_created" series next to every counter and histogram: the server's metrics keep the
# names and series they had before prometheus_client rendered them.
disable_created_metrics()


class ServerMetrics:
    """All of the server's metrics in one registry; ``render()`` gives the /metrics body."""

    def __init__(self, load_fn=lambda: (0, 0)):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.load_fn = load_fn
        self.requests = Counter("aipc_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"), registry=r)
        self.prompt_tokens = Counter("aipc_prompt_tokens_total", "Prompt tokens processed.", registry=r)
        self.generation_tokens = Counter("aipc_generation_tokens_total", "Tokens generated.", registry=r)
        self.finished = Counter("aipc_request_finish_total", "Finished generations by reason.", ("reason",), registry=r)
        self.ttft = Histogram("aipc_time_to_first_token_seconds",
                              "Time to first token (includes queueing and prefill).", buckets=LATENCY_BUCKETS,
                              registry=r)
        self.tpot = Histogram("aipc_time_per_output_token_seconds",
                              "Mean time per output token of a request, first token excluded.", buckets=TPOT_BUCKETS,
                              registry=r)
        self.e2e = Histogram("aipc_e2e_request_latency_seconds", "End-to-end generation latency.",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("aipc_decode_batch_size", "Requests decoded together per engine step.",
                               buckets=BATCH_BUCKETS, registry=r)
        self.running = Gauge("aipc_requests_running", "Requests holding a KV-cache slot.", registry=r)
        self.waiting = Gauge("aipc_requests_waiting", "Requests queued for a slot.", registry=r)
        self.running.set_function(lambda: self.load_fn()[0])
        self.waiting.set_function(lambda: self.load_fn()[1])

    def count_response(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def observe_batch(self, n: int) -> None:
        self.batch.observe(n)

    def observe_request(self, req) -> None:
        """Token counts and latencies of a finished engine request."""
        self.prompt_tokens.inc(len(req.prompt_ids))
        self.generation_tokens.inc(req.output_tokens)
        self.finished.labels(reason=req.finish_reason or "unknown").inc()
        if req.t_first is not None:
            self.ttft.observe(req.t_first - req.t_submit)
            if req.output_tokens > 1 and req.t_done is not None:
                self.tpot.observe((req.t_done - req.t_first) / (req.output_tokens - 1))
        if req.t_done is not None:
            self.e2e.observe(req.t_done - req.t_submit)

    def value(self, name: str, **labels) -> float:
        """The current value of one series, e.g. ``value("aipc_decode_batch_size_count")`` (0 if absent)."""
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else v

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")
