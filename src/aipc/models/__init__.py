"""Model registry: ModelSpec (architecture facts and formulas), the catalog, and loading.

``resolve(ref)`` accepts a catalog short name or HF id, a config.json path, or a local model folder.
Import-light: nothing here imports torch or transformers (``ModelSpec.build`` does, lazily).
"""

from aipc.models.catalog import all_specs, get, names
from aipc.models.load import from_config_file, from_folder, resolve
from aipc.models.spec import ModelSpec

__all__ = ["ModelSpec", "all_specs", "from_config_file", "from_folder", "get", "names", "resolve"]
