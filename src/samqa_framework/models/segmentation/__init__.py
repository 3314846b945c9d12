"""Semantic segmentation baselines of the paper (U-Net, DeepLabv3, frozen DINOv2 + linear head): the networks,
their input preparation, exported weights and a frame -> foreground-heatmap predictor."""
