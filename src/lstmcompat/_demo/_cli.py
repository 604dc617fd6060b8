"""``lstmcompat demo``: train a character-level language model and generate text.

No download and no argument needed: the text is bundled with the package. The run
prints a sample before training, trains (a tqdm bar with the loss, characters per
second and the engine kernel in use; plain lines when stdout is not a terminal),
prints a sample after, saves the model, reloads it and checks that it generates
the same text, and draws the loss curve (with matplotlib). Ctrl-C stops the
training early: what was trained is saved and checked the same way, and the exit
code is 130 (the shell's code for an interrupt).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ._model import CharModel, generate, load_model, save_model
from ._text import Vocabulary, batch, default_prompt, read_text

#: The exit code after Ctrl-C (the model saved first).
INTERRUPTED = 130

#: The longest time between two plain progress lines (stdout not a terminal).
_PLAIN_SECONDS = 10.0

#: Losses averaged for the summary's final figure.
_SUMMARY_STEPS = 20


def configure(p: argparse.ArgumentParser) -> None:
    """The ``lstmcompat demo`` subcommand (listed in ``lstmcompat.__main__``)."""
    p.description = (
        "Train a character-level language model (an embedding, two stacked "
        "lstmcompat.LSTM layers in the Keras v1 configuration with dropout and "
        "recurrent_dropout, a dense softmax) on a bundled public-domain text, print "
        "samples before and after, save it with lstmcompat.save, reload it and check "
        "that it generates the same text, and plot the loss (with matplotlib). About a "
        "minute on two CPU cores. Ctrl-C stops the training early: the model is saved "
        f"and checked, exit code {INTERRUPTED}.")
    p.add_argument("--steps", type=int, default=1200,
                   help="training steps (default: 1200)")
    p.add_argument("--device", default="cpu",
                   help="torch device to train on, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, batches, dropout and sampling: the same seed "
                        "gives the same losses and samples (default: 0)")
    p.add_argument("-o", "--out", default="lstmcompat-demo",
                   help="output folder: model/, loss.png, samples.txt, losses.csv "
                        "(default: ./lstmcompat-demo)")
    p.add_argument("--text", metavar="FILE",
                   help="train on this UTF-8 text file instead of the bundled one")
    p.add_argument("--hidden", type=int, default=128,
                   help="units of each LSTM layer (default: 128)")
    p.add_argument("--embedding", type=int, default=32,
                   help="embedding size (default: 32)")
    p.add_argument("--seq-len", type=int, default=100,
                   help="characters per training sequence (default: 100)")
    p.add_argument("--batch", type=int, default=32,
                   help="sequences per training step (default: 32)")
    p.add_argument("--lr", type=float, default=0.004,
                   help="Adam learning rate (default: 0.004)")
    p.add_argument("--sample-length", type=int, default=300,
                   help="characters generated per sample (default: 300)")
    p.add_argument("--threads", type=int,
                   help="CPU threads for the run (torch.set_num_threads; default: "
                        "PyTorch's, one per core). On a machine other jobs keep busy, 1 can "
                        "be many times faster")
    p.add_argument("--prompt", help="text the samples start from (default: 'The ', or "
                                    "the text's first character if it lacks those)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    for name, low in (("steps", 0), ("hidden", 1), ("embedding", 1), ("seq_len", 1),
                      ("batch", 1), ("sample_length", 0)):
        value = getattr(args, name)
        if value < low:
            raise ValueError(f"`--{name.replace('_', '-')}` must be at least {low}, "
                             f"got {value}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"`--threads` must be at least 1, got {args.threads}")
    if not args.lr > 0:
        raise ValueError(f"`--lr` must be positive, got {args.lr}")


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"`--device` {name!r} is not a torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`--device` {name!r}: CUDA is not available here (use --device cpu)")
    return device


def train_step(model: CharModel, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> float:
    """One optimizer step on a batch; the batch's mean cross-entropy (nats/char)."""
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


