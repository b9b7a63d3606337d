"""load_recognizer passes a recognizer's own options to its factory, and names an option it does not take."""

from __future__ import annotations

import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.evaluation.recognizers import RECOGNIZERS, Recognizer, load_recognizer, register_recognizer


class Toy(Recognizer):
    name = "toy"


@pytest.fixture
def registered():
    """Registers factories for one test and removes them after."""
    names = []

    def register(name: str, factory) -> None:  # noqa: ANN001
        register_recognizer(name, factory)
        names.append(name)

    yield register
    for name in names:
        RECOGNIZERS.pop(name)


def test_options_reach_the_factory(registered):
    seen = {}

    def factory(model=None, threshold: float = 0.5, network: str = "auto") -> Recognizer:  # noqa: ANN001
        seen.update(model=model, threshold=threshold, network=network)
        return Toy()

    registered("toy", factory)
    load_recognizer("toy", "weights.bin", 0.3, network="dlib")
    assert seen == {"model": "weights.bin", "threshold": 0.3, "network": "dlib"}
    load_recognizer("toy")
    assert seen == {"model": None, "threshold": 0.5, "network": "auto"}  # nothing given: the factory's defaults


def test_a_factory_that_takes_any_keyword_gets_every_option(registered):
    registered("toy", lambda model=None, **options: Toy())
    assert isinstance(load_recognizer("toy", threshold=0.2, anything=1), Toy)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (lambda model=None, threshold=0.5: Toy(), {"network": "dlib"},
         r"^the toy recognizer has no option 'network' \(it takes threshold\)$"),
        (lambda model=None: Toy(), {"threshold": 0.3},
         r"^the toy recognizer has no option 'threshold' \(it takes none\)$"),
        (lambda model=None, threshold=0.5: Toy(), {"network": "dlib", "threads": 2},
         r"^the toy recognizer has no option 'network', 'threads' \(it takes threshold\)$"),
    ],
)
def test_an_option_the_factory_does_not_take_is_a_config_error(registered, factory, kwargs, message):
    registered("toy", factory)
    with pytest.raises(ConfigError, match=message):
        load_recognizer("toy", **kwargs)


def test_the_builtin_recognizers_name_the_options_they_take():
    with pytest.raises(ConfigError, match=r"arcface recognizer has no option 'network' \(it takes threshold\)"):
        load_recognizer("arcface", "x.onnx", network="dlib")
    takes = r"\(it takes threshold, network, threads\)"
    with pytest.raises(ConfigError, match=r"dlib recognizer has no option 'netwrok' " + takes):
        load_recognizer("dlib", netwrok="dlib")  # a typo is caught before dlib loads its models


def test_the_dlib_network_option_reaches_dlib():
    pytest.importorskip("dlib")
    assert load_recognizer("dlib", network="dlib").describe()["network"] == "dlib"
