"""SynthSpoof: a procedural face anti-spoofing benchmark that needs no download."""

from fasdistill.data.synth.domains import DOMAINS, SPECIES
from fasdistill.data.synth.generator import SynthConfig, generate, iter_samples, plan, render_sample
from fasdistill.data.synth.preview import contact_sheet

__all__ = [
    "DOMAINS",
    "SPECIES",
    "SynthConfig",
    "contact_sheet",
    "generate",
    "iter_samples",
    "plan",
    "render_sample",
]
