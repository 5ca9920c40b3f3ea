"""Loading pretrained weights by name and shape, with a report of what matched."""

import torch
from torch import nn

from gradwatch.remedies.init import load_pretrained


def _src():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def test_matched_missing_unexpected_and_mismatched():
    src = _src()
    src.train()
    src(torch.randn(16, 4))  # running statistics differ from a fresh model's
    dst = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 2))
    sd = dict(src.state_dict(), extra=torch.zeros(1))
    kept_head = dst[3].weight.detach().clone()
    report = load_pretrained(dst, sd)
    assert report.matched == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                              "1.num_batches_tracked"]
    assert report.missing == ["4.weight", "4.bias"]
    assert report.unexpected == ["extra"]
    assert report.mismatched == [("3.weight", (5, 8), (3, 8)), ("3.bias", (5,), (3,))]
    assert not report.complete
    assert torch.equal(dst[0].weight, src[0].weight) and torch.equal(dst[1].running_mean, src[1].running_mean)
    assert torch.equal(dst[3].weight, kept_head)
    text = str(report)
    assert "7 matched" in text and "3.weight" in text


def test_dataparallel_prefix_and_file_source(tmp_path):
    src = _src()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = _src()
    nn.init.zeros_(dst[0].weight)
    report = load_pretrained(dst, path)
    assert report.prefix == "module." and report.complete and not report.unexpected
    assert torch.equal(dst[0].weight, src[0].weight)


def test_from_a_module():
    src, dst = _src(), nn.Sequential(nn.Linear(4, 8))
    report = load_pretrained(dst, src)
    assert report.matched == ["0.weight", "0.bias"] and report.complete
