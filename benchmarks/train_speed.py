"""Training throughput per model on this machine: images per second for one optimiser step.

Times the trainer's own step (forward through the training view, the loss with
any auxiliary heads, backward, AdamW step) on random crops at each model's
default input size, after warm-up; median over repeats. Data loading is not
included: it is measured by `fasdistill train`'s own images/s log.

    python benchmarks/train_speed.py [--batch 32] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from fasdistill.config import load_recipe
from fasdistill.engine.objective import TrainView, supervised_terms
from fasdistill.models import build_model, model_specs
from fasdistill.utils.workers import default_workers


def step_time(name: str, batch: int, repeats: int, aux: tuple[str, ...]) -> tuple[int, float]:
    model = build_model(name, num_classes=3, aux=aux)
    view = TrainView(model).train()
    size = model.input_size
    config = load_recipe(None, [f"model.name={name}"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 3, (batch,))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        loss = sum(supervised_terms(view(images), images, labels, config).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:  # the first steps allocate and tune
            times.append(time.perf_counter() - start)
    return size, batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=default_workers())
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    table = Table(
        title=f"training step throughput, batch {args.batch}, {args.threads} threads, "
        f"CPU, torch {torch.__version__}",
        title_justify="left",
    )
    for column in ("model", "role", "input", "images/s", "images/s with pixel aux"):
        table.add_column(column, justify="left" if column in ("model", "role") else "right")
    for spec in model_specs():
        size, plain = step_time(spec.name, args.batch, args.repeats, ())
        _, with_aux = step_time(spec.name, args.batch, args.repeats, ("pixel",))
        table.add_row(spec.name, spec.role, str(size), f"{plain:.1f}", f"{with_aux:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
