"""Packing the token stream into fixed-length sequences, the validation split, and batch order.

Sequence i is the window ``stream[i*T : i*T + T + 1]``: inputs are its first T tokens, labels its
last T (each token is predicted exactly once), set to -100 where the mask says "not a target".
No padding anywhere. The order of sequences is a pure function of (seed, epoch), so the data
position of a run is just the number of optimizer steps done — which is what makes resume exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from aipc.errors import AipcError

IGNORE = -100


@dataclass
class Packed:
    """Packed sequences: ``inputs``/``labels`` are int64 arrays of shape (N, T)."""

    inputs: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def tokens(self) -> int:
        return int(self.inputs.size)

    def subset(self, idx: np.ndarray) -> Packed:
        return Packed(self.inputs[idx], self.labels[idx])


def pack(ids: np.ndarray, mask: np.ndarray, seq_len: int) -> Packed:
    """Cut the stream into N = (len - 1) // T windows of T + 1 tokens overlapping by one."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise AipcError(f"the data has {len(ids)} tokens, fewer than one sequence of --seq-len {seq_len} "
                        "(+1); add data or lower --seq-len")
    T = seq_len
    x = ids[: n * T].reshape(n, T)
    y = np.lib.stride_tricks.sliding_window_view(ids[1: n * T + 1], T)[::T]
    m = np.lib.stride_tricks.sliding_window_view(mask[1: n * T + 1], T)[::T]
    labels = np.where(m.astype(bool), y, IGNORE).astype(np.int64)
    return Packed(np.ascontiguousarray(x), labels)


def split(packed: Packed, val_fraction: float, seed: int) -> tuple[Packed, Packed | None]:
    """(train, validation): a seeded random ``val_fraction`` of the sequences held out (at least one)."""
    n = len(packed)
    n_val = 0 if val_fraction <= 0 or n < 2 else max(1, round(n * val_fraction))
    if n_val == 0:
        return packed, None
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    return packed.subset(train_idx), packed.subset(val_idx)


def fingerprint(packed: Packed) -> str:
    """sha256 of the packed inputs and labels: the data's identity for exact resume."""
    h = hashlib.sha256()
    h.update(np.asarray(packed.inputs.shape, dtype=np.int64).tobytes())
    h.update(packed.inputs.tobytes())
    h.update(packed.labels.tobytes())
    return h.hexdigest()[:16]


class Order:
    """Which sequences each (step, micro-step, rank) trains on.

    A global batch is ``world * accum * batch`` consecutive entries of an endless stream made of one
    seeded permutation per epoch. Micro-batch m = a * world + rank of step s takes entries
    [s*G + m*B, s*G + (m+1)*B)."""

    def __init__(self, n: int, *, batch: int, accum: int, world: int, seed: int):
        self.n, self.batch, self.accum, self.world, self.seed = n, batch, accum, world, seed
        self.global_batch = batch * accum * world
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
        return self._perms[epoch]

    def entries(self, start: int, count: int) -> np.ndarray:
        """Sequence indices of stream entries [start, start + count)."""
        out = np.empty(count, dtype=np.int64)
        for k in range(count):
            g = start + k
            out[k] = self._perm(g // self.n)[g % self.n]
        return out

    def micro(self, step: int, accum_idx: int, rank: int) -> np.ndarray:
        m = accum_idx * self.world + rank
        return self.entries(step * self.global_batch + m * self.batch, self.batch)

    def step_entries(self, step: int) -> np.ndarray:
        """All sequences of one optimizer step, over all ranks and micro-steps."""
        return self.entries(step * self.global_batch, self.global_batch)

    def epoch_of(self, step: int) -> float:
        return step * self.global_batch / self.n


def steps_for(n_train: int, global_batch: int, steps: int | None, epochs: float | None) -> int:
    """Optimizer steps: --steps, else ceil(epochs * N / global batch), default one epoch."""
    if steps is not None:
        return steps
    e = 1.0 if epochs is None else epochs
    return max(1, int(np.ceil(e * n_train / global_batch)))
