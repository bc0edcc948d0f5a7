"""Intermediate features by module path, captured with forward hooks (models are never edited).

Each call of a hooked module appends a *copy* of its output: a conv followed by
an in-place ReLU would otherwise hand back the post-ReLU tensor, and a module
that runs twice per forward keeps both outputs (terms choose one by ``call``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from fasdistill.errors import InputError


def module_paths(model: nn.Module, limit: int = 12) -> str:
    """A short list of valid paths for error messages."""
    names = [n for n, _ in model.named_modules() if n and n.count(".") <= 2]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class FeatureTaps:
    """Forward hooks on the modules at ``paths`` of ``model``; outputs per forward pass."""

    def __init__(self, model: nn.Module, paths: Iterable[tuple[str, str]], owner: str) -> None:
        """``paths`` holds (term name, module path) pairs; ``owner`` names the model in errors."""
        self.owner = owner
        self.captured: dict[str, list[Tensor]] = {}
        self._handles: list[RemovableHandle] = []
        for term, path in paths:
            if path in self.captured:
                continue
            try:
                module = model.get_submodule(path)
            except AttributeError:
                raise InputError(
                    f"{term}: the {owner} has no module {path!r}; paths look like: "
                    f"{module_paths(model)}"
                ) from None
            self.captured[path] = []
            self._handles.append(module.register_forward_hook(self._hook(path)))

    def _hook(self, path: str) -> Callable[[nn.Module, object, object], None]:
        def capture(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
                output = output[0]
            if not isinstance(output, Tensor):
                raise InputError(
                    f"the {self.owner}'s module {path!r} returns {type(output).__name__}, "
                    "not a tensor: tap another module"
                )
            self.captured[path].append(output.clone())

        return capture

    def clear(self) -> None:
        for outputs in self.captured.values():
            outputs.clear()

    def get(self, term: str, path: str, call: int) -> Tensor:
        outputs = self.captured[path]
        if not outputs:
            raise InputError(f"{term}: the {self.owner}'s module {path!r} did not run")
        if not -len(outputs) <= call < len(outputs):
            raise InputError(
                f"{term}: the {self.owner}'s module {path!r} ran {len(outputs)} time(s) per "
                f"forward; call {call} does not exist"
            )
        return outputs[call]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
