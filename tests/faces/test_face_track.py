"""faces.track: IoU, linking detections into tracks, interpolated per-frame boxes (exact expectations)."""

import numpy as np
import pytest

from faces.track import Track, frame_boxes, iou, link_tracks, track_span


def box(x, y, size=20, score=0.99):
    return [x, y, x + size, y + size, score]


def test_iou_exact():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou(a, b) == pytest.approx(np.array([[1.0, 50 / 150, 0.0]]))


def test_two_people_side_by_side_never_swap():
    # person A drifts right towards person B, who stays; sampled every 10 frames, listed in shuffled order
    detections = []
    for k, frame in enumerate(range(0, 100, 10)):
        people = [box(100, 50), box(10 + 3 * k, 50)]
        detections.append((frame, np.array(people[:: 1 if k % 2 else -1])))
    tracks = link_tracks(detections, min_iou=0.3)
    assert len(tracks) == 2
    a, b = tracks  # ordered by first frame, then x
    assert [bx[0] for bx in a.boxes] == [10 + 3 * k for k in range(10)]
    assert [bx[0] for bx in b.boxes] == [100] * 10
    assert a.frames == b.frames == list(range(0, 100, 10))


def test_a_missed_detection_is_bridged_and_a_long_gap_ends_the_track():
    present = [0, 10, 30, 40, 80, 90]  # missed at 20 (one sampled frame), then at 50-70 (three)
    detections = [(f, np.array([box(50, 50)]) if f in present else np.zeros((0, 5))) for f in range(0, 100, 10)]
    tracks = link_tracks(detections, max_missed=1)
    assert [t.frames for t in tracks] == [[0, 10, 30, 40], [80, 90]]
    assert [t.frames for t in link_tracks(detections, max_missed=3)] == [present]


def test_a_steady_pan_faster_than_the_boxes_overlap_stays_one_track():
    # 12 px per sampled frame on 20 px boxes: consecutive boxes overlap by IoU 0.25 only
    detections = [(10 * k, np.array([box(12 * k, 0)])) for k in range(6)]
    assert len(link_tracks(detections, min_iou=0.3)) == 6  # no track ever gets the two boxes a velocity needs
    detections[1] = (10, np.array([box(8, 0)]))  # IoU 0.43 with the first: from then on the velocity carries it
    assert [t.frames for t in link_tracks(detections, min_iou=0.3)] == [[0, 10, 20, 30, 40, 50]]


def test_frame_boxes_interpolate_between_detections_and_hold_after_the_last():
    track = Track(frames=[0, 10, 20], boxes=[box(0, 0), box(10, 20), box(10, 20)])
    start, boxes = frame_boxes(track, num_frames=100, stride=10)
    assert start == 0 and boxes.shape == (30, 4)  # frames 0..29: the last detection stands for 20..29
    assert boxes[5].tolist() == [5, 10, 25, 30]
    assert boxes[29].tolist() == boxes[20].tolist() == [10, 20, 30, 40]
    assert track_span(track, num_frames=25, stride=10) == (0, 25)  # cut at the video's end


def test_a_300_frame_video_sampled_every_10th_frame_gives_a_300_frame_track():
    track = Track(frames=list(range(0, 300, 10)), boxes=[box(0, 0)] * 30)
    assert track_span(track, 300, 10) == (0, 300)


def test_track_json_round_trip():
    track = Track(frames=[0, 10], boxes=[box(1.234, 2), box(3, 4)])
    again = Track.from_json(track.to_json())
    assert again.frames == [0, 10] and again.boxes[0][:2] == [1.23, 2.0]
