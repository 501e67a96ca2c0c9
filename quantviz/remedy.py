"""What to try when a stage fails in a way no known issue explains: a hint in words and the config changes that apply
it. Each stage declares its own (``Stage.remedy`` in ``quantviz/stages/<name>.py``); ``quantviz.known_issues``
reads it::

    Remedy("try --fusion none", ({"fusion": "none"},)).fix_for(PipelineConfig())   # {"fusion": "none"}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from quantviz.config import ConfigChanges, PipelineConfig


@dataclass(frozen=True)
class Remedy:
    """What to try when a stage fails in a way no known issue explains (``quantviz.known_issues``)."""

    hint: str  # the words the user reads
    fixes: tuple[ConfigChanges, ...] = ()  # the hint's config changes, first choice first

    def fix_for(self, config: PipelineConfig,
                differs: Callable[[PipelineConfig, PipelineConfig], bool] | None = None) -> ConfigChanges:
        """The first fix that changes what ``config`` does (``{}`` when none does). ``differs(a, b)`` says whether
        two configs run differently (the pipeline passes its flow's stage signatures: ``--partitioner none`` does
        nothing when nothing is delegated); default: any field differs.

        Example::

            Remedy("", ({"flow": "fx"},)).fix_for(PipelineConfig(flow="pt2e"))   # {"flow": "fx"}
        """
        for fix in self.fixes:
            try:
                changed = config.with_changes(**fix)
            except (ValueError, TypeError):  # a fix this config cannot take (ConfigError is a ValueError)
                continue
            if (differs or (lambda a, b: a != b))(config, changed):
                return fix
        return {}
