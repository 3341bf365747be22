"""This machine's devices for decide (capex 0: already owned), without importing torch.

``aipc.estimate.api.local_devices()`` reads the newest cached ``aipc hw`` profile torch-free
(``aipc.hardware.profile.newest_cached``) and falls back to the CPU and its RAM with no measured
peaks when there is none.
"""

from __future__ import annotations

from aipc.hardware.spec import DeviceSpec


def this_machine() -> list[DeviceSpec]:
    """This machine's devices, as the estimator sees them."""
    from aipc.estimate.api import local_devices

    return local_devices()
