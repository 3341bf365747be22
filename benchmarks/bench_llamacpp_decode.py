"""aipc's llama.cpp engine vs llama.cpp's own ``llama-bench``: batch-1 decode tokens/s on the same GGUF.

Peer: ``llama-bench`` built from the same pinned llama-cpp-python sdist (``vendor/llama.cpp``) with
cmake for this CPU (``GGML_NATIVE``, OpenMP, and AMX off exactly when the Python library was built
without it, so both run the same kernels); built once and cached in ``~/.cache/aipc-bench``.
Model: a catalog model (default qwen2.5-0.5b, random weights) converted by ``aipc convert`` to Q4_K_M
and Q8_0. For each GGUF, llama-bench ``tg`` (n_gen tokens after an empty prompt, batch 1) runs at every
thread count that matters (1..CPUs) with flash attention off and on; its best is the reference. aipc
decodes the same number of tokens after a 1-token prompt through ``aipc.engines.generate.generate`` on
the ``LlamaCppRunner``, greedy, end of
sequence ignored; decode tokens/s = (N-1) / (T(N) - T(1)), at every thread count too, averaged over as many repetitions
per round as llama-bench's ``-r`` (its avg_ts is the mean over its repetitions); each side's median over
the rounds at its best thread count is compared (and the count ``aipc generate`` would pick by its start-up measurement is recorded). Runs
alternate peer/aipc. MBU = bytes one step reads (weights + mean KV) × tokens/s ÷ the bandwidth ``aipc hw``
measured (STREAM copy convention: read + write bytes).

Also times ``aipc convert`` of a 1B-class model to q4_k_m (``--convert-model``, default llama-3.2-1b).

    python benchmarks/bench_llamacpp_decode.py                 # prints a table
    python benchmarks/bench_llamacpp_decode.py --write         # and records it in docs/benchmarks.md
    python benchmarks/bench_llamacpp_decode.py --quick         # fewer reps, no convert timing (development)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bench_common import command, finish  # noqa: E402

CACHE = Path(os.environ.get("AIPC_BENCH_CACHE", Path.home() / ".cache" / "aipc-bench"))


def _release() -> str:
    import re

    return re.search(r"llama-cpp-python==([0-9.]+)", (ROOT / "pyproject.toml").read_text()).group(1)


def _python_lib_has_amx() -> bool:
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode()


def build_llama_bench() -> Path:
    """llama-bench from the pinned sdist, built for this CPU (cached)."""
    ver = _release()
    amx = _python_lib_has_amx()
    build = CACHE / f"llama.cpp-{ver}-{'amx' if amx else 'noamx'}"
    exe = build / "build" / "bin" / "llama-bench"
    if exe.is_file():
        return exe
    sdist = CACHE / f"llama_cpp_python-{ver}.tar.gz"
    if not sdist.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"llama-cpp-python=={ver}", "-d", str(CACHE)], check=True)
    src = CACHE / f"llama_cpp_python-{ver}"
    if not src.is_dir():
        with tarfile.open(sdist) as t:
            t.extractall(CACHE, filter="data")
    flags = "" if amx else "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    print(f"building llama-bench {ver} in {build} (once; {'with' if amx else 'without'} AMX, like the Python "
          "library)", file=sys.stderr)
    subprocess.run(["cmake", "-S", str(src / "vendor" / "llama.cpp"), "-B", str(build / "build"), "-G", "Ninja",
                    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", f"-DCMAKE_C_FLAGS={flags}",
                    f"-DCMAKE_CXX_FLAGS={flags}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build / "build"), "--target", "llama-bench", "-j", str(os.cpu_count())],
                   check=True, stdout=subprocess.DEVNULL)
    return exe


def gguf_for(model: str, quant: str, seed: int = 0) -> Path:
    out = CACHE / "gguf" / f"{model}-{quant}-seed{seed}.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        from aipc.engines.gguf_convert import convert

        convert(model, out, quant=quant, seed=seed)
    return out


def peer_tg(exe: Path, gguf: Path, threads: list[int], n_gen: int, reps: int) -> tuple[dict, str]:
    """llama-bench tg: {(threads, flash_attn): tokens/s} (mean over its reps)."""
    cmd = [str(exe), "-m", str(gguf), "-p", "0", "-n", str(n_gen), "-t", ",".join(map(str, threads)),
           "-fa", "0,1", "-r", str(reps), "-o", "json"]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(r.stdout)
    return {(int(x["n_threads"]), int(bool(x.get("flash_attn")))): float(x["avg_ts"]) for x in rows}, " ".join(cmd)


def aipc_tg(lm, n_gen: int) -> tuple[float, object]:
    """aipc decode tokens/s: (N-1) / (T(N) - T(1)) from a 1-token prompt, greedy, EOS ignored."""
    from aipc.engines.generate import generate
    from aipc.engines.sampling import SamplingParams

    prompt = [lm.tokenizer.bos_token_id if lm.tokenizer.bos_token_id is not None else 1]

    def timed(n):
        t = time.perf_counter()
        res = generate(lm.runner, lm.tokenizer, prompt, SamplingParams(max_tokens=n, ignore_eos=True), model=lm.model)
        return time.perf_counter() - t, res

    t1, _ = timed(1)
    tn, res = timed(n_gen)
    return (n_gen - 1) / (tn - t1), res


def bench_one(exe: Path, gguf: Path, args, bandwidth) -> dict:
    """Peer and aipc at every thread count, alternating rounds; each side's best is compared."""
    from aipc.engines import load, thread_candidates
    from aipc.engines.generate import pick_threads

    lm = load(gguf, max_len=args.n_gen + 16)
    runner = lm.runner
    threads = list(range(1, (os.cpu_count() or 1) + 1))
    auto_t, med = pick_threads(runner, thread_candidates(runner))  # what `aipc generate` would pick now
    aipc_tg(lm, 8)  # warm-up
    peer: dict = {}
    ours: dict = {t: [] for t in threads}
    cmd = ""
    for rep in range(args.rounds):
        for side in (("peer", "aipc") if rep % 2 == 0 else ("aipc", "peer")):
            if side == "peer":
                got, cmd = peer_tg(exe, gguf, threads, args.n_gen, args.peer_reps)
                for k, v in got.items():
                    peer.setdefault(k, []).append(v)
                continue
            for t in threads:  # as many repetitions as llama-bench's -r, averaged as its avg_ts is
                runner.set_threads(t)
                ours[t].append(statistics.mean(aipc_tg(lm, args.n_gen)[0] for _ in range(args.peer_reps)))
    peer_med = {k: statistics.median(v) for k, v in peer.items()}
    ours_med = {t: statistics.median(v) for t, v in ours.items()}
    pk = max(peer_med, key=peer_med.get)
    at = max(ours_med, key=ours_med.get)
    step_bytes = runner.weight_bytes_per_step() + runner.kv_bytes_per_token() * (1 + args.n_gen / 2)
    peak = bandwidth[0]
    ai, pb = ours_med[at], peer_med[pk]
    return {
        "gguf": gguf.name, "weight_format": lm.weight_format, "file_bytes": gguf.stat().st_size,
        "aipc_tokens_per_s": {f"t{t}": v for t, v in ours_med.items()},
        "aipc_best": {"threads": at, "tokens_per_s": ai, "min": min(ours[at]), "max": max(ours[at])},
        "aipc_auto_threads": auto_t, "aipc_auto_note": ", ".join(f"{c}: {s * 1e3:.1f} ms/step" for c, s in med.items()),
        "peer_tokens_per_s": {f"t{k[0]} fa{k[1]}": v for k, v in sorted(peer_med.items())},
        "peer_best": {"threads": pk[0], "flash_attn": pk[1], "tokens_per_s": pb},
        "ratio": ai / pb, "bytes_per_step": step_bytes,
        "aipc_bandwidth_bytes_per_s": ai * step_bytes, "peer_bandwidth_bytes_per_s": pb * step_bytes,
        "aipc_mbu": ai * step_bytes / peak if peak else None, "peer_mbu": pb * step_bytes / peak if peak else None,
        "peer_command": cmd,
    }


