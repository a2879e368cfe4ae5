"""Every choice in the config is a ``Literal`` or an enum, checked at load like any key."""

from __future__ import annotations

import typing
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel

from engines.base import BACKENDS, BackendName
from pipeline import config as config_module
from pipeline.config import ConfigError, StrictModel, ThresholdMode, load_config
from tests.conftest import ASSETS


def _config_models() -> list[type[BaseModel]]:
    return [
        value
        for value in vars(config_module).values()
        if isinstance(value, type) and issubclass(value, StrictModel) and value is not StrictModel
    ]


def test_no_choice_is_a_string_with_a_pattern() -> None:
    patterned = [
        f"{model.__name__}.{name}"
        for model in _config_models()
        for name, field in model.model_fields.items()
        if field.annotation is str and any(hasattr(rule, "pattern") for rule in field.metadata)
    ]
    assert patterned == [], "make these choices a Literal or an enum"


def test_backend_names_are_the_registry() -> None:
    assert set(typing.get_args(BackendName)) == set(BACKENDS)
    assert issubclass(ThresholdMode, Enum)


@pytest.mark.parametrize(
    ("section", "key", "value", "choice"),
    [
        ("encoder", "backend", "onnx", "'onnxruntime'"),
        ("matching", "threshold_mode", "auto", "'quantile'"),
    ],
)
def test_an_unknown_choice_is_a_config_error_naming_the_choices(
    tmp_path: Path, section: str, key: str, value: str, choice: str
) -> None:
    path = tmp_path / "cams.yaml"
    video = ASSETS / "videos" / "vtest.avi"
    path.write_text(f"cameras: [{{id: 0, uri: {video}}}]\n{section}: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=f"{section}.{key}") as raised:
        load_config(path)
    assert choice in str(raised.value)
