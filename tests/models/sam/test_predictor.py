from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from samqa_framework.models.sam.builder import build_sam
from samqa_framework.models.sam.encoders import TimmEncoder
from samqa_framework.models.sam.predictor import SamMaskPredictor
from tests.models.helpers_predictors import H, W, counted_predictor, random_frame


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(0)
    return build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)).eval()


@pytest.fixture
def counted(sam):
    yield from counted_predictor(SamMaskPredictor, sam)


BOXES = np.array([[2, 3, 30, 40], [40, 10, 79, 47], [0, 0, 80, 48], [10, 10, 20, 20], [50, 5, 70, 25]], np.float32)


def test_one_encoder_pass_for_k_boxes_and_repeated_calls(counted) -> None:
    predictor, seen = counted
    frame = random_frame()
    masks, scores = predictor.predict_boxes(frame, BOXES)
    assert len(seen) == 1
    assert masks.shape == (5, H, W) and masks.dtype == bool
    assert scores.shape == (5,) and scores.dtype == np.float32
    predictor.predict_boxes(frame, BOXES[:2])
    predictor.predict_points(frame, np.array([[[10, 10]]]))
    predictor.predict_boxes(frame.copy(), BOXES)  # same pixels, other buffer
    assert len(seen) == 1 and predictor.encoder_calls == 1
    predictor.predict_boxes(random_frame(1), BOXES)
    assert len(seen) == 2
    frame[0, 0, 0] ^= 1  # a video reader overwriting its buffer in place: a new frame
    predictor.predict_boxes(frame, BOXES)
    assert len(seen) == 3


def test_box_masks_match_segment_anythings_predictor(sam) -> None:
    frame = random_frame(2)
    ours = SamMaskPredictor(sam)
    masks, scores = ours.predict_boxes(frame, BOXES)
    ref = SamPredictor(sam)
    ref.set_image(frame, image_format="BGR")
    for i, box in enumerate(BOXES):
        ref_masks, ref_scores, _ = ref.predict(box=box, multimask_output=False)
        assert np.array_equal(masks[i], ref_masks[0])
        assert scores[i] == pytest.approx(float(ref_scores[0]), abs=1e-5)


def test_multimask_keeps_the_best_scoring_mask(sam) -> None:
    frame = random_frame(3)
    predictor = SamMaskPredictor(sam, multimask=True)
    masks, scores = predictor.predict_points(frame, np.array([[[20, 20]], [[60, 30]]]))
    ref = SamPredictor(sam)
    ref.set_image(frame, image_format="BGR")
    for i, point in enumerate(([20, 20], [60, 30])):
        ref_masks, ref_scores, _ = ref.predict(point_coords=np.array([point]), point_labels=np.array([1]),
                                               multimask_output=True)
        best = int(np.argmax(ref_scores))
        assert scores[i] == pytest.approx(float(ref_scores.max()), abs=1e-5)
        assert np.array_equal(masks[i], ref_masks[best])


def test_points_with_labels(counted) -> None:
    predictor, seen = counted
    frame = random_frame(4)
    points = np.array([[[10, 10], [30, 20]], [[60, 40], [5, 5]], [[70, 10], [71, 11]]], np.float32)
    labels = np.array([[1, 0], [1, 1], [1, 0]])
    masks, scores = predictor.predict_points(frame, points, labels)
    assert masks.shape == (3, H, W) and scores.shape == (3,)
    _flipped_masks, flipped_scores = predictor.predict_points(frame, points, 1 - labels)
    assert len(seen) == 1
    # foreground/background labels reach the decoder: flipping them changes the answer
    assert not np.array_equal(flipped_scores, scores)
    with pytest.raises(ValueError, match="labels must have shape"):
        predictor.predict_points(frame, points, labels.T)


def test_empty_prompts_give_empty_arrays(counted) -> None:
    predictor, _ = counted
    frame = random_frame(5)
    masks, scores = predictor.predict_boxes(frame, np.zeros((0, 4)))
    assert masks.shape == (0, H, W) and masks.dtype == bool and scores.shape == (0,)
    masks, scores = predictor.predict_points(frame, np.zeros((0, 1, 2)))
    assert masks.shape == (0, H, W) and scores.shape == (0,)


