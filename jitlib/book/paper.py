"""The paper's figures, transcribed once (Li & He 2025, arXiv 2511.13720), and a checker for pages that quote them.

Every chapter that states one of the paper's numbers reads it from here; ``tests/test_paper_numbers.py`` scans the
built book for numbers that claim to be the paper's and checks them with :func:`check_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from jitlib.nn.registry import PAPER_COSTS

PREDS = ("x", "eps", "v")

# FID-50K with CFG interval, Tabs. 5 and 6: (model, epochs) -> FID. G's "600" entries stopped at ~320 epochs.
FID_SCALING: dict[tuple[str, int], float] = {
    ("JiT-B/16", 200): 4.37,
    ("JiT-B/16", 600): 3.66,
    ("JiT-L/16", 200): 2.79,
    ("JiT-L/16", 600): 2.36,
    ("JiT-H/16", 200): 2.29,
    ("JiT-H/16", 600): 1.86,
    ("JiT-G/16", 200): 2.15,
    ("JiT-G/16", 600): 1.82,
    ("JiT-B/32", 200): 4.64,
    ("JiT-B/32", 600): 4.02,
    ("JiT-L/32", 200): 3.06,
    ("JiT-L/32", 600): 2.53,
    ("JiT-H/32", 200): 2.51,
    ("JiT-H/32", 600): 1.94,
    ("JiT-G/32", 200): 2.11,
    ("JiT-G/32", 600): 1.78,
    ("JiT-B/64", 200): 4.82,
}
G_LAST_EPOCH = 320  # JiT-G was early-stopped; its "600 epoch" entries are from about this epoch

# Tab. 2: FID-50K of the nine prediction × loss combinations (200 epochs, CFG); [loss][prediction].
TAB2_256 = {  # ImageNet 256, JiT-B/16 (768-d patches, hidden 768)
    "x": {"x": 10.14, "eps": 379.21, "v": 107.55},
    "eps": {"x": 10.45, "eps": 394.58, "v": 126.88},
    "v": {"x": 8.62, "eps": 372.38, "v": 96.53},
}
TAB2_64 = {  # ImageNet 64, JiT-B/4 (48-d patches)
    "x": {"x": 5.76, "eps": 6.20, "v": 6.12},
    "eps": {"x": 3.56, "eps": 4.02, "v": 3.76},
    "v": {"x": 3.55, "eps": 3.63, "v": 3.46},
}
# Tab. 3: noise shift μ of the logit-normal t (JiT-B/16, 200 epochs, v-loss); μ -> {prediction: FID}.
TAB3 = {
    0.0: {"x": 14.44, "eps": 464.25, "v": 120.03},
    -0.4: {"x": 9.79, "eps": 372.91, "v": 109.93},
    -0.8: {"x": 8.62, "eps": 372.36, "v": 96.53},
    -1.2: {"x": 8.99, "eps": 355.25, "v": 106.85},
}
# Fig. 4: JiT-B/16 FID vs bottleneck width d' (768 = no bottleneck); the d' of points other than 128/768 follows a
# third-party transcription.
FIG4_BOTTLENECK = {16: 9.40, 32: 8.38, 64: 7.35, 128: 7.48, 256: 7.89, 512: 8.15, 768: 8.62}
# Tab. 4 (JiT/16, 256, d' = 128, 200 epochs): (FID with CFG, FID with CFG interval).
TAB4 = {
    "JiT-B/16": {"baseline": (7.48, 6.32), "rope_qknorm": (6.69, 5.44), "in_context": (5.49, 4.37)},
    "JiT-L/16": {"in_context": (3.39, 2.79)},
}
TAB4_NO_SWIGLU = 7.89  # footnote 5: the baseline without SwiGLU and RMSNorm
# Tab. 10: pre-conditioners at 256/16, (EDM-style, linear) per loss.
TAB10 = {"x": (28.94, 39.50), "eps": (72.05, 67.56), "v": (35.49, 46.25)}
TAB11 = {"JiT-B/16": (4.37, 4.14), "JiT-L/16": (2.79, 2.50)}  # extra classification loss: without -> with
# Tabs. 7 and 8: the JiT rows, 600 epochs with CFG interval: (FID, IS).
SYSTEM = {
    "JiT-B/16": (3.66, 275.1),
    "JiT-L/16": (2.36, 298.5),
    "JiT-H/16": (1.86, 303.4),
    "JiT-G/16": (1.82, 292.6),
    "JiT-B/32": (4.02, 271.0),
    "JiT-L/32": (2.53, 299.9),
    "JiT-H/32": (1.94, 309.1),
    "JiT-G/32": (1.78, 306.8),
}
TAB13_PR = {"JiT-B": (0.82, 0.50), "JiT-L": (0.80, 0.59), "JiT-H": (0.78, 0.62), "JiT-G": (0.79, 0.62)}
FIG6_L16 = {"no_interval": 2.88, "interval": 2.36}  # JiT-L/16, 600 epochs, best CFG

# Evaluation protocol (App. A).
PROTOCOL = dict(
    samples=50_000,
    per_class=50,
    sweep_samples=8_000,
    cfg_lo=1.0,
    cfg_hi=4.0,
    cfg_step=0.1,
    inception_dim=2048,
)

# The training recipe: the paper's Tab. 9 / App. A, and where the official code (LTH14/JiT) adds something.
RECIPE = {
    "epochs": "200 (ablations), 600 (final; G stopped at ~320)",
    "warm-up epochs": "5",
    "optimizer": "Adam, β = (0.9, 0.95), no weight decay",
    "batch size": "1024",
    "learning rate": "2e-4, constant",
    "EMA decays": "0.9996, 0.9998, 0.9999 (best one chosen)",
    "label drop (for CFG)": "0.1",
    "time distribution": "logit-normal, μ = −0.8, σ = 0.8",
    "noise scale s": "image size / 256",
    "clip of 1 − t": "0.05",
    "prediction / loss": "x / v",
    "dropout": "0 (B, L); 0.2 (H, G)",
    "augmentation": "not stated (official code: center crop, random flip)",
    "sampler": "Heun, 50 steps",
    "CFG interval": "[0.1, 1]",
    "CFG scale": "swept 1.0–4.0 on 8K samples",
}


@dataclass(frozen=True)
class Report:
    """A reproduction reported by a user of the official code (a GitHub issue of LTH14/JiT)."""

    issue: int
    setting: str
    paper: float
    reproduced: float
    note: str


REPORTS = (
    Report(56, "JiT-B/16, 200 epochs, README recipe on 8×H100", 4.37, 4.72, "sweep CFG (and EMA)"),
    Report(56, "JiT-B/16, 200 epochs, TPU v4-16", 4.37, 4.69, "sweep CFG (and EMA)"),
    Report(
        42,
        "JiT-B/16 without in-context tokens (Tab. 4), 6×RTX 4090, batch 1020",
        5.44,
        7.41,
        "author: sweep EMA and CFG, the optimum differs at 200 and 600 epochs",
    ),
    Report(
        41,
        "released JiT-B/32 checkpoint at 512 × 512, 4 seeds, 4×A800",
        4.02,
        4.098,
        "seeds agree; gap unexplained",
    ),
)
CIFAR_REPORT_FID = 30  # I#29: a CIFAR-10 run scored with ImageNet statistics (approximate, as reported)


def fid(model: str, epochs: int) -> float:
    """The paper's FID-50K (with CFG interval) of ``model`` after ``epochs`` epochs (Tabs. 5, 6)."""
    if (model, epochs) not in FID_SCALING:
        valid = ", ".join(f"{m} @ {e}" for m, e in FID_SCALING)
        raise KeyError(f"the paper reports no FID for {model} after {epochs} epochs; it does for: {valid}")
    return FID_SCALING[model, epochs]


