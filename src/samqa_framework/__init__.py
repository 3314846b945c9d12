"""samqa-framework: foundation-model annotation of multi-animal videos, and what the labels are worth."""

__version__ = "0.1.0"
