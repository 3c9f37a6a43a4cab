"""faces.detect: MTCNN finds the hand-marked faces of scikit-image's photographs, and nothing in face-free ones."""

import numpy as np
import pytest

from faces.detect import MTCNNDetector, shrink
from faces.track import iou
from i3d.synthetic.faces import NO_FACE_PHOTOS, photo_faces

pytest.importorskip("skimage", reason="scikit-image ships the photographs with faces: pip install -e '.[dev]'")
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MTCNN in one thread (tests/conftest.py)


@pytest.fixture(scope="module")
def detector():
    return MTCNNDetector(detect_size=0, min_face=40)  # the photos' faces are 56-90 px: a shorter image pyramid


@pytest.mark.parametrize("name", ["astronaut", "camera"])  # frontal, three-quarter view
def test_finds_the_hand_marked_face(detector, name):
    photo, truth = photo_faces(name)
    found = detector(photo)
    assert found.shape == (1, 5) and found[0, 4] >= 0.9
    assert iou(found, truth)[0, 0] > 0.75


def test_boxes_of_a_shrunk_frame_come_back_in_the_frame_pixels(detector):
    photo, truth = photo_faces("astronaut")
    small = photo[::4, ::4]  # 128 x 128, face 22 px wide
    big = np.repeat(np.repeat(small, 3, axis=0), 3, axis=1)  # 384 x 384, detected at 128
    found = MTCNNDetector(detect_size=128)(big)
    assert iou(found, truth / 4 * 3)[0, 0] > 0.7
    assert shrink(big, 128)[0].shape == (128, 128, 3) and shrink(big, 0)[1] == 1.0


@pytest.mark.parametrize("name", NO_FACE_PHOTOS)
def test_no_face_in_face_free_photos(detector, name):
    photo, _ = photo_faces(name)
    assert len(detector(photo)) == 0
