# ---- realcode corpus: a vendored third-party file ----
# origin:  https://github.com/Lightning-AI/pytorch-lightning
# commit:  7f0c3436cd3f6ad3753125672024fc415cbcb414
# path:    examples/pytorch/basics/transformer.py
# licence: Apache-2.0; full text and notice in benchmarks/realcode/LICENSES/pytorch-lightning.txt
# changes (marked "# realcode:" where they are):
#   1. WikiText2 (a download) is given the docstrings of torch.nn (realcode_text) as its text
#      file (./data/wikitext-2.txt in the working directory) and built with download=False
#   2. random_split by fractions 0.8/0.1/0.1 instead of n-4000, 2000, 2000 (the corpus has ~1
#      400 blocks, not ~59 000)
#   3. Trainer: max_steps=25, limit_val_batches=3, limit_test_batches=3 added (was 20 epochs)
# ----
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, random_split

import lightning as L
from lightning.pytorch.demos import Transformer, WikiText2

# realcode: the text corpus is not bundled; the docstrings of torch.nn's public names (they ship
# inside the installed torch package) stand in for it.
def realcode_text():
    import inspect
    import torch.nn
    docs = (inspect.getdoc(getattr(torch.nn, n)) for n in sorted(dir(torch.nn)) if not n.startswith('_'))
    return '\n'.join(d for d in docs if d)


class LanguageModel(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = Transformer(vocab_size=vocab_size)

    def training_step(self, batch, batch_idx):
        input, target = batch
        output = self.model(input, target)
        loss = F.nll_loss(output, target.view(-1))
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        input, target = batch
        output = self.model(input, target)
        loss = F.nll_loss(output, target.view(-1))
        self.log("val_loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch, batch_idx):
        input, target = batch
        output = self.model(input, target)
        loss = F.nll_loss(output, target.view(-1))
        self.log("test_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def main():
    L.seed_everything(42)

    # Data
    import os  # realcode: the docstring corpus as WikiText2's text file
    os.makedirs('data', exist_ok=True)
    with open(os.path.join('data', 'wikitext-2.txt'), 'w') as f:
        f.write(realcode_text())
    dataset = WikiText2(download=False)

    # Split data in to train, val, test
    n = len(dataset)
    train_dataset, val_dataset, test_dataset = random_split(dataset, [0.8, 0.1, 0.1])  # realcode
    train_dataloader = DataLoader(train_dataset, batch_size=20, shuffle=True)
    val_dataloader = DataLoader(val_dataset, batch_size=20, shuffle=False)
    test_dataloader = DataLoader(test_dataset, batch_size=20, shuffle=False)

    # Model
    model = LanguageModel(vocab_size=dataset.vocab_size)

    # Trainer
    trainer = L.Trainer(gradient_clip_val=0.25, max_epochs=20, max_steps=25, limit_val_batches=3, limit_test_batches=3)  # realcode
    trainer.fit(model, train_dataloader, val_dataloader)
    trainer.test(model, test_dataloader)


if __name__ == "__main__":
    main()
