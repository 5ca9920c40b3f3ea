"""Worker for the Lightning DDP test: ``torchrun --nproc_per_node=2 lightning_ddp_worker.py OUT``."""

import json
import sys
import warnings

import lightning.pytorch as L
import torch
from torch import nn

from gradwatch.integrations.lightning import GradwatchCallback

warnings.filterwarnings("ignore")
torch.set_num_threads(1)


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    data = torch.utils.data.TensorDataset(x, x[:, :1] * 2)
    cb = GradwatchCallback(out=f"{out}/run", every=2, quiet=True)
    trainer = L.Trainer(default_root_dir=out, accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                        logger=False, callbacks=[cb], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Regressor(), torch.utils.data.DataLoader(data, batch_size=8))
    rank = trainer.global_rank
    with open(f"{out}/result-rank{rank}.json", "w") as f:
        json.dump({"verdict": cb.summary.diagnosis.verdict, "steps": trainer.global_step,
                   "report": str(cb.summary.report)}, f)


if __name__ == "__main__":
    main()
