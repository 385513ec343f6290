"""The ``kpipe`` command's own wiring (the commands at work: tests/e2e/test_cli.py)."""

from __future__ import annotations

import click
import pytest

from kpipe.cli import up
from kpipe.local.config import StackConfig

# Every setting with an env var, but the keys: a flag's value is on the command line, which
# every user of the machine sees.
SETTINGS = {
    name: field
    for name, field in StackConfig.model_fields.items()
    if field.validation_alias and field.repr
}


def _options() -> dict[str, click.Option]:
    return {p.name: p for p in up.params if isinstance(p, click.Option) and p.name}


def test_every_stack_setting_is_a_flag_of_kpipe_up() -> None:
    assert sorted(_options()) == sorted(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_flag_takes_its_default_and_env_var_from_the_settings(name: str) -> None:
    option, field = _options()[name], SETTINGS[name]
    assert (option.default, option.envvar) == (field.default, field.validation_alias)
    assert option.opts == [f"--{name.replace('_', '-')}"]
