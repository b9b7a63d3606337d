"""Light's model components: pyfacer's weights are GitHub release assets, not hub repos. ``models fetch``
downloads them (here from a real HTTP server on loopback standing in for GitHub), converts the pickled state
dicts to safetensors with the tensors-only unpickler, keeps TorchScript archives as published, and a run loads
only what is on disk."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from camouflage_video import models
from camouflage_video.errors import ConfigError, ModelError
from camouflage_video.models import registry

torch = pytest.importorskip("torch")
pytest.importorskip("facer")


@pytest.fixture()
def release_server(tmp_path):
    """pyfacer's release files served over HTTP on 127.0.0.1 (a pickled state dict and a TorchScript file)."""
    from camouflage_video.annotators.attributes import build_attribute_network

    root = tmp_path / "releases"
    root.mkdir()
    torch.manual_seed(0)
    torch.save(build_attribute_network(width=64, layers=2).state_dict(), root / "face_attribute.farl.celeba.pt")
    torch.jit.script(torch.nn.Identity()).save(str(root / registry.PARSER_FILE))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_fetch_downloads_converts_and_the_run_loads_safetensors_only(release_server, tmp_path):
    from camouflage_video.annotators.attributes import attribute_network_from_state_dict

    specs = {
        "face-attributes": f"{release_server}/face_attribute.farl.celeba.pt",
        "face-parser": f"{release_server}/{registry.PARSER_FILE}",
    }
    sources = models.resolve_all(specs, specs, tmp_path / "models")
    assert sources["face-attributes"].path == tmp_path / "models" / "face-attributes"

    before = {r.component: r for r in models.check(sources)}
    assert not before["face-attributes"].ok and "models fetch" in before["face-attributes"].detail

    after = {r.component: r for r in models.fetch(sources)}
    assert all(r.ok for r in after.values()), after
    folder = tmp_path / "models" / "face-attributes"
    assert [p.name for p in folder.iterdir()] == [registry.FARL_FILE]  # converted; no pickle kept
    state = models.load_state_dict(sources["face-attributes"], registry.FARL_FILE)
    net = attribute_network_from_state_dict(state)
    assert net.head.final_fc.out_features == 40
    assert (tmp_path / "models" / "face-parser" / registry.PARSER_FILE).is_file()

    # A second fetch has nothing to do, and works without the server.
    assert all(r.ok for r in models.fetch(sources))


def test_defaults_point_at_pyfacers_releases():
    for name in ("face-attributes", "face-parser", "face-aligner", "face-detector"):
        assert models.COMPONENTS[name].default.startswith("https://github.com/")
    assert models.COMPONENTS["t2i-adapter"].default is None


def test_a_failed_download_is_a_model_error(tmp_path):
    sources = models.resolve_all(["face-attributes"], {"face-attributes": "http://127.0.0.1:9/nothing.pt"}, tmp_path)
    with pytest.raises(ModelError, match="cannot download"):
        models.fetch(sources)
    assert not any((tmp_path / "face-attributes").glob("*"))


def test_a_local_torchscript_parser_is_accepted_but_other_pickles_are_not(tmp_path):
    (tmp_path / "parser.pt").write_bytes(b"")
    (tmp_path / "farl.pt").write_bytes(b"")
    assert models.resolve("face-parser", str(tmp_path / "parser.pt")).path == tmp_path / "parser.pt"
    with pytest.raises(ConfigError, match="safetensors"):
        models.resolve("face-attributes", str(tmp_path / "farl.pt"))
