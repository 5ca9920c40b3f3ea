"""The real-code corpus: which vendored script runs with which arguments, and what it covers.

Every script lives under ``scripts/<origin>/`` at its original path; its header names the
repository, commit, path and licence and lists every change (``origins.json`` holds the same).
Arguments only shrink a run to a few seconds on one CPU thread through options the script
already has; ``{here}`` stands for the script's own folder (the working directory of a run is
a scratch folder, so that nothing is written into the repository).

``stdout`` says how the plain and the watched run's outputs are compared:

* ``"exact"`` — the same text, once timings are masked (``TIMING`` below, plus ``mask``);
* ``"numbers"`` — the same text with every number masked: the script seeds nothing (or its
  numbers depend on wall-clock), so two plain runs differ in their numbers too.

Example:
    >>> from corpus import CASES
    >>> sorted({c.covers for c in CASES})[:1]    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Numbers that are wall-clock measurements in the scripts' own logging.
TIMING = [
    r"\d+(?:\.\d+)?\s*ms\b",                  # "step time 39.42ms", "iter_dt 49.33ms"
    r"(?<=ms/batch)\s*\d+(?:\.\d+)?",          # word_language_model
    r"(?<=time:)\s*\d+(?:\.\d+)?s",            # word_language_model's epoch line
    r"(?<=mfu )-?\d+(?:\.\d+)?%",              # nanoGPT
    r"\d+(?:\.\d+)?\s*(?:it/s|s/it)",          # progress bars
    r"\d+:\d\d(?::\d\d)?",                    # elapsed / remaining time in progress bars
    r"━+",                                     # a rich progress bar, as long as its numbers leave room for
]


@dataclass(frozen=True)
class Case:
    """One run of one vendored script.

    Args:
        name: short unique name (``--only`` selects by it).
        script: path under ``scripts/``.
        args: command-line arguments (``{here}`` = the script's folder).
        covers: what kind of training this case stands for.
        stdout: ``"exact"`` or ``"numbers"`` (see the module docstring).
        mask: extra regular expressions masked before comparing.
    """

    name: str
    script: str
    args: tuple[str, ...] = ()
    covers: str = ""
    stdout: str = "exact"
    mask: tuple[str, ...] = field(default=())


PE = "pytorch-examples/"
YJ = "pytorch-tutorial/"
WLM = ("--epochs", "1", "--emsize", "64", "--nhid", "64", "--batch_size", "40", "--log-interval", "10")
MM = ("--num-workers", "0", "--max-steps", "120")
NANO = ("{here}/config/train_shakespeare_char.py", "--device=cpu", "--eval_iters=3", "--eval_interval=20",
        "--log_interval=5", "--block_size=64", "--batch_size=12", "--n_layer=2", "--n_head=4",
        "--n_embd=64", "--max_iters=40", "--lr_decay_iters=40", "--dropout=0.0", "--warmup_iters=10")

CASES: list[Case] = [
    # pytorch/examples
    Case("pe-regression", PE + "regression/main.py", (),
         "manual update p.data.add_(-lr * p.grad), no optimizer; unseeded", "numbers"),
    Case("pe-time-sequence-lbfgs", PE + "time_sequence_prediction/train.py", ("--steps", "2"),
         "LSTMCell, LBFGS with a closure (20 backward passes per step), float64"),
    Case("pe-dcgan", PE + "dcgan/main.py",
         ("--dataset", "mnist", "--dataroot", "unused", "--workers", "0", "--batchSize", "64",
          "--imageSize", "64", "--nz", "16", "--ngf", "16", "--ndf", "16", "--niter", "1", "--manualSeed", "1"),
         "GAN: two optimizers, D trained on two backward passes, BatchNorm"),
    Case("pe-vae", PE + "vae/main.py", ("--epochs", "1"), "VAE (reparameterisation, BCE + KL)"),
    Case("pe-mnist", PE + "mnist/main.py", ("--epochs", "1"), "CNN, Adadelta, StepLR"),
    Case("pe-mnist-rnn", PE + "mnist_rnn/main.py", ("--epochs", "1"), "LSTM classifier over image rows"),
    Case("pe-wlm-lstm", PE + "word_language_model/main.py", WLM + ("--model", "LSTM"),
         "word LM, truncated BPTT, clip_grad_norm_, manual update p.data.add_(p.grad, alpha=-lr)"),
    Case("pe-wlm-gru", PE + "word_language_model/main.py", WLM + ("--model", "GRU"),
         "word LM (GRU), manual update"),
    Case("pe-wlm-rnn-tanh", PE + "word_language_model/main.py", WLM + ("--model", "RNN_TANH"),
         "word LM (tanh RNN), manual update"),
    Case("pe-wlm-transformer", PE + "word_language_model/main.py", WLM + ("--model", "Transformer", "--lr", "5"),
         "word LM (nn.TransformerEncoder), manual update; --lr 5 as the example's README runs it"),
    Case("pe-wlm-adamw", PE + "word_language_model/main.py",
         WLM + ("--model", "LSTM", "--use-optimizer", "--lr", "0.002"),
         "word LM with its --use-optimizer AdamW path"),
    # karpathy/makemore: one script, five model families, loss masked with ignore_index=-1
    Case("makemore-mlp", "makemore/makemore.py", MM + ("--type", "mlp"), "char-level LM: MLP (Bengio 2003)"),
    Case("makemore-rnn", "makemore/makemore.py", MM + ("--type", "rnn"), "char-level LM: tanh RNN cell loop"),
    Case("makemore-gru", "makemore/makemore.py", MM + ("--type", "gru"), "char-level LM: GRU cell loop"),
    Case("makemore-bow", "makemore/makemore.py", MM + ("--type", "bow"), "char-level LM: bag of words"),
    Case("makemore-transformer", "makemore/makemore.py", MM + ("--type", "transformer", "--n-layer", "2"),
         "char-level LM: transformer"),
    # karpathy/nanoGPT
    Case("nanogpt-char", "nanoGPT/train.py", NANO + ("--compile=False",),
         "char GPT, AdamW, grad clip, cosine LR with warmup"),
    Case("nanogpt-bf16", "nanoGPT/train.py", NANO + ("--compile=False", "--dtype=bfloat16"),
         "char GPT under CPU bf16 autocast (AMP)"),
    Case("nanogpt-compile", "nanoGPT/train.py", NANO + ("--compile=True",),
         "char GPT under torch.compile (inductor)"),
    # karpathy/minGPT
    Case("mingpt-adder", "minGPT/projects/adder/adder.py",
         ("--trainer.max_iters=100", "--trainer.num_workers=0", "--trainer.batch_size=32"),
         "GPT on synthetic 2-digit addition (a seq2seq task in one sequence)"),
    Case("mingpt-chargpt", "minGPT/projects/chargpt/chargpt.py",
         ("--trainer.max_iters=60", "--trainer.num_workers=0", "--model.model_type=gpt-nano",
          "--trainer.batch_size=16", "--data.block_size=64"),
         "char GPT (minGPT Trainer)"),
    Case("pe-translation", PE + "language_translation/main.py",
         ("--epochs", "1", "--batch", "64", "--enc_layers", "2", "--dec_layers", "2", "--embed_size", "64",
          "--attn_heads", "4", "--dim_feedforward", "128"),
         "seq2seq: nn.Transformer encoder-decoder, padding masks, ignore_index", "numbers"),
    # pytorch/tutorials: manual updates under torch.no_grad()
    Case("tut-polynomial-autograd", "pytorch-tutorials/beginner_source/examples_autograd/polynomial_autograd.py", (),
         "bare tensors, a -= lr * a.grad under no_grad, grads set to None; no module, no optimizer", "numbers"),
    Case("tut-polynomial-nn", "pytorch-tutorials/beginner_source/examples_nn/polynomial_nn.py", (),
         "nn.Sequential, param -= lr * param.grad under no_grad, model.zero_grad()", "numbers"),
    # Lightning and Hugging Face
    Case("pl-transformer", "pytorch-lightning/examples/pytorch/basics/transformer.py", (),
         "Lightning Trainer, gradient_clip_val, demo Transformer LM", "numbers"),
    Case("pl-autoencoder", "pytorch-lightning/examples/pytorch/basics/autoencoder.py", (),
         "Lightning autoencoder, fit/test/predict from the best checkpoint"),
    Case("pl-gan", "pytorch-lightning/examples/pytorch/domain_templates/generative_adversarial_net.py", (),
         "Lightning manual optimisation: two optimizers, manual_backward, toggle_optimizer", "numbers"),
    Case("hf-trainer", "transformers/tests/trainer/test_trainer_distributed.py",
         ("--output_dir", "out-hf", "--report_to", "none"),
         "Hugging Face Trainer (evaluate/predict checks, then 64 training steps)", "numbers"),
    # yunjey/pytorch-tutorial (no seeds: outputs compared with numbers masked)
    Case("yj-linear-regression", YJ + "01-basics/linear_regression/main.py", (), "linear regression, SGD", "numbers"),
    Case("yj-logistic-regression", YJ + "01-basics/logistic_regression/main.py", (), "softmax regression", "numbers"),
    Case("yj-feedforward", YJ + "01-basics/feedforward_neural_network/main.py", (), "one-hidden-layer MLP, Adam", "numbers"),
    Case("yj-cnn", YJ + "02-intermediate/convolutional_neural_network/main.py", (), "CNN with BatchNorm", "numbers"),
    Case("yj-rnn", YJ + "02-intermediate/recurrent_neural_network/main.py", (), "2-layer LSTM classifier", "numbers"),
    Case("yj-birnn", YJ + "02-intermediate/bidirectional_recurrent_neural_network/main.py", (),
         "bidirectional LSTM classifier", "numbers"),
    Case("yj-resnet", YJ + "02-intermediate/deep_residual_network/main.py", (), "ResNet (CIFAR layout)", "numbers"),
    Case("yj-gan", YJ + "03-advanced/generative_adversarial_network/main.py", (), "MLP GAN, two Adam", "numbers"),
    Case("yj-vae", YJ + "03-advanced/variational_autoencoder/main.py", (), "MLP VAE", "numbers"),
    Case("yj-language-model", YJ + "02-intermediate/language_model/main.py", (),
         "word LSTM LM, truncated BPTT, clip_grad_norm_", "numbers"),
]