def time_convert(model: str, quant: str) -> dict:
    out = CACHE / "convert-timing.gguf"
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "aipc", "convert", model, "--quant", quant, "-o", str(out), "--quiet",
                        "--json"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"aipc convert failed: {r.stderr.strip()}")
    res = json.loads(r.stdout)
    out.unlink(missing_ok=True)
    return {"model": model, "quant": quant, "seconds": wall, "bytes": res["bytes"],
            "command": f"aipc convert {model} --quant {quant} -o FILE"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--quants", default="q4_k_m,q8_0")
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="alternating peer/aipc rounds")
    ap.add_argument("--peer-reps", type=int, default=3, help="llama-bench -r per round")
    ap.add_argument("--convert-model", default="llama-3.2-1b")
    ap.add_argument("--quick", action="store_true", help="1 round, 1 peer rep, no convert timing")
    ap.add_argument("--hw-refresh", action="store_true",
                    help="measure the memory bandwidth now (aipc hw) instead of using the cached profile")
    ap.add_argument("--write", action="store_true", help="record the result in docs/benchmarks.md")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.peer_reps, args.convert_model = 1, 1, ""
    from aipc.engines.generate import measured_bandwidth
    from aipc.hardware.detect import isa_flags_line

    exe = build_llama_bench()
    load0 = os.getloadavg()
    if args.hw_refresh:
        from aipc.hardware.profile import load_or_measure

        load_or_measure(quick=True, refresh=True)
    bandwidth = measured_bandwidth("cpu")
    rows = [bench_one(exe, gguf_for(args.model, q), args, bandwidth) for q in args.quants.split(",")]
    convert = time_convert(args.convert_model, "q4_k_m") if args.convert_model else None
    load1 = os.getloadavg()
    result = {"model": f"{args.model} (random weights)", "n_gen": args.n_gen, "rows": rows, "convert": convert,
              "bandwidth_bytes_per_s": bandwidth[0], "bandwidth_source": bandwidth[1], "isa": isa_flags_line(),
              "cpus": os.cpu_count(), "load_avg": [round(x, 2) for x in (*load0, *load1)], "quick": args.quick,
              "command": command("bench_llamacpp_decode.py", argv)}
    return finish(result, args, _print, write_doc)


