"""facer's FaRL attribute classifier, loaded from safetensors and run on real landmarks.

FaRL's trained weights cannot be downloaded here, so the network is built with random weights in the
test: what is checked is the loading (safetensors only, CPU-only machine despite facer's .cuda() calls),
the alignment on CenterFace landmarks and the agreement bookkeeping, not the attribute accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest

from camouflage_video.annotators import CenterFaceDetector
from camouflage_video.errors import ModelError
from camouflage_video.evaluation import AttributeAgreement, EvaluationConfig, Evaluator


def test_agreement_counts_binary_decisions_per_attribute():
    agreement = AttributeAgreement(["Smiling", "Male", "Young"])
    agreement.add(np.array([[0.9, 0.2, np.nan], [0.1, 0.8, 0.7]]), np.array([[0.8, 0.7, 0.5], [0.3, 0.9, 0.2]]))
    summary = agreement.summary()
    assert summary["per_attribute"] == {"Smiling": 1.0, "Male": 0.5, "Young": 0.0}
    assert summary["agreement"] == pytest.approx(3 / 5, abs=1e-4)
    assert summary["faces"] == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.safetensors", None, "not found"),
        ("weights.pt", b"pickle", "must be a .safetensors file"),
    ],
)
def test_attribute_weights_must_be_local_safetensors(tmp_path, name, content, message):
    from camouflage_video.evaluation import FacerAttributeModel

    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        FacerAttributeModel(path)


@pytest.fixture
def random_init_skipped(monkeypatch):
    """Building FaRL's ViT-B spends most of its time drawing random weights that the test overwrites anyway."""
    torch = pytest.importorskip("torch")
    model = pytest.importorskip("facer.farl.model")
    keep = lambda tensor, *args, **kwargs: tensor  # noqa: E731
    monkeypatch.setattr(model, "trunc_normal_", keep)
    for name in ("kaiming_uniform_", "uniform_", "normal_"):
        monkeypatch.setattr(torch.nn.init, name, keep)


@pytest.mark.slow
def test_facer_attributes_run_on_cpu_from_safetensors(
    tmp_path, recognizer, astronaut, astronaut_pair, random_init_skipped, monkeypatch
):
    torch = pytest.importorskip("torch")
    farl = pytest.importorskip("facer.face_attribute.farl")
    safetensors = pytest.importorskip("safetensors.torch")
    from camouflage_video.evaluation.attributes import FacerAttributeModel

    # pyfacer's own constructor (its published weight layout) calls .cuda(); a no-op here, for the test only.
    with monkeypatch.context() as patch:
        patch.setattr(torch.nn.Module, "cuda", lambda self, device=None: self)
        net = farl.farl_classification(num_classes=40, layers=[11])
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    weights = tmp_path / "farl_celeba_random.safetensors"
    safetensors.save_file(
        {k: 0.02 * torch.randn(shape, generator=generator) for k, shape in shapes.items()}, str(weights)
    )

    model = FacerAttributeModel(weights)
    assert len(model.labels) == 40 and "Smiling" in model.labels
    config = EvaluationConfig()
    result = Evaluator(config, recognizer=recognizer, attribute_model=model).run(
        astronaut_pair["original"], astronaut_pair["copy"]
    )
    assert result.attributes["faces"] == 1
    assert result.attributes["agreement"] == 1.0  # the same pixels give the same decisions
    assert set(result.attributes["per_attribute"]) == set(model.labels)
    assert result.attributes["mean_abs_probability_change"] == 0.0
    probabilities = model.predict(astronaut, CenterFaceDetector(thresh=0.5).detect(astronaut))
    assert probabilities.shape == (1, 40) and ((probabilities > 0) & (probabilities < 1)).all()


def test_weights_that_are_not_farl_are_a_model_error(tmp_path, random_init_skipped):
    torch = pytest.importorskip("torch")
    safetensors = pytest.importorskip("safetensors.torch")
    from camouflage_video.evaluation.attributes import FacerAttributeModel

    bad = tmp_path / "other.safetensors"
    safetensors.save_file({"x": torch.zeros(2)}, str(bad))
    with pytest.raises(ModelError, match="not FaRL CelebA attribute weights"):
        FacerAttributeModel(bad)
