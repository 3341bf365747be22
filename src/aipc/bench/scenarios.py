"""The measured scenarios: one call of ``Prepared.fn`` is one sample.

- ``train``: one optimizer step on a batch of b x s tokens: zero_grad, forward with labels (causal LM
  loss; encoders: mean square of the last hidden state, as they have no LM head), backward,
  AdamW step. ``method`` full trains every weight; lora trains peft adapters on the frozen base.
- ``prefill``: one forward over a b x p prompt that builds the KV cache and the logits of the last
  position (``logits_to_keep=1``, as generate() does): the compute part of TTFT.
- ``decode``: one decode step of the batch (b new tokens) against a KV cache of p..p+g-2 tokens:
  after every g-1 steps a fresh prefill (untimed) resets the cache to p, so the mean context is
  about p + g/2 as the estimator assumes. Its median is TPOT.
- ``generate``: one whole request with greedy sampling: prefill, the first token (TTFT, device
  synchronized when it is ready), then g-1 decode steps. TPOT = (e2e - TTFT) / (g - 1): it excludes
  the first token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aipc.errors import AipcError

SCENARIOS = ("train", "prefill", "decode", "generate")
INFER_SCENARIOS = ("prefill", "decode", "generate")
DEFINITIONS = {
    "train": "train: one optimizer step (forward + backward + AdamW) on batch x seq tokens",
    "prefill": "prefill: one forward over batch x prompt tokens, building the KV cache (logits of the last position)",
    "decode": "decode: one step producing batch new tokens against a KV cache of prompt..prompt+gen-2 tokens (reset untimed); median = TPOT",
    "generate": "generate: one greedy request; TTFT = prefill + first token (includes prefill); "
                "TPOT = (e2e - TTFT)/(gen - 1) (excludes the first token)",
}


@dataclass
class Prepared:
    fn: Callable[[], object]
    tokens_per_sample: int
    extra_samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""
    cleanup: Callable[[], None] = lambda: None
    before: Callable[[], None] | None = None   # untimed, before every call (decode: reset the KV cache)


def check_applicable(scenario: str, is_decoder: bool, model_name: str) -> None:
    if scenario not in SCENARIOS:
        raise AipcError(f"unknown scenario '{scenario}'; use one or more of {', '.join(SCENARIOS)}")
    if not is_decoder and scenario in ("decode", "generate"):
        raise AipcError(f"scenario '{scenario}' does not apply to {model_name}: it is an encoder and generates no "
                        "tokens; use --scenario train,prefill")


def random_ids(torch, vocab: int, batch: int, length: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, max(vocab, 8), (batch, length), generator=g).to(device)  # (B, T)


def _lora_targets(model, wanted: tuple[str, ...]) -> list[str]:
    import torch

    present = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
               if isinstance(mod, torch.nn.Linear) or type(mod).__name__ == "Conv1D"}
    present.discard("lm_head")
    hits = [t for t in wanted if t in present]
    if not hits:
        raise AipcError(f"none of the LoRA targets {', '.join(wanted)} is a linear module of this model "
                        f"(it has {', '.join(sorted(present)[:8])}); pass --lora-targets with those")
    return hits


def prepare_train(torch, model, *, batch: int, seq: int, device: str, is_decoder: bool, method: str = "full",
                  lora_rank: int = 16, lora_targets: tuple[str, ...] = (), vocab: int) -> Prepared:
    """A training step (see module docstring). LoRA wraps ``model`` in place with peft."""
    note = ""
    if method == "lora":
        from peft import LoraConfig

        from aipc.models.live import with_lora

        targets = _lora_targets(model, lora_targets)
        model = with_lora(model, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0,
                                            target_modules=targets))
        note = f"LoRA r={lora_rank} on {', '.join(targets)}"
    elif method != "full":
        raise AipcError(f"aipc bench trains with --method full or lora (got {method}); "
                        "use 'aipc estimate' for qlora/freeze")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids = random_ids(torch, vocab, batch, seq, device, seed=1)

    def step():
        opt.zero_grad(set_to_none=True)
        if is_decoder:
            loss = model(input_ids=ids, labels=ids).loss
        else:
            loss = model(input_ids=ids).last_hidden_state.float().pow(2).mean()
        loss.backward()
        opt.step()

    def cleanup():
        opt.zero_grad(set_to_none=True)
        opt.state.clear()
        model.eval()

    return Prepared(fn=step, tokens_per_sample=batch * seq, note=note, cleanup=cleanup)


def prepare_prefill(torch, model, *, batch: int, prompt: int, device: str, is_decoder: bool, vocab: int) -> Prepared:
    model.eval()
    ids = random_ids(torch, vocab, batch, prompt, device)
    kwargs = {"use_cache": True, "logits_to_keep": 1} if is_decoder else {}

    def fwd():
        with torch.inference_mode():
            return model(input_ids=ids, **kwargs)

    return Prepared(fn=fwd, tokens_per_sample=batch * prompt)


def cache_kw(model) -> str:
    """The forward() keyword of the KV cache: 'cache' in transformers >= 5.2x, 'past_key_values' before."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _out_cache(out):
    c = getattr(out, "cache", None)
    return c if c is not None else out.past_key_values


