import subprocess
import sys

from helpers import run_cli

from aipc import __version__


def test_version():
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"aipc {__version__}"


def test_help_lists_verbs_one_line_each():
    code, out, _ = run_cli("--help")
    assert code == 0
    for verb in ("hw", "models", "devices"):
        assert any(line.strip().startswith(verb + " ") for line in out.splitlines()), verb


def test_unknown_verb_is_one_line_exit_2():
    code, out, err = run_cli("no-such-verb")
    assert code == 2
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_console_script_runs_without_torch_import():
    # the light verbs must not pay for torch: check `aipc --help` imports neither torch nor transformers
    code = ("import sys; from aipc.cli import main; "
            "rc = main(['--help']); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_tilde_path_of_unknown_user_is_a_one_line_error():
    # found by tests/test_fuzz_cli.py: pathlib raises RuntimeError for '~0'
    code, out, err = run_cli("devices", "--catalog", "~0")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1
