"""Synthetic rodent-cage videos with exact ground truth (masks, identities, visibility).

No real rodent video ships with the framework, so this renderer stands in for the paper's rat and mouse
recordings: animals seen from above in a static cage, a semi-transparent red tunnel that hides them, fast
non-linear motion with motion blur, and close contacts.
"""

from samqa_framework.data.synthetic.renderer import RenderedFrame, SceneRenderer
from samqa_framework.data.synthetic.scene import SceneSpec

__all__ = ["RenderedFrame", "SceneRenderer", "SceneSpec"]