def _values(obj: object) -> list[float]:
    if isinstance(obj, dict):
        return [v for item in obj.values() for v in _values(item)]
    if isinstance(obj, (tuple, list)):
        return [v for item in obj for v in _values(item)]
    return [float(obj)] if isinstance(obj, (int, float)) else []


def setting_fids(model: str, epochs: int) -> set[float]:
    """Every FID the paper reports for ``model`` trained ``epochs`` epochs (all its tables and figures)."""
    out = {FID_SCALING[model, epochs]} if (model, epochs) in FID_SCALING else set()
    if model == "JiT-B/16" and epochs == 200:
        out |= set(_values([TAB2_256, TAB3, FIG4_BOTTLENECK, TAB4["JiT-B/16"], TAB4_NO_SWIGLU, TAB10, TAB11]))
    if model == "JiT-L/16" and epochs == 200:
        out |= set(_values([TAB4["JiT-L/16"], TAB11["JiT-L/16"]]))
    if model == "JiT-B/4" and epochs == 200:
        out |= set(_values(TAB2_64))
    if epochs == 600 and model in SYSTEM:
        out |= {SYSTEM[model][0]} | (set(FIG6_L16.values()) if model == "JiT-L/16" else set())
    return out


def figures() -> set[float]:
    """Every number the paper reports that this book quotes: FIDs, IS, precision/recall, parameters, GFLOPs."""
    costs = [float(p[:-1]) if isinstance(p, str) else p for pair in PAPER_COSTS.values() for p in pair]
    return set(
        _values([FID_SCALING, TAB2_256, TAB2_64, TAB3, FIG4_BOTTLENECK, TAB4, TAB4_NO_SWIGLU, TAB10, TAB11])
        + _values([SYSTEM, TAB13_PR, FIG6_L16, G_LAST_EPOCH])
        + costs
    )


