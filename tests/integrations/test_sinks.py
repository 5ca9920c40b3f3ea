"""Sinks: TensorBoard, MLflow (local file store), W&B (offline) receive the per-layer scalars and
the diagnosis, read back with each tool's own reader; a run renders itself in Jupyter."""

import glob
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import gradwatch as gw
from gradwatch.integrations import sinks

from .conftest import need

ODD = "fc<b>'; DROP TABLE steps;--"  # a module name that must survive every tool


@pytest.fixture(scope="module")
def sick(tmp_path_factory):
    """A deep sigmoid net (vanishing gradients) with an awkwardly named layer, and its report."""
    out = tmp_path_factory.mktemp("sick")
    torch.manual_seed(0)
    model = nn.Sequential()
    for i in range(6):
        model.add_module(ODD if i == 0 else f"fc{i}", nn.Linear(16, 16))
        model.add_module(f"act{i}", nn.Sigmoid())
    model.add_module("out", nn.Linear(16, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    with gw.watch(model, opt, out=out, every=3):
        for _ in range(12):
            x, y = torch.randn(32, 16, generator=g), torch.randint(0, 4, (32,), generator=g)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    run, d = gw.load(out), gw.diagnose(out)
    from gradwatch.report.html import write_report

    write_report(run, d, out / "report.html")
    return run, d


def expected(run):
    return dict(sinks.scalars(run))


def test_scalars_are_the_record(sick):
    run, _ = sick
    got = expected(run)
    assert sorted(got) == list(run.steps.index)
    assert [got[s]["gradwatch/loss"] for s in sorted(got)] == pytest.approx(run.steps.loss.tolist())
    g = run.series("grad_norm")
    assert got[4][f"gradwatch/layer_grad_norm/{ODD}.weight"] == pytest.approx(float(g.loc[4, f"{ODD}.weight"]))
    d = run.series("delta")
    assert got[3][f"gradwatch/layer_delta/{ODD}"] == pytest.approx(float(d.loc[3, ODD]))
    assert "gradwatch/layer_delta/_root" in got[0] and "gradwatch/layer_delta/_root" not in got[1]  # measured every 3


def test_tensorboard_scalars_and_text(tmp_path, sick):
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # streamed while a run trains: no step twice, none missing
    live = tmp_path / "live"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = sinks.TensorBoardSink(tmp_path / "tb_live")
    sent = []
    with gw.watch(model, opt, out=live, every=2) as w:
        for step in range(9):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step in (3, 6):
                w.flush()
                sent.append(sink.write(gw.load(live)))
    sent.append(sink.write(gw.load(live), gw.diagnose(live)))
    sink.close()
    assert sent == [4, 3, 2]
    acc = EventAccumulator(str(tmp_path / "tb_live")).Reload()
    assert [e.step for e in acc.Scalars("gradwatch/loss")] == list(range(9))

    run, d = sick
    sink = sinks.TensorBoardSink(tmp_path)
    sink.write(run, d)
    sink.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    loss = acc.Scalars("gradwatch/loss")
    assert [e.step for e in loss] == list(run.steps.index)
    assert np.allclose([e.value for e in loss], run.steps.loss, rtol=1e-6)
    want = expected(run)
    tag = f"gradwatch/layer_grad_norm/{ODD}.weight"
    assert np.allclose([e.value for e in acc.Scalars(tag)], [want[s][tag] for s in sorted(want)], rtol=1e-6)
    text = acc.Tensors("gradwatch/diagnosis/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith(f"**{d.verdict}**") and "vanishing_gradients" in text
    assert "<b>" not in text and "fc\\<b\\>" in text  # a module name is not markup
    assert acc.Scalars("gradwatch/headline/healthy")[0].value == (1.0 if d.verdict == "healthy" else 0.0)


def test_mlflow_local_file_store(tmp_path, sick, monkeypatch):
    need("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind an opt-in
    run, d = sick
    sink = sinks.export(run.dir, "mlflow", tracking_uri=f"file://{tmp_path}/mlruns")
    c, rid = sink.client, sink.run_id
    hist = c.get_metric_history(rid, "gradwatch/loss")
    assert [m.step for m in hist] == list(run.steps.index)
    assert np.allclose([m.value for m in hist], run.steps.loss, rtol=1e-6)
    key = sinks.MLflowSink.key(f"gradwatch/layer_grad_norm/{ODD}.weight")
    assert "<" not in key and len(c.get_metric_history(rid, key)) == len(run.steps)
    arts = {a.path for a in c.list_artifacts(rid, "gradwatch")}
    assert arts == {"gradwatch/diagnosis.md", "gradwatch/diagnosis.json", "gradwatch/report.html"}
    r = c.get_run(rid)
    assert r.data.tags["gradwatch.verdict"] == d.verdict and r.info.status == "FINISHED"
    assert r.data.metrics["gradwatch/healthy"] == (1.0 if d.verdict == "healthy" else 0.0)


def _wandb_records(path):
    """Read a .wandb file (a LevelDB-style log of protobuf records after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, partial, out = open(path, "rb").read(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:  # zero padding (pre-allocated space), not a record
            continue
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(partial)
            out.append(rec)
    return out


def test_wandb_offline(tmp_path, sick, monkeypatch):
    need("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    run, d = sick
    sinks.export(run.dir, "wandb", project="gradwatch-test", dir=str(tmp_path))
    (path,) = glob.glob(f"{tmp_path}/wandb/offline-run-*/run-*.wandb")
    size, deadline = -1, time.monotonic() + 10
    while size != os.path.getsize(path) and time.monotonic() < deadline:  # wandb-core writes it
        size = os.path.getsize(path)
        time.sleep(0.3)
    history, summary = {}, {}
    for rec in _wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            items = {i.key or "/".join(i.nested_key): i.value_json for i in rec.history.item}
            history[int(items["_step"])] = items
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): i.value_json for i in rec.summary.update})
    want = expected(run)
    assert set(want) <= set(history), f"steps missing from the .wandb file: {sorted(set(want) - set(history))}"
    for step in want:
        for tag, v in want[step].items():
            assert math.isclose(float(history[step][tag]), v, rel_tol=1e-6), (step, tag)
    assert float(summary["gradwatch/healthy"]) == (1.0 if d.verdict == "healthy" else 0.0)
    assert any(k.startswith("gradwatch/findings/") for k in history[max(want)])  # the findings table


def test_a_run_renders_itself_in_jupyter(sick):
    run, d = sick
    html = run._repr_html_()
    assert html.startswith("<!DOCTYPE html>") and ("Unhealthy" if d.verdict == "unhealthy" else "Healthy") in html
    assert ODD not in html and "fc&lt;b&gt;&#x27;; DROP TABLE steps;--" in html


def test_unknown_sink_is_a_clear_error(sick):
    with pytest.raises(ValueError, match="unknown sink 'neptune'"):
        sinks.export(sick[0].dir, "neptune")


def test_integrations_import_nothing_heavy_until_used():
    code = ("import sys, gradwatch, gradwatch.integrations, gradwatch.integrations.sinks, "
            "gradwatch.integrations.distributed, gradwatch.integrations.amp, gradwatch.integrations.compiled; "
            "heavy = ('lightning', 'transformers', 'tensorboard', 'mlflow', 'wandb', 'accelerate', 'matplotlib'); "
            "print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
