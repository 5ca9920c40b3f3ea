"""e08 — Normalisation and residual paths keep the back-propagated signal alive in a deep net.

A plain 30-layer ReLU MLP (PyTorch's default init, which shrinks a ReLU layer's signal) against
the same net with BatchNorm, with identity shortcuts (pre-activation residual blocks), with both,
and with LayerNorm. The watcher records δ = ‖∂L/∂h‖ at every block output; the δ ratio first /
last block shows how many orders of magnitude the signal loses on its way down. All five are
trained with the same SGD + momentum budget on digits and tested on the held-out split.
BatchNorm without shortcuts is judged as Yang et al. 2019 describe it: at init δ *grows* towards
the input by √(π/(π−1)) ≈ 1.21 per BN-ReLU layer (mean-field theory, so ~10^2.4 at depth 30: not
"within 100×"), and once training has started the explosion subsides (their learning-dynamics
experiments: after a single optimisation step the gradients have a dramatically smaller dynamic
range), so "within ~100×" is asked of every measured step after step 0. The mean cosine
similarity of the last block's outputs over test inputs tells whether the net still separates
its inputs. Daneshmand et al. 2020: the representations of an unnormalised deep net collapse in
rank with depth (every input ends up pointing the same way), BatchNorm provably avoids it, and
rank stability is what training needs. LayerNorm maps each sample on its own (centre, rescale):
it cannot separate inputs whose pre-activations already point the same way, so it fixes δ's
scale at init (its Jacobian divides by the shrinking σ) but not the collapse, and it is judged
on exactly that: δ flat at init, last-block cosine like the plain net's, accuracy below
BatchNorm's. The collapse checks are made for ReLU only: ReLU is positively homogeneous, so its
layer-to-layer correlation map is the same at every weight scale and a per-sample rescaling
cannot change it; for tanh it depends on the scale (Schoenholz et al. 2017), and LN's rescaling
moves the net towards the chaotic phase, so no collapse at init is predicted there.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "norm-residual"
CLAIM = ("Residual paths keep δ = ‖∂L/∂h‖ within ~100× from the last layer to the first of a deep net, "
         "where the plain net loses orders of magnitude; BatchNorm without shortcuts makes δ grow at init by "
         "the mean-field rate, keeps it within ~100× once training has started, and keeps the inputs apart "
         "(no rank collapse); LayerNorm restores δ's scale at init but, normalising each sample on its own, "
         "lets every input collapse onto one direction as in the plain net, and without shortcuts does not "
         "train where BatchNorm does; the residual and BatchNorm nets train where the plain net does not.")
SOURCE = ("Ioffe & Szegedy 2015 (BatchNorm); He et al. 2016, Identity Mappings, Fig. 1; Ba et al. 2016 "
          "(LayerNorm); Yang et al. 2019, A Mean Field Theory of Batch Normalization, Thm. 3.9 and its "
          "learning-dynamics section; Daneshmand et al. 2020, Batch Normalization Provably Avoids Rank "
          "Collapse for Randomly Initialised Deep Networks")

VARIANTS = ("plain", "batchnorm", "residual", "residual+bn", "layernorm")


@dataclass(frozen=True)
class Config:
    depth: int = 30                                   # hidden blocks (each one Linear width x width)
    width: int = 64                                   # hidden width
    activation: str = "relu"                          # "relu" or "tanh"
    variants: tuple[str, ...] = VARIANTS              # which nets to train (names in VARIANTS)
    steps: int = 400                                  # SGD steps per variant
    batch: int = 64                                   # mini-batch size
    lr: float = 0.02                                  # SGD learning rate
    momentum: float = 0.9                             # SGD momentum
    every: int = 20                                   # watcher: δ every `every` steps
    max_orders: float = 2.0                           # "within ~100×": |log10 δ ratio| <= this


FULL = {"steps": 3000, "depth": 50}


class Block(nn.Module):
    """One hidden block: plain/normalised ``act(norm(W h))`` or residual ``h + W act(norm(h))``.

    The residual form is the pre-activation block of He et al. 2016 (identity shortcut, nothing
    after the addition), so the shortcut carries δ unchanged.

    Example:
        >>> Block(8, "residual+bn", "relu")(torch.randn(4, 8)).shape
        torch.Size([4, 8])
    """

    def __init__(self, width: int, variant: str, activation: str) -> None:
        super().__init__()
        self.residual = variant.startswith("residual")
        if variant in ("batchnorm", "residual+bn"):
            self.norm: nn.Module = nn.BatchNorm1d(width)
        elif variant == "layernorm":
            self.norm = nn.LayerNorm(width)
        else:
            self.norm = nn.Identity()
        self.linear = nn.Linear(width, width)
        self.act = nn.ReLU() if activation == "relu" else nn.Tanh()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.residual:
            return h + self.linear(self.act(self.norm(h)))
        return self.act(self.norm(self.linear(h)))


def make_net(variant: str, depth: int, width: int, activation: str, inputs: int = 64, classes: int = 10) -> nn.Module:
    """Stem ``Linear(inputs, width)``, ``depth`` blocks named ``blocks.i``, head ``Linear(width, classes)``.

    Example:
        >>> len(make_net("plain", 3, 8, "relu").blocks)
        3
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    blocks = nn.Sequential(*[Block(width, variant, activation) for _ in range(depth)])
    return _Net(nn.Linear(inputs, width), blocks, nn.Linear(width, classes))


