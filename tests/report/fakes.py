"""Runs written straight through the store (the store is the contract the report reads).

``write_fake_run`` builds a small run with hostile module names, NaNs, a zero gradient, an
empty metric, per-call gradients and events; ``write_bare_run`` records steps only.
"""

from __future__ import annotations

import numpy as np

from gradwatch.findings import Cause, Diagnosis, Finding, Remedy, Trial
from gradwatch.store import RunStore

SCRIPT = "<script>alert(1)</script>"
DROP = "'; DROP TABLE"
DOLLAR = "cost$x^{2"  # would start matplotlib mathtext if not escaped
RICH = "[bold red]x[/]"  # rich markup if not escaped

MODULES = [  # (name, type, activation, kind)
    ("", "Net", "", "container"),
    ("0", "Linear", "", "param"),
    ("1", "Sigmoid", "sigmoid", "activation"),
    (SCRIPT, "Linear", "", "param"),
    (DROP, "Tanh", "tanh", "activation"),
    (DOLLAR, "Linear", "", "param"),
    (RICH, "ReLU", "relu", "activation"),
    ("cell", "RNNCell", "", "recurrent"),
    ("head", "Linear", "", "param"),
]
PARAMS = [  # (name, module, shape, numel, dtype)
    ("0.weight", "0", (8, 4), 32, "float32"),
    ("0.bias", "0", (8,), 8, "float32"),
    (f"{SCRIPT}.weight", SCRIPT, (8, 8), 64, "float32"),
    (f"{DOLLAR}.weight", DOLLAR, (8, 8), 64, "float32"),
    ("cell.weight_ih", "cell", (8, 8), 64, "float32"),
    ("cell.weight_hh", "cell", (8, 8), 64, "float32"),
    ("head.weight", "head", (2, 8), 16, "float32"),
]
N_STEPS, EVERY, N_CALLS = 30, 10, 6


def write_fake_run(out, meta: dict | None = None, scale: float = 1.0) -> None:
    """A 30-step run: gradients fall 10x per layer towards the input; NaN from step 27."""
    rng = np.random.default_rng(0)
    s = RunStore(out, precision="float32")
    s.set_meta(argv=["train.py", "--name", SCRIPT], gradwatch="0.1.0", torch="2.13.0",
               model={"class": f"Net{SCRIPT}", "n_params": 376, "depth": 4,
                      "activations": {"sigmoid": 1, "tanh": 1, "relu": 1},
                      "optimizer": {"class": "SGD", "param_groups": [{"lr": 0.1}]}},
               **(meta or {}))
    s.write_layout(PARAMS, MODULES)
    n_p, n_m = len(PARAMS), len(MODULES)
    depth = np.array([0, 0, 1, 2, 3, 3, 4], dtype=float)  # input 0 … output 4
    steps, series, calls = [], [], []
    for t in range(N_STEPS):
        g = scale * 10.0 ** (depth - 4) * (1 + 0.1 * rng.random(n_p))
        if t >= 27:
            g[:] = np.nan
        g[1] = 0.0  # a bias with an exactly-zero gradient
        steps.append(dict(step=t, time=float(t), loss=np.inf if t >= 27 else 2.0 / (1 + t),
                          grad_norm=float(np.sqrt(np.nansum(g ** 2))) if t < 27 else np.nan,
                          step_time=0.01, lr=[0.1], stats=t % EVERY == 0))
        vec = {"grad_norm": g, "grad_nonfinite": np.where(np.isnan(g), 64, 0).astype(float)}
        if t % EVERY == 0:
            w = np.full(n_p, 2.0)
            vec |= {"weight_norm": w, "update_norm": w * 10.0 ** -(1 + depth),
                    "delta": scale * np.array([1, .001, .003, .01, .03, .1, .3, .5, 1.0]),
                    "act_sat": np.array([np.nan, np.nan, .9, np.nan, .5, np.nan, np.nan, np.nan, np.nan]),
                    "act_dead": np.array([np.nan] * 6 + [.4, np.nan, np.nan]),
                    "act_mean": np.array([np.nan, np.nan, .97, np.nan, .1, np.nan, .2, np.nan, np.nan]),
                    "act_identical": np.full(n_m, np.nan)}  # recorded but empty
            calls.append((t, 7, 0.5 ** np.arange(N_CALLS)[::-1]))  # vanishes towards call 0
        series.append((t, vec))
    s.write_batch(steps, series, calls)
    s.event(12, "guard_skip", {"reason": "nonfinite gradient", "param": SCRIPT})
    s.event(27, "nonfinite", {"where": "loss"})
    s.event(None, "note", {"text": "no step"})
    s.close()


def write_bare_run(out, n: int = 5) -> None:
    """Steps only: no layer vectors, no calls, no events."""
    s = RunStore(out)
    s.write_layout([("w", "", (3,), 3, "float32")], [("", "Linear", "", "param")])
    s.write_steps([dict(step=t, loss=1.0 / (t + 1), grad_norm=None, lr=[0.1]) for t in range(n)])
    s.close()


def sick_diagnosis(steps: int = N_STEPS) -> Diagnosis:
    """Two serious findings and a note, naming the hostile layers."""
    return Diagnosis(steps=steps, findings=[
        Finding("nonfinite", "critical", 27, ["loss"], "The loss became inf at step 27.",
                evidence={"first_nonfinite_step": 27, "grad_norm_before": 3.2e4}),
        Finding("vanishing_gradients", "warning", 0,
                [SCRIPT, DROP] + [f"layer{i}" for i in range(17)],
                f"δ falls 1e-3 from the output to {SCRIPT}.",
                evidence={"grad_norm_ratio_first_to_last": 1.3e-12, "band": [1e-2, 1e2],
                          "per_layer": {SCRIPT: 1e-9, DROP: 2e-9}},
                causes=[Cause("activation_sigmoid", f"{DROP} uses nn.Sigmoid (σ′ ≤ 0.25)")],
                remedies=[Remedy("use_relu_with_he_init", "Use ReLU with He init",
                                 f"model.apply(gw.init.he_)  # {SCRIPT}",
                                 Trial("loss after 50 steps", 2.30, 0.41)),
                          Remedy("add_batchnorm", "Add BatchNorm after each Linear", "",
                                 Trial("accuracy", 0.1, 0.05, higher_is_better=True))]),
        Finding("learning_rate_too_low", "info", 5, ["head"], "Updates are small."),
    ])
