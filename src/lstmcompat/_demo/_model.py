"""The demo's character-level language model, its sampler, and its files.

The model is the Keras v1 text-generation recipe: an embedding, two stacked
:class:`lstmcompat.LSTM` layers as ``tf.compat.v1.keras.layers.LSTM`` builds them
(``recurrent_activation="hard_sigmoid"``, ``unit_forget_bias``, glorot / orthogonal
initializers; ``return_sequences=True``, with ``dropout`` and ``recurrent_dropout``)
and a dense softmax over the characters (``torch.nn.Linear`` and cross-entropy).

Saved as a folder of safetensors files (no pickle): ``lstm_1.safetensors`` and
``lstm_2.safetensors`` written by :func:`lstmcompat.save` (it saves lstmcompat's own
modules: each layer's config and weights), and ``head.safetensors`` with the
embedding, the dense layer and the vocabulary (as Unicode code points), which
:func:`lstmcompat.load_variables` reads like any safetensors file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import LSTM, load, load_variables, save
from .._interop._safetensors import write_file
from ._text import Vocabulary

#: The files of a saved model, in its folder.
LAYER_FILES = ("lstm_1.safetensors", "lstm_2.safetensors")
HEAD_FILE = "head.safetensors"

State = list[list[torch.Tensor]]


class CharModel(torch.nn.Module):
    """Embedding -> LSTM -> LSTM -> dense, over a vocabulary of characters.

    Args:
        vocab_size: the number of characters.
        embedding_dim: the embedding's size.
        hidden: each LSTM layer's units.
        dropout: both layers' ``dropout`` (on their inputs, in training).
        recurrent_dropout: both layers' ``recurrent_dropout`` (on ``h``, in training).

    Examples:
        >>> import torch
        >>> from lstmcompat._demo._model import CharModel
        >>> model = CharModel(10, embedding_dim=4, hidden=8)
        >>> logits, state = model(torch.zeros(2, 5, dtype=torch.long))
        >>> logits.shape, len(state)
        (torch.Size([2, 5, 10]), 2)
    """

    def __init__(self, vocab_size: int, embedding_dim: int = 32, hidden: int = 128,
                 dropout: float = 0.1, recurrent_dropout: float = 0.1) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, embedding_dim)
        common = dict(return_sequences=True, return_state=True, dropout=dropout,
                      recurrent_dropout=recurrent_dropout)
        self.lstm_1 = LSTM(hidden, input_dim=embedding_dim, name="lstm_1", **common)
        self.lstm_2 = LSTM(hidden, input_dim=hidden, name="lstm_2", **common)
        self.dense = torch.nn.Linear(hidden, vocab_size)

    @property
    def layers(self) -> tuple[LSTM, LSTM]:
        return self.lstm_1, self.lstm_2

    def forward(self, ids: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        """Logits ``(batch, time, vocab)`` for ids ``(batch, time)`` and each layer's
        final ``[h, c]`` (pass them back as ``state`` to continue the sequence)."""
        x = self.embedding(ids)
        new: State = []
        for k, layer in enumerate(self.layers):
            x, h, c = layer(x, initial_state=None if state is None else state[k])
            new.append([h, c])
        return self.dense(x), new

    def kernels(self) -> str:
        """The engine kernel each LSTM layer ran in its latest call (``last_kernel``):
        one name when both ran the same, else ``"a+b"``."""
        names = [layer.last_kernel[0] if layer.last_kernel else "?" for layer in self.layers]
        return names[0] if names[0] == names[1] else "+".join(names)


@torch.no_grad()
def generate(model: CharModel, vocab: Vocabulary, prompt: str, length: int, seed: int,
             temperature: float = 0.8) -> str:
    """``prompt`` and ``length`` characters sampled after it (in eval mode, no dropout;
    a generator seeded with ``seed``, so the same model and seed give the same text).

    Examples:
        >>> from lstmcompat._demo._model import CharModel, generate
        >>> from lstmcompat._demo._text import Vocabulary
        >>> v = Vocabulary.of("ab ")
        >>> m = CharModel(len(v), embedding_dim=4, hidden=8)
        >>> generate(m, v, "a", 5, seed=0) == generate(m, v, "a", 5, seed=0)
        True
    """
    was_training = model.training
    model.eval()
    try:
        device = model.dense.weight.device
        g = torch.Generator().manual_seed(seed)
        ids = vocab.encode(prompt, "`--prompt`")[None].to(device)
        logits, state = model(ids)
        out: list[int] = []
        for _ in range(length):
            p = torch.softmax(logits[0, -1].double().cpu() / temperature, dim=0)
            nxt = int(torch.multinomial(p, 1, generator=g))
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]], device=device), state)
    finally:
        model.train(was_training)
    return prompt + vocab.decode(out)


def save_model(model: CharModel, vocab: Vocabulary, folder: Any) -> list[Path]:
    """Write the model to ``folder`` (created if needed); the files written.

    Each LSTM layer with :func:`lstmcompat.save`; the embedding, the dense layer and
    the vocabulary to :data:`HEAD_FILE` (atomically, like ``save``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / name for name in (*LAYER_FILES, HEAD_FILE)]
    for layer, path in zip(model.layers, paths):
        save(layer, path)
    codes = torch.tensor([ord(c) for c in vocab.chars], dtype=torch.int32)
    write_file(paths[2], [("embedding", model.embedding.weight),
                          ("dense/kernel", model.dense.weight),
                          ("dense/bias", model.dense.bias), ("vocabulary", codes)],
               {"format": "lstmcompat-demo-head", "format_version": "1"})
    return paths


def load_model(folder: Any) -> tuple[CharModel, Vocabulary]:
    """The model and vocabulary :func:`save_model` wrote to ``folder`` (on the CPU).

    Raises:
        FileNotFoundError: a file of the model is missing.
        ValueError: the files do not fit together.
    """
    folder = Path(folder)
    layers = [load(folder / name) for name in LAYER_FILES]
    head = load_variables(folder / HEAD_FILE)
    vocab = Vocabulary("".join(chr(int(c)) for c in head["vocabulary"]))
    emb = torch.from_numpy(head["embedding"])
    config = layers[0].get_config()
    model = CharModel(len(vocab), embedding_dim=emb.shape[1], hidden=config["units"],
                      dropout=config["dropout"], recurrent_dropout=config["recurrent_dropout"])
    with torch.no_grad():
        model.embedding.weight.copy_(emb)
        model.dense.weight.copy_(torch.from_numpy(head["dense/kernel"]))
        model.dense.bias.copy_(torch.from_numpy(head["dense/bias"]))
    want = [emb.shape[1], config["units"]]
    for k, layer in enumerate(layers):
        if layer.kernel is None or layer.kernel.shape[0] != want[k] or (
                layer.units != config["units"]):
            raise ValueError(f"{str(folder / LAYER_FILES[k])!r} holds a layer that does not "
                             f"fit the model's other files")
        setattr(model, f"lstm_{k + 1}", layer)
    return model, vocab
