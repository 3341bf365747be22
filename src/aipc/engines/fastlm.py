"""A lean decoder forward over an HF model's own weights, with a pre-allocated (static) KV cache.

Why it is faster than ``model.generate()`` for one token at a time (measured by
``benchmarks/bench_generate_vs_hf.py``, results in docs/benchmarks.md "Generate"):

* the KV cache is allocated once: ``(slots, kv_heads, max_len, head_dim)`` per layer, written in
  place; HF's default ``DynamicCache`` concatenates a new tensor every step;
* q/k/v and gate/up weights are concatenated once, so a layer makes 4 matrix-vector products, not 7
  (the model's own q/k/v and gate/up parameters become views of the concatenations: no second copy);
* no attention mask is rebuilt per step (batch 1 attends over the filled prefix, a view), no logits
  processors or stopping criteria objects, logits only for the last position, ``inference_mode``;
* about 15 tensor operations per layer and no per-module hooks or output dataclasses;
* on CPUs, fp32 products go through oneDNN where it is faster than torch's default MKL path
  (``aipc.cpu_gemm``).

Supported: Llama-style decoders (``llama``, ``mistral``, ``qwen2``, ``qwen3``): RMSNorm, RoPE
(any HF rope type: the cos/sin table comes from the model's own rotary module), GQA, optional
q/k/v bias, optional q/k RMSNorm (Qwen3), SwiGLU-style MLP, sliding-window layers.
:func:`supports` says whether a model qualifies; others use :class:`aipc.engines.hfrunner.HFRunner`.

Slots: the cache holds ``max_batch`` independent sequences. ``prefill(slot, ids)`` fills one slot
from position 0; ``decode(tokens, pos)`` advances slots ``0..n-1`` by one token each, every slot at
its own position (continuous batching). ``decode1`` is the batch-1 path used by ``aipc generate``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aipc.cpu_gemm import linear, use_onednn
from aipc.engines.torch_runner import TorchRunner
from aipc.models.spec import FASTLM_TYPES

SUPPORTED_TYPES = FASTLM_TYPES


def supports(model) -> bool:
    """True when :class:`FastLM` can run ``model`` (a Llama-style ``*ForCausalLM``)."""
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_TYPES:
        return False
    base = getattr(model, "model", None)
    if base is None or not hasattr(base, "rotary_emb") or not hasattr(model, "lm_head"):
        return False
    layer = base.layers[0]
    attn, mlp = layer.self_attn, layer.mlp
    return all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
        hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj", "act_fn"))


def _eps(norm) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as HF computes it: x / sqrt(mean(x²) + eps) in fp32, cast back, times w."""
    dt = x.dtype
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(dt)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE: x·cos + rotate_half(x)·sin, rotate_half(x) = [-x2, x1] (HF's non-interleaved layout)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _fuse(params: list) -> torch.Tensor | None:
    """One tensor holding ``params`` stacked along dim 0 (None when any is None). The parameters become
    row views of it, so their own storage is freed: the model keeps working and the weights are held
    once, not twice (a copy would add ~60% of a Llama's weight bytes)."""
    if any(p is None for p in params):
        return None
    fused = torch.cat([p.detach() for p in params])
    row = 0
    for p in params:
        n = p.shape[0]
        p.data = fused[row:row + n]
        row += n
    return fused


class _Layer:
    __slots__ = ("wqkv", "bqkv", "wo", "bo", "w13", "w2", "b13", "b2", "ln1", "ln2", "eps1", "eps2",
                 "qn", "kn", "qeps", "keps", "act", "window", "nq", "nkv")


class FastLM(TorchRunner):
    """Decode-optimised forward over ``model``'s weights (no copy: the q/k/v and gate/up parameters are
    re-pointed into their concatenations)."""

    fast = True

    def __init__(self, model, *, max_batch: int = 1, max_len: int | None = None):
        if not supports(model):
            raise ValueError(f"FastLM does not support model_type {model.config.model_type!r}")
        super().__init__(model, max_batch=max_batch, max_len=max_len)
        cfg = model.config
        base = model.model
        a0 = base.layers[0].self_attn
        self.head_dim = int(a0.head_dim)
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(getattr(cfg, "num_key_value_heads", None) or self.n_heads)
        self.group = self.n_heads // self.n_kv
        self.scale = float(getattr(a0, "scaling", self.head_dim ** -0.5))
        self.embed = base.embed_tokens.weight
        self.norm_w, self.norm_eps = base.norm.weight, _eps(base.norm)
        self.lm_head = model.lm_head.weight
        self.layers = [self._layer(layer, cfg, i) for i, layer in enumerate(base.layers)]
        with torch.inference_mode():
            pos = torch.arange(self.max_len, device=self.device)[None]
            probe = torch.zeros(1, dtype=self.dtype, device=self.device)
            cos, sin = base.rotary_emb(probe, position_ids=pos)  # (1, L, hd), rope scaling included
        self.cos, self.sin = cos[0].contiguous(), sin[0].contiguous()
        if self.device.type == "cpu" and self.dtype == torch.float32:  # choose GEMM kernels now, not in a
            for kind in ("gemm", "gemv"):                                  # request's TTFT (a one-off measurement)
                use_onednn(kind)
        shape = (self.max_batch, self.n_kv, self.max_len, self.head_dim)
        self.k_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]
        self.v_cache = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.layers]

    def _layer(self, layer, cfg, i: int) -> _Layer:
        a, m, L = layer.self_attn, layer.mlp, _Layer()
        L.wqkv = _fuse([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        L.bqkv = _fuse([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias])
        L.wo, L.bo = a.o_proj.weight, a.o_proj.bias
        L.w13 = _fuse([m.gate_proj.weight, m.up_proj.weight])
        L.b13 = _fuse([m.gate_proj.bias, m.up_proj.bias])
        L.w2, L.b2 = m.down_proj.weight, m.down_proj.bias
        L.ln1, L.eps1 = layer.input_layernorm.weight, _eps(layer.input_layernorm)
        L.ln2, L.eps2 = layer.post_attention_layernorm.weight, _eps(layer.post_attention_layernorm)
        qn, kn = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
        L.qn, L.kn = (qn.weight if qn is not None else None), (kn.weight if kn is not None else None)
        L.qeps, L.keps = (_eps(qn) if qn is not None else 0.0), (_eps(kn) if kn is not None else 0.0)
        L.act = m.act_fn
        win = getattr(a, "sliding_window", None)
        if win is None and cfg.model_type == "mistral":
            win = getattr(cfg, "sliding_window", None)
        L.window = int(win) if win else None
        L.nq, L.nkv = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        return L

    # ------------------------------------------------------------------ shared pieces
    def weight_bytes_per_step(self) -> int:
        """Bytes of weights one decode step reads: every matrix and norm, one embedding row."""
        n = self.embed.shape[1] * self.embed.element_size() + self.lm_head.numel() * self.lm_head.element_size()
        n += self.norm_w.numel() * self.norm_w.element_size()
        for L in self.layers:
            for t in (L.wqkv, L.bqkv, L.wo, L.bo, L.w13, L.b13, L.w2, L.b2, L.ln1, L.ln2, L.qn, L.kn):
                if t is not None:
                    n += t.numel() * t.element_size()
        return n

    def kv_bytes_per_token(self) -> int:
        """Bytes of K and V one cached token holds across all layers: 2·layers·kv_heads·head_dim·bytes."""
        return 2 * len(self.layers) * self.n_kv * self.head_dim * self.k_cache[0].element_size()

    def _qkv(self, L: _Layer, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Projections, optional q/k norm and RoPE; h (B, T, C) -> q (B,T,nh,hd), k/v (B,T,nkv,hd)."""
        B, T, _ = h.shape
        qkv = linear(h, L.wqkv, L.bqkv)
        q, k, v = qkv.split((L.nq, L.nkv, L.nkv), dim=-1)
        q = q.view(B, T, self.n_heads, self.head_dim)
        k = k.view(B, T, self.n_kv, self.head_dim)
        v = v.view(B, T, self.n_kv, self.head_dim)
        if L.qn is not None:
            q, k = rms_norm(q, L.qn, L.qeps), rms_norm(k, L.kn, L.keps)
        return rotate(q, cos, sin), rotate(k, cos, sin), v

    def _mlp(self, L: _Layer, x: torch.Tensor) -> torch.Tensor:
        h = rms_norm(x, L.ln2, L.eps2)
        g, u = linear(h, L.w13, L.b13).chunk(2, dim=-1)
        return x + linear(L.act(g) * u, L.w2, L.b2)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return linear(rms_norm(x, self.norm_w, self.norm_eps), self.lm_head)

    # ------------------------------------------------------------------ prefill
    @torch.inference_mode()
    def prefill(self, slot: int, ids: torch.Tensor) -> torch.Tensor:
        """Run prompt ``ids`` (T,) into cache slot ``slot`` from position 0; logits (V,) of the last one."""
        T = int(ids.shape[-1])
        if T < 1 or T > self.max_len:
            raise ValueError(f"prompt of {T} tokens does not fit the cache of {self.max_len}")
        x = F.embedding(ids.view(1, T).to(self.device), self.embed)  # (1, T, C)
        cos, sin = self.cos[:T].view(1, T, 1, -1), self.sin[:T].view(1, T, 1, -1)
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            h = rms_norm(x, L.ln1, L.eps1)
            q, k, v = self._qkv(L, h, cos, sin)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (1, heads, T, hd)
            kc[slot, :, :T] = k[0]
            vc[slot, :, :T] = v[0]
            if self.group > 1:
                k = k.repeat_interleave(self.group, dim=1)
                v = v.repeat_interleave(self.group, dim=1)
            if L.window is not None and T > L.window:
                i = torch.arange(T, device=self.device)
                mask = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - L.window)
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            else:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, scale=self.scale)
            x = x + linear(o.transpose(1, 2).reshape(1, T, -1), L.wo, L.bo)
            x = self._mlp(L, x)
        return self._logits(x[0, -1])

    # ------------------------------------------------------------------ decode, one sequence
    @torch.inference_mode()
    def decode1(self, token: int | torch.Tensor, pos: int, slot: int = 0) -> torch.Tensor:
        """One token for one sequence at position ``pos`` (its cache holds 0..pos-1); logits (V,)."""
        if self._compiled is not None:
            return self._compiled_decode1(token, pos)
        tok = token.view(1, 1) if isinstance(token, torch.Tensor) else torch.tensor([[token]], device=self.device)
        x = F.embedding(tok, self.embed)  # (1, 1, C)
        cos, sin = self.cos[pos].view(1, 1, 1, -1), self.sin[pos].view(1, 1, 1, -1)
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            h = rms_norm(x, L.ln1, L.eps1)
            q, k, v = self._qkv(L, h, cos, sin)
            kc[slot, :, pos] = k[0, 0]
            vc[slot, :, pos] = v[0, 0]
            lo = 0 if L.window is None else max(0, pos + 1 - L.window)
            ks, vs = kc[slot:slot + 1, :, lo:pos + 1], vc[slot:slot + 1, :, lo:pos + 1]  # views, no copy
            # query heads grouped under their KV head: (1, nkv, group, hd), no K/V repeat
            qg = q.view(1, self.n_kv, self.group, self.head_dim)
            o = F.scaled_dot_product_attention(qg, ks, vs, scale=self.scale)
            x = x + linear(o.reshape(1, 1, -1), L.wo, L.bo)
            x = self._mlp(L, x)
        return self._logits(x[0, 0])

    # ------------------------------------------------------------------ decode, many sequences
    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, pos: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        """One token for slots 0..n-1 at their own positions; tokens, pos (n,); logits (n, V).

        Idle slots may be included with any position: their rows are computed and ignored (their
        cache gets one garbage write that the next prefill of that slot overwrites).
        """
        lk = int(pos.max()) + 1  # before the copy to the device: no extra synchronisation
        return self._decode_rows(tokens.to(self.device), pos.to(self.device), lk)

    def _decode_rows(self, tokens: torch.Tensor, pos: torch.Tensor, lk: int) -> torch.Tensor:
        """Slots 0..n-1 advance one token each; keys 0..lk-1 are read (masked per row)."""
        n = tokens.shape[0]
        x = F.embedding(tokens.view(n, 1), self.embed)  # (n, 1, C)
        cos, sin = self.cos[pos].view(n, 1, 1, -1), self.sin[pos].view(n, 1, 1, -1)
        rows = torch.arange(n, device=self.device)
        j = torch.arange(lk, device=self.device)[None, :]
        full = (j <= pos[:, None]).view(n, 1, 1, lk)
        masks: dict[int | None, torch.Tensor] = {None: full}
        for L, kc, vc in zip(self.layers, self.k_cache, self.v_cache):
            h = rms_norm(x, L.ln1, L.eps1)
            q, k, v = self._qkv(L, h, cos, sin)
            kc[rows, :, pos] = k[:, 0]
            vc[rows, :, pos] = v[:, 0]
            if L.window not in masks:
                masks[L.window] = full & (j > (pos[:, None] - L.window)).view(n, 1, 1, lk)
            qg = q.view(n, self.n_kv, self.group, self.head_dim)
            o = F.scaled_dot_product_attention(qg, kc[:n, :, :lk], vc[:n, :, :lk], attn_mask=masks[L.window],
                                               scale=self.scale)
            x = x + linear(o.reshape(n, 1, -1), L.wo, L.bo)
            x = self._mlp(L, x)
        return self._logits(x[:, 0])

    def free(self, slot: int) -> None:
        """Nothing to release: a slot's cache rows are overwritten by its next prefill."""

    # ------------------------------------------------------------------ torch.compile (opt-in)
    _compiled = None

    def compile(self) -> None:
        """Compile the batch-1 decode step with static shapes (whole cache, masked), gpt-fast style;
        on CUDA with CUDA graphs (``mode="reduce-overhead"``).

        Opt-in: a long cold compile for a modest gain on the CPU measured (docs/benchmarks.md "Generate");
        not measured on a GPU yet.
        """
        mode = "reduce-overhead" if self.device.type == "cuda" else None
        self._compiled = torch.compile(self._decode_rows, fullgraph=True, dynamic=False, mode=mode)

    def _compiled_decode1(self, token, pos: int) -> torch.Tensor:
        t = torch.tensor([int(token)], device=self.device)
        p = torch.tensor([int(pos)], device=self.device)
        with torch.inference_mode(False), torch.no_grad():
            return self._compiled(t, p, self.max_len)[0].clone()
