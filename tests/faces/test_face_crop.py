"""faces.crop: segments, the clip box (union + margin, squared), clip planning, cutting (exact expectations)."""

import numpy as np

from faces.crop import CropPlan, crop_box, cut, plan_crops, segments
from faces.track import Track


def test_segments_split_300_frames_into_two_halves():
    assert segments(300, 150) == [(0, 150), (150, 300)]
    assert segments(310, 150) == [(0, 150), (150, 300), (300, 310)]
    assert segments(300, 0) == [(0, 300)]


def test_crop_box_is_the_union_grown_by_the_margin_then_squared():
    boxes = np.array([[10, 20, 30, 60], [20, 20, 50, 50]])  # union (10, 20, 50, 60): 40 x 40
    assert crop_box(boxes, margin=0.0) == (10, 20, 50, 60)
    assert crop_box(boxes, margin=0.25) == (0, 10, 60, 70)  # 40 * 1.5 = 60 around the centre (30, 40)
    tall = np.array([[0, 0, 20, 40]])
    assert crop_box(tall, margin=0.0) == (-10, 0, 30, 40)  # the longer side wins, centred
    assert crop_box(tall, margin=0.0, square=False) == (0, 0, 20, 40)


def test_plan_crops_one_clip_per_track_and_half_short_ones_set_aside():
    whole = Track(frames=list(range(0, 300, 10)), boxes=[[100, 100, 140, 140, 1.0]] * 30)  # frames 0-299
    brief = Track(frames=[200, 210, 220], boxes=[[10, 10, 30, 30, 1.0]] * 3)  # frames 200-229
    keep, aside = plan_crops([whole, brief], 300, stride=10, split_frames=150, margin=0.0, min_frames=64)
    assert keep == [CropPlan(0, 0, 0, 150, (100, 100, 140, 140)), CropPlan(0, 1, 150, 300, (100, 100, 140, 140))]
    assert aside == [CropPlan(1, 1, 200, 230, (10, 10, 30, 30))]
    keep, aside = plan_crops([whole, brief], 300, stride=10, split_frames=0, margin=0.0, min_frames=30)
    assert [(p.track, p.start, p.end) for p in keep] == [(0, 0, 300), (1, 200, 230)] and aside == []


def test_the_clip_box_holds_a_moving_face_in_every_frame():
    track = Track(frames=[0, 10, 20], boxes=[[0, 0, 20, 20, 1], [30, 5, 50, 25, 1], [60, 0, 80, 20, 1]])
    (plan,), _ = plan_crops([track], 30, stride=10, split_frames=0, margin=0.0, min_frames=1, square=False)
    assert plan.box == (0, 0, 80, 25)


def test_cut_pads_black_outside_the_frame_and_resizes():
    frame = np.full((40, 60, 3), 200, np.uint8)
    piece = cut(frame, (-10, -10, 10, 10), size=0)
    assert piece.shape == (20, 20, 3)
    assert (piece[:10, :] == 0).all() and (piece[:, :10] == 0).all() and (piece[10:, 10:] == 200).all()
    assert cut(frame, (0, 0, 40, 40), size=16).shape == (16, 16, 3)
    assert cut(frame, (0, 0, 8, 8), size=16).shape == (16, 16, 3)
