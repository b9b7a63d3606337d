"""The review page: self-contained, anonymized frames only, and the whole loop in a real headless browser
(Debian's chromium through chromedriver and selenium; skipped where they are absent)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig
from camouflage_video.redaction.review import render_review
from tests.conftest import media_file
from tests.redaction.conftest import ALEX, KIT, compose, face_in, identity_left, read_frames, side_by_side

LEFT, RIGHT = (0, 320), (320, 640)
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("review")
    clip = folder / "clip.mp4"
    originals = compose(clip, side_by_side(KIT[0], ALEX[0]), frames=8)
    anonymize(clip, folder / "out.mp4", AnonymizeConfig(keep_person=(str(media_file(KIT[1])),),
                                                        tracks_out=str(folder / "tracks.json")))
    return folder, clip, originals


def page_frames(page: str) -> dict[int, np.ndarray]:
    data = json.loads(re.search(r"const DATA = (.*);\n", page).group(1).replace("<\\/", "</"))
    frames = {}
    for index, uri in data["frames"].items():
        raw = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8)
        frames[int(index)] = cv2.cvtColor(cv2.imdecode(raw, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return frames


def test_the_review_page_loads_nothing_and_shows_removed_faces_anonymized(reviewed, tmp_path: Path, recognizer,
                                                                         detector):
    folder, clip, originals = reviewed
    page = render_review(clip, folder / "tracks.json", tmp_path / "review.html").read_text()
    assert not re.search(r"https?://|<link|\bsrc=", page), "the page must not load anything"
    assert "default-src 'none'" in page
    frames = page_frames(page)
    assert sorted(frames) == list(range(len(originals)))
    for index, image in frames.items():
        original = originals[index]
        distance, recovery = identity_left(recognizer, original, image, face_in(detector, original, RIGHT))
        assert not (distance < recognizer.threshold and recovery >= 0.5), f"frame {index}: removed face shows"
    assert not list(tmp_path.glob(".review*")), "written under a temporary name, then renamed"


def test_the_page_embeds_at_most_max_frames_evenly(reviewed, tmp_path: Path):
    folder, clip, _ = reviewed
    page = render_review(clip, folder / "tracks.json", tmp_path / "review.html", max_frames=3).read_text()
    assert sorted(page_frames(page)) == [0, 3, 6]


def _browser():  # noqa: ANN202 - a selenium driver
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    # The driver named explicitly: selenium-manager would look for one on the network.
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def test_a_box_drawn_in_the_browser_covers_a_missed_face_after_the_rerender(reviewed, tmp_path: Path, recognizer,
                                                                          detector):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    folder, clip, originals = reviewed
    # The detector missed the right-hand person (simulated: their boxes are taken out of the tracks file).
    tracks = json.loads((folder / "tracks.json").read_text())
    for frame in tracks["frames"]:
        frame["faces"] = [f for f in frame["faces"] if (f["box"][0] + f["box"][2]) / 2 < 320]
    missed = tmp_path / "missed.json"
    missed.write_text(json.dumps(tracks))
    page = render_review(clip, missed, tmp_path / "review.html")
    # The miss is real in what the reviewer sees: the face is there to be found.
    assert len(face_in(detector, page_frames(page.read_text())[0], RIGHT))

    box = face_in(detector, originals[0], RIGHT).xyxy[0]
    x1, y1, x2, y2 = (float(v) for v in box)
    grow = 0.3 * (x2 - x1)
    start, end = (x1 - grow, y1 - grow), (x2 + grow + len(originals), y2 + grow)  # the face drifts left a bit
    driver = _browser()
    try:
        driver.get(page.as_uri())
        canvas = driver.find_element(By.ID, "view")
        width, height = canvas.size["width"], canvas.size["height"]
        assert (width, height) == (640, 360)
        (ActionChains(driver)
         .move_to_element_with_offset(canvas, round(start[0] - width / 2), round(start[1] - height / 2))
         .click_and_hold().move_by_offset(round(end[0] - start[0]), round(end[1] - start[1])).release().perform())
        # Move it by a few pixels and back, and resize it from its corner: the box ends where it was drawn.
        inside = ((start[0] + end[0]) / 2 - width / 2, (start[1] + end[1]) / 2 - height / 2)
        (ActionChains(driver).move_to_element_with_offset(canvas, round(inside[0]), round(inside[1]))
         .click_and_hold().move_by_offset(5, 5).move_by_offset(-5, -5).release().perform())
        driver.find_element(By.ID, "export").click()
        exported = json.loads(driver.find_element(By.ID, "regions-json").get_attribute("value"))
        # A throw-away second box, deleted again.
        (ActionChains(driver).move_to_element_with_offset(canvas, -300, -170)
         .click_and_hold().move_by_offset(20, 20).release().perform())
        driver.find_element(By.ID, "delete-region").click()
        driver.find_element(By.ID, "export").click()
        assert json.loads(driver.find_element(By.ID, "regions-json").get_attribute("value")) == exported
    finally:
        driver.quit()
    assert len(exported["regions"]) == 1
    region = exported["regions"][0]
    assert region["frames"] == [0, len(originals) - 1]
    assert region["box"] == pytest.approx([start[0], start[1], end[0], end[1]], abs=2)

    regions = tmp_path / "regions.json"
    regions.write_text(json.dumps(exported))
    anonymize(clip, tmp_path / "final.mp4", AnonymizeConfig(tracks_in=str(missed), regions=str(regions)))
    for original, output in zip(originals, read_frames(tmp_path / "final.mp4"), strict=True):
        found = detector.detect(output)
        centres = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
        assert not (found.scores[centres >= 320] >= 0.2).any(), "the detector still finds the missed face"
        distance, recovery = identity_left(recognizer, original, output, face_in(detector, original, RIGHT))
        assert not (distance < recognizer.threshold and recovery >= 0.5)
        assert identity_left(recognizer, original, output, face_in(detector, original, LEFT))[0] < 0.25


def test_marking_a_track_removed_in_the_browser_exports_it(reviewed, tmp_path: Path):
    from selenium.webdriver.common.by import By

    folder, clip, _ = reviewed
    tracks = json.loads((folder / "tracks.json").read_text())
    kept = next(f["track"] for f in tracks["frames"][3]["faces"] if f["decision"] == "kept")
    page = render_review(clip, folder / "tracks.json", tmp_path / "review.html")
    driver = _browser()
    try:
        driver.get(page.as_uri())
        driver.find_element(By.CSS_SELECTOR, f'tr[data-track="{kept}"] button[data-action="removed"]').click()
        driver.find_element(By.ID, "export").click()
        exported = json.loads(driver.find_element(By.ID, "regions-json").get_attribute("value"))
    finally:
        driver.quit()
    assert exported["tracks"] == [{"track": kept, "action": "removed"}]


def test_a_box_resized_from_its_corner_and_given_a_frame_range_exports_as_set(reviewed, tmp_path: Path):
    from selenium.webdriver import ActionChains
    from selenium.webdriver.common.by import By

    folder, clip, _ = reviewed
    page = render_review(clip, folder / "tracks.json", tmp_path / "review.html")
    driver = _browser()
    try:
        driver.get(page.as_uri())
        canvas = driver.find_element(By.ID, "view")
        half_w, half_h = canvas.size["width"] / 2, canvas.size["height"] / 2
        at = lambda x, y: (round(x - half_w), round(y - half_h))  # noqa: E731 - canvas pixels to element offsets
        ActionChains(driver).move_to_element_with_offset(canvas, *at(300, 250)).click_and_hold() \
            .move_by_offset(40, 30).release().perform()
        ActionChains(driver).move_to_element_with_offset(canvas, *at(340, 280)).click_and_hold() \
            .move_by_offset(20, 10).release().perform()  # the bottom-right corner
        for name, value in (("region-first", "2"), ("region-last", "5")):
            field = driver.find_element(By.ID, name)
            field.clear()
            field.send_keys(value + "\n")
        driver.find_element(By.ID, "export").click()
        exported = json.loads(driver.find_element(By.ID, "regions-json").get_attribute("value"))
    finally:
        driver.quit()
    [region] = exported["regions"]
    assert region["box"] == pytest.approx([300, 250, 360, 290], abs=2)
    assert region["frames"] == [2, 5]


def test_the_page_covers_as_much_of_each_face_as_the_run_did(tmp_path: Path):
    # A run with a larger mask: the page must not show more of a face than the output does.
    clip = tmp_path / "clip.mp4"
    compose(clip, side_by_side(KIT[0], ALEX[0]), frames=2)
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(method="solid", mask_scale=2.0, shape="box", verify=False,
                                                          tracks_out=str(tmp_path / "tracks.json")))
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert tracks["mask_scale"] == 2.0 and tracks["shape"] == "box"
    frames = page_frames(render_review(clip, tmp_path / "tracks.json", tmp_path / "review.html").read_text())
    output = read_frames(tmp_path / "out.mp4")[0]
    for face in tracks["frames"][0]["faces"]:
        x1, y1, x2, y2 = face["box"]
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 0.9, (y2 - y1) * 0.9  # inside the 2.0 box
        top, left = max(0, int(cy - hh)), max(0, int(cx - hw))
        ring = (slice(top, int(cy - (y2 - y1) * 0.7)), slice(left, int(cx + hw)))  # above the 1.3 box
        assert output[ring].max() < 30
        assert frames[0][ring].max() < 30, "the page shows what the run covered"
