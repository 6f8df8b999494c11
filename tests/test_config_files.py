"""The TOML files are read through typed models: a wrong type or unknown key names file, key, reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from spendgate.config_files import ConfigFileError
from spendgate.pricing import Pricer
from spendgate.routing.policy import PolicyError, load_policy


def test_price_overrides_refuse_wrong_types_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."my-model"]\ninput = "cheap"\noutput = 2\n')
    with pytest.raises(ConfigFileError) as caught:
        Pricer(path)
    assert str(caught.value).startswith(f"{path}: models.my-model.input: ")
    path.write_text('[models."my-model"]\ninput = 1\noutput = 2\ncache_reed = 0.1\n')
    with pytest.raises(ConfigFileError, match=r"models\.my-model\.cache_reed: Extra inputs"):
        Pricer(path)
    path.write_text('[models."my-model"]\ninput = 0.15\noutput = 0.6\n')
    price = Pricer(path).price("openai", "my-model")
    assert price is not None and str(price.input.base) == "0.15"


def test_routing_policy_refuses_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[[rules]]\nname = "x"\nmodel = "m"\nmodle = "typo"\n')
    with pytest.raises(PolicyError, match=r"rules\.0\.modle: Extra inputs are not permitted"):
        load_policy(path)
