"""A model's device and dtype against this machine, before a run directory is made
(`harness.models.devices`)."""

from __future__ import annotations

import pytest

from harness.config import ModelSpec
from harness.errors import BadInputError
from harness.models.devices import check_devices


def spec(**settings) -> ModelSpec:
    return ModelSpec(id="m", path="/models/m", **settings)


@pytest.mark.parametrize(
    "settings, gpus, fragment",
    [
        ({"device": "cuda"}, 0, "`device: cuda`, but torch sees no GPU"),
        ({"device": "cuda:1"}, 1, "this machine has 1 GPU(s) (cuda:0 to cuda:0)"),
        ({"device_map": "auto"}, 0, "`device_map: auto` spreads the model"),
    ],
)
def test_a_device_this_machine_lacks(settings, gpus, fragment):
    with pytest.raises(BadInputError, match="model 'm'") as raised:
        check_devices([spec(**settings)], gpus)
    assert fragment in str(raised.value)


def test_float16_on_the_cpu_warns():
    assert check_devices([spec(dtype="float16", device="cpu")], 1)[0].startswith(
        "model 'm': `dtype: float16` on the CPU"
    )
    assert check_devices([spec(dtype="float16")], 0)  # auto without a GPU is the CPU
    assert check_devices([spec(dtype="float16")], 1) == []  # auto with a GPU is the GPU
    assert check_devices([spec(device="cuda:0"), spec(dtype="bfloat16")], 1) == []
