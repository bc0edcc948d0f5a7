"""The registry of distillation methods: one class per method holds schema, checks and loss."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest
import torch

from fasdistill.config import load_recipe
from fasdistill.distill import losses as L
from fasdistill.distill.methods import (
    DKD,
    FEATURE_KINDS,
    METHODS,
    OUTPUT_KINDS,
    DistillTerm,
    Method,
    TermInputs,
    kind_of,
)
from fasdistill.errors import InputError


def test_every_method_is_in_the_recipe_schema_once() -> None:
    union = typing.get_args(typing.get_args(DistillTerm)[0])
    assert set(union) == set(METHODS) and len(union) == len(METHODS)
    kinds = [kind_of(m) for m in METHODS]
    assert len(set(kinds)) == len(kinds) == 12
    assert set(FEATURE_KINDS) | set(OUTPUT_KINDS) == set(kinds)
    assert set(FEATURE_KINDS) == {"fitnet", "at", "rkd", "pkt", "sp", "one_class"}
    for method in METHODS:
        assert method.loss is not Method.loss, method  # each computes its own term


def test_dkd_defaults_are_written_once() -> None:
    term = DKD(kind="dkd")
    defaults = inspect.signature(L.dkd).parameters
    assert (term.alpha, term.beta, term.temperature) == (L.DKD_ALPHA, L.DKD_BETA, L.DKD_TEMPERATURE)
    assert [defaults[k].default for k in ("alpha", "beta", "temperature")] == [
        L.DKD_ALPHA, L.DKD_BETA, L.DKD_TEMPERATURE,
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["kd", "kd_std", "dkd", "dist", "multi_teacher"])
def test_an_output_term_is_its_loss_function(kind: str) -> None:
    torch.manual_seed(0)
    config = load_recipe(None, ["distill.teacher=t.pt", f"distill.terms=[{{kind: {kind}}}]"])
    assert config.distill is not None
    term = config.distill.terms[0]
    s, t = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    got = term.loss(TermInputs(kind, {"logits": s}, [{"logits": t}], labels, [False]))
    expected = {
        "kd": lambda: L.kd_kl(s, t, 4.0),
        "kd_std": lambda: L.kd_standardized(s, t, 2.0),
        "dkd": lambda: L.dkd(s, t, labels),
        "dist": lambda: L.dist(s, t, 1.0, 1.0, 1.0),
        "multi_teacher": lambda: L.multi_teacher_kd(s, [t], labels, 4.0),
    }[kind]()
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_recipe_mistake_in_a_term_names_it() -> None:
    overrides = [
        "distill.teacher=[a.pt,b.pt]",
        "distill.terms=[{kind: multi_teacher, weights: [1.0]}]",
    ]
    with pytest.raises(InputError, match=r"terms\.?\[?0\]? \(multi_teacher\): 1 weights for 2"):
        load_recipe(None, overrides)


def test_the_recipe_schema_does_not_load_the_objective() -> None:
    code = (
        "import sys, fasdistill.config; "
        "print(any(m in sys.modules for m in ('fasdistill.distill.objective', "
        "'fasdistill.engine.trainer', 'fasdistill.distill.teacher')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
