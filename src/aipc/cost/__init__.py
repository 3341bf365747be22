"""Cost: buy an AI PC, use this machine, or rent the cloud — TCO, $/1M tokens, break-even, a recommendation.

    from aipc.cost import decide, load_needs
    d = decide(load_needs("needs.toml"))      # or decide("needs.toml"), or decide({...raw dict...})
    print(d.recommendation)

Import-light: never imports torch or transformers.
"""

from aipc.cost.decide import decide  # noqa: F401
from aipc.cost.needs import Needs, example_text, load_needs  # noqa: F401
