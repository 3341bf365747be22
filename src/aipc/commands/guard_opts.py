"""The privacy guards' flags, one definition for every verb that loads a model or may reach the network:
``--allow-network`` (turns off the offline guard) and ``--allow-pickle`` (loads pickle weights)."""

from __future__ import annotations

import typer

ALLOW_NETWORK = typer.Option(False, "--allow-network", help="Turn off the offline guard.")
ALLOW_PICKLE = typer.Option(False, "--allow-pickle", help="Load pickle weights (pytorch_model*.bin) when a folder has "
                            "no safetensors; pickle can run code, so only for a source you trust.")