def _first_tokens(model, ids):
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    return _out_cache(out), out.logits[:, -1:].argmax(-1)  # (B, 1)


def prepare_decode(torch, model, *, batch: int, prompt: int, gen: int, device: str, vocab: int) -> Prepared:
    """Decode steps; before every g-1 steps (untimed, in ``before``) a fresh prefill resets the cache to p."""
    model.eval()
    ids = random_ids(torch, vocab, batch, prompt, device)
    kw = cache_kw(model)
    span = max(gen - 1, 1)
    state: dict = {"steps": span}

    def before():
        if state["steps"] >= span:
            with torch.inference_mode():
                state["cache"], state["tok"] = _first_tokens(model, ids)
            state["steps"] = 0

    def step():
        with torch.inference_mode():
            out = model(input_ids=state["tok"], use_cache=True, **{kw: state["cache"]})
            state["tok"] = out.logits[:, -1:].argmax(-1)
            state["steps"] += 1

    return Prepared(fn=step, tokens_per_sample=batch, before=before)


def prepare_generate(torch, model, *, batch: int, prompt: int, gen: int, device: str, vocab: int,
                     sync: Callable[[], None]) -> Prepared:
    model.eval()
    ids = random_ids(torch, vocab, batch, prompt, device)
    kw = cache_kw(model)
    ttft: list[float] = []

    def request():
        with torch.inference_mode():
            t0 = time.perf_counter()
            cache, tok = _first_tokens(model, ids)
            sync()
            ttft.append(time.perf_counter() - t0)
            for _ in range(gen - 1):
                out = model(input_ids=tok, use_cache=True, **{kw: cache})
                tok = out.logits[:, -1:].argmax(-1)

    return Prepared(fn=request, tokens_per_sample=batch * gen, extra_samples={"ttft_s": ttft})


def prepare(torch, scenario: str, model, *, shape: dict, device: str, is_decoder: bool, vocab: int,
            sync: Callable[[], None]) -> Prepared:
    """Dispatch on the scenario name; ``shape`` carries batch, seq, prompt, gen, method, lora_*.
    On the CPU the model's large fp32 Linear layers run as ``aipc train`` / ``aipc generate`` run them:
    through oneDNN where it is faster than MKL here (``aipc.cpu_gemm``); the run's note says so."""
    prep = _prepare(torch, scenario, model, shape=shape, device=device, is_decoder=is_decoder, vocab=vocab, sync=sync)
    if device == "cpu":
        from aipc import cpu_gemm

        if cpu_gemm.patch_linears(model):
            prep.note = "; ".join(filter(None, [prep.note, "fp32 Linear layers through oneDNN (aipc.cpu_gemm)"]))
    return prep


def _prepare(torch, scenario: str, model, *, shape: dict, device: str, is_decoder: bool, vocab: int,
             sync: Callable[[], None]) -> Prepared:
    b = shape["batch"]
    if scenario == "train":
        return prepare_train(torch, model, batch=b, seq=shape["seq"], device=device, is_decoder=is_decoder,
                             method=shape.get("method", "full"), lora_rank=shape.get("lora_rank", 16),
                             lora_targets=tuple(shape.get("lora_targets", ())), vocab=vocab)
    if scenario == "prefill":
        return prepare_prefill(torch, model, batch=b, prompt=shape["prompt"], device=device, is_decoder=is_decoder,
                               vocab=vocab)
    if scenario == "decode":
        return prepare_decode(torch, model, batch=b, prompt=shape["prompt"], gen=shape["gen"], device=device,
                              vocab=vocab)
    if scenario == "generate":
        return prepare_generate(torch, model, batch=b, prompt=shape["prompt"], gen=shape["gen"], device=device,
                                vocab=vocab, sync=sync)
    raise AipcError(f"unknown scenario '{scenario}'; use one of {', '.join(SCENARIOS)}")
