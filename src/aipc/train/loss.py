"""The training loss: summed token cross-entropy, fused with the output projection when possible.

``LinearCrossEntropy`` computes ``sum_t CE(h_t @ W^T, y_t)`` chunk by chunk and, in the same pass,
the gradients: d loss / d logits = softmax - onehot (0 for ignored tokens), so
grad_h = (softmax - onehot) @ W and grad_W = (softmax - onehot)^T @ h. The full (tokens x vocab)
logits tensor, its log-softmax and its gradient are never stored — the same matmuls as autograd,
fewer passes over memory. (The idea of Liger-Kernel's fused linear cross-entropy and Apple's
Cut Cross-Entropy, done here in plain torch.) fp32 products on a CPU go through ``aipc.cpu_gemm``
(oneDNN where it beats MKL on that CPU).

``CausalLMLoss`` wraps an HF causal LM so that DDP/FSDP/torch.compile wrap one module whose forward
returns (sum of token losses, number of target tokens).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aipc import cpu_gemm
from aipc.cpu_gemm import matmul

IGNORE = -100
CHUNK_ELEMENTS = 1 << 23  # logits per chunk (32 MB in fp32); at least MIN_CHUNK tokens
MIN_CHUNK = 256            # tokens: keeps the weight-gradient GEMM (K = chunk) efficient

# Heads known to be a plain bias-free Linear applied to the final hidden state. Others (logit
# soft-capping, logit scaling) use the model's own forward and the plain loss.
PLAIN_HEADS = frozenset({"llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "mixtral", "phi3", "gpt2",
                         "gemma", "olmo", "olmo2", "smollm3", "starcoder2"})
_HEAD_MODIFIERS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


class LinearCrossEntropy(torch.autograd.Function):
    """Sum over tokens of cross-entropy(h @ W^T, y); gradients computed in the forward pass."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        # h (N, H), weight (V, H), targets (N,) with IGNORE for tokens without a target
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(h) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        onednn = cpu_gemm.eligible(h, weight) and cpu_gemm.use_onednn("gemm")  # fp32 on a CPU where it is faster
        # its weight-gradient GEMM cannot accumulate in place: a temporary of the head's size per chunk,
        # accepted up to 256 MiB (a 32k x 2k head); larger heads accumulate in place through torch
        small_w = weight.numel() * weight.element_size() <= 256 * 2**20
        for s in range(0, h.shape[0], chunk):
            hc, tc = h[s: s + chunk], targets[s: s + chunk]
            logp = torch.log_softmax(matmul(hc, weight.t()).float(), dim=1)  # (n, V)
            valid = tc != IGNORE
            tgt = torch.where(valid, tc, 0).unsqueeze(1)                 # (n, 1)
            picked = logp.gather(1, tgt).squeeze(1)
            total -= torch.where(valid, picked, 0.0).sum()
            if not (need_h or need_w):
                continue
            probs = logp.exp_()                                          # softmax, in place
            probs.scatter_add_(1, tgt, valid.to(probs.dtype).neg().unsqueeze(1))
            if h.device.type != "cpu" or _compiling() or not bool(valid.all()):  # no host sync on GPUs
                probs.mul_(valid.unsqueeze(1))
            g = probs.to(h.dtype)
            if need_h:
                if onednn:
                    grad_h[s: s + chunk] = matmul(g, weight)
                else:
                    torch.mm(g, weight.to(h.dtype), out=grad_h[s: s + chunk])
            if need_w:
                if onednn and small_w:
                    grad_w.add_(matmul(g.t(), hc))                # faster GEMM, one extra pass over grad_w
                elif g.dtype == grad_w.dtype:
                    grad_w.addmm_(g.t(), hc)                        # accumulate inside the GEMM
                else:
                    grad_w.add_(g.t().mm(hc).float())
        ctx.save_for_backward(grad_h, grad_w)
        ctx.w_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        gh = grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None
        gw = (grad_w * grad_out).to(ctx.w_dtype) if grad_w is not None else None
        return gh, gw, None, None


def _compiling() -> bool:
    fn = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(fn()) if fn is not None else False


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int | None = None) -> torch.Tensor:
    """Summed token cross-entropy of ``h @ weight.T`` against ``targets`` (IGNORE skipped)."""
    h = h.reshape(-1, h.shape[-1])
    targets = targets.reshape(-1)
    if chunk is None:
        chunk = max(MIN_CHUNK, CHUNK_ELEMENTS // weight.shape[0])
    if torch.is_autocast_enabled(h.device.type):
        dt = torch.get_autocast_dtype(h.device.type)
        h, weight = h.to(dt), weight.to(dt)
    with torch.autocast(device_type=h.device.type, enabled=False):
        return LinearCrossEntropy.apply(h, weight, targets, chunk)


def plain_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed token cross-entropy of full logits (upcast to fp32, as HF does)."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def unwrap_hf(model: nn.Module) -> nn.Module:
    """The transformers PreTrainedModel inside a peft wrapper (or the model itself)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def can_fuse(hf: nn.Module) -> bool:
    """True when the LM head is a plain bias-free Linear on the decoder's last hidden state."""
    cfg = getattr(hf, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in PLAIN_HEADS:
        return False
    if any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _HEAD_MODIFIERS):
        return False
    head = hf.get_output_embeddings() if hasattr(hf, "get_output_embeddings") else None
    return type(head) is nn.Linear and head.bias is None and hasattr(hf, "base_model")


class CausalLMLoss(nn.Module):
    """forward(input_ids (B, T), labels (B, T)) -> (summed token loss, target token count)."""

    def __init__(self, model: nn.Module, fused: bool = True):
        super().__init__()
        self.model = model
        hf = unwrap_hf(model)
        self.fused = bool(fused and can_fuse(hf))
        # module references (not copies) used by the fused path
        self._decoder = [hf.base_model] if self.fused else None
        self._head = [hf.get_output_embeddings()] if self.fused else None

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor):
        count = (labels != IGNORE).sum()
        if self.fused:
            hidden = self._decoder[0](input_ids=input_ids, use_cache=False).last_hidden_state  # (B, T, H)
            loss = linear_cross_entropy(hidden, self._head[0].weight, labels)
        else:
            logits = self.model(input_ids=input_ids, use_cache=False).logits                  # (B, T, V)
            loss = plain_cross_entropy(logits, labels)
        return loss, count
