"""Segment Anything with swappable image encoders (SAM ViT teachers, TinyViT / timm students)."""
