"""e15 — Greedy layer-wise pretraining: a deep sigmoid net pretrained as stacked autoencoders
fine-tunes where the same net from random init does not (Hinton et al. 2006; Bengio et al. 2007).

A 7-hidden-layer sigmoid MLP on digits. Pretraining: each layer in turn is the encoder of a
one-layer autoencoder (sigmoid code, sigmoid decoder, cross-entropy reconstruction) trained on
the codes of the layers below it, which stay frozen. Fine-tuning: the stacked encoders plus a
fresh softmax layer are trained end to end with SGD + momentum. The baseline is the same
architecture from the same random weights (PyTorch's default init) with the same fine-tuning
steps and batches. The watcher records δ = ‖∂L/∂h‖ at every sigmoid output during fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "greedy-pretraining"
CLAIM = ("A deep sigmoid net pretrained greedily, layer by layer, as autoencoders reaches a higher accuracy "
         "with better gradient flow than the same net from random init after the same fine-tuning steps.")
SOURCE = ("Hinton, Osindero & Teh 2006; Bengio, Lamblin, Popovici & Larochelle 2007 (autoencoder variant); "
          "Erhan et al. 2010")


@dataclass(frozen=True)
class Config:
    depth: int = 7                  # hidden sigmoid layers
    width: int = 64                 # hidden width
    pretrain_steps: int = 200       # autoencoder steps per layer (Adam)
    pretrain_lr: float = 0.01       # autoencoder Adam learning rate
    finetune_steps: int = 500       # fine-tuning steps, the same for both nets
    lr: float = 0.1                 # fine-tuning SGD learning rate
    momentum: float = 0.9           # fine-tuning SGD momentum
    batch: int = 64                 # mini-batch size (pretraining and fine-tuning)
    min_gain: float = 0.1           # "higher accuracy": pretrained ≥ random + this
    every: int = 25                 # watcher: δ every `every` steps


FULL = {"pretrain_steps": 2000, "finetune_steps": 5000}


def make_net(encoders: list[nn.Linear], classes: int = 10) -> nn.Sequential:
    """Stack encoders as ``Linear → Sigmoid`` pairs and add a linear head (shares the encoders' weights).

    Example:
        >>> net = make_net([nn.Linear(64, 8), nn.Linear(8, 8)])
        >>> [type(m).__name__ for m in net]
        ['Linear', 'Sigmoid', 'Linear', 'Sigmoid', 'Linear']
    """
    layers: list[nn.Module] = []
    for enc in encoders:
        layers += [enc, nn.Sigmoid()]
    layers.append(nn.Linear(encoders[-1].out_features, classes))
    return nn.Sequential(*layers)


class AutoEncoder(nn.Module):
    """One pretraining stage: ``sigmoid(decoder(sigmoid(encoder(x))))``; codes and inputs lie in [0, 1].

    Example:
        >>> AutoEncoder(nn.Linear(6, 3))(torch.rand(2, 6)).shape
        torch.Size([2, 6])
    """

    def __init__(self, encoder: nn.Linear) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = nn.Linear(encoder.out_features, encoder.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(torch.sigmoid(self.encoder(x))))


def pretrain(ctx: Context, encoders: list[nn.Linear], X: torch.Tensor, config: Config, advance) -> list[list[float]]:
    """Greedy layer-wise pretraining of ``encoders`` in place; returns each layer's loss curve.

    Layer i is trained as an :class:`AutoEncoder` on the codes of layers 1..i−1 (frozen), each
    stage recorded by the watcher as run ``pretrain-i``.

    Example:
        >>> # curves = pretrain(ctx, encoders, data.X_train, config, advance)
    """
    curves = []
    h = X
    for i, enc in enumerate(encoders):
        ae = AutoEncoder(enc)
        opt = torch.optim.Adam(ae.parameters(), lr=config.pretrain_lr)
        order = batches(len(h), config.batch, ctx.generator(10 + i))
        with ctx.watch(ae, opt, f"pretrain-{i + 1}", every=config.every):
            for _ in range(config.pretrain_steps):
                x = h[next(order)]
                loss = nn.functional.binary_cross_entropy(ae(x), x)
                opt.zero_grad()
                loss.backward()
                opt.step()
        curves.append(ctx.load(f"pretrain-{i + 1}").steps["loss"].tolist())
        with torch.no_grad():
            h = torch.sigmoid(enc(h))  # the next layer learns to reconstruct these codes
        advance()
    return curves


def _log_ratio(row, first: str, last: str) -> float:
    a, b = float(row[first]), float(row[last])
    return math.log10(a / b) if a > 0 and b > 0 else float("-inf")


def run(config: Config, ctx: Context) -> Result:
    import copy

    from gradwatch.lab.metrics import classification_report

    data = digits()
    encoders = [nn.Linear(64 if i == 0 else config.width, config.width) for i in range(config.depth)]
    random_init = copy.deepcopy(encoders)          # the baseline starts from the same random weights
    head_state = make_net(encoders, data.classes)[-1].state_dict()
    sigmoids = [str(2 * i + 1) for i in range(config.depth)]  # module names of the sigmoid outputs
    m: dict = {"accuracy": {}, "final_loss": {}, "log10_delta_ratio_start": {}, "log10_delta_ratio_mean": {},
               "delta_profile_start": {}, "weight_norm_start": {}, "pretrain_final_loss": []}
    tables, curves = {}, {}
    with ctx.progress(config.depth + 2, "pretraining layers, fine-tuning") as advance:
        pre_curves = pretrain(ctx, encoders, data.X_train, config, advance)
        m["pretrain_final_loss"] = [c[-1] for c in pre_curves]
        for name, encs in (("random", random_init), ("pretrained", encoders)):
            model = make_net(encs, data.classes)
            model[-1].load_state_dict(head_state)  # same fresh head for both
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
            order = batches(len(data.X_train), config.batch, ctx.generator(1))  # same batches
            with ctx.watch(model, opt, f"finetune-{name}", every=config.every):
                for _ in range(config.finetune_steps):
                    idx = next(order)
                    loss = nn.functional.cross_entropy(model(data.X_train[idx]), data.y_train[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                pred = model(data.X_test).argmax(1)
                m["final_loss"][name] = float(nn.functional.cross_entropy(model(data.X_train), data.y_train))
            run = ctx.load(f"finetune-{name}")
            delta = run.series("delta")
            ratios = [_log_ratio(row, sigmoids[0], sigmoids[-1]) for _, row in delta.iterrows()]
            m["log10_delta_ratio_start"][name] = ratios[0]
            finite = [r for r in ratios if math.isfinite(r)]
            m["log10_delta_ratio_mean"][name] = sum(finite) / len(finite) if finite else float("-inf")
            m["delta_profile_start"][name] = [float(delta.iloc[0][s]) for s in sigmoids]
            wn = run.series("weight_norm").iloc[0]
            m["weight_norm_start"][name] = [float(wn[f"{2 * i}.weight"]) for i in range(config.depth)]
            tables[name] = classification_report(data.y_test, pred, labels=range(data.classes))
            m["accuracy"][name] = tables[name]["accuracy"]
            curves[name] = (run.steps["loss"].to_numpy(), delta.index.to_numpy(), ratios)
            advance()
    _figure(ctx, config, m, curves, pre_curves)
    return Result(measurements=m, checks=_checks(config, m), tables=tables,
                  notes=("Autoencoders instead of RBMs (Bengio et al. 2007's variant), pretrained with Adam for speed; "
                         "PyTorch default init for the random baseline and the fresh head; δ ratio = ‖∂L/∂h_1‖/‖∂L/∂h_L‖ "
                         "over the sigmoid outputs, at the first fine-tuning step ('start') and averaged in log over "
                         "the watched steps ('mean'). Fine-tuning budgets are equal; the pretraining steps are extra. "
                         "weight_norm_start = Frobenius norm of each encoder at the start of fine-tuning: a sigmoid "
                         "layer (σ′ ≤ 1/4) passes δ on undiminished only if its weights are large enough."))


def _checks(config: Config, m: dict) -> list:
    acc, start = m["accuracy"], m["log10_delta_ratio_start"]
    return [
        check(f"pretrained: test accuracy ≥ random init + {config.min_gain:g} after the same fine-tuning steps",
              acc["pretrained"] >= acc["random"] + config.min_gain,
              pretrained=acc["pretrained"], random=acc["random"]),
        check("pretrained: better gradient flow at the start of fine-tuning — log10 δ(first)/δ(last) closer to 0",
              abs(start["pretrained"]) < abs(start["random"]),
              pretrained=start["pretrained"], random=start["random"]),
    ]


def _figure(ctx: Context, config: Config, m: dict, curves: dict, pre_curves: list) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, prof in m["delta_profile_start"].items():
        ax[0].semilogy(range(1, len(prof) + 1), prof, marker="o", label=name)
    ax[0].set(xlabel="hidden layer", ylabel="δ = ‖∂L/∂h‖", title="δ per layer at the start of fine-tuning")
    for name, (loss, _, _) in curves.items():
        ax[1].plot(loss, lw=0.8, label=f"{name} (test acc {m['accuracy'][name]:.3f})")
    ax[1].axhline(math.log(10), color="grey", ls=":", lw=1)
    ax[1].set(xlabel="fine-tuning step", ylabel="training loss",
              title=f"fine-tuning: SGD lr {config.lr:g}, momentum {config.momentum:g}")
    for i, c in enumerate(pre_curves):
        ax[2].plot(c, lw=0.7, label=f"layer {i + 1}")
    ax[2].set(xlabel="pretraining step", ylabel="reconstruction cross-entropy", title="greedy pretraining, per layer")
    for a in ax:
        a.legend(fontsize=7)
    ctx.savefig(fig, "greedy_pretraining")
