"""The configuration changes offered as "what if" experiments on the pattern ledger, as data.

Each :class:`WhatIf` turns a configuration (and, for the ones that name a module, a module path) into the
``PipelineConfig`` changes to try; :func:`quantviz.why.ledger.what_if` re-runs from the affected stage with them
and lists the patterns whose fate changed. The app offers them under the ledger ("What if …"); any other face
(the CLI, a script) can print or apply the same list.

Example::

    changes = WHAT_IFS["skip the module"].changes_for(pipe.config, "conv1")   # {"skip_modules": ("conv1",)}
    other, changed = what_if(pipe, **changes)
    [w.label for w in WHAT_IFS.values()]                                      # every experiment, in order
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from quantviz.config import ConfigChanges, PipelineConfig


@dataclass(frozen=True)
class WhatIf:
    label: str  # what the experiment does, in words ("skip the module")
    changes: Callable[[PipelineConfig, str | None], ConfigChanges]  # (config, module) -> config changes
    needs_module: bool = False  # the experiment is about one module (its path is the second argument)

    def changes_for(self, config: PipelineConfig, module: str | None = None) -> ConfigChanges:
        """The ``PipelineConfig.with_changes`` arguments of this experiment on ``config``."""
        if self.needs_module and not module:
            raise ValueError(f"what if '{self.label}': name the module")
        return self.changes(config, module)


def _skip(config: PipelineConfig, module: str | None) -> ConfigChanges:
    return {"skip_modules": tuple(dict.fromkeys((*config.skip_modules, module)))}


WHAT_IFS: dict[str, WhatIf] = {w.label: w for w in (
    WhatIf("DuplicateDequantNodePass on", lambda config, module: {"duplicate_dequant": "on"}),
    WhatIf("DuplicateDequantNodePass off", lambda config, module: {"duplicate_dequant": "off"}),
    WhatIf("skip the module", _skip, needs_module=True),
    WhatIf("fusion off", lambda config, module: {"fusion": "none"}),
    WhatIf("with quantviz's patterns", lambda config, module: {"fusion": "quantviz"}),
    WhatIf("with quantviz's and ExecuTorch's patterns", lambda config, module: {"fusion": "both"}),
)}
