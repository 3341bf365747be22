"""``aipc seal`` / ``aipc unseal``: encrypt datasets and checkpoints at rest (AES-256-GCM)."""

from pathlib import Path
from typing import Optional

import typer

from aipc.errors import AipcError

KEY_FILE_HELP = "Key file (64 hex digits or base64 of 32 bytes, mode 0600). Default: $AIPC_SEAL_KEY."


def _report(result, as_json: bool) -> None:
    from aipc.render import gb, print_json

    if as_json:
        print_json(result)
        return
    what = f"{result.files} file{'s' if result.files != 1 else ''}"
    typer.echo(
        f"{result.action}ed {what}: {result.input} ({gb(result.input_bytes, 2)}) -> "
        f"{result.output} ({gb(result.output_bytes, 2)})"
    )


def _kept(key_file: Optional[Path]) -> tuple[Path, ...]:
    """Files an output must never replace besides the input: the key file."""
    return (Path(key_file).expanduser(),) if key_file else ()


def register(app: typer.Typer) -> None:
    @app.command("seal")
    def seal(
        path: Optional[Path] = typer.Argument(None, help="File or folder to seal (dataset, checkpoint)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output path. Default: PATH.sealed"),
        key_file: Optional[Path] = typer.Option(None, "--key-file", help=KEY_FILE_HELP),
        new_key: Optional[Path] = typer.Option(None, "--new-key", help="Create a new random key file (mode 0600) and exit."),
        force: bool = typer.Option(False, "--force", help="Replace an existing output."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Encrypt a file or folder at rest with AES-256-GCM (authenticated; streamed in 1 MiB chunks)."""
        from aipc.privacy.atomic import terminate_cleanly
        from aipc.privacy.keys import load_key, new_key_file
        from aipc.privacy.tree import seal_path

        if new_key is not None:
            if path is not None:
                raise AipcError("--new-key makes a key and seals nothing; run 'aipc seal --new-key KEYFILE' on its own, then 'aipc seal PATH --key-file KEYFILE'")
            with terminate_cleanly():
                p = new_key_file(new_key)
            if as_json:
                from aipc.render import print_json

                print_json({"action": "new-key", "key_file": str(p), "mode": "0600"})
            else:
                typer.echo(f"wrote a new seal key to {p} (mode 0600); keep a backup copy: data sealed with it cannot be recovered without it")
            return
        if path is None:
            raise AipcError("nothing to seal; usage: aipc seal PATH [-o OUT] [--key-file KEYFILE], or aipc seal --new-key KEYFILE")
        key = load_key(key_file)
        with terminate_cleanly():
            result = seal_path(path, output, key, force=force, keep=_kept(key_file))
        _report(result, as_json)

    @app.command("unseal")
    def unseal(
        path: Path = typer.Argument(..., help="Sealed file or folder of sealed files."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output path. Default: PATH without .sealed"),
        key_file: Optional[Path] = typer.Option(None, "--key-file", help=KEY_FILE_HELP),
        force: bool = typer.Option(False, "--force", help="Replace an existing output."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Decrypt what 'aipc seal' wrote; a wrong key or any tampering is an error and leaves no plaintext."""
        from aipc.privacy.atomic import terminate_cleanly
        from aipc.privacy.keys import load_key
        from aipc.privacy.tree import unseal_path

        key = load_key(key_file)
        with terminate_cleanly():
            result = unseal_path(path, output, key, force=force, keep=_kept(key_file))
        _report(result, as_json)
