"""Hugging Face Trainer: GradwatchTrainerCallback on tiny BERT and GPT-2 models built from a
config (no download), synthetic data; the record agrees with what the Trainer logs."""

import numpy as np
import pytest
import torch

from .conftest import need

transformers = need("transformers")
need("accelerate")  # the Trainer needs it

import gradwatch as gw  # noqa: E402
from gradwatch.integrations.transformers import GradwatchTrainerCallback  # noqa: E402

MAX_NORM = 0.5


class Tokens(torch.utils.data.Dataset):
    """Random token sequences; the label says whether token 7 occurs (learnable)."""

    def __init__(self, n=96, length=16, vocab=64, causal=False):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(8, vocab, (n, length), generator=g)
        self.ids[: n // 2, 3] = 7
        self.causal = causal

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        label = ids.clone() if self.causal else torch.tensor(int((ids == 7).any()))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": label}


def tiny(kind):
    torch.manual_seed(0)
    if kind == "bert":
        cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=37, max_position_embeddings=32, num_labels=2)
        return transformers.AutoModelForSequenceClassification.from_config(cfg)
    cfg = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=32)
    return transformers.AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize("kind,bf16", [("bert", False), ("gpt2", False), ("bert", True)])
def test_trainer_run_is_recorded_per_optimizer_step(tmp_path, kind, bf16):
    cb = GradwatchTrainerCallback(every=3, quiet=True)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=8, gradient_accumulation_steps=2,
        max_grad_norm=MAX_NORM, learning_rate=1e-3, logging_steps=1, report_to=[], use_cpu=True, bf16=bf16,
        save_strategy="no", seed=0, disable_tqdm=True, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=tiny(kind), args=args, train_dataset=Tokens(causal=kind == "gpt2"),
                                   callbacks=[cb])
    trainer.train()
    run = gw.load(tmp_path / "gradwatch")
    assert len(run.steps) == trainer.state.global_step == 8
    logs = [h for h in trainer.state.log_history if "grad_norm" in h and "loss" in h]
    assert [h["step"] for h in logs] == list(range(1, 9))
    hf_norm = np.array([h["grad_norm"] for h in logs])  # the Trainer logs the norm before clipping
    assert np.allclose(run.steps.grad_norm, np.minimum(hf_norm, MAX_NORM), rtol=1e-4)
    hf_loss = np.array([h["loss"] for h in logs])
    assert np.allclose(run.steps.loss, hf_loss, rtol=1e-3, atol=1e-4)  # the step loss, not a share
    assert (tmp_path / "gradwatch" / "report.html").exists()
    assert trainer.state.log_history[-1]["gradwatch/steps"] == 8
    assert run.meta["framework"]["gradient_accumulation_steps"] == 2 and run.meta["framework"]["bf16"] == bf16
    names = set(run.modules.name)
    assert any(n.endswith("attention.self.query") or n.endswith("attn.c_attn") for n in names)
    assert run.series("delta").notna().any().any()


def test_train_resumed_from_a_checkpoint_continues_the_record(tmp_path, monkeypatch):
    def train(max_steps, resume=None):
        cb = GradwatchTrainerCallback(every=3, quiet=True)
        args = transformers.TrainingArguments(
            output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=8, learning_rate=1e-3,
            report_to=[], use_cpu=True, save_strategy="steps", save_steps=4, seed=0, disable_tqdm=True,
            dataloader_num_workers=0)
        trainer = transformers.Trainer(model=tiny("bert"), args=args, train_dataset=Tokens(), callbacks=[cb])
        trainer.train(resume_from_checkpoint=resume)
        return trainer, cb

    train(6)  # a run that ends (as if preempted) after step 6; its last checkpoint is at step 4
    import shutil

    shutil.rmtree(tmp_path / "checkpoint-6")
    saved = torch.load(tmp_path / "checkpoint-4" / "gradwatch_state.pt", weights_only=True)
    assert saved["step"] == 4 and saved["schedule"]
    loaded, real_load = [], gw.Watcher.load_state_dict
    monkeypatch.setattr(gw.Watcher, "load_state_dict",
                        lambda self, st: (loaded.append(st["step"]), real_load(self, st))[1])
    trainer, cb = train(10, resume=str(tmp_path / "checkpoint-4"))
    assert loaded == [4]  # the schedule and guard state carried on from the checkpoint
    run = gw.load(tmp_path / "gradwatch")
    assert trainer.state.global_step == 10
    assert list(run.steps.index) == list(range(10))
    assert list(run.superseded.step) == [4, 5]
    assert run.restarts.step.tolist() == [4] and run.restarts.source[0] == "watcher state"
    from gradwatch.store import RunExists

    with pytest.raises(RunExists):
        train(2)  # a fresh train() into the same output_dir: refused, the record kept
    assert gw.load(tmp_path / "gradwatch").n_steps == 10