def test_bgr_and_rgb_frames_give_the_same_encoder_input(counted) -> None:
    predictor, seen = counted
    bgr = random_frame(6)
    predictor.set_frame(bgr, bgr=True)
    predictor.set_frame(np.ascontiguousarray(bgr[:, :, ::-1]), bgr=False)
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])
    predictor.set_frame(bgr, bgr=False)  # same pixels read the other way round: a different image
    assert len(seen) == 3 and not torch.equal(seen[0], seen[2])


def test_grey_frame_and_bad_inputs(counted) -> None:
    predictor, _ = counted
    masks, _scores = predictor.predict_boxes(random_frame(7)[:, :, 0], BOXES[:1])
    assert masks.shape == (1, H, W)
    with pytest.raises(ValueError, match="uint8"):
        predictor.set_frame(random_frame(7).astype(np.float32))
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        predictor.predict_boxes(random_frame(7), np.array([1, 2, 3, 4, 5, 6]))


def test_many_prompts_are_decoded_in_chunks_with_the_same_result(counted) -> None:
    predictor, seen = counted
    frame = random_frame(8)
    boxes = np.concatenate([BOXES] * 5)  # 25 > PROMPT_CHUNK
    masks, scores = predictor.predict_boxes(frame, boxes)
    assert masks.shape == (25, H, W) and len(seen) == 1
    one, one_score = predictor.predict_boxes(frame, boxes[-1:])
    assert np.array_equal(masks[-1], one[0]) and scores[-1] == pytest.approx(one_score[0], abs=1e-5)


def test_embedding_memo_shared_by_predictors_with_the_same_weights() -> None:
    from samqa_framework.models.mask_predictor import EMBEDDING_MEMO

    EMBEDDING_MEMO.clear()
    torch.manual_seed(0)
    first = SamMaskPredictor(build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)), embedding_cache_mb=64)
    frames = [random_frame(s) for s in range(3)]
    expected = [first.predict_boxes(f, BOXES) for f in frames]
    assert first.encoder_calls == 3 and EMBEDDING_MEMO.misses == 3
    torch.manual_seed(0)  # the same weights, built again (a sweep's next trial)
    second = SamMaskPredictor(build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)), embedding_cache_mb=64)
    for frame, (masks, scores) in zip(frames, expected, strict=True):
        got_masks, got_scores = second.predict_boxes(frame, BOXES)
        np.testing.assert_array_equal(got_masks, masks)
        np.testing.assert_allclose(got_scores, scores, rtol=0, atol=1e-6)
    assert second.encoder_calls == 0 and EMBEDDING_MEMO.hits == 3
    torch.manual_seed(1)  # other weights never read these embeddings
    other = SamMaskPredictor(build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)), embedding_cache_mb=64)
    other.predict_boxes(frames[0], BOXES)
    assert other.encoder_calls == 1
    off = SamMaskPredictor(build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)))  # the default: no memo
    off.predict_boxes(frames[0], BOXES)
    assert off.encoder_calls == 1 and EMBEDDING_MEMO.hits == 3
    torch.manual_seed(0)  # a trial that encodes ahead: memoised frames are not encoded again, new ones are memoised
    ahead = SamMaskPredictor(build_sam(TimmEncoder("tiny_vit_5m_224", img_size=64)), embedding_cache_mb=64)
    new = random_frame(3)
    for frame in [*frames, new]:
        ahead.prefetch(frame)
    assert len(ahead._ahead) == 1
    for frame, (masks, _) in zip(frames, expected, strict=True):
        np.testing.assert_array_equal(ahead.predict_boxes(frame, BOXES)[0], masks)
    ahead.predict_boxes(new, BOXES)
    assert ahead.encoder_calls == 1 and EMBEDDING_MEMO.hits == 6
    ahead.close()
    assert second.predict_boxes(new, BOXES) is not None and second.encoder_calls == 0  # memoised from the worker
    EMBEDDING_MEMO.clear()


def test_embedding_memo_evicts_least_recently_used_within_its_limit() -> None:
    from samqa_framework.models.mask_predictor import EmbeddingMemo

    memo = EmbeddingMemo()
    for key in "abc":
        memo.put((key,), key.upper(), nbytes=40, limit_bytes=100)
    assert memo.get(("a",)) is None and memo.bytes == 80  # a fell out when c came in
    assert memo.get(("b",)) == "B"
    memo.put(("d",), "D", nbytes=40, limit_bytes=100)  # b was used last: c goes
    assert memo.get(("c",)) is None and memo.get(("b",)) == "B" and memo.get(("d",)) == "D"
    memo.put(("e",), "E", nbytes=101, limit_bytes=100)  # larger than the whole memo: not kept
    assert memo.get(("e",)) is None and memo.bytes == 80


