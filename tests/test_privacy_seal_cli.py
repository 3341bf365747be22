"""`aipc seal` / `aipc unseal` end to end: keys, files, folders, and clean exit-2 errors."""

from __future__ import annotations

import json
import os
import stat

from helpers import run_cli


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_new_key_seal_unseal_file(tmp_path):
    key = tmp_path / "k.key"
    code, out, err = run_cli("seal", "--new-key", str(key))
    assert code == 0, err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and "keep a backup" in out
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "private customer record"}\n' * 1000)
    code, out, err = run_cli("seal", str(data), "--key-file", str(key), "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert rec["action"] == "seal" and rec["files"] == 1 and rec["output"] == str(data) + ".sealed"
    assert rec["input_bytes"] == data.stat().st_size
    sealed = tmp_path / "train.jsonl.sealed"
    assert b"customer" not in sealed.read_bytes()
    back = tmp_path / "back.jsonl"
    code, out, err = run_cli("unseal", str(sealed), "-o", str(back), "--key-file", str(key))
    assert code == 0, err
    assert back.read_bytes() == data.read_bytes()
    assert "unsealed 1 file" in out


def test_wrong_key_tamper_and_missing_key_exit_2_without_plaintext(tmp_path, monkeypatch):
    k1, k2 = tmp_path / "k1.key", tmp_path / "k2.key"
    run_cli("seal", "--new-key", str(k1))
    run_cli("seal", "--new-key", str(k2))
    (tmp_path / "d.txt").write_text("secret " * 100)
    assert run_cli("seal", str(tmp_path / "d.txt"), "--key-file", str(k1))[0] == 0
    os.remove(tmp_path / "d.txt")
    sealed = tmp_path / "d.txt.sealed"
    before = _listing(tmp_path)

    code, out, err = run_cli("unseal", str(sealed), "--key-file", str(k2))
    assert code == 2 and out == ""
    assert err.startswith("error: cannot unseal") and "wrong key" in err and err.count("\n") == 1

    blob = bytearray(sealed.read_bytes())
    blob[-1] ^= 1
    sealed.write_bytes(bytes(blob))
    code, out, err = run_cli("unseal", str(sealed), "--key-file", str(k1))
    assert code == 2 and "failed authentication" in err and "Traceback" not in err

    monkeypatch.delenv("AIPC_SEAL_KEY", raising=False)
    code, _, err = run_cli("unseal", str(sealed))
    assert code == 2 and "no seal key given" in err
    assert _listing(tmp_path) == before  # no d.txt, no temp file


def test_env_key_and_folder_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_SEAL_KEY", "ab" * 32)
    ckpt = tmp_path / "ckpt"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "config.json").write_text('{"a": 1}')
    (ckpt / "model.safetensors").write_bytes(os.urandom(70_000))
    (ckpt / "sub" / "empty").write_bytes(b"")
    code, out, err = run_cli("seal", str(ckpt), "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == 3
    assert _listing(tmp_path / "ckpt.sealed") == ["config.json.sealed", "model.safetensors.sealed", "sub", "sub/empty.sealed"]
    code, _, err = run_cli("unseal", str(tmp_path / "ckpt.sealed"), "-o", str(tmp_path / "restored"))
    assert code == 0, err
    for name in ("config.json", "model.safetensors", "sub/empty"):
        assert (tmp_path / "restored" / name).read_bytes() == (ckpt / name).read_bytes()


def test_folder_with_a_damaged_file_leaves_no_output_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_SEAL_KEY", "cd" * 32)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for i in range(3):
        (ckpt / f"f{i}").write_bytes(os.urandom(1000))
    assert run_cli("seal", str(ckpt))[0] == 0
    bad = tmp_path / "ckpt.sealed" / "f2.sealed"
    bad.write_bytes(bad.read_bytes()[:-5])  # truncated
    code, _, err = run_cli("unseal", str(tmp_path / "ckpt.sealed"), "-o", str(tmp_path / "out"))
    assert code == 2 and "truncated" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "ckpt.sealed"]  # no out, no temp


def test_existing_output_needs_force(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPC_SEAL_KEY", "ef" * 32)
    f = tmp_path / "a.txt"
    f.write_text("v1")
    assert run_cli("seal", str(f))[0] == 0
    f.write_text("v2")
    code, _, err = run_cli("seal", str(f))
    assert code == 2 and "already exists" in err and "--force" in err
    assert run_cli("seal", str(f), "--force")[0] == 0
    code, _, err = run_cli("unseal", str(tmp_path / "a.txt.sealed"))
    assert code == 2 and "already exists" in err
    assert run_cli("unseal", str(tmp_path / "a.txt.sealed"), "--force")[0] == 0
    assert f.read_text() == "v2"


def test_usage_errors(tmp_path):
    code, _, err = run_cli("seal")
    assert code == 2 and "nothing to seal" in err
    code, _, err = run_cli("seal", str(tmp_path / "nope"), "--key-file", str(tmp_path / "k"))
    assert code == 2 and "not found" in err
    code, _, err = run_cli("unseal", str(tmp_path / "plain.txt"), "--key-file", "x")
    assert code == 2
    existing = tmp_path / "k.key"
    existing.write_text("x")
    code, _, err = run_cli("seal", "--new-key", str(existing))
    assert code == 2 and "refusing to overwrite" in err and existing.read_text() == "x"
