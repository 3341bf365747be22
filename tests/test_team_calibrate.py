"""aipc calibrate --from-team: fit this machine's device from every machine of the same CPU model in a
team's PostgreSQL database (real tiny bench runs of this machine, copied as other machines' runs)."""

from __future__ import annotations

import copy
import json
import platform
import shutil
import uuid

import pytest

from aipc.bench.store import ResultsDB
from helpers import run_cli


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """This machine's profile (tiny probe) and real tiny bench runs at two shapes, in a module-private home."""
    from aipc.bench.runner import BenchOptions, run_bench
    from aipc.bench.stats import LoopConfig
    from aipc.models.tiny import tiny_config
    from helpers import tiny_profile_home

    home = tmp_path_factory.mktemp("team-cal-home")
    with tiny_profile_home(home):
        cfg = home / "tiny.json"
        cfg.write_text(json.dumps(tiny_config("llama")))
        loop = LoopConfig(warmup=1, min_reps=4, min_s=0.02, max_s=0.3)
        for n in (8, 16):
            run_bench(BenchOptions(model=str(cfg), devices="cpu", scenarios=("prefill", "decode"), seq=n, prompt=n,
                                   gen=4, loop=loop, threads=1, db=home / "r.sqlite"))
    return home


def _as_machine(run: dict, host: str, cpu_model: str | None = None, threads: int | None = None) -> dict:
    r = copy.deepcopy(run)
    mach = r["context"]["machine"]
    mach["host"], mach["fingerprint"] = host, f"{host}-{uuid.uuid4().hex[:8]}"
    if cpu_model:
        mach["profile"]["machine"]["cpu"]["model"] = cpu_model
    if threads:
        r["metrics"]["cpu_threads"] = threads
    r["metrics"]["median_s"] *= 1.05
    return {k: r[k] for k in ("kind", "scenario", "device", "model", "workload", "metrics", "samples", "context")}


def test_calibrate_from_team_uses_machines_of_the_same_cpu_model(own_runs, pg_server, _aipc_home, one_torch_thread):
    shutil.copytree(own_runs / "profiles", _aipc_home / "profiles", dirs_exist_ok=True)
    mine = ResultsDB(own_runs / "r.sqlite").runs()
    assert len(mine) == 4 and mine[0]["device_model"]
    url = pg_server.url(pg_server.new_database())
    team = ResultsDB(url)
    for r in mine:
        team.add_run(**{k: r[k] for k in ("kind", "scenario", "device", "model", "workload", "metrics", "samples",
                                          "context")})
        team.add_run(**_as_machine(r, "twin"))                             # same CPU model, same threads: used
        team.add_run(**_as_machine(r, "other", cpu_model="Another CPU"))  # another CPU model: not used
        team.add_run(**_as_machine(r, "twin8", threads=8))                # same model at 8 threads: not used
    code, out, err = run_cli("calibrate", "--db", url, "--threads", "1", "--dry-run", "--json")
    assert code == 0, err
    alone = json.loads(out)
    assert alone["runs_used"] == 4 and alone["sources"]["machines"] == [platform.node()]
    code, out, err = run_cli("calibrate", "--db", url, "--threads", "1", "--from-team", "--dry-run", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["runs_used"] == 8 and res["sources"] == {"machines": sorted([platform.node(), "twin"]), "runs": 8,
                                                         "from_team": True}
    assert "this-machine:cpu" in res["table"]["devices"] and res["saved"].startswith("dry run")
    code, _, err = run_cli("calibrate", "--db", url, "--from-team", "--all-machines")
    assert code == 2 and "use one" in err
