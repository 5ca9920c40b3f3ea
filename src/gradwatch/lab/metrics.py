"""Metric tables for lab results, computed by scikit-learn (never by hand).

Example:
    >>> r = classification_report([0, 1, 1, 0], [0, 1, 0, 0])
    >>> r["accuracy"], r["confusion_matrix"]
    (0.75, [[2, 0], [1, 1]])
    >>> regression_report([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
    0.3333333333333333
"""

from __future__ import annotations

from typing import Any, Sequence


def _array(v: Any):
    import numpy as np

    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def classification_report(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> dict[str, Any]:
    """Confusion matrix, accuracy, and precision/recall/F1 (macro, micro; binary for 2 classes).

    Args:
        y_true: true class labels (list, numpy array or tensor).
        y_pred: predicted labels.
        labels: all class labels (default: the union of those seen), fixing the matrix's order.

    Returns:
        ``{"labels", "confusion_matrix" (rows: true, cols: predicted), "accuracy", "support",
        "macro": {precision, recall, f1}, "micro": {...}, "binary": {...} (2 classes only;
        positive class = the larger label)}``. Classes never predicted count precision 0.

    Example:
        >>> classification_report([1, 1, 0], [1, 0, 0])["binary"]["recall"]
        0.5
    """
    import numpy as np
    from sklearn import metrics as m

    yt, yp = _array(y_true).ravel(), _array(y_pred).ravel()
    labels = sorted(set(yt.tolist()) | set(yp.tolist())) if labels is None else list(labels)
    out: dict[str, Any] = {
        "labels": [_py(v) for v in labels],
        "confusion_matrix": m.confusion_matrix(yt, yp, labels=labels).tolist(),
        "accuracy": float(m.accuracy_score(yt, yp)),
        "support": int(len(yt)),
    }
    for avg in ("macro", "micro") + (("binary",) if len(labels) == 2 else ()):
        kw = {"pos_label": labels[-1]} if avg == "binary" else {}
        p, r, f, _ = m.precision_recall_fscore_support(yt, yp, labels=labels, average=avg,
                                                       zero_division=np.float64(0.0), **kw)
        out[avg] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    return out


def regression_report(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """MSE, RMSE, MAE and R² of predictions (multi-output: uniform average over outputs).

    Example:
        >>> regression_report([0.0, 2.0], [0.0, 2.0])["r2"]
        1.0
    """
    from sklearn import metrics as m

    yt, yp = _array(y_true), _array(y_pred)
    mse = float(m.mean_squared_error(yt, yp))
    return {
        "mse": mse,
        "rmse": float(mse ** 0.5),
        "mae": float(m.mean_absolute_error(yt, yp)),
        "r2": float(m.r2_score(yt, yp)),
    }


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
