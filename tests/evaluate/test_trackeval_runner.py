"""Tests for the TrackEval dataset and runner (evaluate_tables / evaluate_dirs)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import motmetrics
import numpy as np
import pytest
import trackeval

from samqa_framework.data.mot import MotTable
from samqa_framework.evaluate.trackeval_runner import (
    COMBINED,
    EvaluationError,
    evaluate_dirs,
    evaluate_tables,
)
from samqa_framework.utils.errors import ConfigError, DataFormatError

MM_DATA = Path(motmetrics.__file__).parent / "data"
TUD = {"TUD-Campus": 71, "TUD-Stadtmitte": 179}  # seqLength (= last frame in gt and test files)
TOL = 1e-6


def _two_objects(frames: int = 10, swap_at: int | None = None) -> tuple[MotTable, MotTable]:
    """Two static, far-apart boxes; tracker ids 1/2 on objects A/B, swapped from frame ``swap_at`` on."""
    boxes = {1: [10.0, 10.0, 20.0, 40.0], 2: [100.0, 10.0, 20.0, 40.0]}
    f, gid, tid, box = [], [], [], []
    for t in range(1, frames + 1):
        for obj in (1, 2):
            f.append(t)
            gid.append(obj)
            tid.append(3 - obj if swap_at is not None and t >= swap_at else obj)
            box.append(boxes[obj])
    return MotTable(f, gid, box), MotTable(f, tid, box)


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _seqinfo(path: Path, name: str, length: int) -> None:
    _write(path, ["[Sequence]", f"name={name}", "imDir=img1", "frameRate=25", f"seqLength={length}",
                  "imWidth=640", "imHeight=480", "imExt=.jpg"])


# ----------------------------------------------------------------------------------------- basics


def test_gt_against_itself_is_perfect():
    gt, _ = _two_objects()
    res = evaluate_tables({"s": gt}, {"s": gt}, {"s": 10})
    assert list(res) == ["s", COMBINED]
    for row in res.values():
        for key in ("HOTA", "DetA", "AssA", "IDF1", "IDP", "IDR", "MOTA"):
            assert row[key] == pytest.approx(100.0, abs=TOL), key
        assert row["IDSW"] == 0 and row["FP"] == 0 and row["FN"] == 0
        assert isinstance(row["IDSW"], int) and isinstance(row["MT"], int)
        assert row["MT"] == 2 and row["ML"] == 0


def test_known_identity_swap():
    # 2 objects A, B; 10 frames; static, non-overlapping boxes (IoU 1 with their own box, 0 with the
    # other). Tracker ids: frames 1-5 t1->A, t2->B; frames 6-10 t2->A, t1->B. Every box is matched (IoU 1
    # >= every threshold), so TP = 20, FN = FP = 0.
    # CLEAR:    both objects change tracker id at frame 6 -> IDSW = 2; MOTA = 1 - (FN + FP + IDSW) / GT
    #           = 1 - 2/20 = 90 %.
    # Identity: best one-to-one assignment over the whole sequence, e.g. A<->t1 (5 frames), B<->t2
    #           (5 frames): IDTP = 10, IDFN = IDFP = 10 -> IDF1 = 2*10 / (2*10 + 10 + 10) = 50 %,
    #           IDP = IDR = 10/20 = 50 %.
    # HOTA (same at every alpha): DetA = TP / (TP + FN + FP) = 20/20 = 100 %. For every TP pair, e.g.
    #           (A, t1): TPA = 5 frames together, FNA = 5 (A with t2), FPA = 5 (t1 with B) ->
    #           A = 5 / 15 = 1/3, so AssA = 33.333 %, AssRe = AssPr = 5/10 = 50 %;
    #           HOTA = sqrt(DetA * AssA) = sqrt(1/3) = 57.735 %.
    gt, pred = _two_objects(swap_at=6)
    res = evaluate_tables({"s": gt}, {"s": pred}, {"s": 10})["s"]
    assert res["IDF1"] == pytest.approx(50.0, abs=TOL)
    assert res["IDP"] == pytest.approx(50.0, abs=TOL)
    assert res["IDR"] == pytest.approx(50.0, abs=TOL)
    assert res["MOTA"] == pytest.approx(90.0, abs=TOL)
    assert res["IDSW"] == 2
    assert res["DetA"] == pytest.approx(100.0, abs=TOL)
    assert res["AssA"] == pytest.approx(100.0 / 3.0, abs=TOL)
    assert res["AssRe"] == pytest.approx(50.0, abs=TOL)
    assert res["HOTA"] == pytest.approx(100.0 * np.sqrt(1.0 / 3.0), abs=TOL)
    assert round(res["HOTA"], 3) == 57.735


def test_combined_sums_counts_over_sequences():
    gt, pred = _two_objects(swap_at=6)
    res = evaluate_tables({"a": gt, "b": gt}, {"a": pred, "b": gt}, {"a": 10, "b": 10})
    assert res["a"]["IDSW"] == 2 and res["b"]["IDSW"] == 0
    assert res[COMBINED]["IDSW"] == 2
    assert res[COMBINED]["MOTA"] == pytest.approx(100.0 * (1 - 2 / 40), abs=TOL)


def test_flag_zero_gt_rows_are_ignored_not_missed():
    gt, pred = _two_objects()
    # A third object whose rows all have flag 0, never predicted: must not count as FN.
    extra = MotTable(np.arange(1, 11), np.full(10, 7), np.tile([300.0, 10.0, 20.0, 40.0], (10, 1)),
                     conf=np.zeros(10))
    res = evaluate_tables({"s": MotTable.concat([gt, extra])}, {"s": pred}, {"s": 10})["s"]
    assert res["FN"] == 0 and res["MOTA"] == pytest.approx(100.0) and res["HOTA"] == pytest.approx(100.0)
    # No distractor removal: a prediction on a flag-0 box is an ordinary false positive.
    hit = MotTable([3], [9], [[300.0, 10.0, 20.0, 40.0]])
    res = evaluate_tables({"s": MotTable.concat([gt, extra])}, {"s": MotTable.concat([pred, hit])},
                          {"s": 10})["s"]
    assert res["FP"] == 1 and res["MOTA"] == pytest.approx(95.0)


def test_six_and_ten_column_files(tmp_path: Path):
    gt_rows = [f"{t},{i},{10 + 90 * i},10,20,40" for t in range(1, 6) for i in (1, 2)]
    _write(tmp_path / "gt" / "six" / "gt" / "gt.txt", gt_rows)  # 6 columns: no flag, all rows count
    _write(tmp_path / "pred" / "six.txt", [r + ",0.9,-1,-1,-1" for r in gt_rows])  # 10 columns
    _write(tmp_path / "gt" / "ten" / "gt" / "gt.txt",
           [r + ",1,-1,-1,-1" for r in gt_rows] + ["3,5,400,10,20,40,0,-1,-1,-1"])  # 10 columns, 1 flag 0
    _write(tmp_path / "pred" / "ten.txt", gt_rows)  # 6 columns
    res = evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    assert list(res) == ["six", "ten", COMBINED]
    for seq in ("six", "ten"):
        assert res[seq]["HOTA"] == pytest.approx(100.0) and res[seq]["IDF1"] == pytest.approx(100.0)
        assert res[seq]["MOTA"] == pytest.approx(100.0) and res[seq]["FN"] == 0


def test_length_without_seqinfo_is_last_frame_of_gt_or_pred(tmp_path: Path):
    _write(tmp_path / "gt" / "s" / "gt" / "gt.txt", [f"{t},1,10,10,20,40,1,1,1" for t in range(1, 6)])
    # Prediction runs one frame past the ground truth: that row is a false positive, not an error.
    _write(tmp_path / "pred" / "s.txt", [f"{t},1,10,10,20,40,1,-1,-1,-1" for t in range(1, 7)])
    res = evaluate_dirs(tmp_path / "gt", tmp_path / "pred")["s"]
    assert res["FP"] == 1 and res["MOTA"] == pytest.approx(80.0)


def test_seqinfo_bounds_frames(tmp_path: Path):
    _seqinfo(tmp_path / "gt" / "s" / "seqinfo.ini", "s", 5)
    _write(tmp_path / "gt" / "s" / "gt" / "gt.txt", [f"{t},1,10,10,20,40,1,1,1" for t in range(1, 6)])
    pred = _write(tmp_path / "pred" / "s.txt", [f"{t},1,10,10,20,40,1,-1,-1,-1" for t in range(1, 7)])
    with pytest.raises(DataFormatError, match=r"s\.txt:6: frame 6 is beyond"):
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    _write(pred, [f"{t},1,10,10,20,40,1,-1,-1,-1" for t in range(1, 6)])
    assert evaluate_dirs(tmp_path / "gt", tmp_path / "pred")["s"]["HOTA"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------ errors


def test_missing_pred_file_names_expected_path(tmp_path: Path):
    for seq in ("a", "b"):
        _write(tmp_path / "gt" / seq / "gt" / "gt.txt", ["1,1,10,10,20,40,1,1,1"])
    _write(tmp_path / "pred" / "a.txt", ["1,1,10,10,20,40"])
    with pytest.raises(DataFormatError) as err:
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    assert err.value.path == str(tmp_path / "pred" / "b.txt")
    assert "not found" in str(err.value)


def test_pred_without_gt_sequence_is_an_error(tmp_path: Path):
    _write(tmp_path / "gt" / "a" / "gt" / "gt.txt", ["1,1,10,10,20,40,1,1,1"])
    _write(tmp_path / "pred" / "a.txt", ["1,1,10,10,20,40"])
    _write(tmp_path / "pred" / "typo.txt", ["1,1,10,10,20,40"])
    with pytest.raises(DataFormatError, match="unknown sequence") as err:
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    assert err.value.path == str(tmp_path / "pred" / "typo.txt")


def test_sequence_names_that_are_paths_are_refused(tmp_path: Path):
    _write(tmp_path / "outside" / "gt" / "gt.txt", ["1,1,10,10,20,40,1,1,1"])  # what ../outside would read
    _write(tmp_path / "gt" / "a" / "gt" / "gt.txt", ["1,1,10,10,20,40,1,1,1"])
    _write(tmp_path / "pred" / "a.txt", ["1,1,10,10,20,40"])
    for name in ("../outside", "/abs", ".."):
        with pytest.raises(ConfigError, match=r"config key 'sequences': sequence name") as err:
            evaluate_dirs(tmp_path / "gt", tmp_path / "pred", sequences=["a", name])
        assert err.value.key == "sequences"


def test_wrong_column_count_names_file_and_line(tmp_path: Path):
    _write(tmp_path / "gt" / "a" / "gt" / "gt.txt", ["1,1,10,10,20,40,1,1,1"])
    pred = _write(tmp_path / "pred" / "a.txt", ["1,1,10,10,20,40", "2,1,10,10,20,40", "3,1,10,10,20"])
    with pytest.raises(DataFormatError) as err:
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    assert err.value.path == str(pred) and err.value.line == 3
    assert f"{pred}:3:" in str(err.value)


def test_no_sequences_is_an_error(tmp_path: Path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    with pytest.raises(DataFormatError, match="no sequences"):
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred")


def test_in_memory_duplicate_id_in_a_frame_is_rejected():
    gt, _ = _two_objects()
    dup = MotTable([1, 1], [4, 4], [[10.0, 10, 20, 40], [100.0, 10, 20, 40]])
    with pytest.raises(EvaluationError, match="same ID more than once"):
        evaluate_tables({"s": gt}, {"s": dup}, {"s": 10})


def test_mismatched_sequences_and_out_of_range_frames_are_rejected():
    gt, pred = _two_objects()
    with pytest.raises(ValueError, match="only in gt"):
        evaluate_tables({"s": gt, "t": gt}, {"s": pred}, {"s": 10, "t": 10})
    with pytest.raises(ValueError, match=r"outside 1\.\.9"):
        evaluate_tables({"s": gt}, {"s": pred}, {"s": 9})


# -------------------------------------------------------------------------------------- real data


def _trackeval_reference(root: Path, seqs: dict[str, Path], preds: dict[str, Path]) -> dict:
    """TrackEval's own MotChallenge2DBox + Evaluator on MOTChallenge files, MOT15 settings.

    Layout: gt/mot_challenge/MOT15-train/<seq>/{gt/gt.txt, seqinfo.ini}, gt/mot_challenge/seqmaps/
    MOT15-train.txt, trackers/mot_challenge/MOT15-train/ref/data/<seq>.txt. With BENCHMARK='MOT15',
    MotChallenge2DBox skips its pedestrian preprocessing (no class filter, no distractor removal: the
    MOT15 class column holds -1 / world coordinates) and only drops gt rows whose flag column, cast to
    int, is 0; every tracker row counts. That is the rule set of our MotTablesDataset.
    """
    gt_fol = root / "gt" / "mot_challenge"
    tr_fol = root / "trackers" / "mot_challenge"
    for seq, gt_file in seqs.items():
        (gt_fol / "MOT15-train" / seq / "gt").mkdir(parents=True, exist_ok=True)
        (gt_fol / "MOT15-train" / seq / "gt" / "gt.txt").write_bytes(gt_file.read_bytes())
        _seqinfo(gt_fol / "MOT15-train" / seq / "seqinfo.ini", seq, TUD[seq])
        (tr_fol / "MOT15-train" / "ref" / "data").mkdir(parents=True, exist_ok=True)
        (tr_fol / "MOT15-train" / "ref" / "data" / f"{seq}.txt").write_bytes(preds[seq].read_bytes())
    _write(gt_fol / "seqmaps" / "MOT15-train.txt", ["name", *seqs])
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        evaluator = trackeval.Evaluator({
            "USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
            "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None})
        dataset = trackeval.datasets.MotChallenge2DBox({
            "GT_FOLDER": str(gt_fol), "TRACKERS_FOLDER": str(tr_fol), "BENCHMARK": "MOT15",
            "SPLIT_TO_EVAL": "train", "TRACKERS_TO_EVAL": ["ref"], "PRINT_CONFIG": False})
        metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
                   trackeval.metrics.Identity({"PRINT_CONFIG": False})]
        res, msg = evaluator.evaluate([dataset], metrics)
    assert msg["MotChallenge2DBox"]["ref"] == "Success"
    raw = res["MotChallenge2DBox"]["ref"]
    # Convert independently of our summarize(): HOTA family = mean over alphas, x100.
    out = {}
    for seq in [*seqs, "COMBINED_SEQ"]:
        r = raw[seq]["pedestrian"]
        row = {k: 100 * float(np.mean(r["HOTA"][k])) for k in ("HOTA", "DetA", "AssA", "DetRe", "DetPr",
                                                               "AssRe", "AssPr", "LocA")}
        row |= {k: 100 * float(r["Identity"][k]) for k in ("IDF1", "IDP", "IDR")}
        row |= {k: 100 * float(r["CLEAR"][k]) for k in ("MOTA", "MOTP")}
        row |= {"IDSW": r["CLEAR"]["IDSW"], "Frag": r["CLEAR"]["Frag"], "MT": r["CLEAR"]["MT"],
                "ML": r["CLEAR"]["ML"], "FP": r["CLEAR"]["CLR_FP"], "FN": r["CLEAR"]["CLR_FN"]}
        out[COMBINED if seq == "COMBINED_SEQ" else seq] = row
    return out


def _compare(ours: dict, ref: dict) -> None:
    assert list(ours) == list(ref)
    def fmt(row: dict) -> str:
        return " ".join(f"{k}={v}" if isinstance(v, int | np.integer) else f"{k}={v:.4f}" for k, v in row.items())

    for seq, ref_row in ref.items():
        print(f"{seq:16s} ours:      {fmt(ours[seq])}")
        print(f"{seq:16s} trackeval: {fmt(ref_row)}")
        assert set(ours[seq]) == set(ref_row)
        for key, value in ref_row.items():
            assert ours[seq][key] == pytest.approx(value, abs=TOL), (seq, key)


@pytest.fixture
def tud_dirs(tmp_path: Path) -> tuple[Path, Path]:
    gt_dir, pred_dir = tmp_path / "ours" / "gt", tmp_path / "ours" / "pred"
    for seq, length in TUD.items():
        (gt_dir / seq / "gt").mkdir(parents=True)
        (gt_dir / seq / "gt" / "gt.txt").write_bytes((MM_DATA / seq / "gt.txt").read_bytes())
        _seqinfo(gt_dir / seq / "seqinfo.ini", seq, length)
        pred_dir.mkdir(exist_ok=True)
        (pred_dir / f"{seq}.txt").write_bytes((MM_DATA / seq / "test.txt").read_bytes())
    return gt_dir, pred_dir


def test_real_tud_matches_trackeval_mot_challenge(tmp_path: Path, tud_dirs: tuple[Path, Path]):
    gt_dir, pred_dir = tud_dirs
    ours = evaluate_dirs(gt_dir, pred_dir)
    ref = _trackeval_reference(tmp_path / "ref", {s: gt_dir / s / "gt" / "gt.txt" for s in TUD},
                               {s: pred_dir / f"{s}.txt" for s in TUD})
    _compare(ours, ref)
    # Published py-motmetrics figures for these files (its README's MOTChallenge comparison), as a
    # sanity check that the data really went in: IDF1 55.8 / 64.5, MOTA 52.6 / 56.4, IDSW 7 / 7.
    assert round(ours["TUD-Campus"]["IDF1"], 1) == 55.8 and round(ours["TUD-Campus"]["MOTA"], 1) == 52.6
    assert round(ours["TUD-Stadtmitte"]["IDF1"], 1) == 64.5 and round(ours["TUD-Stadtmitte"]["MOTA"], 1) == 56.4
    assert ours["TUD-Campus"]["IDSW"] == 7 and ours["TUD-Stadtmitte"]["IDSW"] == 7


def test_real_tud_with_zero_flags_matches_trackeval(tmp_path: Path, tud_dirs: tuple[Path, Path]):
    # Same, after setting the flag of every 5th gt row to 0: both paths must drop the same rows.
    gt_dir, pred_dir = tud_dirs
    before = evaluate_dirs(gt_dir, pred_dir)
    for seq in TUD:
        path = gt_dir / seq / "gt" / "gt.txt"
        lines = path.read_text().splitlines()
        for i in range(0, len(lines), 5):
            cols = lines[i].split(",")
            cols[6] = "0"
            lines[i] = ",".join(cols)
        path.write_text("\n".join(lines) + "\n")
    ours = evaluate_dirs(gt_dir, pred_dir)
    ref = _trackeval_reference(tmp_path / "ref", {s: gt_dir / s / "gt" / "gt.txt" for s in TUD},
                               {s: pred_dir / f"{s}.txt" for s in TUD})
    _compare(ours, ref)
    assert ours["TUD-Campus"]["FN"] < before["TUD-Campus"]["FN"]  # the flagged rows really were dropped


# ------------------------------------------------------------------------------------- data-set folders


def _dataset(root: Path, labelled: dict[str, bool], train: list[str], evaluate: list[str]) -> None:
    from samqa_framework.data.sequence import DatasetManifest

    for seq, has_gt in labelled.items():
        _seqinfo(root / seq / "seqinfo.ini", seq, 5)
        if has_gt:
            _write(root / seq / "gt" / "gt.txt", [f"{t},1,10,10,20,40,1,1,1" for t in range(1, 6)])
    DatasetManifest("d", "rat", 1, train, evaluate).write(root)


def test_a_data_set_folder_scores_its_eval_split(tmp_path: Path):
    _dataset(tmp_path / "gt", {"tr": True, "ev1": True, "ev2": True}, ["tr"], ["ev1", "ev2"])
    for seq in ("ev1", "ev2"):  # no tracks for the training sequence: it is not scored
        _write(tmp_path / "pred" / f"{seq}.txt", [f"{t},1,10,10,20,40,1,-1,-1,-1" for t in range(1, 6)])
    assert list(evaluate_dirs(tmp_path / "gt", tmp_path / "pred")) == ["ev1", "ev2", COMBINED]


def test_sequences_without_ground_truth_are_named_and_left_out(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    _dataset(tmp_path / "gt", {"tr": False, "ev1": True, "ev2": False}, ["tr"], ["ev1", "ev2"])
    for seq in ("ev1", "ev2"):
        _write(tmp_path / "pred" / f"{seq}.txt", [f"{t},1,10,10,20,40,1,-1,-1,-1" for t in range(1, 6)])
    with caplog.at_level("WARNING"):
        assert list(evaluate_dirs(tmp_path / "gt", tmp_path / "pred")) == ["ev1", COMBINED]
    assert f"ev2 has no ground truth ({tmp_path / 'gt' / 'ev2' / 'gt' / 'gt.txt'} missing)" in caplog.text
    with pytest.raises(DataFormatError, match=r"none of the sequences \['tr'\] has any") as err:
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred", sequences=["tr"])
    assert err.value.path == str(tmp_path / "gt" / "tr" / "gt" / "gt.txt")
    with pytest.raises(DataFormatError, match="sequence nope not found"):
        evaluate_dirs(tmp_path / "gt", tmp_path / "pred", sequences=["nope"])


def test_empty_ground_truth_is_n_a_with_a_warning_naming_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    rows = [f"{t},1,10,10,20,40,1,1,1" for t in range(1, 6)]
    _write(tmp_path / "gt" / "full" / "gt" / "gt.txt", rows)
    empty = _write(tmp_path / "gt" / "empty" / "gt" / "gt.txt", ["# no animal here"])
    _write(tmp_path / "pred" / "full.txt", rows)
    _write(tmp_path / "pred" / "empty.txt", rows)
    _seqinfo(tmp_path / "gt" / "empty" / "seqinfo.ini", "empty", 5)
    with caplog.at_level("WARNING", logger="samqa_framework.evaluate.trackeval_runner"):
        res = evaluate_dirs(tmp_path / "gt", tmp_path / "pred")
    assert str(empty) in caplog.text and "n/a" in caplog.text
    assert list(res) == ["empty", "full", COMBINED]
    assert set(res["empty"].values()) == {None}  # not 0: nothing to find is no score
    assert res["full"]["IDF1"] == pytest.approx(100.0) and res[COMBINED]["IDF1"] == pytest.approx(100.0)
    alone = evaluate_dirs(tmp_path / "gt", tmp_path / "pred", sequences=["empty"])
    assert set(alone[COMBINED].values()) == {None}
