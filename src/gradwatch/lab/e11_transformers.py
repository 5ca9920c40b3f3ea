"""e11 — Transformers: post-LN needs warmup, pre-LN does not; unscaled attention saturates.

Part 1 (Xiong et al. 2020). Each 8×8 digit is a sequence of 8 row tokens; a 6-layer encoder
(``nn.TransformerEncoderLayer``, ``norm_first`` False = post-LN, True = pre-LN with a final
LayerNorm; Xavier init as in the paper) is trained with Adam at lr 1e-3, without warmup and with
a linear warmup. The watcher's per-parameter gradient norms at step 0 give the gradient of each
layer's feed-forward weights at init: Theorem 1 bounds the last layer's by O(d√ln d) for post-LN
and O(d√(ln d / L)) for pre-LN, a factor √L apart.

Part 2 (Vaswani et al. 2017, §3.2.1). One attention layer with d_k = d large, scores q·k/√d_k
against q·k: unscaled scores have variance ~d_k and push the softmax into saturation. Measured:
the attention entropy at init and δ = ‖∂L/∂s‖ at the scores (the softmax's input), read off the
watcher. Footnote 4's own model (i.i.d. scores of variance d_k in each row of T keys) predicts how
much smaller the *batch* ‖∂L/∂s‖ gets: a typical row is saturated, but the rows whose top two
scores nearly tie keep an O(1) softmax Jacobian, and they are a fraction ~1/√d_k of the rows, so
the batch-level ratio unscaled/scaled falls only like d_k^(−1/4) (≈ 0.45 at d_k = 256, T = 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gradwatch.lab.core import Context, Result, check
from gradwatch.lab.data import batches, digits

NAME = "transformers"
CLAIM = ("Post-LN transformers have large gradients near the output at init and need learning-rate "
         "warmup, pre-LN ones train without it; unscaled dot-product attention saturates the softmax.")
SOURCE = ("Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, Thm. 1, Figs. 2–3; "
          "Vaswani et al. 2017, §3.2.1")

RUNS = ("post-LN", "post-LN+warmup", "pre-LN", "pre-LN+warmup")


@dataclass(frozen=True)
class Config:
    runs: tuple[str, ...] = RUNS[:3]   # which of RUNS to train (pre-LN+warmup is judged by no check)
    d_model: int = 256                 # model width d (the post-LN effect grows with d)
    layers: int = 6                    # encoder layers L
    heads: int = 4                     # attention heads
    steps: int = 150                   # Adam steps per run
    warmup: int = 50                   # linear warmup steps of the "+warmup" runs
    lr: float = 1e-3                   # peak Adam learning rate (Xiong et al.: 5e-4 to 1e-3)
    batch: int = 32                    # mini-batch size
    every: int = 25                    # watcher: slow statistics every `every` steps
    attn_dim: int = 256                # d_k of the single-layer attention comparison
    attn_steps: int = 150              # Adam steps of each attention model
    fail_gap: float = 0.2              # post-LN without warmup is "worse": test accuracy ≥ this below with warmup
    same_gap: float = 0.05             # pre-LN without warmup is "fine": within this of post-LN with warmup


FULL = {"runs": RUNS, "steps": 1000, "warmup": 300, "layers": 12, "batch": 64, "attn_steps": 1000}


class Encoder(nn.Module):
    """Row tokens → linear embedding + learned positions → L encoder layers → mean → classes.

    Example:
        >>> Encoder(16, 2, 2, pre_ln=True)(torch.zeros(3, 8, 8)).shape
        torch.Size([3, 10])
    """

    def __init__(self, d: int, layers: int, heads: int, pre_ln: bool, tokens: int = 8, features: int = 8,
                 classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(features, d)
        self.pos = nn.Parameter(0.02 * torch.randn(tokens, d))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True, norm_first=pre_ln)
            for _ in range(layers))
        self.norm = nn.LayerNorm(d) if pre_ln else nn.Identity()  # pre-LN needs a final LayerNorm
        self.head = nn.Linear(d, classes)
        for name, p in self.layers.named_parameters():  # Xavier weights, zero biases (Xiong et al. §3)
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif "norm" not in name:
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h).mean(1))


class Scores(nn.Module):
    """Attention scores q·kᵀ, times 1/√d_k when ``scaled``; its output's δ is ‖∂L/∂s‖.

    Example:
        >>> q = torch.ones(1, 2, 4)
        >>> Scores(True)(q, q)[0, 0, 0].item(), Scores(False)(q, q)[0, 0, 0].item()
        (2.0, 4.0)
    """

    def __init__(self, scaled: bool) -> None:
        super().__init__()
        self.scaled = scaled

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        s = q @ k.transpose(-1, -2)
        return s / math.sqrt(q.shape[-1]) if self.scaled else s


class AttentionNet(nn.Module):
    """Embedding → LayerNorm → one single-head attention (residual) → mean → classes.

    Example:
        >>> net = AttentionNet(16, scaled=False)
        >>> net(torch.zeros(2, 8, 8)).shape, net.last_probs.shape
        (torch.Size([2, 10]), torch.Size([2, 8, 8]))
    """

    def __init__(self, d: int, scaled: bool, tokens: int = 8, features: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(features, d)
        self.pos = nn.Embedding(tokens, d)  # PyTorch's N(0, 1) init: tokens differ in every coordinate
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v = (nn.Linear(d, d) for _ in range(3))
        for lin in (self.q, self.k, self.v):  # unit-variance q, k entries: q·k has variance ~d
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.scores = Scores(scaled)
        self.softmax = nn.Softmax(dim=-1)
        self.head = nn.Linear(d, classes)
        self.last_probs: torch.Tensor | None = None
        self.last_scores: torch.Tensor | None = None
        self.keep_scores = False  # keep the scores (and their gradient) of the next forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.embed(x) + self.pos.weight[: x.shape[1]])
        s = self.scores(self.q(h), self.k(h))
        if self.keep_scores and s.requires_grad:
            s.retain_grad()
            self.last_scores = s
        p = self.softmax(s)
        self.last_probs = p.detach()
        return self.head((h + p @ self.v(h)).mean(1))


def entropy(probs: torch.Tensor) -> float:
    """Mean entropy (nats) of the attention rows.

    Example:
        >>> round(entropy(torch.full((1, 4, 4), 0.25)), 4) == round(math.log(4), 4)
        True
    """
    return float(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean())


def footnote4_batch_ratio(d_k: int, tokens: int, rows: int = 100_000,
                         generator: torch.Generator | None = None) -> float:
    """Predicted batch ‖∂L/∂s‖ unscaled / scaled when scores are i.i.d. N(0, d_k) vs N(0, 1) (Vaswani et al. 2017, fn. 4).

    Footnote 4: q and k with independent unit-variance components give q·k variance d_k; scaling by
    1/√d_k brings it back to 1. For an upstream gradient g of the same size in both, E‖J g‖² ∝
    E‖J‖_F², with J = diag(p) − ppᵀ the softmax Jacobian of one row (‖J‖_F² = Σp² − 2Σp³ + (Σp²)²).
    The batch ‖∂L/∂s‖ is the root of a sum over rows, so the prediction is the ratio of the RMS
    ‖J‖_F over ``rows`` Monte-Carlo rows of ``tokens`` scores. Most unscaled rows are saturated
    (J ≈ 0); the near-ties between the two largest scores, a fraction ~1/√d_k of the rows, keep
    J = O(1) and carry the batch norm, so the ratio falls only like d_k^(−1/4).

    Args:
        d_k: the dot-product dimension (score variance of the unscaled rows).
        tokens: T, the keys per row.
        rows: Monte-Carlo rows per case.
        generator: torch generator for the draws (deterministic results).

    Returns:
        sqrt(E‖J‖_F² at variance d_k / E‖J‖_F² at variance 1).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> round(footnote4_batch_ratio(1, 8, generator=g), 1), 0.4 < footnote4_batch_ratio(256, 8, generator=g) < 0.5
        (1.0, True)
    """
    def mean_sq_jacobian(std: float) -> float:
        p = torch.softmax(std * torch.randn(rows, tokens, generator=generator, dtype=torch.float64), -1)
        p2 = (p * p).sum(-1)
        return float((p2 - 2 * (p ** 3).sum(-1) + p2 * p2).mean())

    return math.sqrt(mean_sq_jacobian(math.sqrt(d_k)) / mean_sq_jacobian(1.0))


def saturation(model: AttentionNet, X: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """At the model's current weights: attention entropy, saturated rows, ‖∂L/∂s‖ per query row.

    Returns ``entropy`` (nats), ``saturated_rows`` (fraction of query rows with max p > 0.99),
    ``row_grad_median`` (median over query rows of ‖∂L/∂s_row‖ for the loss on ``X, y``) and
    ``score_std`` (standard deviation of the scores the softmax sees).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> sat = saturation(AttentionNet(64, scaled=False), torch.rand(20, 8, 8), torch.randint(0, 10, (20,)))
        >>> 0 <= sat["saturated_rows"] <= 1
        True
    """
    model.keep_scores = True
    try:
        loss = nn.functional.cross_entropy(model(X), y)
        grad = torch.autograd.grad(loss, model.last_scores)[0]
        score_std = float(model.last_scores.detach().std())
    finally:
        model.keep_scores, model.last_scores = False, None
    p = model.last_probs
    return {"entropy": entropy(p), "saturated_rows": float((p.max(-1).values > 0.99).float().mean()),
            "row_grad_median": float(grad.norm(dim=-1).median()), "score_std": score_std}


def _train(ctx: Context, model: nn.Module, name: str, data, steps: int, lr: float, warmup: int, batch: int,
           every: int) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    X, y = data.X_train.view(-1, 8, 8), data.y_train
    order = batches(len(X), batch, ctx.generator(1))  # same batches for every run
    with ctx.watch(model, opt, name, every=every):
        for _ in range(steps):
            idx = next(order)
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        pred = model(data.X_test.view(-1, 8, 8)).argmax(1)
    return {"pred": pred, "run": ctx.load(name)}


def _layer_grads(run, layers: int) -> list[float]:
    """‖∂L/∂W‖ of each layer's feed-forward weights (linear1, linear2) at step 0."""
    g = run.series("grad_norm").iloc[0]
    return [math.sqrt(sum(float(g[f"layers.{i}.linear{j}.weight"]) ** 2 for j in (1, 2))) for i in range(layers)]


