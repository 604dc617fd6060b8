"""``lstmcompat._demo._model``: the demo's model is the Keras v1 recipe on
``lstmcompat.LSTM``; its sampler is seeded; its files reload to the same model."""

from __future__ import annotations

import pytest
import torch

import lstmcompat
from lstmcompat._demo._model import (
    HEAD_FILE,
    LAYER_FILES,
    CharModel,
    generate,
    load_model,
    save_model,
)
from lstmcompat._demo._text import Vocabulary

VOCAB = Vocabulary.of("abcdefgh .,\n")


def _model(seed: int = 0) -> CharModel:
    torch.manual_seed(seed)
    return CharModel(len(VOCAB), embedding_dim=6, hidden=10)


def test_layers_are_keras_v1_lstms_with_both_dropouts():
    model = CharModel(5)
    for layer in model.layers:
        assert type(layer) is lstmcompat.LSTM
        config = layer.get_config()
        assert config["recurrent_activation"] == "hard_sigmoid"  # tf.compat.v1's default
        assert config["activation"] == "tanh" and config["unit_forget_bias"] is True
        assert config["return_sequences"] is True
        assert config["dropout"] == 0.1 and config["recurrent_dropout"] == 0.1
        assert config["units"] == 128
    assert model.embedding.embedding_dim == 32 and model.lstm_2.kernel.shape == (128, 512)


def test_forward_shapes_state_and_kernel_report():
    model = _model()
    logits, state = model(torch.zeros(3, 4, dtype=torch.long))
    assert logits.shape == (3, 4, len(VOCAB))
    assert [tuple(t.shape) for s in state for t in s] == [(3, 10)] * 4
    assert model.kernels() == model.lstm_1.last_kernel[0]
    # continuing from a state is the same as running the whole sequence
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    whole, _ = model(ids)
    first, s = model(ids[:, :3])
    rest, _ = model(ids[:, 3:], s)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole)


def test_kernels_names_both_layers_when_they_differ():
    model = _model()
    model.lstm_1.__dict__["last_kernel"] = ("fused", "why")
    model.lstm_2.__dict__["last_kernel"] = ("reference", "why")
    assert model.kernels() == "fused+reference"


def test_dropout_is_on_in_training_only():
    model = _model()
    ids = torch.tensor([[1, 2, 3, 4]])
    model.train()
    torch.manual_seed(1)
    a, _ = model(ids)
    b, _ = model(ids)
    assert not torch.equal(a, b)  # new dropout masks each call
    model.eval()
    assert torch.equal(model(ids)[0], model(ids)[0])


def test_generate_is_seeded_and_keeps_the_mode():
    model = _model()
    model.train()
    one = generate(model, VOCAB, "ab", 40, seed=5)
    assert model.training  # put back
    assert one.startswith("ab") and len(one) == 42 and set(one) <= set(VOCAB.chars)
    assert generate(model, VOCAB, "ab", 40, seed=5) == one
    assert generate(model, VOCAB, "ab", 40, seed=6) != one
    with pytest.raises(ValueError, match="`--prompt` has characters"):
        generate(model, VOCAB, "xyz", 3, seed=0)


def test_saved_model_reloads_bit_for_bit(tmp_path):
    model = _model()
    paths = save_model(model, VOCAB, tmp_path / "m")
    assert [p.name for p in paths] == [*LAYER_FILES, HEAD_FILE]
    # the LSTM layers are lstmcompat.save files: lstmcompat.load reads each one
    layer = lstmcompat.load(paths[0])
    assert layer.get_config() == model.lstm_1.get_config()
    assert torch.equal(layer.recurrent_kernel, model.lstm_1.recurrent_kernel)
    # the head is a plain safetensors file
    head = lstmcompat.load_variables(paths[2])
    assert sorted(head) == ["dense/bias", "dense/kernel", "embedding", "vocabulary"]
    assert "".join(map(chr, head["vocabulary"])) == VOCAB.chars

    again, vocab = load_model(tmp_path / "m")
    assert vocab == VOCAB
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), again.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert generate(again, vocab, "a", 30, seed=1) == generate(model, VOCAB, "a", 30, seed=1)


def test_load_model_refuses_files_that_do_not_fit(tmp_path):
    save_model(_model(), VOCAB, tmp_path / "m")
    torch.manual_seed(0)
    other = CharModel(len(VOCAB), embedding_dim=6, hidden=12)
    lstmcompat.save(other.lstm_2, tmp_path / "m" / LAYER_FILES[1])
    with pytest.raises(ValueError, match="lstm_2.safetensors' holds a layer that does not fit"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / HEAD_FILE).unlink()
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "m")
