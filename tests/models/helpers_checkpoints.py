"""Random-weight stand-ins for released model files, written in their official formats (nothing is downloaded).

- :func:`write_random_sam2_checkpoint`: an official SAM 2 checkpoint (``{"model": state_dict}`` as in
  ``sam2.1_hiera_tiny.pt``) of a freshly built, randomly initialised SAM 2 (hiera tiny by default). No SAM 2
  weight depends on the input size, so the file loads into a model of any ``image_size``.
- :func:`write_tiny_grounding_dino`: a ``save_pretrained`` folder of a tiny random Grounding DINO (Swin backbone,
  2-layer BERT) plus its processor (image processor + a BERT tokenizer built from :data:`TINY_VOCAB`).
- :func:`write_hf_folder_of_other_type`: a Hugging Face folder of another model type (a tiny BERT).

Import them in tests with ``from tests.models.helpers_checkpoints import ...``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from samqa_framework.utils.offline import configure_offline

SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_TEST_SIZE = 64  # sizes must be multiples of 32; 32 runs too, but random weights give it only empty masks

# bert-base-uncased keeps [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, "."=1012, "?"=1029, and Grounding
# DINO hard-codes 101, 102, 1012, 1029 as the phrase delimiters of its text attention masks: the tiny vocabulary
# keeps those ids (the gaps filled with [unusedN] like BERT's own) so the tiny model splits phrases as the real one.
_BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}
_WORDS = ["rat", "mouse", "mice", "rats", "animal", "a", "the", "tail", "cage", "tunnel", "white", "black", "##s"]


def tiny_bert_vocab() -> dict[str, int]:
    """token -> id: BERT's special/delimiter ids as in bert-base-uncased, a few words after them."""
    size = max(_BERT_IDS.values()) + 1 + len(_WORDS)
    by_id = {i: t for t, i in _BERT_IDS.items()}
    words = iter(_WORDS)
    tokens = [by_id.get(i) or (next(words) if i > 1029 else f"[unused{i}]") for i in range(size)]
    return {t: i for i, t in enumerate(tokens)}


TINY_VOCAB = tiny_bert_vocab()


def write_random_sam2_checkpoint(path: str | os.PathLike[str], image_size: int = SAM2_TEST_SIZE,
                                 config: str = SAM2_CONFIG, seed: int = 0) -> Path:
    """Write ``{"model": state_dict}`` of a random SAM 2 built from ``config`` at ``path``; returns the path."""
    from samqa_framework.models.sam2.build import build_sam2_model

    torch.manual_seed(seed)
    model = build_sam2_model(config, None, image_size=image_size, allow_random=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def write_tiny_grounding_dino(folder: str | os.PathLike[str], image_size: int = 64, num_queries: int = 12,
                              seed: int = 0) -> Path:
    """A loadable Grounding DINO folder (config.json, weights, processor and tokenizer files), random weights.

    The image processor resizes to ``image_size`` on the shortest edge (at most 1.5x that on the longest), so
    detection on small frames stays fast; the model proposes ``num_queries`` boxes.
    """
    configure_offline()
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder = Path(folder)
    backbone = SwinConfig(image_size=image_size, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                          num_heads=[1, 1, 1, 1], window_size=7, out_features=["stage2", "stage3", "stage4"])
    text = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32)
    # d_model 32: the input projections use GroupNorm(32, d_model)
    config = GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, encoder_layers=1,
                                 decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                                 encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=num_queries,
                                 num_feature_levels=4, encoder_n_points=2, decoder_n_points=2, max_text_len=32)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": image_size,
                                                          "longest_edge": image_size * 3 // 2}),
        tokenizer=BertTokenizer(vocab=dict(TINY_VOCAB), model_max_length=32),
    )
    processor.save_pretrained(folder)
    return folder


def write_hf_folder_of_other_type(folder: str | os.PathLike[str]) -> Path:
    """A Hugging Face model folder that is not Grounding DINO (config.json with model_type "bert")."""
    configure_offline()
    from transformers import BertConfig

    folder = Path(folder)
    BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32).save_pretrained(folder)
    return folder
