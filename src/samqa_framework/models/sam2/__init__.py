"""SAM 2 (Meta's ``sam2`` package): model building with official checkpoints, prompted masks, chunked tracking.

``sam2`` is imported here, once, through :func:`hydra_scope.import_sam2`, so that its import-time Hydra
initialisation never leaks into our Hydra apps; the submodules then import ``sam2.*`` freely. Import sam2 through
this package (not ``import sam2`` first) in code that also runs Hydra apps.
"""

from samqa_framework.models.sam2.hydra_scope import import_sam2

import_sam2()
