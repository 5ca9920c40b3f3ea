"""The faults do what their names say, measured on the built models; the score's arithmetic holds.

    .venv/bin/python -m pytest benchmarks/mutations/test_mutations.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mutations import scoring  # noqa: E402
from mutations.bases import BASES, halves  # noqa: E402
from mutations.faults import FAULTS, NotApplicable, label  # noqa: E402
from mutations.loop import _probe  # noqa: E402

torch.set_num_threads(1)


def _built(base: str, fault: str | None = None, seed: int = 0):
    b = BASES[base]
    cfg = b.config()
    if fault:
        cfg = FAULTS[fault].rewrite(dict(cfg))
    xs, ys = b.data()[:2]
    torch.manual_seed(seed)
    models = b.build(cfg)
    probe = _probe(b, cfg, models, xs, ys)
    if fault and FAULTS[fault].mutate:
        FAULTS[fault].mutate(models, probe)
    return b, cfg, models, probe


def test_halves_are_fixed_and_disjoint():
    a, b = {x.name for x in halves("A")}, {x.name for x in halves("B")}
    assert len(a) == len(b) == 7 and not a & b and a | b == set(BASES)


@pytest.mark.parametrize("k", [10.0, 0.1])
def test_init_scale_multiplies_every_weight_matrix(k):
    _, _, before, _ = _built("mlp_digits")
    _, _, after, _ = _built("mlp_digits", "init_x10" if k > 1 else "init_div10")
    for p, q in zip(before["model"].parameters(), after["model"].parameters()):
        torch.testing.assert_close(q, p * k if p.dim() >= 2 else p)


def test_constant_init_makes_the_units_of_a_layer_identical():
    _, _, models, _ = _built("cnn_digits", "constant_init")
    for p in models["model"].parameters():
        if p.dim() >= 2:
            rows = p.reshape(p.shape[0], -1)
            assert torch.equal(rows, rows[:1].expand_as(rows))


def test_negative_relu_bias_kills_the_relu_layers():
    _, _, models, probe = _built("mlp_digits", "negative_relu_bias")
    relus = [m for m in models["model"] if isinstance(m, nn.ReLU)]
    outs = []
    hs = [r.register_forward_hook(lambda m, a, o: outs.append(o)) for r in relus]
    with torch.no_grad():
        probe()
    for h in hs:
        h.remove()
    # the first layer: 3 σ below zero on ~all inputs; the later ones get (almost) nothing to lift them
    assert all((o > 0).float().mean() < 0.01 for o in outs)


def test_detach_leaves_some_parameters_without_gradient_and_some_with():
    _, _, models, probe = _built("mlp_digits", "detach_inside")
    probe().backward()
    grads = [p.grad is not None and bool(p.grad.any()) for p in models["model"].parameters()]
    assert 0 < sum(grads) < len(grads)
    assert grads[-1] and not grads[0]  # the head learns, the first layer is cut off


def test_spectral_radius_of_every_recurrent_block():
    _, _, models, _ = _built("lstm_tokens", "spectral_radius_gt1")
    rnn = models["model"].rnn
    for block in rnn.weight_hh_l0.detach().split(rnn.hidden_size, 0):
        assert torch.linalg.eigvals(block).abs().max().item() == pytest.approx(2.5, rel=1e-4)


def test_config_faults_rewrite_only_their_key():
    cfg = BASES["transformer_encoder_tokens"].config()
    new = FAULTS["post_ln_no_warmup"].rewrite(dict(cfg))
    assert {k for k in cfg if cfg[k] != new[k]} == {"norm_first", "warmup"}
    assert FAULTS["lr_div1000"].rewrite(dict(cfg))["lr"] == pytest.approx(cfg["lr"] * 1e-3)


def test_applicability_is_read_from_the_configuration_and_model():
    _, cfg, models, _ = _built("gru_charlm")
    assert FAULTS["spectral_radius_gt1"].applies(cfg, models)
    assert not FAULTS["saturating_activation"].applies(cfg, models)  # no ReLU to replace
    _, cfg, models, _ = _built("mlp_diabetes")
    assert not FAULTS["log_zero_loss"].applies(cfg, models)  # MSE has no log
    assert not FAULTS["spectral_radius_gt1"].applies(cfg, models)


def test_negative_bias_without_relu_is_not_applicable():
    b = BASES["lstm_tokens"]
    cfg = b.config()
    models = b.build(cfg)
    with pytest.raises(NotApplicable):
        FAULTS["negative_relu_bias"].mutate(models, _probe(b, cfg, models, *b.data()[:2]))


def test_manual_log_loss_is_nan_once_a_logit_leads_by_17():
    from mutations.common import class_loss

    y = torch.tensor([0])
    assert torch.isfinite(class_loss(torch.tensor([[10.0, 0.0]]), y, "manual"))
    assert torch.isnan(class_loss(torch.tensor([[20.0, 0.0]]), y, "manual"))
    assert torch.isfinite(class_loss(torch.tensor([[20.0, 0.0]]), y, "torch"))


def test_every_fault_has_a_label_from_the_vocabulary_or_the_new_kinds():
    from gradwatch.findings import KINDS

    new = {"gradients_not_zeroed", "disconnected_layers"}
    for f in FAULTS:
        for cfg, rec in (({"act": "relu"}, False), ({"act": "tanh", "norm": "ln"}, True)):
            lab = label(f, cfg, rec)
            assert lab.expect and lab.why
            assert set(lab.expect) | set(lab.also_ok) <= set(KINDS) | new


def test_wilson_interval_brackets_the_proportion():
    for k, n in ((0, 10), (5, 10), (10, 10), (37, 40)):
        lo, hi = scoring.wilson(k, n)
        assert 0 <= lo <= k / n <= hi <= 1
    assert scoring.wilson(0, 0) == (0.0, 1.0)


def _row(base, fault, loss, score, found=(), expect=("dead_units",)):
    r = {"base": base, "fault": fault, "seed": 0, "status": 0, "eval": {"loss": loss, "score": score},
         "findings": [{"kind": k, "severity": "warning"} for k in found]}
    if fault:
        r["label"] = {"expect": list(expect), "also_ok": ["vanishing_gradients"]}
    return r


def test_scoring_outcomes():
    rows = [_row("m", None, 1.0, 0.9), _row("m", None, 1.02, 0.9), _row("m", None, 0.98, 0.91),
            _row("m", None, 1.0, 0.9, found=["exploding_gradients"]),         # a false alarm
            _row("m", "f", 1.01, 0.9, found=["dead_units"]),                  # inside the band
            _row("m", "f", 0.5, 0.99),                                        # better than the base
            _row("m", "f", 3.0, 0.3, found=["vanishing_gradients", "dead_units"]),  # caught, root wrong
            _row("m", "f", 3.0, 0.3, found=["nonfinite"])]                    # missed, with an FP
    scoring.classify(rows)
    assert [r["outcome"] for r in rows] == ["quiet", "quiet", "quiet", "false alarm", "no measurable effect",
                                            "no measurable effect", "caught", "missed"]
    assert not rows[6]["root_ok"] and rows[6]["fp"] == []
    s = scoring.summarise(rows)
    assert (s["scored"], s["recall"], s["root_cause_accuracy"]) == (2, 0.5, 0.0)
    assert s["per_kind"]["dead_units"] == {**s["per_kind"]["dead_units"], "tp": 1, "fn": 1, "fp": 0}
    assert s["per_kind"]["nonfinite"]["fp"] == 1 and s["per_kind"]["exploding_gradients"]["fp"] == 1
    assert s["healthy_false_alarms"] == 1
