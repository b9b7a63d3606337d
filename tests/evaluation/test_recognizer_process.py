"""The recognizer in a child process: the same embeddings, other threads keep running, failures fail closed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from camouflage_video.errors import ModelError
from camouflage_video.evaluation.recognizer_process import ProcessRecognizer
from camouflage_video.evaluation.recognizers import DlibRecognizer, Recognizer
from camouflage_video.frame import Faces

pytest.importorskip("dlib")


@pytest.fixture(scope="module")
def process_recognizer():
    recognizer = ProcessRecognizer("dlib").wait()
    yield recognizer
    recognizer.close()


def faces_of(image: np.ndarray) -> Faces:
    from camouflage_video.annotators.faces import CenterFaceDetector

    return CenterFaceDetector(precision="fp32").detect(image)


def test_embeddings_match_the_recognizer_run_here(process_recognizer, astronaut):
    faces = faces_of(astronaut)
    assert len(faces) == 1
    blurred = astronaut.copy()
    blurred[::2] = 0
    here = DlibRecognizer().embed_versions(astronaut, [blurred], faces)
    there = process_recognizer.embed_versions(astronaut, [blurred], faces)
    assert len(there) == 2
    for a, b in zip(here, there, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)  # the crop around the faces changes nothing
    assert (process_recognizer.threshold, process_recognizer.min_face_size) == (0.6, 20)


@pytest.fixture(scope="module")
def dlib_network_process():
    """The recognizer on dlib's own network, which holds the interpreter lock (onnxruntime's releases it)."""
    recognizer = ProcessRecognizer("dlib", network="dlib").wait()
    yield recognizer
    recognizer.close()


def ticks_during(recognizer: Recognizer, image: np.ndarray, faces: Faces) -> tuple[int, float]:
    """How often a thread that wakes every 5 ms ran while ``recognizer`` embedded 9 versions, and how long that took."""
    images = [image + i for i in range(8)]  # a call that takes a while
    ticks, stop = [], threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    thread = threading.Thread(target=ticker)
    thread.start()
    started = time.monotonic()
    recognizer.embed_versions(image, images, faces)
    took = time.monotonic() - started
    stop.set()
    thread.join()
    return len([t for t in ticks if started <= t <= started + took]), took


def test_other_threads_run_while_a_face_is_embedded(dlib_network_process, astronaut):
    # In this process dlib's network holds the interpreter lock for the whole call (about 1 s) and the ticker
    # stops: DlibRecognizer(network="dlib") here got 1 or 2 ticks; the child lets it tick about 190 times a second.
    assert dlib_network_process.describe()["network"] == "dlib"
    during, took = ticks_during(dlib_network_process, astronaut, faces_of(astronaut))
    assert took > 0.2, took  # long enough that a stalled ticker shows
    assert during >= took / 0.05, (during, took)  # a tick every 50 ms at least, not one before and one after


def test_the_childs_network_reaches_the_parents_description(process_recognizer, dlib_network_process):
    # The stats show when the child fell back on dlib's own, slower network.
    child = DlibRecognizer().describe()
    assert process_recognizer.describe() == {**child, "process": True, "restarts": 0}
    assert dlib_network_process.describe()["network"] == "dlib"


def test_an_option_the_recognizer_does_not_take_fails_on_first_use():
    recognizer = ProcessRecognizer("arcface", network="dlib")
    with pytest.raises(ModelError, match="arcface recognizer has no option 'network'"):
        recognizer.wait()


def test_a_recognizer_that_does_not_answer_fails_that_call_and_the_next_get_a_new_one(astronaut):
    recognizer = ProcessRecognizer("dlib").wait()
    faces = faces_of(astronaut)
    recognizer.timeout = 0.001  # far less than one embedding takes: the child counts as hung and is killed
    with pytest.raises(ModelError, match="did not answer"):
        recognizer.embed_versions(astronaut, [astronaut], faces)  # the verifier then covers the face
    recognizer.timeout = 60
    assert len(recognizer.embed_versions(astronaut, [], faces)[0]) == 1  # a new child answers
    assert recognizer.describe()["restarts"] == 1
    recognizer.close()


def test_a_recognizer_that_cannot_load_fails_on_first_use():
    recognizer = ProcessRecognizer("no-such-recognizer")
    with pytest.raises(ModelError, match="unknown recognizer"):
        recognizer.wait()


def test_a_process_that_may_not_have_children_embeds_in_itself():
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:  # pool workers are daemonic
        assert pool.apply(_kind_in_worker) == "DlibRecognizer"


def _kind_in_worker() -> str:
    from camouflage_video.evaluation.recognizer_process import isolated_recognizer

    return type(isolated_recognizer("dlib")).__name__
