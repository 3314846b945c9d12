"""The paper's "Segmentation & Watershed" baselines: a segmentation net's foreground heatmap split into the known
number of animals (:func:`~samqa_framework.annotate.watershed.postprocess.split_instances`)."""

from samqa_framework.annotate.watershed.postprocess import WatershedParams, split_instances

__all__ = ["WatershedParams", "split_instances"]
