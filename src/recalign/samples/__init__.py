"""Training samples: prompt templates, the six tasks, the mixture, generation and export."""

from __future__ import annotations

from recalign.samples.evaluation import build_eval_samples, render_prompt
from recalign.samples.generate import generate_samples
from recalign.samples.mixture import PRESETS, resolve_mixture
from recalign.samples.tasks import TASKS
from recalign.samples.templates import Template, TemplateSet, load_templates

__all__ = [
    "PRESETS",
    "TASKS",
    "Template",
    "TemplateSet",
    "build_eval_samples",
    "generate_samples",
    "load_templates",
    "render_prompt",
    "resolve_mixture",
]
