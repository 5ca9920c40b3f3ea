"""Sinks: a recorded run and its diagnosis, sent to the tools people already read —
TensorBoard, MLflow, Weights & Biases. Each is optional and imported only when used.

A sink reads the run store (never the model): per step the loss and the global gradient norm,
per parameter the gradient norm and the update ratio ‖Δw‖/‖w‖, per module δ = ‖∂L/∂h‖ where it
was measured; then the diagnosis, as text, tags and the report. ``write`` sends only the steps
it has not sent yet, so calling it again during training streams a live run.

========================  =======================================================================
sink                      where things go
========================  =======================================================================
:class:`TensorBoardSink`  ``add_scalar`` per tag and step; the diagnosis via ``add_text``
:class:`MLflowSink`       ``log_batch`` metrics; ``diagnosis.md``/``.json`` and ``report.html`` as
                          artifacts; tags ``gradwatch.verdict``/``gradwatch.findings``
:class:`WandbSink`        ``run.log(..., step=)``; the headline numbers in ``run.summary``; a
                          findings table and the report as ``wandb.Html``
========================  =======================================================================

Example:
    >>> # TensorBoardSink("tb/exp1").write(gw.load("runs/x"), gw.diagnose("runs/x"))
    >>> # export("runs/x", "mlflow", tracking_uri="sqlite:///mlflow.db")
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from .summary import headline

ROOT = "_root"  # the name used for the model itself (module "")


def _label(name: str) -> str:
    return name if name else ROOT


def scalars(run, since: int = -1, per_layer: bool = True, prefix: str = "gradwatch") -> list[tuple[int, dict[str, float]]]:
    """``(step, {tag: value})`` for every recorded step after ``since``, in step order.

    Tags: ``<prefix>/loss``, ``<prefix>/grad_norm`` (global), and with ``per_layer``
    ``<prefix>/layer_grad_norm/<param>``, ``<prefix>/layer_update_ratio/<param>``,
    ``<prefix>/layer_delta/<module>`` (no tag is a prefix of another: MLflow's file store makes
    a file of one and a directory of the other).
    Values that were not measured are left out (NaN/Inf that were measured are kept).

    Example:
        >>> # scalars(gw.load("runs/x"))[0]   -> (0, {"gradwatch/loss": 2.3, ...})
    """
    steps = run.steps
    out: dict[int, dict[str, float]] = {}
    for step, row in steps[steps.index > since].iterrows():
        d = out.setdefault(int(step), {})
        for col in ("loss", "grad_norm"):
            v = row[col]
            if v is not None and not (isinstance(v, float) and math.isnan(v) and col not in row.get("nonfinite", "")):
                d[f"{prefix}/{col}"] = float(v)
    if per_layer:
        frames = (("grad_norm", run.series("grad_norm")), ("update_ratio", run.update_ratio()),
                  ("delta", run.series("delta")))
        for metric, df in frames:
            df = df[df.index > since]
            for step, row in df.iterrows():
                d = out.setdefault(int(step), {})
                for name, v in row.items():
                    if not (isinstance(v, float) and math.isnan(v)):
                        d[f"{prefix}/layer_{metric}/{_label(str(name))}"] = float(v)
    return sorted(out.items())


def diagnosis_markdown(diagnosis) -> str:
    """The diagnosis as Markdown: the verdict, then per finding its summary, layers, causes and
    remedies (for TensorBoard's text tab and MLflow/W&B artifacts).

    Example:
        >>> from gradwatch.findings import Diagnosis
        >>> diagnosis_markdown(Diagnosis(steps=3)).splitlines()[0]
        '**healthy**: no problems in 3 steps'
    """
    serious = [f for f in diagnosis.findings if f.serious]
    if not serious:
        lines = [f"**healthy**: no problems in {diagnosis.steps} steps"]
    else:
        lines = [f"**unhealthy**: {len(serious)} finding(s) in {diagnosis.steps} steps"]
    for f in diagnosis.findings:
        lines += ["", f"### {f.severity} · {f.kind} (from step {f.first_step})", "", _md(f.summary)]
        if f.layers:
            lines.append(f"- layers: {', '.join('`' + _md(x) + '`' for x in f.layers[:12])}"
                         + (" …" if len(f.layers) > 12 else ""))
        lines += [f"- cause `{c.id}`: {_md(c.because)}" for c in f.causes]
        lines += [f"{i}. `{r.id}`: {_md(r.description)}" for i, r in enumerate(f.remedies, 1)]
    return "\n".join(lines)


def _md(text: str) -> str:
    # names come from the model: keep them from turning into markup or HTML
    return re.sub(r"([<>&*_`\[\]])", r"\\\1", str(text))


class TensorBoardSink:
    """Scalars per layer and the diagnosis as text, into a TensorBoard ``SummaryWriter``.

    Args:
        log_dir: where a new writer writes (ignored when ``writer`` is given).
        writer: an existing ``torch.utils.tensorboard.SummaryWriter`` (e.g. Lightning's
            ``trainer.logger.experiment``).
        prefix: tag prefix.

    Example:
        >>> # s = TensorBoardSink("tb/x"); s.write(run, diagnosis); s.close()
    """

    def __init__(self, log_dir: str | os.PathLike | None = None, writer: Any = None, prefix: str = "gradwatch") -> None:
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            writer = SummaryWriter(log_dir=str(log_dir) if log_dir is not None else None)
        self.writer, self.prefix, self.last = writer, prefix, -1

    def write(self, run, diagnosis=None, per_layer: bool = True) -> int:
        """Send the steps not sent yet, and the diagnosis if given; returns how many steps."""
        rows = scalars(run, self.last, per_layer, self.prefix)
        for step, values in rows:
            for tag, v in values.items():
                self.writer.add_scalar(tag, v, step)
        if rows:
            self.last = rows[-1][0]
        if diagnosis is not None:
            self.writer.add_text(f"{self.prefix}/diagnosis", diagnosis_markdown(diagnosis), self.last)
            for tag, v in headline(run, diagnosis).items():
                self.writer.add_scalar(tag.replace("gradwatch/", f"{self.prefix}/headline/", 1), v, self.last)
        self.writer.flush()
        return len(rows)

    def close(self) -> None:
        self.writer.close()


class MLflowSink:
    """Metrics per step, the diagnosis and the report into an MLflow run.

    Args:
        run_id: an existing run; default the active run (``mlflow.active_run()``) or a new one.
        tracking_uri: e.g. ``"sqlite:///mlflow.db"`` or a local ``"file:..."`` store.
        experiment: experiment name for a new run.
        prefix: metric key prefix.

    Example:
        >>> # MLflowSink(tracking_uri="sqlite:///mlflow.db").write(run, diagnosis)
    """

    def __init__(self, run_id: str | None = None, tracking_uri: str | None = None,
                 experiment: str = "gradwatch", prefix: str = "gradwatch") -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        if run_id is None and tracking_uri is None and mlflow.active_run() is not None:
            run_id = mlflow.active_run().info.run_id
        if run_id is None:
            exp = self.client.get_experiment_by_name(experiment)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
            run_id = self.client.create_run(exp_id).info.run_id
        self.run_id, self.prefix, self.last = run_id, prefix, -1

    @staticmethod
    def key(tag: str) -> str:
        """MLflow allows letters, digits, ``_ - . /`` and spaces in a metric key."""
        return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", tag)

    def write(self, run, diagnosis=None, per_layer: bool = True) -> int:
        """Send the steps not sent yet (batched), and the diagnosis if given."""
        import time

        from mlflow.entities import Metric

        rows = scalars(run, self.last, per_layer, self.prefix)
        now = int(time.time() * 1000)
        batch = [Metric(self.key(tag), v, now, step) for step, values in rows for tag, v in values.items()]
        for i in range(0, len(batch), 1000):  # MLflow's limit per log_batch call
            self.client.log_batch(self.run_id, metrics=batch[i:i + 1000])
        if rows:
            self.last = rows[-1][0]
        if diagnosis is not None:
            c, rid = self.client, self.run_id
            c.log_text(rid, diagnosis_markdown(diagnosis), f"{self.prefix}/diagnosis.md")
            c.log_text(rid, diagnosis.to_json(), f"{self.prefix}/diagnosis.json")
            report = Path(run.dir) / "report.html"
            if report.exists():
                c.log_artifact(rid, str(report), self.prefix)
            c.set_tag(rid, f"{self.prefix}.verdict", diagnosis.verdict)
            c.set_tag(rid, f"{self.prefix}.findings", ",".join(sorted(diagnosis.kinds())) or "none")
            c.log_batch(rid, metrics=[Metric(self.key(k), v, now, max(self.last, 0))
                                      for k, v in headline(run, diagnosis).items()])
        return len(rows)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)


class WandbSink:
    """Metrics per step, headline numbers in the summary and the findings into a W&B run
    (offline mode works: ``WANDB_MODE=offline`` or ``mode="offline"``).

    Args:
        run: an existing ``wandb`` run; default ``wandb.run`` or a new ``wandb.init(**init_kwargs)``.
        prefix: key prefix.

    Example:
        >>> # WandbSink(project="x", mode="offline").write(run, diagnosis)
    """

    def __init__(self, run: Any = None, prefix: str = "gradwatch", **init_kwargs: Any) -> None:
        import wandb

        self.wandb = wandb
        self.owned = run is None and wandb.run is None
        self.run = run or wandb.run or wandb.init(**init_kwargs)
        self.prefix, self.last = prefix, -1

    def write(self, run, diagnosis=None, per_layer: bool = True) -> int:
        """Send the steps not sent yet (W&B steps must increase), and the diagnosis if given."""
        rows = scalars(run, self.last, per_layer, self.prefix)
        for step, values in rows:
            self.run.log(values, step=step)
        if rows:
            self.last = rows[-1][0]
        if diagnosis is not None:
            self.run.summary.update({k.replace("gradwatch/", f"{self.prefix}/", 1): v
                                     for k, v in headline(run, diagnosis).items()})
            self.run.summary[f"{self.prefix}/verdict"] = diagnosis.verdict
            table = self.wandb.Table(columns=["kind", "severity", "first_step", "layers", "summary"])
            for f in diagnosis.findings:
                table.add_data(f.kind, f.severity, f.first_step, ", ".join(f.layers[:12]), f.summary)
            extra = {f"{self.prefix}/findings": table}
            report = Path(run.dir) / "report.html"
            if report.exists():
                extra[f"{self.prefix}/report"] = self.wandb.Html(report.read_text(encoding="utf-8"))
            self.run.log(extra, step=max(self.last, 0))
        return len(rows)

    def close(self) -> None:
        if self.owned:
            self.run.finish()


_SINKS = {"tensorboard": TensorBoardSink, "mlflow": MLflowSink, "wandb": WandbSink}


def export(run_dir: str | os.PathLike, to: str, diagnose: bool = True, **kwargs: Any):
    """Send a recorded run (and its diagnosis) to ``"tensorboard"``, ``"mlflow"`` or ``"wandb"``.

    Args:
        run_dir: the run directory.
        to: which sink; ``kwargs`` go to its constructor.
        diagnose: also send the diagnosis.

    Returns:
        The sink (closed).

    Raises:
        ValueError: unknown sink.
        ImportError: the tool's package is not installed (``pip install 'gradwatch[integrations]'``).

    Example:
        >>> # export("runs/x", "tensorboard", log_dir="tb/x")
    """
    if to not in _SINKS:
        raise ValueError(f"unknown sink {to!r}: use one of {sorted(_SINKS)}")
    import gradwatch as gw

    run = gw.load(run_dir)
    sink = _SINKS[to](**kwargs)
    sink.write(run, gw.diagnose(run) if diagnose else None)
    sink.close()
    return sink


__all__ = ["TensorBoardSink", "MLflowSink", "WandbSink", "export", "scalars", "diagnosis_markdown"]