# -- encoding ahead (prefetch) ---------------------------------------------------------------------------------


def test_a_prefetched_embedding_is_encoded_on_the_worker_and_used_once(sam) -> None:
    threads: list[str] = []
    handle = sam.image_encoder.register_forward_hook(
        lambda _m, _a, _o: threads.append(threading.current_thread().name))
    try:
        plain = SamMaskPredictor(sam)
        want = [plain.predict_boxes(random_frame(s), BOXES) for s in (5, 6)]
        threads.clear()
        ahead = SamMaskPredictor(sam)
        assert ahead.can_prefetch
        frames = [random_frame(5), random_frame(6)]
        assert ahead.prefetch(frames[0]) and ahead.prefetch(frames[0].copy())  # same content: one pass
        for i, frame in enumerate(frames):
            if i + 1 < len(frames):
                ahead.prefetch(frames[i + 1])  # the next frame while this one is prompted
            masks, scores = ahead.predict_boxes(frame, BOXES)
            again = ahead.predict_points(frame, np.array([[[10, 10]]]))
            assert np.array_equal(masks, want[i][0]) and np.array_equal(scores, want[i][1])
            assert again[0].shape == (1, H, W)
        assert ahead.encoder_calls == 2 and len(threads) == 2
        assert all(name.startswith("encode-ahead") for name in threads)
        ahead.close()
        assert not [t for t in threading.enumerate() if t.name.startswith("encode-ahead")]
        ahead.predict_boxes(random_frame(7), BOXES)  # usable after close, inline again
        assert threads[-1] == threading.current_thread().name and ahead.encoder_calls == 3
    finally:
        handle.remove()


def test_ahead_threads_run_the_worker_on_its_own_count_and_put_the_process_count_back(sam) -> None:
    counts: list[tuple[str, int]] = []
    handle = sam.image_encoder.register_forward_hook(
        lambda _m, _a, _o: counts.append((threading.current_thread().name, torch.get_num_threads())))
    before = torch.get_num_threads()
    try:
        want = SamMaskPredictor(sam).predict_boxes(random_frame(5), BOXES)
        ahead = SamMaskPredictor(sam, ahead_threads=1)
        ahead.prefetch(random_frame(5))
        masks, scores = ahead.predict_boxes(random_frame(5), BOXES)
        assert counts[-1][0].startswith("encode-ahead") and counts[-1][1] == 1
        assert torch.get_num_threads() == before  # the loop's own thread keeps its count while the worker runs
        np.testing.assert_array_equal(masks, want[0])  # a 64 px encoder: the same masks on one thread
        np.testing.assert_allclose(scores, want[1], rtol=0, atol=1e-5)
        ahead.close()
        seen: list[int] = []
        later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        later.start()
        later.join()
        assert seen == [before]  # threads started after close take the process's count again
    finally:
        handle.remove()
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="ahead_threads"):
        SamMaskPredictor(sam, ahead_threads=0)


def test_prefetch_copies_the_pixels_and_a_changed_buffer_is_encoded_again(counted) -> None:
    predictor, seen = counted
    frame = random_frame(8)
    original = frame.copy()
    predictor.prefetch(frame)
    frame[:] = random_frame(9)  # a reader reusing its buffer before the prefetch ran (or after)
    predictor.predict_boxes(frame, BOXES)
    assert predictor.encoder_calls == 2  # the new content is encoded; the prefetched one is kept for its frame
    predictor.predict_boxes(original, BOXES)
    assert predictor.encoder_calls == 2 and len(seen) == 2
    predictor.close()


def test_at_most_AHEAD_embeddings_wait_and_an_encoder_error_is_raised_in_the_caller(sam, monkeypatch) -> None:
    from samqa_framework.models.mask_predictor import AHEAD

    predictor = SamMaskPredictor(sam)
    for s in range(10, 16):
        predictor.prefetch(random_frame(s))
        assert len(predictor._ahead) <= AHEAD
    predictor.close()
    assert not predictor._ahead

    def broken(*_a, **_k):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(predictor._detached, "set_image", broken)
    predictor.prefetch(random_frame(20))
    with pytest.raises(RuntimeError, match="encoder exploded"):
        predictor.predict_boxes(random_frame(20), BOXES)
    predictor.close()
