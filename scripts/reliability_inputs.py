"""The reliability parts for bad CLI input, checkpoint damage, seal/unseal under SIGTERM and the network
probe (issue 14). ``scripts/reliability.py`` runs them; each ``run_*`` returns a JSON-able record and each
``render_*`` turns one into a Markdown section of docs/reliability.md. The fault environments and case
tables live in tests/ (sandbox.py, bad_inputs.py, checkpoint_damage.py, netprobe/) so the tests use them too.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
AIPC = [sys.executable, "-m", "aipc"]


def _table(rows: list[list], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _tiny(tmp: Path) -> Path:
    from aipc.models.tiny import make_tiny_folder

    return make_tiny_folder(tmp / "tiny", "llama")


# ------------------------------------------------------------------ bad CLI input


def run_bad_inputs(tmp: Path) -> dict:
    """Every bad value of every flag of every verb (tests/bad_inputs.py), in process, work stubbed."""
    import bad_inputs as B

    tiny = _tiny(tmp)
    all_cases, ctl = B.cases(tmp / "bad", tiny), B.controls(tmp / "control", tiny)
    t0 = time.perf_counter()
    with B.work_stubbed():
        controls = {c.verb: B.run_case(c, tmp)[0] for c in ctl}
        results = [(c, *B.run_case(c, tmp)) for c in all_cases]
    return {**B.summary(results), "controls": controls, "seconds": round(time.perf_counter() - t0, 1)}


def render_bad_inputs(r: dict) -> str:
    rows = [[v, sum(d.values()), d.get("refused", 0), sum(n for k, n in d.items() if k != "refused")]
            for v, d in sorted(r["by_verb"].items())]
    ok_ctl = sum(o.startswith("accepted") for o in r["controls"].values())
    return "\n".join([
        "## 5. Bad values for every flag of every verb", "",
        f"**{r['cases']} bad command lines** over {len(r['by_verb'])} verbs and {r['params']} parameters, derived from "
        "the verbs' own options (tests/bad_inputs.py): each parameter's rule (aipc.rules: a number's non-finite and "
        "out-of-range values, a path of the wrong kind, a word outside its set) gives its bad values; each case is "
        "the verb's minimal valid command line with exactly one value made bad; run in process through "
        "`aipc.cli.main` with each verb's work replaced by a recorder.", "",
        f"- refused with exit 2 and one `error:` line before any work: **{r['refused']} of {r['cases']}**; "
        f"naming the flag or value: {r['refused_naming_the_input']}; tracebacks, accepted bad values or other "
        f"exits: **{len(r['failures'])}**",
        f"- controls (each verb's valid command line alone) accepted: {ok_ctl} of {len(r['controls'])}; "
        f"{r['seconds']} s in all", "",
        _table(rows, ["verb", "bad command lines", "refused in one line", "not refused"]),
        *([""] + [f"- not refused: `{' '.join(f['argv'])}` → {f['outcome']}" for f in r["failures"][:20]]
          if r["failures"] else []),
    ])


# ------------------------------------------------------------------ checkpoint damage


def _train_args(tiny: Path, corpus: Path, run: Path) -> list[str]:
    return ["train", str(tiny), "--data", str(corpus), "--out", str(run), "--seq-len", "32", "--batch", "2",
            "--steps", "4", "--save-every", "2", "--keep", "3", "--threads", "1", "--no-mfu", "--no-preflight", "--json"]


def _resume(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*AIPC, *args, "--resume"], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_checkpoints(tmp: Path, seed: int) -> dict:
    """20 kinds of damage to the latest checkpoint of a real run, each followed by ``aipc train --resume``."""
    from checkpoint_damage import CORRUPTIONS
    from test_train_loop import write_corpus

    from aipc.models.tiny import make_tiny_folder

    tiny, corpus = _tiny(tmp), write_corpus(tmp / "data.txt", lines=60)
    pristine = tmp / "pristine"
    r = subprocess.run([*AIPC, *_train_args(tiny, corpus, pristine)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    other = make_tiny_folder(tmp / "other", "llama", num_hidden_layers=3)  # a different model
    r = subprocess.run([*AIPC, *_train_args(other, corpus, tmp / "other-run")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    kinds = {**CORRUPTIONS, "a checkpoint of another model under the checkpoint's name": None}
    events = []
    for i, (kind, damage) in enumerate(kinds.items()):
        run = tmp / f"case-{i:02d}"
        shutil.copytree(pristine, run)
        bad, good = run / "checkpoints" / "step-00000004", run / "checkpoints" / "step-00000002"
        if damage is None:
            shutil.rmtree(bad)
            shutil.copytree(tmp / "other-run" / "checkpoints" / "step-00000004", bad)
        else:
            damage(bad, random.Random(seed + i))
        r = _resume(_train_args(tiny, corpus, run))
        line = r.stderr.strip()
        events.append({"kind": kind, "exit": r.returncode, "one_line": line.count("\n") == 0 and line.startswith("error: "),
                       "names_damaged": str(bad) in line, "names_good": str(good) in line,
                       "traceback": "Traceback" in r.stderr, "message": line[:220]})
    detected = [e for e in events if e["exit"] == 2 and e["one_line"] and not e["traceback"] and e["names_damaged"]]
    return {"seed": seed, "cases": len(events), "detected": len(detected),
            "silently_used": sum(e["exit"] == 0 for e in events), "events": events}


def render_checkpoints(r: dict) -> str:
    rows = [[e["kind"], e["exit"], "yes" if e["names_damaged"] else "no", "yes" if e["names_good"] else "no",
             e["message"].replace("|", "\\|")[:140]] for e in r["events"]]
    return "\n".join([
        "## 6. Damaged checkpoints, then `aipc train --resume`", "",
        f"A real 4-step run (tiny Llama, checkpoints at steps 2 and 4), copied once per case; the latest checkpoint "
        f"damaged one way (tests/checkpoint_damage.py, seed {r['seed']}); then `aipc train --resume` as a subprocess. "
        f"**Detected: {r['detected']} of {r['cases']}; silently used: {r['silently_used']}.** Detected means exit 2, "
        "one `error:` line naming the damaged checkpoint, no traceback; it also names step 2 as the checkpoint to "
        "resume from where the damage is in the files (a checkpoint of another model is intact, so it is refused "
        "by the model check instead).", "",
        _table(rows, ["damage", "exit", "names it", "names step 2", "message (first 140 characters)"]),
    ])


# ------------------------------------------------------------------ seal / unseal under SIGTERM


def _sha_tree(p: Path) -> str:
    h = hashlib.sha256()
    for f in sorted([p] if p.is_file() else p.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(p.parent)).encode() + f.read_bytes())
    return h.hexdigest()


def _seal_inputs(tmp: Path, env: dict) -> dict[str, tuple[list[str], Path]]:
    """Each operation's arguments and the plaintext its output must match (for seal: once unsealed)."""
    from aipc.privacy.keys import load_key
    from aipc.privacy.seal import seal_file

    (tmp / "plain.bin").write_bytes(os.urandom(48 << 20))
    (tmp / "plain32.bin").write_bytes(os.urandom(32 << 20))
    (tmp / "folder").mkdir()
    for i in range(6):
        (tmp / "folder" / f"part-{i}.bin").write_bytes(os.urandom(8 << 20))
    seal_file(tmp / "plain32.bin", tmp / "big.sealed", load_key(tmp / "k.key"), chunk_bytes=4096)
    subprocess.run([*AIPC, "seal", str(tmp / "folder"), "-o", str(tmp / "folder.sealed")], env=env, check=True,
                   capture_output=True)
    return {"seal a file": (["seal", str(tmp / "plain.bin")], tmp / "plain.bin"),
            "unseal a file": (["unseal", str(tmp / "big.sealed")], tmp / "plain32.bin"),
            "seal a folder": (["seal", str(tmp / "folder")], tmp / "folder"),
            "unseal a folder": (["unseal", str(tmp / "folder.sealed")], tmp / "folder")}


