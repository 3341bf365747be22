"""aipc serve: aggregate output tokens/s with 1 client vs N concurrent clients, in one run.

Starts the real server (``python -m aipc serve`` on a free loopback port) on a random-weight Llama
folder (real architecture, byte-level tokenizer), then drives it with ``aipc.serve.loadtest`` at
each concurrency level (streaming completions, greedy, ``ignore_eos`` so every request produces
exactly ``--max-tokens`` tokens). Ratio = output tok/s at the highest level / at 1 client.

    python benchmarks/bench_serve_concurrency.py             # 1 vs 16 clients, prints a table
    python benchmarks/bench_serve_concurrency.py --write     # and records it in docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_common import add_llama_shape, command, finish, llama_config  # noqa: E402


def make_model(folder: Path, args) -> int:
    import torch
    from transformers import LlamaForCausalLM

    from aipc.models.tiny import byte_tokenizer

    cfg = llama_config(args, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    byte_tokenizer(args.vocab).save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int, args, log: Path) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, "-m", "aipc", "serve", str(folder), "--port", str(port), "--max-batch",
           str(max(args.levels)), "--max-len", "512", "--quiet"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_llama_shape(ap, hidden=256, intermediate=704, layers=6, heads=4, kv_heads=1)
    ap.add_argument("--levels", default="1,16", help="concurrency levels; the ratio is last / first")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="server torch threads (default: torch's)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",")]
    from aipc.serve.loadtest import LoadConfig, run

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench-llama"
        params = make_model(folder, args)
        port = free_port()
        proc = start_server(folder, port, args, Path(tmp) / "server.log")
        threads = next((ln.split("threads: ", 1)[1] for ln in (Path(tmp) / "server.log").read_text().splitlines()
                        if ln.startswith("aipc serve: threads: ")), "?")
        load0 = os.getloadavg()[0]
        try:
            url = f"http://127.0.0.1:{port}"
            warm = LoadConfig(url=url, max_tokens=8, ignore_eos=True, num_requests=2, prompt_words=args.prompt_words)
            run(warm, [{"concurrency": 1}])
            levels = []
            for c in args.levels:
                cfg = LoadConfig(url=url, max_tokens=args.max_tokens, ignore_eos=True, prompt_words=args.prompt_words,
                                 num_requests=c * args.requests_per_client)
                levels.append(run(cfg, [{"concurrency": c}])[0])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        load1 = os.getloadavg()[0]
    rows = [{"concurrency": r["workload"]["concurrency"], "requests": r["metrics"]["requests_ok"],
             "output_tokens_per_s": r["metrics"]["output_tokens_per_s"],
             "ttft_p50_s": r["metrics"]["ttft_s"]["p50"], "tpot_p50_s": r["metrics"]["tpot_s"]["p50"]}
            for r in levels]
    result = {
        "model": f"random Llama {params / 1e6:.1f}M params (hidden {args.hidden}, {args.layers} layers, vocab {args.vocab})",
        "dtype": "fp32", "max_tokens": args.max_tokens, "levels": rows,
        "ratio": rows[-1]["output_tokens_per_s"] / rows[0]["output_tokens_per_s"],
        "server_threads": threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (server and clients share them)",
        "load_avg_1min": [round(load0, 2), round(load1, 2)],
        "command": command("bench_serve_concurrency.py", argv),
    }
    return finish(result, args, _print, write_doc)


def _print(result: dict) -> None:
    rows = result["levels"]
    print(f"{result['model']}, fp32, {result['max_tokens']} tokens/request, server threads {result['server_threads']}, "
          f"load {result['load_avg_1min']}")
    for r in rows:
        print(f"  {r['concurrency']:3d} clients: {r['output_tokens_per_s']:8.1f} output tok/s   "
              f"TTFT p50 {r['ttft_p50_s'] * 1e3:6.0f} ms   TPOT p50 {r['tpot_p50_s'] * 1e3:6.1f} ms")
    print(f"  ratio {rows[-1]['concurrency']} clients / 1 client: {result['ratio']:.2f}x")


def write_doc(r: dict) -> None:
    from aipc.mdsection import append_to_section

    lv = "; ".join(f"{x['concurrency']}: {x['output_tokens_per_s']:.0f} tok/s (TPOT p50 {x['tpot_p50_s'] * 1e3:.1f} ms)"
                   for x in r["levels"])
    line = (f"| {time.strftime('%Y-%m-%d')} | {r['model']} | {r['server_threads']} | {lv} | **{r['ratio']:.2f}x** | "
            f"{r['load_avg_1min'][0]}–{r['load_avg_1min'][1]} | `{r['command'].strip()}` |")
    header = ("| date | model (fp32, CPU) | server threads | clients: output tok/s | ratio | load avg | command |\n"
              "|---|---|---|---|---|---|---|")
    intro = ("`aipc serve` (continuous batching over a slot-based static KV cache) driven by `aipc loadtest` "
             "(streaming completions, greedy, `ignore_eos`, fixed output length): aggregate output tokens/s at N "
             "concurrent clients / at 1 client, same server process, one run. Server and load generator share the "
             "machine's CPUs. Rows are appended by `benchmarks/bench_serve_concurrency.py --write`.")
    append_to_section(ROOT / "docs" / "benchmarks.md", "## Serve", header, line, intro=intro)


if __name__ == "__main__":
    main()
