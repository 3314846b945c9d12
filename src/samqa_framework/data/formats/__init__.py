"""Label files of other tools, each format's reader beside its writer (one module a format), on the field's libraries:

- ``coco``: COCO instance JSON (pycocotools), RLE masks, identities as ``track_id`` (video frames as in mmtracking's
  CocoVID: ``videos``, ``video_id``, ``frame_id``);
- ``labelstudio``: Label Studio tasks, rectangles and polygon outlines, the identity in each region's label;
- ``motchallenge``: MOTChallenge sequence folders (``gt/gt.txt`` + our ``gt/masks.jsonl``);
- ``dlc``: DeepLabCut multi-animal keypoints (CSV or H5, read with pandas as DeepLabCut writes them);
- YOLO detection and segmentation: ``data/yolo_export.py``; SLEAP: ``data/importers.py`` (sleap-io).

They meet in :class:`~samqa_framework.data.formats.labels.SequenceLabels`: one sequence's boxes, masks and
identities per frame.
"""
