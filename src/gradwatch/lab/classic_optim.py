"""Classic optimisers in plain numpy: steepest descent, heavy ball, conjugate gradient, Newton.

Each returns ``(iterations, x)``: the number of iterations until ‖∇f(x)‖ ≤ ``tol`` (absolute, or
relative to ‖∇f(x₀)‖ for the quadratic solvers), or ``maxit`` if that never happens. Used by
e13 to compare with the theory (steepest descent ∝ κ, heavy ball ∝ √κ, CG ≤ n in exact
arithmetic, Newton in one step on a quadratic) and with ``scipy.optimize``.

Nocedal & Wright, *Numerical Optimization* (2006), ch. 3 (line search), 5 (CG), 3.3 (rates);
Polyak (1964) for the heavy ball.

Example:
    >>> import numpy as np
    >>> A, b = np.diag([1.0, 10.0]), np.ones(2)
    >>> conjugate_gradient(A, b, np.zeros(2), tol=1e-10)[0]
    2
"""

from __future__ import annotations

import math

import numpy as np


def ill_conditioned_quadratic(n: int, kappa: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (random rotation of eigenvalues log-spaced in [1, κ]) and b ~ N(0, I) for ½xᵀAx − bᵀx."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(np.logspace(0, math.log10(kappa), n)) @ Q.T
    return (A + A.T) / 2, rng.standard_normal(n)


def steepest_descent_quadratic(A, b, x, tol: float, maxit: int = 10 ** 6):
    """Steepest descent with the exact step gᵀg / gᵀAg on ½xᵀAx − bᵀx (relative gradient tol)."""
    g = A @ x - b
    g0 = np.linalg.norm(g)
    for k in range(maxit):
        if np.linalg.norm(g) <= tol * g0:
            return k, x
        x = x - (g @ g) / (g @ A @ g) * g
        g = A @ x - b
    return maxit, x


def heavy_ball_quadratic(A, b, x, tol: float, maxit: int = 10 ** 6):
    """Polyak's heavy ball with the optimal α = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))² (relative tol)."""
    eig = np.linalg.eigvalsh(A)
    sl, sm = math.sqrt(eig.max()), math.sqrt(eig.min())
    alpha, beta = 4 / (sl + sm) ** 2, ((sl - sm) / (sl + sm)) ** 2
    prev, g = x.copy(), A @ x - b
    g0 = np.linalg.norm(g)
    for k in range(maxit):
        if np.linalg.norm(g) <= tol * g0:
            return k, x
        x, prev = x - alpha * g + beta * (x - prev), x
        g = A @ x - b
    return maxit, x


def conjugate_gradient(A, b, x, tol: float, maxit: int = 10 ** 5):
    """Linear conjugate gradient (Hestenes & Stiefel 1952) on Ax = b (relative residual tol)."""
    r = b - A @ x
    p, r0 = r.copy(), np.linalg.norm(r)
    for k in range(maxit):
        if np.linalg.norm(r) <= tol * r0:
            return k, x
        Ap = A @ p
        a = (r @ r) / (p @ Ap)
        x = x + a * p
        r_new = r - a * Ap
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
    return maxit, x


def rosenbrock(x):
    """f, ∇f and ∇²f of the 2-D Rosenbrock function (1 − x)² + 100(y − x²)²."""
    a, b = x
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    H = np.array([[2 - 400 * (b - 3 * a * a), -400 * a], [-400 * a, 200.0]])
    return f, g, H


def _backtrack(fun, x, f, g, d, c: float = 1e-4, shrink: float = 0.5) -> float:
    """Armijo backtracking from a unit step."""
    t = 1.0
    while fun(x + t * d)[0] > f + c * t * (g @ d) and t > 1e-16:
        t *= shrink
    return t


def steepest_descent(fun, x, tol: float, maxit: int = 100_000):
    """Steepest descent with Armijo backtracking; stops at ‖∇f‖ ≤ tol."""
    for k in range(maxit):
        f, g, _ = fun(x)
        if np.linalg.norm(g) <= tol:
            return k, x
        x = x + _backtrack(fun, x, f, g, -g) * -g
    return maxit, x


def nonlinear_cg(fun, x, tol: float, maxit: int = 100_000):
    """Polak–Ribière+ conjugate gradient with a strong-Wolfe line search (c₂ = 0.4, as scipy's CG)."""
    from scipy.optimize import line_search

    f_only, g_only = (lambda z: fun(z)[0]), (lambda z: fun(z)[1])
    f, g, _ = fun(x)
    d = -g
    for k in range(maxit):
        if np.linalg.norm(g) <= tol:
            return k, x
        t = line_search(f_only, g_only, x, d, gfk=g, old_fval=f, c2=0.4)[0]
        if t is None:  # restart along the gradient
            d = -g
            t = _backtrack(fun, x, f, g, d)
        x = x + t * d
        f, g_new, _ = fun(x)
        beta = max(0.0, g_new @ (g_new - g) / (g @ g))
        d, g = -g_new + beta * d, g_new
        if g @ d >= 0:
            d = -g
    return maxit, x


def newton(fun, x, tol: float, maxit: int = 1000):
    """Newton's method with Armijo backtracking (falls back to −∇f if the Hessian is not PD)."""
    for k in range(maxit):
        f, g, H = fun(x)
        if np.linalg.norm(g) <= tol:
            return k, x
        try:
            d = -np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            d = -g
        if g @ d >= 0:
            d = -g
        x = x + _backtrack(fun, x, f, g, d) * d
    return maxit, x