def _same_plaintext(op: str, out: Path, plain: Path, key_file: Path) -> bool:
    """Whether ``out`` is a complete, correct result: the plaintext itself, or sealed bytes that unseal to it."""
    from aipc.privacy.keys import load_key
    from aipc.privacy.tree import unseal_path

    if op.startswith("seal"):
        back = out.with_name(out.name + ".check")
        unseal_path(out, back, load_key(key_file))
        out = back
    if plain.is_dir():
        return {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in plain.iterdir()}
    return out.read_bytes() == plain.read_bytes()


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if ".aipc-tmp-" in p.name or ".aipc-old-" in p.name]


def _one_kill(op: str, args: list[str], plain: Path, out: Path, env: dict, rng: random.Random, key: Path) -> dict:
    src = Path(args[1])
    before = _sha_tree(src)
    t0 = time.perf_counter()
    proc = subprocess.Popen([*AIPC, *args, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    while time.perf_counter() - t0 < 30 and proc.poll() is None and not _temps(out.parent):
        time.sleep(0.001)
    delay = rng.uniform(0, 0.2)
    time.sleep(delay)
    writing = bool(_temps(out.parent))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    left = _temps(out.parent)
    done = out.exists() and _same_plaintext(op, out, plain, key)
    return {"op": op, "delay_s": round(delay, 3), "writing_when_signalled": writing, "exit": proc.returncode,
            "input_intact": _sha_tree(src) == before, "temp_left": left, "output": out.exists(), "output_ok": done,
            "message": err.strip()[:120]}


def run_seal_sigterm(tmp: Path, seed: int, kills: int = 20) -> dict:
    """``kills`` seal/unseal runs, each sent SIGTERM at a random moment after its temporary output appeared."""
    from aipc.privacy.keys import new_key_file

    key = new_key_file(tmp / "k.key")
    env = {**os.environ, "AIPC_HOME": str(tmp / "home"), "AIPC_SEAL_KEY": key.read_text().strip()}
    ops = _seal_inputs(tmp, env)
    rng = random.Random(seed)
    events = []
    for i in range(kills):
        op = list(ops)[i % len(ops)]
        out_dir = tmp / f"out-{i:02d}"
        out_dir.mkdir()
        args, plain = ops[op]
        events.append(_one_kill(op, args, plain, out_dir / "result", env, rng, key))
    ok = [e for e in events if e["input_intact"] and not e["temp_left"]
          and ((e["exit"] == 143 and not e["output"]) or e["output_ok"])]
    return {"seed": seed, "kills": len(events), "ok": len(ok), "mid_write": sum(e["writing_when_signalled"] for e in events),
            "inputs_intact": sum(e["input_intact"] for e in events), "temp_left": sum(bool(e["temp_left"]) for e in events),
            "events": events}


def render_seal_sigterm(r: dict) -> str:
    rows = [[e["op"], e["delay_s"], "yes" if e["writing_when_signalled"] else "no", e["exit"],
             "yes" if e["input_intact"] else "NO", ", ".join(e["temp_left"]) or "none",
             ("complete and correct" if e["output_ok"] else "WRONG") if e["output"] else "none"] for e in r["events"]]
    return "\n".join([
        "## 7. `aipc seal` / `aipc unseal` stopped by SIGTERM", "",
        f"{r['kills']} runs (a 48 MiB file, a 32 MiB file sealed in 4 KiB chunks, folders of 6 × 8 MiB), each sent "
        f"SIGTERM a random 0–0.2 s after its temporary output appeared (seed {r['seed']}); {r['mid_write']} landed while "
        f"the temporary file was being written. **Inputs intact: {r['inputs_intact']} of {r['kills']}; runs that left "
        f"a temporary file: {r['temp_left']}; runs that either stopped with no output (exit 143) or had already written "
        f"a complete, correct output: {r['ok']} of {r['kills']}.** A signal that lands after the output is complete "
        "(while the process reports or exits) ends it with the default action (-15) and leaves the finished output. "
        "SIGKILL cannot be caught: its leftover is removed by the next aipc write "
        "(tests/test_privacy_seal_faults.py).", "",
        _table(rows, ["operation", "delay (s)", "writing", "exit", "input intact", "temporary files left", "output"]),
    ])