class _Net(nn.Module):
    def __init__(self, stem: nn.Module, blocks: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.stem, self.blocks, self.head = stem, blocks, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def _log_ratio(delta_row, depth: int) -> float:
    first, last = float(delta_row["blocks.0"]), float(delta_row[f"blocks.{depth - 1}"])
    if not (first > 0 and last > 0 and math.isfinite(first) and math.isfinite(last)):
        return float("-inf") if last > 0 else float("nan")
    return math.log10(first / last)


def bn_relu_prediction(depth: int) -> float:
    """log10 δ(first block) / δ(last block) at init for a plain BatchNorm ReLU net (Yang et al. 2019).

    The squared gradient norm grows by π/(π−1) per layer (infinite width and batch).

    Example:
        >>> round(bn_relu_prediction(30), 2)
        2.41
    """
    return (depth - 1) * 0.5 * math.log10(math.pi / (math.pi - 1))


@torch.no_grad()
def _cosine(model: nn.Module, x: torch.Tensor) -> float:
    """Mean pairwise cosine similarity of the last block's outputs (1.0 = every input looks alike)."""
    h = nn.functional.normalize(model.blocks(model.stem(x)), dim=1)
    return float((h @ h.T).mean())


def run(config: Config, ctx: Context) -> Result:
    import numpy as np

    from gradwatch.lab.metrics import classification_report

    data = digits()
    F = nn.functional
    measurements: dict = {"log10_delta_ratio_init": {}, "log10_delta_ratio_worst": {},
                          "log10_delta_ratio_worst_after_init": {}, "accuracy": {},
                          "final_loss": {}, "cosine_last_block": {}, "delta_profile_init": {},
                          "delta_nonfinite_steps": {}}
    tables, curves = {}, {}
    with ctx.progress(len(config.variants), "variants") as advance:
        for k, variant in enumerate(config.variants):
            torch.manual_seed(ctx.seed * 1000 + k)
            model = make_net(variant, config.depth, config.width, config.activation, classes=data.classes)
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
            order = batches(len(data.X_train), config.batch, ctx.generator(1))  # same batches for all
            cos_init = _cosine(copy.deepcopy(model).train(), data.X_test)  # batch statistics at init
            model.train()
            # ctx.watch keeps δ at every `every`-th step for the whole run (stats_budget=None), so
            # "every measured step" is the same steps on every machine (same seed → same numbers)
            with ctx.watch(model, opt, variant, every=config.every):
                for _ in range(config.steps):
                    idx = next(order)
                    loss = F.cross_entropy(model(data.X_train[idx]), data.y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            model.eval()
            cos_trained = _cosine(model, data.X_test)
            measurements["cosine_last_block"][variant] = {
                "init": cos_init, "trained": cos_trained if math.isfinite(cos_trained) else None}
            with torch.no_grad():
                pred = model(data.X_test).argmax(1)
            report = classification_report(data.y_test, pred, labels=range(data.classes))
            tables[variant] = report
            run = ctx.load(variant)
            delta = run.series("delta")
            blocks = [f"blocks.{i}" for i in range(config.depth)]
            ratios = [_log_ratio(row, config.depth) for _, row in delta.iterrows()]
            measurements["log10_delta_ratio_init"][variant] = ratios[0]
            # a step whose δ is non-finite (the run diverged) has no ratio: it cannot count as "within 100×",
            # so the worst ratio is then null and the check fails (it used to skip such steps)
            nonfinite = sum(math.isnan(r) for r in ratios)
            measurements["delta_nonfinite_steps"][variant] = nonfinite
            measurements["log10_delta_ratio_worst"][variant] = None if nonfinite else max(ratios, key=abs)
            later = ratios[1:]  # every measured step after step 0 (judged for BatchNorm, Yang et al. 2019)
            measurements["log10_delta_ratio_worst_after_init"][variant] = (
                None if not later or any(math.isnan(r) for r in later) else max(later, key=abs))
            measurements["accuracy"][variant] = report["accuracy"]
            losses = run.steps["loss"].to_numpy()
            final_loss = float(np.mean(losses[-20:]))
            measurements["final_loss"][variant] = final_loss if math.isfinite(final_loss) else None
            measurements["delta_profile_init"][variant] = [float(v) for v in delta.iloc[0][blocks]]
            curves[variant] = (delta.index.to_numpy(), np.array(ratios), losses)
            advance()

    _figure(ctx, config, measurements, curves)
    return Result(measurements=measurements, checks=_checks(config, measurements), tables=tables,
                  notes=("PyTorch default init (U(±1/√fan_in): Var(w) = 1/(3·fan_in), so each plain ReLU layer "
                         "scales the signal's variance by ~1/6); same init seed and batches for every variant; "
                         "δ ratio = ‖∂L/∂h_first block‖ / ‖∂L/∂h_last block‖; 'worst' = the measured step "
                         "farthest from 1 in log scale (null when some step's δ is non-finite, counted in "
                         "delta_nonfinite_steps; final_loss null = diverged); 'worst_after_init' = the same over "
                         "the measured steps after step 0, judged for BatchNorm, whose step 0 is judged against "
                         "Yang et al.'s mean-field growth instead; cosine_last_block = mean cosine similarity of the last block's "
                         "outputs over the test inputs (near 1: the net has collapsed every input onto one direction, "
                         "the rank collapse BatchNorm avoids and LayerNorm does not, Daneshmand et al. 2020)."))


def _checks(config: Config, m: dict) -> list:
    checks = []
    worst, acc = m["log10_delta_ratio_worst"], m["accuracy"]
    if "plain" in worst:
        init = m["log10_delta_ratio_init"]["plain"]
        checks.append(check(f"plain net at init loses more than 10^{config.max_orders:g}× of δ from last to first block",
                            init < -config.max_orders, log10_ratio_plain=init))
    for v in config.variants:
        if v == "plain":
            continue
        if v == "batchnorm":  # BN explodes at init by design (Yang et al. 2019): judged from step 1 on
            w = m["log10_delta_ratio_worst_after_init"][v]
            checks.append(check(f"batchnorm once training has started: |log10 δ ratio| <= {config.max_orders:g} at "
                                "every measured step after step 0 (a non-finite δ fails) — Yang et al. 2019: BN's "
                                "gradient explosion is a property of the random init (step 0 is judged against "
                                "their mean-field rate); after one optimisation step the gradients settle to a much "
                                "smaller dynamic range",
                                w is not None and abs(w) <= config.max_orders,
                                log10_ratio_worst_after_init=w if w is not None else float("nan"),
                                nonfinite_steps=m["delta_nonfinite_steps"][v]))
        elif v == "layernorm":  # per-sample normalisation: scale fixed at init, rank collapse not (Daneshmand 2020)
            init = m["log10_delta_ratio_init"][v]
            checks.append(check(f"layernorm at init: |log10 δ ratio| <= {config.max_orders:g} (LN divides by each "
                                "sample's σ, undoing the init's shrinking scale)",
                                math.isfinite(init) and abs(init) <= config.max_orders, log10_ratio_init=init))
        else:
            w = worst[v]
            checks.append(check(f"{v}: |log10 δ ratio| <= {config.max_orders:g} at every measured step (a non-finite δ "
                                "fails)",
                                w is not None and abs(w) <= config.max_orders,
                                log10_ratio_worst=w if w is not None else float("nan"),
                                nonfinite_steps=m["delta_nonfinite_steps"][v]))
        if v == "batchnorm" and config.activation == "relu":
            pred, init = bn_relu_prediction(config.depth), m["log10_delta_ratio_init"][v]
            checks.append(check("batchnorm (ReLU) at init: log10 δ ratio within 0.5 of the mean-field "
                                "prediction (L−1)/2·log10(π/(π−1)) (Yang et al. 2019)",
                                abs(init - pred) <= 0.5, log10_ratio_init=init, predicted=pred))
        if v == "layernorm":
            if "batchnorm" in acc and config.activation == "relu":
                checks.append(check("layernorm without shortcuts does not train where batchnorm does (a collapsed "
                                    "representation carries no input: Daneshmand et al. 2020): test accuracy <= "
                                    "batchnorm − 0.2", acc[v] <= acc["batchnorm"] - 0.2,
                                    accuracy=acc[v], batchnorm=acc["batchnorm"]))
        elif "plain" in acc:
            checks.append(check(f"{v} trains better than the plain net: test accuracy >= plain + 0.2",
                                acc[v] >= acc["plain"] + 0.2, accuracy=acc[v], plain=acc["plain"]))
    cos = {v: c["init"] for v, c in m.get("cosine_last_block", {}).items()}
    if "batchnorm" in cos and config.activation == "relu":
        checks.append(check("rank collapse at init (Daneshmand et al. 2020): the last block's mean cosine similarity "
                            "over test inputs is >= 0.9 for the plain net and <= 0.5 with batchnorm",
                            cos.get("plain", 1.0) >= 0.9 and cos["batchnorm"] <= 0.5,
                            plain=cos.get("plain", float("nan")), batchnorm=cos["batchnorm"]))
    if "layernorm" in cos and config.activation == "relu":
        ref = cos.get("plain")
        checks.append(check("layernorm does not avoid the collapse: its last block's mean cosine similarity at init "
                            "is >= 0.9 (ReLU is positively homogeneous, so the layer-to-layer correlation map does "
                            "not depend on the scale LN fixes, and per-sample normalisation cannot separate inputs "
                            "that point the same way)",
                            cos["layernorm"] >= 0.9, layernorm=cos["layernorm"],
                            plain=ref if ref is not None else float("nan")))
    return checks


def _figure(ctx: Context, config: Config, m: dict, curves: dict) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for v, (steps, ratios, losses) in curves.items():
        prof = m["delta_profile_init"][v]
        ax[0].semilogy(range(1, len(prof) + 1), prof, marker=".", label=v)
        ax[1].plot(steps, ratios, marker=".", label=v)
        ax[2].plot(losses, lw=0.8, label=f"{v} (test acc {m['accuracy'][v]:.2f})")
    ax[0].set(xlabel="block", ylabel="δ = ‖∂L/∂h‖ at init", title=f"δ per block, depth {config.depth}")
    ax[1].axhspan(-config.max_orders, config.max_orders, color="green", alpha=0.08)
    if "batchnorm" in curves and config.activation == "relu":
        ax[1].axhline(bn_relu_prediction(config.depth), color="grey", ls="--", lw=1,
                      label="BN-ReLU mean-field at init (Yang et al.)")
    ax[1].set(xlabel="step", ylabel="log10 δ(first) / δ(last)", title="δ ratio during training")
    ax[2].set(xlabel="step", ylabel="training loss", title="training loss (SGD + momentum)")
    ax[2].axhline(math.log(10), color="grey", ls=":", lw=1)
    for a in ax:
        a.legend(fontsize=8)
    ctx.savefig(fig, "delta_and_training")
