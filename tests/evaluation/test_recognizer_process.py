"""The recognizer in a child process: the same embeddings, other threads keep running, failures fail closed."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from camouflage_video.errors import ModelError
from camouflage_video.evaluation.recognizer_process import ProcessRecognizer
from camouflage_video.evaluation.recognizers import DlibRecognizer
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


def test_other_threads_run_while_a_face_is_embedded(process_recognizer, astronaut):
    faces = faces_of(astronaut)
    images = [astronaut + i for i in range(8)]  # a call that takes a while
    ticks, stop = [], threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    thread = threading.Thread(target=ticker)
    thread.start()
    started = time.monotonic()
    process_recognizer.embed_versions(astronaut, images, faces)
    took = time.monotonic() - started
    stop.set()
    thread.join()
    during = [t for t in ticks if started <= t <= started + took]
    # In this process dlib holds the interpreter lock for the whole call and the ticker stops.
    assert len(during) >= min(5, took / 0.05), (len(during), took)


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
