"""Candidates: every way to get the work done — buy a catalog device, use this machine, rent an offer.

A :class:`Candidate` is a device plus how it is paid for: ``buy`` (purchase price, amortized),
``owned`` (this machine: capex 0, already paid for) or ``cloud`` (an on-demand price per
device-hour). Prices come from the device catalog (US dollars, converted to the needs file's
currency) unless the needs file or a flag overrides them; each candidate says where its price came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipc.cost.needs import Needs
from aipc.errors import unknown
from aipc.hardware.spec import DeviceSpec

KINDS = ("buy", "owned", "cloud")


@dataclass(frozen=True, kw_only=True)
class Candidate:
    id: str                        # "buy:rtx-4090", "owned:this-machine:cpu", "cloud:h100-sxm:Lambda:gpu_1x_h100_sxm5"
    kind: str                      # buy | owned | cloud
    device: DeviceSpec
    label: str                     # "Buy NVIDIA GeForce RTX 4090", "Rent NVIDIA H100 SXM5 80 GB at Lambda"
    capex_per_device: float = 0.0  # purchase price per device incl. extra_capex (currency); 0 unless buy
    per_hour: float = 0.0          # rent per device-hour (currency); 0 unless cloud
    devices_per_instance: int = 1  # cloud: devices are rented in whole instances
    provider: str | None = None
    instance: str | None = None
    price_source: str = ""         # where capex / per_hour came from, with its date
    pue: float = 1.0               # for energy figures (cloud: informative; the rent includes it)
    max_devices: int | None = None # owned: how many such devices this machine has; None: buy any number

    @property
    def on_prem(self) -> bool:
        return self.kind != "cloud"


def _source(spec: DeviceSpec, field: str) -> str:
    s = spec.sources.get(field)
    return f"catalog: {s.source} ({s.as_of})" if s else "catalog"


def _check_names(needs: Needs, known: dict[str, DeviceSpec]) -> None:
    """Every device the needs file names must exist; the error names the closest ids."""
    lower = {k.lower(): k for k in known}
    fix = "(see 'aipc devices' for catalog ids; this machine's devices start with 'this-machine:')"
    for where, names in (("device", needs.devices), ("device", needs.exclude), ("device", tuple(needs.prices)),
                         ("device", tuple(c.device for c in needs.cloud))):
        for n in names:
            if n.lower() not in lower:
                raise unknown(where, n, list(known), fix)


def _canon(name: str, known: dict[str, DeviceSpec]) -> str:
    lower = {k.lower(): k for k in known}
    return lower[name.lower()]


def build_candidates(needs: Needs, catalog: dict[str, DeviceSpec], local: list[DeviceSpec]) -> list[Candidate]:
    """All candidates the needs file allows, in a stable order: owned, buy, cloud."""
    a = needs.assumptions
    known = {**catalog, **{d.name: d for d in local}}
    _check_names(needs, known)
    wanted = {_canon(n, known) for n in needs.devices}
    dropped = {_canon(n, known) for n in needs.exclude}
    prices = {_canon(k, known): v for k, v in needs.prices.items()}

    def keep(name: str) -> bool:
        return (not wanted or name in wanted) and name not in dropped

    def pue(spec: DeviceSpec, cloud: bool = False) -> float:
        return a.pue_datacenter if cloud or spec.category == "datacenter" else a.pue_desk

    out: list[Candidate] = []
    if needs.owned:
        counts: dict[str, int] = {}
        for d in local:
            counts[d.name] = counts.get(d.name, 0) + 1
        for name, n in counts.items():
            d = next(x for x in local if x.name == name)
            if keep(name):
                out.append(Candidate(id=f"owned:{name}", kind="owned", device=d, label=f"This machine: {d.label}",
                                     price_source="already owned: capex 0", pue=pue(d), max_devices=n))
    if needs.buy:
        for name, d in catalog.items():
            if not keep(name):
                continue
            if name in prices:
                price, src = prices[name], f"needs file [prices] ({a.currency})"
            elif d.price_usd is not None:
                price, src = d.price_usd / a.usd_per_unit, _source(d, "price_usd")
                if a.usd_per_unit != 1.0:
                    src += f"; converted at {a.usd_per_unit:g} USD per {a.currency}"
            else:
                continue  # no purchase price: not a buy candidate (add one under [prices])
            host = a.host_per_gpu_card if (d.kind == "gpu" and d.category == "workstation") else 0.0
            if host:
                src += f"; + {host:g} {a.currency} host PC per card (host_per_gpu_card)"
            out.append(Candidate(id=f"buy:{name}", kind="buy", device=d, label=f"Buy {d.label}",
                                 capex_per_device=price + host + a.extra_capex_per_device, price_source=src, pue=pue(d)))
    if needs.rent:
        for name, d in catalog.items():
            if not keep(name):
                continue
            offers: dict[tuple[str, str | None], Candidate] = {}
            if not needs.replace_cloud:
                for o in d.cloud:
                    src = f"catalog: {o.source} ({o.as_of})"
                    if a.usd_per_unit != 1.0:
                        src += f"; converted at {a.usd_per_unit:g} USD per {a.currency}"
                    offers[(o.provider.lower(), o.instance)] = _offer(d, o.provider, o.instance, o.usd_per_hour / a.usd_per_unit,
                                                                     o.devices_per_instance, src, pue(d, True))
            for o in needs.cloud:
                if _canon(o.device, known) != name:
                    continue
                key = (o.provider.lower(), o.instance)
                if o.instance is None:  # a provider-wide override replaces that provider's catalog offers
                    offers = {k: v for k, v in offers.items() if k[0] != key[0]}
                offers[key] = _offer(d, o.provider, o.instance, o.per_hour, o.devices_per_instance,
                                     f"needs file [[cloud]] ({a.currency})", pue(d, True))
            out.extend(offers.values())
    return out


def _offer(d: DeviceSpec, provider: str, instance: str | None, per_hour: float, k: int, src: str, pue: float) -> Candidate:
    inst = f":{instance}" if instance else ""
    where = f"{provider} ({instance})" if instance else provider
    return Candidate(id=f"cloud:{d.name}:{provider}{inst}", kind="cloud", device=d, label=f"Rent {d.label} at {where}",
                     per_hour=per_hour, devices_per_instance=k, provider=provider, instance=instance,
                     price_source=src, pue=pue)
