"""SynthSpoof: a procedural face anti-spoofing benchmark that needs no download."""

from fasdistill.data.synth.domains import DOMAINS, SPECIES
from fasdistill.data.synth.generator import SynthConfig, generate, iter_samples, plan
from fasdistill.data.synth.render import render_sample


def __getattr__(name: str) -> object:
    # The contact sheet needs matplotlib: load it only when asked for, so the CLI
    # and worker processes start fast.
    if name == "contact_sheet":
        from fasdistill.data.synth.preview import contact_sheet

        return contact_sheet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
