"""The healthy base models: a configuration, a data set, a model builder, one training step, an evaluation.

Each base is a small training loop of the kind found in tutorials, healthy as written:
He init for ReLU networks and Xavier for tanh ones, orthogonal recurrences, a learning rate
in the usual range for its optimizer, pre-LN with warmup for the transformers. A fault
(``faults.py``) rewrites the configuration or the built model; nothing here knows faults.

``HALF`` splits the bases in two fixed halves with the same mix of architectures: rules
and thresholds may be settled on half A; half B is held back.

Example:
    >>> b = BASES["mlp_digits"]
    >>> sorted(b.cfg)[:3]
    ['act', 'batch', 'depth']
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from . import common as C
from .models import CNN, MLP, CharRNN, Conv1dNet, RecurrentClassifier, ResNet, Transformer

_DATA: dict[str, Any] = {}


def _cached(name: str, make: Callable[[], Any]):
    if name not in _DATA:
        _DATA[name] = make()
    return _DATA[name]


#: what every base's configuration holds, whatever the architecture (a fault may rewrite any of it)
COMMON = {"opt": "adam", "lr": 1e-3, "momentum": 0.0, "steps": 150, "batch": 64, "warmup": 0,
          "zero_grad": True, "loss_impl": "torch"}


@dataclass
class Base:
    """One healthy training set-up.

    Args:
        name: the base's id.
        half: "A" (rules may be settled on it) or "B" (held back).
        arch: the architecture in words.
        task: ``class`` (cross-entropy), ``binary``, ``regress`` (MSE), ``lm``, ``recon`` or ``gan``.
        data: returns ``(x_train, y_train, x_test, y_test)``.
        build: configuration → the models, by name (two for a GAN).
        cfg: the configuration (``COMMON`` plus the architecture's own keys).
    """

    name: str
    half: str
    arch: str
    task: str
    data: Callable[[], tuple]
    build: Callable[[dict], dict[str, nn.Module]]
    cfg: dict = field(default_factory=dict)

    def config(self) -> dict:
        """A fresh copy of the full configuration."""
        return {**copy.deepcopy(COMMON), "task": self.task, **copy.deepcopy(self.cfg)}

    # ---- one step and the evaluation, by task ---------------------------------------------
    def loss(self, cfg: dict, models: dict, x, y) -> torch.Tensor:
        """The training loss of one batch (the GAN's is in :meth:`step`)."""
        (model,) = models.values()
        out = model(x)
        if self.task in ("class", "lm"):
            return C.class_loss(out, y, cfg["loss_impl"])
        if self.task == "binary":
            return C.binary_loss(out, y, cfg["loss_impl"])
        if self.task == "regress":
            return F.mse_loss(out.squeeze(-1), y)
        return F.mse_loss(out, x)  # recon

    def step(self, cfg: dict, models: dict, opts: list, x, y, g: torch.Generator) -> torch.Tensor:
        """One training step as a user writes it: zero_grad, forward, backward, step."""
        if self.task == "gan":
            return _gan_step(cfg, models, opts, x, g)
        (opt,) = opts
        if cfg["zero_grad"]:
            opt.zero_grad()
        loss = self.loss(cfg, models, x, y)
        loss.backward()
        opt.step()
        return loss

    @torch.no_grad()
    def evaluate(self, models: dict, x, y) -> dict[str, float]:
        """Held-out ``loss`` (the standard form of the task's loss) and ``score`` (accuracy,
        R², explained variance or the GAN's mode coverage; higher is better)."""
        for m in models.values():
            m.eval()
        if self.task == "gan":
            return _gan_eval(models, x)
        (model,) = models.values()
        out = model(x)
        if self.task in ("class", "lm"):
            logits = out.reshape(-1, out.shape[-1])
            t = y.reshape(-1)
            return {"loss": F.cross_entropy(logits, t).item(), "score": (logits.argmax(1) == t).float().mean().item()}
        if self.task == "binary":
            out = out.reshape(-1)
            return {"loss": F.binary_cross_entropy_with_logits(out, y.float()).item(),
                    "score": ((out > 0).long() == y).float().mean().item()}
        target = x if self.task == "recon" else y
        mse = F.mse_loss(out.squeeze(-1) if self.task == "regress" else out, target).item()
        return {"loss": mse, "score": 1 - mse / target.var().item()}


def _gan_step(cfg, models, opts, real, g):
    """Non-saturating GAN (Goodfellow et al. 2014): the discriminator on real and generated
    points, then the generator through the discriminator."""
    gen, disc = models["generator"], models["discriminator"]
    opt_g, opt_d = opts
    z = torch.randn(len(real), gen[0].in_features, generator=g)
    fake = gen(z)
    if cfg["zero_grad"]:
        opt_d.zero_grad()
    ones, zeros = torch.ones(len(real)), torch.zeros(len(real))
    d_loss = C.binary_loss(disc(real), ones, cfg["loss_impl"]) + C.binary_loss(disc(fake.detach()), zeros, cfg["loss_impl"])
    d_loss.backward()
    opt_d.step()
    if cfg["zero_grad"]:
        opt_g.zero_grad()
    g_loss = C.binary_loss(disc(fake), ones, cfg["loss_impl"])
    g_loss.backward()
    opt_g.step()
    return d_loss.detach() + g_loss.detach()


def _gan_eval(models, real):
    """``loss``: the energy distance between 1024 generated points and the held-out ones
    (Székely & Rizzo 2013); ``score``: the fraction of generated points within 3 σ of one of
    the 8 modes."""
    gen = models["generator"]
    z = torch.randn(1024, gen[0].in_features, generator=torch.Generator().manual_seed(7))
    fake = gen(z)
    if not torch.isfinite(fake).all():
        return {"loss": float("inf"), "score": 0.0}
    e = 2 * torch.cdist(fake, real).mean() - torch.cdist(fake, fake).mean() - torch.cdist(real, real).mean()
    angle = torch.arange(8) * 2 * math.pi / 8
    centres = torch.stack([angle.cos(), angle.sin()], 1) * 2.0
    near = torch.cdist(fake, centres).min(1).values < 3 * 0.05
    return {"loss": e.item(), "score": near.float().mean().item()}


def make_optimizers(cfg: dict, models: dict) -> list[torch.optim.Optimizer]:
    """One optimizer per model, of the kind and rate the configuration names."""
    opts = []
    for m in models.values():
        if cfg["opt"] == "sgd":
            opts.append(torch.optim.SGD(m.parameters(), lr=cfg["lr"], momentum=cfg["momentum"]))
        elif cfg["opt"] == "adamw":
            opts.append(torch.optim.AdamW(m.parameters(), lr=cfg["lr"], weight_decay=0.01))
        else:
            opts.append(torch.optim.Adam(m.parameters(), lr=cfg["lr"], betas=cfg.get("betas", (0.9, 0.999))))
    return opts


def _one(name):
    return lambda model: {name: model}


def _tokens():
    return _cached("tokens", C.majority_tokens)


def _chars():
    def make():
        x, y, v = C.char_windows(32)
        n = int(0.85 * len(x))
        g = torch.Generator().manual_seed(C.DATA_SEED)
        idx = torch.randperm(len(x), generator=g)
        return x[idx[:n]], y[idx[:n]], x[idx[n:]], y[idx[n:]], v
    return _cached("chars", make)


def _ring():
    def make():
        pts = C.ring_of_gaussians(2048)
        return pts[:1536], None, pts[1536:], None
    return _cached("ring", make)


def _vocab(cfg):
    return _chars()[4]


BASES: dict[str, Base] = {}


def _add(b: Base) -> None:
    BASES[b.name] = b


# ---- half A -------------------------------------------------------------------------------
_add(Base("mlp_digits", "A", "3-layer ReLU MLP", "class", lambda: _cached("digits", C.digits),
          lambda c: {"model": C.init_(MLP(64, 10, c["width"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"width": 128, "depth": 3, "act": "relu", "init": "he", "norm": None, "lr": 1e-3, "steps": 200}))
_add(Base("wide_mlp_breast_cancer", "A", "wide 1-hidden-layer ReLU MLP, logistic output", "binary",
          lambda: _cached("breast_cancer", lambda: C.tabular("breast_cancer")),
          lambda c: {"model": C.init_(MLP(30, 1, c["width"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"width": 512, "depth": 1, "act": "relu", "init": "he", "norm": None, "opt": "sgd", "lr": 0.01,
           "momentum": 0.9, "steps": 150, "batch": 32}))
_add(Base("cnn_digits", "A", "2-conv ReLU CNN", "class", lambda: _cached("digits_img", lambda: C.digits(True)),
          lambda c: {"model": C.init_(CNN(c["channels"], c["depth"], c["act"]), c["init"])},
          {"channels": 16, "depth": 2, "act": "relu", "init": "he", "lr": 2e-3, "steps": 150}))
_add(Base("rnn_tanh_tokens", "A", "vanilla tanh nn.RNN classifier", "class", _tokens,
          lambda c: {"model": C.init_(RecurrentClassifier("RNN", 4, c["hidden"], c["depth"], 4), c["init"])},
          {"hidden": 64, "depth": 1, "init": "xavier", "lr": 3e-3, "steps": 150}))
_add(Base("gru_charlm", "A", "GRU character language model", "lm", _chars,
          lambda c: {"model": C.init_(CharRNN("GRU", _vocab(c), 32, c["hidden"], c["depth"]), c["init"])},
          {"hidden": 64, "depth": 1, "init": "xavier", "lr": 3e-3, "steps": 120, "batch": 32}))
_add(Base("transformer_encoder_tokens", "A", "pre-LN transformer encoder classifier", "class", _tokens,
          lambda c: {"model": C.init_(Transformer(4, 16, 64, 4, 128, c["depth"], c["act"], c["norm"], c["norm_first"],
                                                  causal=False, classes=4), c["init"])},
          {"depth": 2, "act": "relu", "init": "xavier", "norm": "ln", "norm_first": True, "opt": "adamw",
           "lr": 1e-3, "warmup": 20, "steps": 120}))
_add(Base("gan_ring", "A", "MLP GAN on a ring of 8 Gaussians", "gan", _ring,
          lambda c: {"generator": C.init_(MLP(8, 2, c["width"], c["depth"], c["act"], c["norm"]), c["init"]),
                     "discriminator": C.init_(MLP(2, 1, c["width"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"width": 64, "depth": 2, "act": "relu", "init": "he", "norm": None, "lr": 1e-3, "betas": (0.5, 0.999),
           "steps": 300, "batch": 128}))

# ---- half B (held back) -------------------------------------------------------------------
_add(Base("mlp_diabetes", "B", "2-layer ReLU MLP regression", "regress",
          lambda: _cached("diabetes", lambda: C.tabular("diabetes")),
          lambda c: {"model": C.init_(MLP(10, 1, c["width"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"width": 64, "depth": 2, "act": "relu", "init": "he", "norm": None, "lr": 3e-3, "steps": 200, "batch": 32}))
_add(Base("tanh_mlp_wine", "B", "2-layer tanh MLP, SGD", "class", lambda: _cached("wine", lambda: C.tabular("wine")),
          lambda c: {"model": C.init_(MLP(13, 3, c["width"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"width": 64, "depth": 2, "act": "tanh", "init": "xavier", "norm": None, "opt": "sgd", "lr": 0.05,
           "momentum": 0.9, "steps": 150, "batch": 32}))
_add(Base("resnet_bn_digits", "B", "ResNet with BatchNorm (2 basic blocks)", "class",
          lambda: _cached("digits_img", lambda: C.digits(True)),
          lambda c: {"model": C.init_(ResNet(c["channels"], c["depth"], c["act"], c["norm"]), c["init"])},
          {"channels": 16, "depth": 2, "act": "relu", "init": "he", "norm": "bn", "opt": "sgd", "lr": 0.05,
           "momentum": 0.9, "steps": 100}))
_add(Base("conv1d_tokens", "B", "1-D ReLU CNN over one-hot tokens", "class", _tokens,
          lambda c: {"model": C.init_(Conv1dNet(4, c["channels"], c["depth"], c["act"], 4), c["init"])},
          {"channels": 32, "depth": 2, "act": "relu", "init": "he", "lr": 2e-3, "steps": 200}))
_add(Base("lstm_tokens", "B", "LSTM classifier", "class", _tokens,
          lambda c: {"model": C.init_(RecurrentClassifier("LSTM", 4, c["hidden"], c["depth"], 4), c["init"])},
          {"hidden": 64, "depth": 1, "init": "xavier", "lr": 3e-3, "steps": 150}))
_add(Base("transformer_decoder_charlm", "B", "pre-LN decoder-only transformer, character LM", "lm", _chars,
          lambda c: {"model": C.init_(Transformer(_vocab(c), 32, 64, 4, 128, c["depth"], c["act"], c["norm"],
                                                  c["norm_first"], causal=True), c["init"])},
          {"depth": 2, "act": "relu", "init": "xavier", "norm": "ln", "norm_first": True, "opt": "adamw",
           "lr": 1e-3, "warmup": 20, "steps": 100, "batch": 32}))
_add(Base("autoencoder_digits", "B", "ReLU MLP autoencoder (64-64-16-64-64)", "recon",
          lambda: _cached("digits", C.digits),
          lambda c: {"model": C.init_(nn.Sequential(MLP(64, 16, c["width"], c["depth"], c["act"], c["norm"]),
                                                    MLP(16, 64, c["width"], c["depth"], c["act"], c["norm"])), c["init"])},
          {"width": 64, "depth": 1, "act": "relu", "init": "he", "norm": None, "lr": 2e-3, "steps": 200}))


def halves(which: str) -> list[Base]:
    """The bases of half ``A``, ``B`` or ``all``."""
    if which not in ("A", "B", "all"):
        raise ValueError(f"unknown half {which!r}; use A, B or all")
    return [b for b in BASES.values() if which == "all" or b.half == which]
