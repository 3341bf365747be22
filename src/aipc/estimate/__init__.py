"""The estimator: memory, compute, time, storage and fit of a workload on any device.

    from aipc.spec import Workload
    from aipc.estimate import estimate
    est = estimate(Workload(model="llama-3.1-8b", task="infer"), "rtx-4090")
    est.memory.peak_bytes, est.fits, est.time.decode_tokens_per_s, est.suggestions

Import-light: never imports torch or transformers (nor bench: data flows down).
"""

from aipc.estimate.api import estimate, estimate_devices, resolve_model  # noqa: F401
from aipc.hardware.local import resolve_device  # noqa: F401  (this machine lives in aipc.hardware)
from aipc.estimate.fit import backward_search  # noqa: F401
