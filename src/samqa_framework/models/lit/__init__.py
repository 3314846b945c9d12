"""LightningModules of the SAM training stages: distillation (``distill``) and box-prompt fine-tuning
(``finetune``), with their shared optimiser/schedule (``common``), teacher-embedding cache and callbacks."""
