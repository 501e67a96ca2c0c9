"""One process-wide lock for work that touches torch's global tracing state.

While ``torch.fx`` symbolically traces, it patches ``nn.Module.__call__`` and ``__getattr__`` for the whole
process, and ``torch.export`` keeps global state too: a model built or run in another thread at that moment
fails inside the user's own code ("NameError: module is not installed as a submodule"). Every pipeline stage
and every model factory runs under this lock, so pipelines in one process (the app's worker threads, a script
or test beside them) take turns instead of breaking each other. Re-entrant: a stage may run a nested pipeline.

    with TORCH_LOCK:
        spec = factory()
"""
from __future__ import annotations

import threading

TORCH_LOCK = threading.RLock()  # held by Pipeline._run_stage and load_model; the app's pages take it too
