"""Defaults of the needs file, each with its source and the date it was read.

Every field a needs file may leave out is here: its value, what it means, where the value came from
and when. ``aipc decide --example`` prints them as comments; ``--json`` output lists the ones a
decision used (``assumptions``). Money is in the needs file's ``currency``; the catalog's prices are
US dollars and are converted with ``usd_per_unit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AS_OF = "2026-11-25"
HOURS_PER_MONTH = 8760 / 12  # 730 h: a 365-day year over 12 months


@dataclass(frozen=True)
class Default:
    value: Any
    meaning: str
    source: str
    as_of: str = AS_OF


MLPERF_CONF = ("MLPerf Inference loadgen/mlperf.conf, llama3_1-8b.Server: ttft_latency = 2000 ms, "
               "tpot_latency = 100 ms (https://github.com/mlcommons/inference/blob/master/loadgen/mlperf.conf)")

# Top-level and [assumptions] fields.
ASSUMPTIONS: dict[str, Default] = {
    "currency": Default("USD", "currency of every amount in the needs file and in the output",
                        "catalog prices are US dollars"),
    "usd_per_unit": Default(1.0, "US dollars per 1 unit of `currency` (converts the catalog's USD prices)",
                            "1.0 for USD; set the day's rate for another currency"),
    "on_prem_required": Default(False, "data must stay on premises: cloud offers become infeasible",
                                "the team's policy; default allows the cloud"),
    "horizon_months": Default(36, "months over which a purchase is written off (amortized)",
                              "FIELD-NOTES: TCO write-ups commonly use 3 years; hyperscalers depreciate "
                              "servers over 5-6 years (10-K filings)"),
    "residual_fraction": Default(0.0, "resale value at the end of the horizon, as a fraction of the price",
                                 "conservative: no resale; FIELD-NOTES notes consumer GPUs may resell at "
                                 "20-30% after 3 years (unverified)"),
    "utilization": Default("auto", "fraction of hours an owned device does useful work; 'auto' derives it "
                                   "from the demand below; a number says the device is shared with other "
                                   "work, so the listed demand carries only its share of the fixed costs",
                           "FIELD-NOTES: amortized $/h = capex(1-residual)/(hours x utilization) + kW x PUE x $/kWh + ops"),
    "electricity_per_kwh": Default(0.13, "electricity price per kWh for owned devices",
                                   "EIA Electric Power Annual (data year 2023), average revenue per kWh, "
                                   "commercial sector: 7.4-39.0 cents by state, most 9-14 "
                                   "(https://www.eia.gov/electricity/annual/secrev-map.php); FIELD-NOTES: "
                                   "US commercial ~$0.10-0.20/kWh (EIA 2024), EU households ~EUR 0.29 "
                                   "(Eurostat H2 2024)"),
    "pue_desk": Default(1.0, "power usage effectiveness of a device on a desk or in an office (ai-pc, "
                             "workstation)", "FIELD-NOTES: a desk machine ~1.0 (no facility cooling)"),
    "pue_datacenter": Default(1.56, "power usage effectiveness of an owned datacenter device (category "
                                    "datacenter); cloud prices already include it",
                              "Uptime Institute Global Data Center Survey 2024: average PUE 1.56 (1.58 in "
                              "2023, https://intelligence.uptimeinstitute.com/resource/large-data-centers-"
                              "are-mostly-more-efficient-analysis-confirms)"),
    "ops_per_month": Default(0.0, "fixed operating cost per owned device per month (admin time, space, "
                                  "support contract)", "none assumed; add your own"),
    "extra_capex_per_device": Default(0.0, "extra purchase cost per device, e.g. the PC around a GPU card "
                                           "(catalog prices of cards are the card alone)",
                                      "none assumed; a host PC typically adds its own price"),
    "host_per_gpu_card": Default(1000.0, "purchase cost of the PC that hosts one discrete GPU card (catalog "
                                         "category workstation, kind gpu), added to each card bought; 0 if you "
                                         "already have the PC",
                                 "assumption (unverified): a desktop without GPU (8-16 core CPU, 64 GB RAM, "
                                 "~1000 W power supply) costs roughly $1,000; complete systems (Mac Studio, "
                                 "Framework Desktop, DGX Spark) are priced whole in the catalog"),
    "max_devices": Default(8, "most devices one training job or one serving replica may span",
                           "one 8-GPU server (the largest common cloud instance, e.g. AWS p5.48xlarge)"),
    "always_on": Default(True, "a serving endpoint stays up around the clock: in the cloud at least one "
                               "replica is rented every hour of the month",
                         "a dedicated endpoint; set false for batch or scale-to-zero serving"),
    "peak_to_average": Default(3.0, "peak requests per second as a multiple of the daily average, when an "
                                    "inference entry gives no peak_requests_per_s",
                               "assumption: daytime traffic concentrated in ~8 busy hours gives 24/8 = 3x"),
    "max_batch": Default(64, "largest serving batch tried when sizing replicas",
                         "assumption: continuous batching servers commonly run 32-256 sequences"),
}

# [[jobs]] fields (training / fine-tuning).
JOB: dict[str, Default] = {
    "name": Default(None, "a label for the job (default: model + method)", "-"),
    "model": Default(None, "catalog model name, HF id, config.json or folder (required)", "-"),
    "method": Default("lora", "full | lora | qlora | freeze", "LoRA: the common fine-tuning method of small teams"),
    "train_tokens": Default(None, "tokens processed by one job (dataset tokens x epochs; required)", "-"),
    "jobs_per_month": Default(1.0, "how many such jobs run per month", "one job a month"),
    "deadline_hours": Default(None, "a job must finish within this many hours (none: no deadline)", "-"),
    "seq_len": Default(2048, "training sequence length (tokens)", "aipc Workload default"),
    "batch_size": Default(1, "micro-batch per device (sequences); add grad_accum for a larger effective batch",
                          "the smallest memory; aipc's roofline time is per token, so once compute-bound "
                          "the micro-batch changes memory more than speed"),
    "precision": Default(None, "bf16, mixed-bf16, fp32, nf4, ... (default: the Workload default, bf16)", "-"),
    "grad_ckpt": Default("auto", "activation checkpointing: true, false, or 'auto' (on only where the job "
                                 "would not fit without it)", "what a team would do when memory is short"),
}

# [[inference]] fields (serving).
INFERENCE: dict[str, Default] = {
    "name": Default(None, "a label for the service (default: model)", "-"),
    "model": Default(None, "catalog model name, HF id, config.json or folder (required)", "-"),
    "requests_per_day": Default(None, "requests on an average day (required, > 0)", "-"),
    "peak_requests_per_s": Default(None, "requests per second at the busiest time (default: daily average "
                                         "x peak_to_average)", "see peak_to_average"),
    "prompt_tokens": Default(512, "prompt tokens per request", "aipc Workload default"),
    "output_tokens": Default(256, "generated tokens per request", "aipc Workload default"),
    "ttft_s": Default(2.0, "time to first token target, seconds (includes prefill)", MLPERF_CONF),
    "tpot_s": Default(0.1, "time per output token target, seconds (excludes the first token)", MLPERF_CONF),
    "precision": Default(None, "bf16, int8, int4, q4_k_m, ... (default: bf16)", "-"),
}


def value(field: str) -> Any:
    """The default value of a top-level / [assumptions] field."""
    return ASSUMPTIONS[field].value