def reported() -> set[float]:
    """The FIDs users of the official code reported (quoted beside the paper's)."""
    return {r.reproduced for r in REPORTS} | {float(CIFAR_REPORT_FID)}


def _matches(number: str, allowed: set[float]) -> bool:
    """Whether a number as printed (its decimals set the rounding) is one of ``allowed``."""
    decimals = len(number.split(".")[1]) if "." in number else 0
    value = float(number)
    return any(abs(round(a, decimals) - value) < 1e-9 for a in allowed)


_NUM = r"(\d+(?:\.\d+)?)"
_MODEL = r"(JiT-[BLHG]/(?:4|16|32|64))"
# "3.66 for JiT-B/16 after 600 epochs", "JiT-B/16 ... 600 epochs ... FID 3.66" within one sentence.
_CLAIM_NUM_FIRST = re.compile(rf"{_NUM}\s+(?:for|of)\s+{_MODEL}[^.;]{{0,40}}?\b(200|600)[- ]epochs?")
_CLAIM_MODEL_FIRST = re.compile(
    rf"{_MODEL}[^.;]{{0,40}}?\b(200|600)[- ]epochs?[^.;0-9]{{0,30}}?FID(?:-50K)?\D{{0,6}}{_NUM}"
)
_FID = re.compile(rf"\bFID(?:-50K)?(?: of| =| ≈| is| from)?\s+{_NUM}")
_NOT_PAPER = re.compile(r"proxy|reproduc|\bgot\b|user|reran|I#\d|JiT#\d|ours|jitlib", re.IGNORECASE)
_CLAIMS_PAPER = re.compile(r"paper|Li (?:and|&) He|\bTab(?:le|\.) ?\d|\bFig(?:ure|\.) ?\d", re.IGNORECASE)


def check_text(text: str) -> list[str]:
    """Statements in ``text`` that quote the paper with a number it does not report (empty when all agree).

    Checked: "<FID> for <model> after <N> epochs" (and model-first variants) against that setting's figures, and every
    "FID <number>" in a sentence that credits the paper (names it, its tables or figures) and is not about a
    reproduction or our own measurement, against all paper figures.
    """
    problems = []
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])|\n", text):
        for match in _CLAIM_NUM_FIRST.finditer(sentence):
            number, model, epochs = match.groups()
            allowed = setting_fids(model, int(epochs))
            if allowed and "." in number and not _matches(number, allowed):
                problems.append(
                    f"{number} is not the paper's FID of {model} at {epochs} epochs: {sentence.strip()!r}"
                )
        for match in _CLAIM_MODEL_FIRST.finditer(sentence):
            model, epochs, number = match.groups()
            allowed = setting_fids(model, int(epochs))
            if allowed and not _matches(number, allowed | reported()):
                problems.append(
                    f"{number} is not the paper's FID of {model} at {epochs} epochs: {sentence.strip()!r}"
                )
        if _NOT_PAPER.search(sentence) or not _CLAIMS_PAPER.search(sentence):
            continue
        for number in _FID.findall(sentence):
            if not _matches(number, figures() | reported()):
                problems.append(f"FID {number} is not a figure of the paper: {sentence.strip()!r}")
    return problems
