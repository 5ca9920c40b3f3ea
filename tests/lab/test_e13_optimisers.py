"""e13 optimisers: structure of a tiny run; the classic solvers against references."""

import numpy as np
import pytest

from gradwatch.lab import classic_optim as co
from gradwatch.lab import e13_optimisers as e13
from gradwatch.lab.runner import run_experiment


def test_tiny_run_structure(tmp_path):
    cfg = e13.Config(depth=2, width=8, sgd_lrs=(1.0,), adagrad_lrs=(0.1,), adam_lrs=(0.01,), max_steps=20,
                     eval_every=10, kappas=(10.0, 100.0), n=6, every=10)
    r = run_experiment(e13, config=cfg, out=tmp_path, quiet=True)
    m = r.measurements
    assert set(m["deep_net_best_steps"]) == set(e13.OPTIMISERS)
    assert set(m["quadratic_iterations"]["steepest"]) == {"10", "100"}
    assert len(r.checks) == 5 and (tmp_path / e13.NAME / r.figures[0]).is_file()
    assert {"regression: normal equation", "regression: gradient descent"} <= set(r.tables)
    assert set(r.tables["regression: normal equation"]) == {"mse", "rmse", "mae", "r2"}
    assert r.tables["adam lr=0.01"]["confusion_matrix"] and len(r.tables["adam lr=0.01"]["labels"]) == 10


@pytest.mark.parametrize("solver", [co.steepest_descent_quadratic, co.heavy_ball_quadratic, co.conjugate_gradient])
def test_quadratic_solvers_reach_the_solution(solver):
    A, b = co.ill_conditioned_quadratic(8, 50.0, seed=1)
    k, x = solver(A, b, np.zeros(8), 1e-10)
    assert k < 10 ** 5 and np.allclose(x, np.linalg.solve(A, b), atol=1e-7)


def test_cg_terminates_in_at_most_n_steps_when_well_conditioned():
    A, b = co.ill_conditioned_quadratic(10, 3.0, seed=2)
    assert co.conjugate_gradient(A, b, np.zeros(10), 1e-10)[0] <= 10


def test_steepest_descent_rate_matches_theory_from_the_worst_start():
    # from x0 − x* ∝ e₁/λ₁ + e₂/λ₂ the exact-step error contracts by (κ−1)/(κ+1) per step in the A-norm
    kappa = 50.0
    A, b = np.diag([1.0, kappa]), np.zeros(2)
    x = np.array([1.0, 1.0 / kappa])
    for _ in range(5):
        x_next = x - (A @ x) @ (A @ x) / ((A @ x) @ A @ (A @ x)) * (A @ x)
        ratio = np.sqrt(x_next @ A @ x_next / (x @ A @ x))
        assert ratio == pytest.approx((kappa - 1) / (kappa + 1), rel=1e-9)
        x = x_next


def test_rosenbrock_derivatives_match_scipy():
    from scipy.optimize import rosen, rosen_der, rosen_hess

    for p in ([-1.2, 1.0], [0.3, -0.7], [1.0, 1.0]):
        f, g, H = co.rosenbrock(np.array(p))
        assert f == pytest.approx(rosen(p)) and np.allclose(g, rosen_der(p)) and np.allclose(H, rosen_hess(p))


@pytest.mark.parametrize("solver", [co.nonlinear_cg, co.newton])
def test_rosenbrock_solvers_reach_the_minimum(solver):
    k, x = solver(co.rosenbrock, np.array([-1.2, 1.0]), 1e-8)
    assert k < 200 and np.allclose(x, 1.0, atol=1e-6)