def _print(r: dict) -> None:
    print(f"{r['model']}, batch 1, {r['n_gen']} tokens; bandwidth {r['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s "
          f"({r['bandwidth_source']}); load {r['load_avg']}")
    for x in r["rows"]:
        pb = x["peer_best"]
        mbu = f"{x['aipc_mbu'] * 100:.0f}%" if x["aipc_mbu"] else "n/a"
        ab = x["aipc_best"]
        print(f"  {x['weight_format']:7s} llama-bench best {pb['tokens_per_s']:.1f} tok/s (t{pb['threads']} fa"
              f"{pb['flash_attn']}); aipc best {ab['tokens_per_s']:.1f} tok/s (t{ab['threads']}) = "
              f"{x['ratio'] * 100:.1f}%; MBU {mbu}; per thread: peer {x['peer_tokens_per_s']}, aipc "
              f"{ {k: round(v, 1) for k, v in x['aipc_tokens_per_s'].items()} }; aipc generate would pick "
              f"{x['aipc_auto_threads']} ({x['aipc_auto_note']})")
    if r["convert"]:
        print(f"  {r['convert']['command']}: {r['convert']['seconds']:.1f} s")


def write_doc(r: dict) -> None:
    from aipc.mdsection import append_to_section

    date = time.strftime("%Y-%m-%d")
    load = f"{r['load_avg'][0]}–{r['load_avg'][3]}" + (" (quick run)" if r["quick"] else "")
    header = ("| date | GGUF | llama-bench best tg tok/s (threads, fa) | aipc best tok/s, median (min–max) (threads) | "
              "ratio | per thread count: llama-bench / aipc | MBU aipc / llama-bench | bandwidth (aipc hw) | load avg | "
              "ISA | commands |\n|---|---|---|---|---|---|---|---|---|---|---|")
    intro = ("aipc's llama.cpp runner (`LlamaCppRunner` through `aipc.engines.generate.generate`) against llama.cpp's "
             "own `llama-bench` built from the same pinned sources for this CPU, on the same GGUF (a catalog model "
             "with random weights converted by `aipc convert`), batch 1. llama-bench: `tg` at every thread count, "
             "flash attention off and on, best kept. aipc: (N-1)/(T(N)-T(1)) from a 1-token prompt at every thread "
             "count, the mean of as many repetitions per round as llama-bench's -r, best kept. MBU = (weights + mean KV bytes per step) × tokens/s ÷ the bandwidth `aipc hw` "
             "measured. Rows are appended by `benchmarks/bench_llamacpp_decode.py --write`.")
    for x in r["rows"]:
        pb, a = x["peer_best"], x["aipc_best"]
        mbu = (f"{x['aipc_mbu'] * 100:.0f}% / {x['peer_mbu'] * 100:.0f}%" if x["aipc_mbu"] else "n/a")
        bw = f"{r['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s" if r["bandwidth_bytes_per_s"] else "n/a"
        per = "; ".join(f"t{t}: {max(v for k, v in x['peer_tokens_per_s'].items() if k.startswith(f't{t} ')):.1f} / "
                        f"{x['aipc_tokens_per_s'][f't{t}']:.1f}" for t in range(1, r["cpus"] + 1))
        line = (f"| {date} | {r['model']} {x['weight_format']} ({x['file_bytes'] / 2**20:.0f} MiB) | "
                f"{pb['tokens_per_s']:.1f} ({pb['threads']}, {pb['flash_attn']}) | {a['tokens_per_s']:.1f} ({a['min']:.1f}–"
                f"{a['max']:.1f}) ({a['threads']}) | **{x['ratio'] * 100:.1f}%** | {per} | {mbu} | {bw} | {load} | "
                f"{r['isa']} | `{r['command'].strip()}`; peer: `{x['peer_command'].replace(str(Path.home()), '~')}` |")
        append_to_section(ROOT / "docs" / "benchmarks.md", "## llama.cpp decode", header, line, intro=intro)
    if r["convert"]:
        c = r["convert"]
        line = f"| {date} | {c['model']} (random weights) | {c['quant']} | {c['bytes'] / 2**20:.0f} MiB | " \
               f"**{c['seconds']:.1f} s** | {r['cpus']} | {load} | `{c['command']}` |"
        header = "| date | model | quant | GGUF size | wall time | CPUs | load avg | command |\n|---|---|---|---|---|---|---|---|"
        intro = ("`aipc convert MODEL --to gguf --quant q4_k_m`: random weights streamed to safetensors, llama.cpp's "
                 "converter (f16), then `llama_model_quantize`; wall time of the whole command, measured by "
                 "`benchmarks/bench_llamacpp_decode.py --write`.")
        append_to_section(ROOT / "docs" / "benchmarks.md", "## Convert", header, line, intro=intro)


if __name__ == "__main__":
    main()
