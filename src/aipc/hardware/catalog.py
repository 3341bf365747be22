"""The device catalog: ``catalog.toml`` plus user files (TOML or JSON, same schema), validated.

Import-light (no torch). Every number in a device entry carries its source and the date it was
read; the loader refuses numbers without them. Schema and units are documented in
``docs/devices.md``; in short::

    [devices.rtx-4090]                      # short id
    label = "NVIDIA GeForce RTX 4090"
    vendor = "nvidia"; kind = "gpu"; category = "workstation"
    memory_gib = {value = 24, source = "URL", as_of = "2026-11-25"}
    bandwidth_gbs = {value = 1008, ref = "waredb"}          # ref -> [refs] table
    peak_tflops.bf16 = {value = 165.2, ref = "waredb", note = "dense, fp32 accumulate"}

Units: ``*_gib`` binary GiB (2**30 B), ``*_gb`` decimal GB (1e9 B), ``*_bytes`` bytes;
``bandwidth_gbs`` 1e9 B/s, ``bandwidth_bytes_s`` B/s; ``peak_tflops`` 1e12 FLOP/s (OP/s for int),
``peak_flops`` FLOP/s. User files add entries or override fields of existing ones (``replace =
true`` drops the built-in entry first). Files come from ``AIPC_DEVICES`` (path list) and ``extra``.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import re
from pathlib import Path
from typing import Any

from aipc.datafile import format_of, parse, read_text
from aipc.errors import AipcError, unknown
from aipc.hardware.spec import CloudOffer, DeviceSpec, Sourced

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
ENV_VAR = "AIPC_DEVICES"
KINDS = ("gpu", "apu", "npu", "cpu")
CATEGORIES = ("ai-pc", "workstation", "datacenter", "this-machine")
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4")
GIB, GB, TERA = 2**30, 1e9, 1e12

# quantity -> {key in file: multiplier to the DeviceSpec unit}; one key per quantity per entry
QUANTITIES = {
    "memory_bytes": {"memory_bytes": 1, "memory_gib": GIB, "memory_gb": GB},
    "usable_memory_bytes": {"usable_memory_bytes": 1, "usable_memory_gib": GIB, "usable_memory_gb": GB},
    "bandwidth_bytes_s": {"bandwidth_bytes_s": 1, "bandwidth_gbs": GB},
    "power_w": {"power_w": 1},
    "price_usd": {"price_usd": 1},
}
PEAK_KEYS = {"peak_flops": 1, "peak_tflops": TERA}
TRAIN_PEAK_KEYS = {"train_peak_flops": 1, "train_peak_tflops": TERA}
NUMBER_KEYS = {k for q in QUANTITIES.values() for k in q}
TEXT_KEYS = {"name", "label", "vendor", "kind", "category", "notes", "source", "as_of"}
TEXT_KEYS = TEXT_KEYS | {"confidence"}
ENTRY_KEYS = NUMBER_KEYS | set(PEAK_KEYS) | set(TRAIN_PEAK_KEYS) | TEXT_KEYS | {"refs", "cloud", "measured", "replace",
                                                                               "native_dtypes", "llc_bytes",
                                                                               "kernel_flops"}
NUMBER_TABLE_KEYS = {"value", "source", "as_of", "ref", "note"}
OFFER_KEYS = {"provider", "instance", "usd_per_hour", "usd_per_instance_hour", "devices_per_instance",
              "source", "as_of", "ref", "note"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")


class _Where:
    """Error context: file, entry and field, so every error is one line naming all three."""

    def __init__(self, file: str, entry: str | None = None):
        self.file, self.entry = file, entry

    def error(self, field: str, problem: str) -> AipcError:
        where = f"{self.file}: [{self.entry}] {field}" if self.entry else f"{self.file}: {field}"
        return AipcError(f"{where} {problem}")


# ---------------------------------------------------------------- reading files and expanding refs

def _read_file(path: Path) -> dict:
    """A catalog file as a dict: JSON for ``.json``, TOML otherwise; clear one-line errors."""
    text = read_text(path, what="device catalog file", fix=f"check --catalog or {ENV_VAR}")
    data = parse(text, format_of(path), path.name)  # errors name the file as the entry errors do
    if not isinstance(data, dict) or not isinstance(data.get("devices"), dict):
        raise AipcError(f"{path.name}: needs a 'devices' table mapping short ids to entries "
                        "(see docs/devices.md)")
    return data


def _source_pair(table: dict, where: _Where, field: str) -> tuple[str, str]:
    """(source, as_of) from a {source, as_of} table, both required."""
    if not isinstance(table, dict) or "source" not in table or "as_of" not in table:
        raise where.error(field, "must be a table {source = \"URL or document\", as_of = \"YYYY-MM-DD\"}")
    return table["source"], table["as_of"]


def _expand_number(raw: Any, where: _Where, field: str, refs: dict, default: tuple | None) -> dict:
    """One number written as 5, {value, source, as_of}, or {value, ref} -> {value, source, as_of}."""
    if isinstance(raw, dict):
        extra = set(raw) - NUMBER_TABLE_KEYS
        if extra:
            raise where.error(field, f"has unknown key(s) {sorted(extra)}; allowed: value, source, as_of, ref, note")
        out = {"value": raw.get("value")}
        if "ref" in raw:
            if not isinstance(raw["ref"], str) or raw["ref"] not in refs:
                raise where.error(field, f"refers to unknown ref '{raw['ref']}'; define it under [refs] "
                                         "in the file or refs.<name> in the entry")
            out["source"], out["as_of"] = refs[raw["ref"]]
        elif "source" in raw or "as_of" in raw:
            out["source"], out["as_of"] = raw.get("source"), raw.get("as_of")
        elif default:
            out["source"], out["as_of"] = default
        else:
            raise where.error(field, "needs a source: write {value = ..., source = \"URL\", as_of = \"YYYY-MM-DD\"}")
        if raw.get("note"):
            out["source"] = f"{out['source']} — {raw['note']}"
        return out
    if default is None:
        raise where.error(field, "needs a source: write {value = ..., source = \"URL\", as_of = \"YYYY-MM-DD\"} "
                                 "or give the entry source/as_of defaults")
    return {"value": raw, "source": default[0], "as_of": default[1]}


def _expand_entry(entry: Any, where: _Where, file_refs: dict, file_default: tuple | None) -> dict:
    """Resolve refs and default sources so each number carries its own source and as_of."""
    if not isinstance(entry, dict):
        raise where.error("entry", "must be a table of fields")
    extra = set(entry) - ENTRY_KEYS
    if extra:
        raise where.error(sorted(extra)[0], f"is not a known field; allowed: {', '.join(sorted(ENTRY_KEYS))}")
    refs = dict(file_refs)
    if not isinstance(entry.get("refs") or {}, dict):
        raise where.error("refs", "must be a table of name = {source = ..., as_of = ...}")
    for name, table in (entry.get("refs") or {}).items():
        refs[name] = _source_pair(table, where, f"refs.{name}")
    default = file_default
    if "source" in entry or "as_of" in entry:
        default = _source_pair({"source": entry.get("source"), "as_of": entry.get("as_of")}, where, "source")
    out = {k: v for k, v in entry.items() if k not in ("refs", "source", "as_of")}
    for key in NUMBER_KEYS & set(entry):
        out[key] = _expand_number(entry[key], where, key, refs, default)
    for key in (PEAK_KEYS.keys() | TRAIN_PEAK_KEYS.keys()) & set(entry):
        if not isinstance(entry[key], dict):
            raise where.error(key, "must be a table of dtype = number, e.g. {bf16 = {value = ..., source = ...}}")
        out[key] = {d: _expand_number(v, where, f"{key}.{d}", refs, default) for d, v in entry[key].items()}
    if "cloud" in entry:
        if not isinstance(entry["cloud"], list):
            raise where.error("cloud", "must be a list of offers ([[devices.<id>.cloud]] tables)")
        offers = []
        for i, offer in enumerate(entry["cloud"]):
            if not isinstance(offer, dict):
                raise where.error(f"cloud[{i}]", "must be a table")
            bad = set(offer) - OFFER_KEYS
            if bad:
                raise where.error(f"cloud[{i}]", f"has unknown key(s) {sorted(bad)}; allowed: {', '.join(sorted(OFFER_KEYS))}")
            src = _expand_number({k: offer[k] for k in ("source", "as_of", "ref", "note") if k in offer},
                                 where, f"cloud[{i}]", refs, default)
            offers.append({**{k: v for k, v in offer.items() if k not in ("ref", "note")},
                           "source": src["source"], "as_of": src["as_of"]})
        out["cloud"] = offers
    return out


def _file_entries(path: Path) -> dict[str, tuple[dict, str]]:
    """{id: (expanded raw entry, file label)} for one file."""
    data = _read_file(path)
    top = _Where(path.name)
    extra = set(data) - {"devices", "refs", "source", "as_of", "schema"}
    if extra:
        raise top.error(sorted(extra)[0], "is not a known top-level key; allowed: devices, refs, source, as_of, schema")
    if not isinstance(data.get("refs") or {}, dict):
        raise top.error("refs", "must be a table of name = {source = ..., as_of = ...}")
    file_refs = {n: _source_pair(t, top, f"refs.{n}") for n, t in (data.get("refs") or {}).items()}
    default = None
    if "source" in data or "as_of" in data:
        default = _source_pair({"source": data.get("source"), "as_of": data.get("as_of")}, top, "source")
    out = {}
    for name, entry in data["devices"].items():
        where = _Where(path.name, name)
        if not NAME_RE.match(name):
            raise where.error("id", "must start with a letter or digit and use only letters, digits and . _ : + -")
        if isinstance(entry, dict) and entry.get("name") not in (None, name):
            raise where.error("name", f"'{entry['name']}' differs from the table id '{name}'")
        out[name] = (_expand_entry(entry, where, file_refs, default), path.name)
    return out


def _merge(base: dict, over: dict) -> dict:
    """Field-level override: given fields replace, peak dtypes merge, omitted fields are kept."""
    if over.get("replace"):
        return {k: v for k, v in over.items() if k != "replace"}
    out = dict(base)
    for keys in [*QUANTITIES.values(), PEAK_KEYS]:
        given = set(keys) & set(over)
        for k in set(keys) & set(out):
            if given and k not in given:
                del out[k]  # the override uses another unit for this quantity
    for k, v in over.items():
        if k in PEAK_KEYS and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


# ---------------------------------------------------------------- validation into DeviceSpec

def _sourced(src: Any, as_of: Any, where: _Where, field: str) -> Sourced:
    if not isinstance(src, str) or not src.strip():
        raise where.error(field, "needs a non-empty source (URL or document)")
    try:
        ok = isinstance(as_of, str) and len(as_of) == 10 and bool(datetime.date.fromisoformat(as_of))
    except ValueError:
        ok = False
    if not ok:
        raise where.error(field, f"as_of must be a date YYYY-MM-DD (got {as_of!r})")
    return Sourced(source=src.strip(), as_of=as_of)


def _positive(value: Any, where: _Where, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise where.error(field, f"must be a positive number (got {value!r})")
    return value


def _scaled(value: Any, unit: float, where: _Where, field: str) -> float:
    """A positive number times its unit, which must stay finite (1e308 GiB is not a memory size)."""
    out = _positive(value, where, field) * unit
    if not math.isfinite(out):
        raise where.error(field, f"is too large (got {value!r})")
    return out


def _text(entry: dict, key: str, where: _Where, choices: tuple | None = None) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, "is required and must be text" + (f" ({' | '.join(choices)})" if choices else ""))
    if choices and value not in choices:
        raise where.error(key, f"must be one of {' | '.join(choices)} (got {value!r})")
    return value


def _quantity(entry: dict, qty: str, where: _Where, required: bool) -> tuple[float, Sourced] | None:
    keys = [k for k in QUANTITIES[qty] if k in entry]
    if len(keys) > 1:
        raise where.error(keys[1], f"conflicts with {keys[0]}; give the quantity once")
    if not keys:
        if required:
            raise where.error(qty, f"is required (one of {', '.join(QUANTITIES[qty])})")
        return None
    key = keys[0]
    num = entry[key]
    value = _scaled(num.get("value"), QUANTITIES[qty][key], where, key)
    return value, _sourced(num.get("source"), num.get("as_of"), where, key)


def _offer(raw: dict, where: _Where, field: str) -> CloudOffer:
    provider = raw.get("provider")
    if not isinstance(provider, str) or not provider.strip():
        raise where.error(f"{field}.provider", "is required and must be text")
    n = raw.get("devices_per_instance", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise where.error(f"{field}.devices_per_instance", f"must be a whole number >= 1 (got {n!r})")
    if ("usd_per_hour" in raw) == ("usd_per_instance_hour" in raw):
        raise where.error(field, "needs exactly one of usd_per_hour (per device) or usd_per_instance_hour")
    if "usd_per_hour" in raw:
        usd = _positive(raw["usd_per_hour"], where, f"{field}.usd_per_hour")
    else:
        usd = _positive(raw["usd_per_instance_hour"], where, f"{field}.usd_per_instance_hour") / n
    instance = raw.get("instance")
    if instance is not None and not isinstance(instance, str):
        raise where.error(f"{field}.instance", "must be text")
    src = _sourced(raw.get("source"), raw.get("as_of"), where, field)
    return CloudOffer(provider=provider, usd_per_hour=usd, source=src.source, as_of=src.as_of,
                      instance=instance, devices_per_instance=n)


def _build(name: str, entry: dict, where: _Where) -> DeviceSpec:
    sources: dict[str, Sourced] = {}
    values: dict[str, float | None] = {}
    for qty in QUANTITIES:
        got = _quantity(entry, qty, where, required=qty in ("memory_bytes", "bandwidth_bytes_s"))
        values[qty] = got[0] if got else None
        if got:
            sources[qty] = got[1]
    for qty in ("memory_bytes", "usable_memory_bytes"):
        if values[qty] is not None and values[qty] < 1:  # 0.5 bytes would round to a device with no memory
            raise where.error(qty, f"must be at least 1 byte (got {values[qty]!r} bytes)")
    if values["usable_memory_bytes"] is None:  # discrete memory: all of it is the device's
        values["usable_memory_bytes"], sources["usable_memory_bytes"] = values["memory_bytes"], sources["memory_bytes"]
    if values["usable_memory_bytes"] > values["memory_bytes"]:
        raise where.error("usable_memory", "must not exceed memory")
    peak_keys = [k for k in PEAK_KEYS if k in entry]
    if len(peak_keys) != 1:
        raise where.error("peak_tflops", "is required once (peak_tflops in TFLOP/s or peak_flops in FLOP/s)")
    peak_flops = _peaks(entry, peak_keys[0], PEAK_KEYS, "peak_flops", sources, where)
    if not peak_flops:
        raise where.error(peak_keys[0], "needs at least one dtype")
    train_keys = [k for k in TRAIN_PEAK_KEYS if k in entry]
    if len(train_keys) > 1:
        raise where.error("train_peak_tflops", "give train_peak_tflops or train_peak_flops, not both")
    train = _peaks(entry, train_keys[0], TRAIN_PEAK_KEYS, "train_peak_flops", sources, where) if train_keys else {}
    native = entry.get("native_dtypes", [])
    if not isinstance(native, list) or any(d not in DTYPES for d in native):
        raise where.error("native_dtypes", f"must be a list of dtypes ({', '.join(DTYPES)})")
    confidence = entry.get("confidence", "")
    if not isinstance(confidence, str):
        raise where.error("confidence", "must be text")
    measured = entry.get("measured", False)
    if not isinstance(measured, bool):
        raise where.error("measured", "must be true or false")
    llc = entry.get("llc_bytes", 0)
    if isinstance(llc, bool) or not isinstance(llc, int) or llc < 0:
        raise where.error("llc_bytes", "must be a whole number of bytes (0: not known)")
    kernels = _kernel_flops(entry.get("kernel_flops", {}), sources, where)
    notes = entry.get("notes", "")
    if not isinstance(notes, str):
        raise where.error("notes", "must be text")
    cloud = tuple(_offer(o, where, f"cloud[{i}]") for i, o in enumerate(entry.get("cloud", [])))
    return DeviceSpec(
        name=name, label=_text(entry, "label", where), vendor=_text(entry, "vendor", where),
        kind=_text(entry, "kind", where, KINDS), category=_text(entry, "category", where, CATEGORIES),
        memory_bytes=int(round(values["memory_bytes"])),
        usable_memory_bytes=int(round(values["usable_memory_bytes"])),
        bandwidth_bytes_s=float(values["bandwidth_bytes_s"]), peak_flops=peak_flops,
        power_w=values["power_w"], price_usd=values["price_usd"], cloud=cloud,
        sources=sources, measured=measured, notes=notes.strip(), train_peak_flops=train,
        native_dtypes=tuple(native), confidence=confidence.strip(), llc_bytes=llc, kernel_flops=kernels)


def _kernel_flops(table, sources: dict, where: _Where) -> dict:
    """kernel_flops = {engine: {source, as_of, types = {ggml type: [[prompt tokens, FLOP/s], ...]}}}
    (aipc hw --kernels; aipc.hardware.kernels) -> DeviceSpec.kernel_flops, sources added."""
    if not isinstance(table, dict):
        raise where.error("kernel_flops", "must be a table of engines")
    from aipc.hardware.kernels import spec_table, valid_record

    out = {}
    for engine, rec in table.items():
        if not valid_record(rec):
            raise where.error(f"kernel_flops.{engine}", "needs types = {TYPE = [[tokens, FLOP/s], ...]} of positive numbers")
        out[engine] = spec_table(rec)
        sources[f"kernel_flops.{engine}"] = _sourced(rec.get("source"), rec.get("as_of"), where, f"kernel_flops.{engine}")
    return out


def _peaks(entry: dict, key: str, keys: dict, name: str, sources: dict, where: _Where) -> dict[str, float]:
    """A {dtype: FLOP/s} table (peak_tflops / train_peak_tflops ...), each number with its source."""
    out = {}
    for dtype, num in entry[key].items():
        field = f"{key}.{dtype}"
        if dtype not in DTYPES:
            raise where.error(field, f"is not a known dtype; use one of {', '.join(DTYPES)}")
        out[dtype] = _scaled(num.get("value"), keys[key], where, field)
        sources[f"{name}.{dtype}"] = _sourced(num.get("source"), num.get("as_of"), where, field)
    return out


# ---------------------------------------------------------------- public API

def device_from_dict(d: dict, name: str | None = None, where: str = "device") -> DeviceSpec:
    """A DeviceSpec from one entry in the catalog schema (the form device_to_dict writes)."""
    name = name or (d.get("name") if isinstance(d, dict) else None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise AipcError(f"{where}: entry needs a 'name' (short id such as 'rtx-4090')")
    w = _Where(where, name)
    return _build(name, _expand_entry(d, w, {}, None), w)


def device_to_dict(spec: DeviceSpec) -> dict:
    """The entry for ``spec`` in the catalog schema, raw units, every number with its source."""

    def num(field: str, value: float) -> dict:
        src = spec.sources.get(field)
        if src is None:
            raise AipcError(f"device {spec.name}: {field} has no source; fill DeviceSpec.sources[{field!r}]")
        return {"value": value, "source": src.source, "as_of": src.as_of}

    out: dict[str, Any] = {"name": spec.name, "label": spec.label, "vendor": spec.vendor,
                           "kind": spec.kind, "category": spec.category}
    for field in ("memory_bytes", "usable_memory_bytes", "bandwidth_bytes_s", "power_w", "price_usd"):
        value = getattr(spec, field)
        if value is not None:
            out[field] = num(field, value)
    out["peak_flops"] = {d: num(f"peak_flops.{d}", v) for d, v in spec.peak_flops.items()}
    if spec.train_peak_flops:
        out["train_peak_flops"] = {d: num(f"train_peak_flops.{d}", v) for d, v in spec.train_peak_flops.items()}
    if spec.native_dtypes:
        out["native_dtypes"] = list(spec.native_dtypes)
    if spec.confidence:
        out["confidence"] = spec.confidence
    if spec.llc_bytes:
        out["llc_bytes"] = spec.llc_bytes
    if spec.kernel_flops:
        out["kernel_flops"] = {e: {"source": spec.sources[f"kernel_flops.{e}"].source,
                                   "as_of": spec.sources[f"kernel_flops.{e}"].as_of,
                                   "types": {t: [list(p) for p in pts] for t, pts in tbl.items()}}
                               for e, tbl in spec.kernel_flops.items()}
    if spec.cloud:
        out["cloud"] = [{"provider": o.provider, **({"instance": o.instance} if o.instance else {}),
                         "usd_per_hour": o.usd_per_hour, "devices_per_instance": o.devices_per_instance,
                         "source": o.source, "as_of": o.as_of} for o in spec.cloud]
    out["measured"] = spec.measured
    if spec.notes:
        out["notes"] = spec.notes
    return out


def catalog_file_dict(specs: list[DeviceSpec]) -> dict:
    """A whole catalog file (JSON-ready) holding ``specs``; load it back with --catalog FILE."""
    return {"schema": 1, "devices": {s.name: {k: v for k, v in device_to_dict(s).items() if k != "name"}
                                     for s in specs}}


def env_paths() -> list[Path]:
    """Files named in AIPC_DEVICES (os.pathsep-separated)."""
    return [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]


@functools.lru_cache(maxsize=32)
def _load(key: tuple[tuple[str, int], ...]) -> dict[str, DeviceSpec]:
    entries: dict[str, tuple[dict, str]] = {}
    index: dict[str, str] = {}  # lowercase id -> id as first written
    for path_str, _mtime in key:
        for name, (entry, label) in _file_entries(Path(path_str)).items():
            canon = index.setdefault(name.lower(), name)
            if canon in entries:
                entry = _merge(entries[canon][0], entry)
            entries[canon] = (entry, label)
    return {name: _build(name, entry, _Where(label, name)) for name, (entry, label) in entries.items()}


def load_catalog(extra: list[Path] | None = None) -> dict[str, DeviceSpec]:
    """All devices: built-in catalog, then AIPC_DEVICES files, then ``extra`` (later files win)."""
    paths = [CATALOG_PATH, *env_paths(), *[Path(p).expanduser() for p in (extra or [])]]
    key = []
    for p in paths:
        if not p.is_file():
            raise AipcError(f"device catalog file not found: {p}; check --catalog or {ENV_VAR}")
        key.append((str(p.resolve()), p.stat().st_mtime_ns))
    return dict(_load(tuple(key)))


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def match_device(catalog: dict[str, DeviceSpec], name: str) -> DeviceSpec | None:
    """The device whose id or label equals ``name`` (case-insensitive, then ignoring punctuation)."""
    q = name.strip().lower()
    for spec in catalog.values():
        if q in (spec.name.lower(), spec.label.lower()):
            return spec
    nq = _norm(q)
    hits = [s for s in catalog.values() if nq and nq in (_norm(s.name), _norm(s.label))]
    return hits[0] if len(hits) == 1 else None


def find_device(catalog: dict[str, DeviceSpec], name: str) -> DeviceSpec:
    """Like match_device, but an unknown name raises an error naming the closest ids."""
    spec = match_device(catalog, name)
    if spec is None:
        raise unknown("device", name, list(catalog), "(see 'aipc devices' for the list, or add it with --catalog FILE)")
    return spec


def get_device(name: str, extra: list[Path] | None = None) -> DeviceSpec:
    """One device by short id or label (case-insensitive), from the catalog plus user files."""
    return find_device(load_catalog(extra), name)


def unverified(catalog: dict[str, DeviceSpec]) -> list[tuple[str, str, str]]:
    """(device, field, source) for every number whose source says 'unverified:'."""
    out = [(s.name, f, src.source) for s in catalog.values() for f, src in s.sources.items()
           if "unverified:" in src.source.lower()]
    out += [(s.name, f"cloud:{o.provider}", o.source) for s in catalog.values() for o in s.cloud
            if "unverified:" in o.source.lower()]
    return out