class _Progress:
    """A tqdm bar on a terminal; else a plain line every tenth of the run (and at least
    every :data:`_PLAIN_SECONDS`)."""

    def __init__(self, steps: int, chars_per_step: int) -> None:
        self.steps = steps
        self.chars_per_step = chars_per_step
        self.start = time.perf_counter()
        self.bar = None
        if sys.stdout.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=steps, file=sys.stdout, unit="step",
                            desc="training")
        self.every = max(1, steps // 10)
        self.last = self.start

    def update(self, step: int, loss: float, kernel: str) -> None:
        rate = step * self.chars_per_step / max(time.perf_counter() - self.start, 1e-9)
        text = f"loss {loss:.3f}, {rate:,.0f} chars/s, kernel {kernel}"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        elif (step % self.every == 0 or step == self.steps
              or time.perf_counter() - self.last > _PLAIN_SECONDS):
            self.last = time.perf_counter()
            print(f"step {step}/{self.steps}: {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(losses: list[float]) -> str:
    k = min(_SUMMARY_STEPS, len(losses))
    last = sum(losses[-k:]) / k
    return (f"loss {losses[0]:.3f} (step 1; an untrained model starts near ln(vocabulary)) "
            f"-> {last:.3f} (mean of the last {k} steps)")


def plot_losses(losses: list[float], path: Path) -> bool:
    """Draw the loss curve to ``path`` (PNG); ``False`` when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401  (first: None in sys.modules means "not installed")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = range(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.8, alpha=0.4, label="per step")
    k = max(1, len(losses) // 50)
    smooth = [sum(losses[max(0, i - k + 1):i + 1]) / len(losses[max(0, i - k + 1):i + 1])
              for i in range(len(losses))]
    ax.plot(steps, smooth, lw=1.8, label=f"mean of {k} steps")
    ax.set_xlabel("training step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title("lstmcompat demo: character-level LSTM language model")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def _print_sample(title: str, text: str) -> None:
    print(f"--- {title} ---")
    print(text)
    print("---")


def run(args: argparse.Namespace) -> int:
    """Run the demo (``lstmcompat demo``); 0, or :data:`INTERRUPTED` after Ctrl-C."""
    _check(args)
    device = _device(args.device)
    text = read_text(args.text, args.seq_len + 1)
    out = Path(args.out)
    forked = [device.index or 0] if device.type == "cuda" else []
    threads = torch.get_num_threads()
    # The global RNG (weights, dropout) is seeded for the run and restored after it, as
    # is the thread count.
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        with torch.random.fork_rng(devices=forked):
            return _run(args, device, text, out)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace, device: torch.device, text: str, out: Path) -> int:
    torch.manual_seed(args.seed)
    vocab = Vocabulary.of(text)
    prompt = default_prompt(vocab, text) if args.prompt is None else args.prompt
    vocab.encode(prompt, "`--prompt`")  # fail before training, not after
    out.mkdir(parents=True, exist_ok=True)
    ids = vocab.encode(text)
    source = args.text or "the bundled text (Genesis, Ecclesiastes, sonnets, Alice)"
    print(f"text: {source}, {len(text):,} characters, {len(vocab)} distinct")
    model = CharModel(len(vocab), embedding_dim=args.embedding, hidden=args.hidden).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: Embedding({len(vocab)}, {args.embedding}) -> lstmcompat.LSTM({args.hidden}) "
          f"-> lstmcompat.LSTM({args.hidden}) -> Linear({args.hidden}, {len(vocab)}); "
          f"{n_params:,} parameters, on {device}")
    print(f"training: {args.steps} steps of {args.batch} x {args.seq_len} characters, "
          f"Adam lr {args.lr}, seed {args.seed}"
          + (f", CPU threads: {torch.get_num_threads()}" if device.type == "cpu" else ""))
    # (made first: its first use imports torch._dynamo, a second or two before training)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    before = generate(model, vocab, prompt, args.sample_length, args.seed)
    _print_sample("sample before training", before)

    g = torch.Generator().manual_seed(args.seed)
    losses: list[float] = []
    interrupted = False
    progress = _Progress(args.steps, args.batch * args.seq_len)
    start = time.perf_counter()
    model.train()
    try:
        for step in range(1, args.steps + 1):
            x, y = batch(ids, args.batch, args.seq_len, g)
            losses.append(train_step(model, optimizer, x.to(device), y.to(device)))
            progress.update(step, losses[-1], model.kernels())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    seconds = time.perf_counter() - start
    if interrupted:
        print(f"interrupted (Ctrl-C) after {len(losses)} of {args.steps} steps: saving "
              "what was trained")
    print(f"trained {len(losses)} steps in {seconds:.1f} s"
          + (f"; {_summary(losses)}" if losses else ""))
    print(f"kernel: {model.kernels()} ({model.lstm_1.last_kernel[1]})"
          if model.lstm_1.last_kernel else "kernel: no step ran")

    after = generate(model, vocab, prompt, args.sample_length, args.seed)
    _print_sample("sample after training", after)

    paths = save_model(model, vocab, out / "model")
    print(f"saved the model to {out / 'model'}: "
          + ", ".join(p.name for p in paths)
          + " (the LSTM layers with lstmcompat.save)")
    reloaded, reloaded_vocab = load_model(out / "model")
    again = generate(reloaded.to(device), reloaded_vocab, prompt, args.sample_length,
                     args.seed)
    if again != after:
        raise RuntimeError("the reloaded model generated a different text than the trained "
                           f"one (seed {args.seed}): the saved files do not reproduce it")
    print(f"reloaded it: it generates the same text (seed {args.seed})")

    (out / "samples.txt").write_text(
        f"prompt: {prompt!r}, seed {args.seed}, {len(losses)} steps\n\n"
        f"--- before training ---\n{before}\n\n--- after training ---\n{after}\n",
        encoding="utf-8")
    (out / "losses.csv").write_text(
        "step,loss\n" + "".join(f"{k},{v!r}\n" for k, v in enumerate(losses, 1)))
    if plot_losses(losses, out / "loss.png"):
        print(f"loss curve: {out / 'loss.png'}")
    else:
        (out / "loss.png").unlink(missing_ok=True)  # not a previous run's
        print("no loss curve: matplotlib is not installed (pip install matplotlib, or "
              "pip install 'lstmcompat[demo]')")
    print(f"samples: {out / 'samples.txt'}; losses: {out / 'losses.csv'}")
    return INTERRUPTED if interrupted else 0