def run(config: Config, ctx: Context) -> Result:
    import numpy as np

    from gradwatch.lab.metrics import classification_report

    unknown = sorted(set(config.runs) - set(RUNS))
    if unknown:
        raise ValueError(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    data = digits()
    m: dict = {"accuracy": {}, "final_loss": {}, "ffn_grad_init": {}, "attention": {}}
    tables, losses = {}, {}
    with ctx.progress(len(config.runs) + 2, "runs") as advance:
        for name in config.runs:
            pre = name.startswith("pre")
            torch.manual_seed(ctx.seed)  # post-LN and pre-LN start from the same weights
            model = Encoder(config.d_model, config.layers, config.heads, pre)
            out = _train(ctx, model, name, data, config.steps, config.lr,
                         config.warmup if name.endswith("warmup") else 0, config.batch, config.every)
            tables[name] = classification_report(data.y_test, out["pred"], labels=range(data.classes))
            m["accuracy"][name] = tables[name]["accuracy"]
            losses[name] = out["run"].steps["loss"].to_numpy()
            m["final_loss"][name] = float(np.mean(losses[name][-25:]))
            if not name.endswith("warmup"):
                m["ffn_grad_init"][name] = _layer_grads(out["run"], config.layers)
            advance()
        attn_curves = {}
        for scaled in (True, False):
            name = "attention-scaled" if scaled else "attention-unscaled"
            torch.manual_seed(ctx.seed + 1)
            model = AttentionNet(config.attn_dim, scaled)
            sat = saturation(model, data.X_test.view(-1, 8, 8), data.y_test)
            out = _train(ctx, model, name, data, config.attn_steps, config.lr, 0, config.batch, config.every)
            delta = out["run"].series("delta")
            report = classification_report(data.y_test, out["pred"], labels=range(data.classes))
            tables[name] = report
            m["attention"][name] = {"entropy_init": sat["entropy"], "entropy_fraction_init": sat["entropy"] / math.log(8),
                                    "saturated_rows_init": sat["saturated_rows"],
                                    "row_score_grad_median_init": sat["row_grad_median"],
                                    "score_delta_init": float(delta["scores"].iloc[0]),
                                    "score_std_init": sat["score_std"],
                                    "wq_grad_init": float(out["run"].series("grad_norm")["q.weight"].iloc[0]),
                                    "accuracy": report["accuracy"]}
            attn_curves[name] = out["run"].steps["loss"].to_numpy()
            advance()
        m["footnote4_batch_ratio"] = footnote4_batch_ratio(config.attn_dim, 8, generator=ctx.generator(7))
    _figure(ctx, config, m, losses, attn_curves)
    return Result(measurements=m, checks=_checks(config, m), tables=tables,
                  notes=("Encoder layers: nn.TransformerEncoderLayer, dropout 0, FFN width 2d, Xavier-uniform weights "
                         "and zero biases; pre-LN ends in a LayerNorm. ffn_grad_init = ‖∂L/∂W‖ of linear1 and linear2 "
                         "of each layer at step 0 (one batch). Warmup: lr rises linearly from lr/warmup to lr over "
                         "`warmup` steps. Attention: one head, d_k = attn_dim, positions nn.Embedding (N(0, 1)) and q/k/v "
                         "Xavier, so q and k have roughly independent unit-variance components and q·k variance ~d_k "
                         "(Vaswani et al., footnote 4); score_delta_init = ‖∂L/∂s‖ at the softmax input at step 0 "
                         "(watcher, one training batch); saturated_rows_init = query rows with max p > 0.99 and "
                         "row_score_grad_median_init = median per-row ‖∂L/∂s‖, both on the test set at init. The batch "
                         "‖∂L/∂s‖ sums over every query row, so the rows that are not saturated dominate it; "
                         "footnote4_batch_ratio = what footnote 4's model (i.i.d. N(0, d_k) vs N(0, 1) scores, T = 8) "
                         "predicts for the batch ratio unscaled/scaled: the RMS softmax-Jacobian ratio over 100,000 "
                         "Monte-Carlo rows. Within a factor 2 allows for what that model leaves out: the upstream "
                         "∂L/∂p of the two nets, and that the learned positions fix most of each score row (the same "
                         "8 query rows recur in every sample, so a batch holds few independent rows)."))


def _checks(config: Config, m: dict) -> list:
    checks = []
    acc, g = m["accuracy"], m["ffn_grad_init"]
    if "post-LN" in g and "pre-LN" in g:
        post_last, pre_last = g["post-LN"][-1], g["pre-LN"][-1]
        ratio, sqrt_l = post_last / pre_last, math.sqrt(config.layers)
        checks.append(check("at init the last layer's FFN gradient is larger in post-LN than in pre-LN by a factor "
                            "between √L/2 and 2√L (Thm. 1: O(d√ln d) vs O(d√(ln d/L)))",
                            sqrt_l / 2 <= ratio <= 2 * sqrt_l, ratio=ratio, sqrt_L=sqrt_l,
                            post_last=post_last, pre_last=pre_last))
        post_slope, pre_slope = g["post-LN"][-1] / g["post-LN"][0], g["pre-LN"][-1] / g["pre-LN"][0]
        checks.append(check("at init post-LN's FFN gradient grows towards the output relative to pre-LN's: "
                            "(last/first layer) post-LN > pre-LN",
                            post_slope > pre_slope, post_last_over_first=post_slope, pre_last_over_first=pre_slope))
    if {"post-LN", "post-LN+warmup"} <= set(acc):
        checks.append(check(f"post-LN without warmup trains worse: test accuracy ≥ {config.fail_gap:g} below post-LN "
                            "with warmup",
                            acc["post-LN"] <= acc["post-LN+warmup"] - config.fail_gap,
                            no_warmup=acc["post-LN"], warmup=acc["post-LN+warmup"]))
    if {"pre-LN", "post-LN+warmup"} <= set(acc):
        checks.append(check(f"pre-LN trains without warmup: test accuracy ≥ post-LN with warmup − {config.same_gap:g}",
                            acc["pre-LN"] >= acc["post-LN+warmup"] - config.same_gap,
                            pre_ln=acc["pre-LN"], post_ln_warmup=acc["post-LN+warmup"]))
    a = m["attention"]
    if {"attention-scaled", "attention-unscaled"} <= set(a):
        s, u = a["attention-scaled"], a["attention-unscaled"]
        checks.append(check("unscaled attention saturates at init: entropy < 0.25·ln T, scaled > 0.75·ln T",
                            u["entropy_fraction_init"] < 0.25 and s["entropy_fraction_init"] > 0.75,
                            unscaled=u["entropy_fraction_init"], scaled=s["entropy_fraction_init"]))
        ratio, pred = u["score_delta_init"] / s["score_delta_init"], m["footnote4_batch_ratio"]
        checks.append(check("batch ‖∂L/∂s‖ unscaled / scaled within a factor 2 of footnote 4's prediction: i.i.d. "
                            f"N(0, d_k) vs N(0, 1) scores over T = 8 keys give an RMS softmax-Jacobian ratio of "
                            f"{pred:.2f} at d_k = {config.attn_dim} (near-ties carry the batch norm; it falls only "
                            "like d_k^(−1/4); Vaswani et al. 2017, §3.2.1 fn. 4)",
                            pred / 2 <= ratio <= 2 * pred, ratio=ratio, predicted=pred,
                            unscaled=u["score_delta_init"], scaled=s["score_delta_init"]))
        checks.append(check("per query row: median ‖∂L/∂s_row‖ unscaled ≤ 0.1 × scaled",
                            u["row_score_grad_median_init"] <= 0.1 * s["row_score_grad_median_init"],
                            unscaled=u["row_score_grad_median_init"], scaled=s["row_score_grad_median_init"],
                            saturated_rows_unscaled=u["saturated_rows_init"]))
        checks.append(check("unscaled attention trains worse with the same budget: lower test accuracy",
                            u["accuracy"] < s["accuracy"], unscaled=u["accuracy"], scaled=s["accuracy"]))
    return checks


def _figure(ctx: Context, config: Config, m: dict, losses: dict, attn: dict) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, g in m["ffn_grad_init"].items():
        ax[0].plot(range(1, len(g) + 1), g, marker="o", label=name)
    ax[0].set(xlabel="layer", ylabel="‖∂L/∂W_FFN‖ at init", title=f"gradient per layer at init (d={config.d_model})")
    for name, loss in losses.items():
        ax[1].plot(loss, lw=0.8, label=f"{name} (test acc {m['accuracy'][name]:.2f})")
    ax[1].axvline(config.warmup, color="grey", ls=":", lw=1)
    ax[1].set(xlabel="step", ylabel="training loss", title=f"Adam lr {config.lr:g}, warmup {config.warmup} steps")
    for name, loss in attn.items():
        a = m["attention"][name]
        ax[2].plot(loss, lw=0.8, label=f"{name}: entropy {a['entropy_fraction_init']:.2f}·ln T, "
                                       f"‖∂L/∂s‖ {a['score_delta_init']:.2g}")
    title = f"scaled vs unscaled attention (d_k={config.attn_dim})"
    if "footnote4_batch_ratio" in m:
        title += f"\nbatch ‖∂L/∂s‖ ratio predicted by fn. 4: {m['footnote4_batch_ratio']:.2f}"
    ax[2].set(xlabel="step", ylabel="training loss", title=title)
    for a in ax:
        a.legend(fontsize=8)
    ctx.savefig(fig, "transformers")
