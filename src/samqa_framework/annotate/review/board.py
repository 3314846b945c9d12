"""The review page's timeline: each frame's source (auto, recovered, manual, skipped) and QA flags, in one pass."""

from __future__ import annotations

from typing import Any

from samqa_framework.annotate.store import LabelStore

SOURCE_CODES = {"auto": "a", "recovered": "r", "manual": "m", "skipped": "s"}


def frame_source(labels: Any) -> str:
    """A frame's colour on the timeline: manual when a person prompted it, recovered when the automatic recovery
    (or a probe) found an animal, else auto; skipped when the method did not label it."""
    if not labels.labelled:
        return "skipped"
    sources = {i.source for i in labels.instances}
    if labels.interventions or "manual" in sources:
        return "manual"
    if labels.recoveries or "recovered" in sources:
        return "recovered"
    return "auto"


def timeline(store: LabelStore, total: int) -> dict[str, Any]:
    """``source``: one letter per stored frame (a/r/m/s); ``flags``: frame -> the checks that failed and why;
    ``corrected``: frames a correction starts on. Masks are not decoded."""
    codes, flags = [], {}
    for labels in store.records(corrected=True):
        codes.append(SOURCE_CODES[frame_source(labels)])
        if labels.failed:
            flags[labels.frame] = "; ".join(f"{'frame' if i == 0 else f'id {i}'}: {why}"
                                            for i, why in sorted(labels.failed.items()))
    corrected = sorted({op["frame"] for op in store.corrections()})
    return {"total": total, "stored": len(codes), "source": "".join(codes), "flags": flags, "corrected": corrected}
