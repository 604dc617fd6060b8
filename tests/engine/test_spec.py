"""``CellSpec`` (frozen, hashable, normalised) and ``check_weights``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lstmcompat._engine import CellSpec, Weights
from lstmcompat._engine.spec import check_weights


def test_spec_is_frozen_and_hashable():
    a, b = CellSpec(4, forget_bias=1), CellSpec(4, forget_bias=1.0)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert isinstance(a.forget_bias, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.units = 5  # type: ignore[misc]


def test_activations_are_normalised_to_their_keras_names():
    assert CellSpec(2, activation=None).activation == "linear"
    assert CellSpec(2, activation="silu").activation == "swish"
    assert CellSpec(2, activation=torch.tanh).activation == "tanh"
    assert CellSpec(2, activation=torch.tanh) == CellSpec(2)

    def user(z):
        return z * 0.5

    assert CellSpec(2, recurrent_activation=user).recurrent_activation is user
    with pytest.raises(ValueError, match="no_such"):
        CellSpec(2, activation="no_such")


def test_mask_mode_is_checked():
    with pytest.raises(ValueError, match="`mask_mode` must be 'carry' or 'zero'"):
        CellSpec(2, mask_mode="hold")  # type: ignore[arg-type]


def test_output_size():
    assert CellSpec(5).output_size == 5
    assert CellSpec(5, num_proj=2).output_size == 2


def _weights(u=3, p=3, d=2, peep=False, proj=None):
    z = torch.zeros
    return Weights(z(d, 4 * u), z(p, 4 * u), z(4 * u), *(z(u) if peep else None for _ in range(3)),
                   None if proj is None else z(u, proj))


def test_check_weights_accepts_fitting_weights():
    check_weights(CellSpec(3), _weights())
    check_weights(CellSpec(3, use_peepholes=True, num_proj=2), _weights(p=2, peep=True, proj=2))
    check_weights(CellSpec(3), _weights()._replace(b=None))


@pytest.mark.parametrize("spec,w,match", [
    (CellSpec(3), _weights(u=2), r"input kernel must be \(depth, 12\), got \(2, 8\)"),
    (CellSpec(3), _weights()._replace(R=torch.zeros(2, 12)),
     r"recurrent kernel must be \(3, 12\), got \(2, 12\)"),
    (CellSpec(3), _weights()._replace(b=torch.zeros(11)), r"bias must be \(12,\), got \(11,\)"),
    (CellSpec(3, use_peepholes=True), _weights(), "use_peepholes needs w_i, w_f and w_o"),
    (CellSpec(3, num_proj=2), _weights(p=2), r"projection kernel must be \(3, 2\)"),
    (CellSpec(3, num_proj=2), _weights(p=2, proj=4), r"projection kernel must be \(3, 2\)"),
])
def test_check_weights_names_what_does_not_fit(spec, w, match):
    with pytest.raises(ValueError, match=match):
        check_weights(spec, w)
