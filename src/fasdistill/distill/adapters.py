"""Training-only adapters that map a student feature to the teacher's width.

They live in the objective's module (so the optimiser, DDP and ``last.pt`` see
them) and never in the student: the deployable model, its parameter count, its
MACs and its export do not include them.

Their BatchNorm normalises over the *global* batch under DDP on any backend
(``nn.SyncBatchNorm`` runs on GPUs only), so a distilled run on N processes is
the same optimisation as on one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from fasdistill.errors import InputError


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is the sum of every process's gradient."""

    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm over (N, C) or (N, C, H, W) whose training statistics span every process.

    Sums, sums of squares and counts are all-reduced with the autograd-aware
    collective, so gradients flow through the global statistics as they do in
    one process. Outside DDP (or in eval mode) it is plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() not in (2, 4):
            raise InputError(
                f"adapter BatchNorm expects (N, C) or (N, C, H, W), got {input.dim()}-D"
            )

    def forward(self, x: Tensor) -> Tensor:
        if not (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=x.dtype)
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        total = _AllReduceSum.apply(local)
        c = x.shape[1]
        n = total[2 * c]
        mean = total[:c] / n
        var = total[c : 2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = (
                self.momentum
                if self.momentum is not None
                else 1.0 / float(self.num_batches_tracked)
            )
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / max(float(n) - 1, 1.0))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape)


def make_adapter(
    student_shape: tuple[int, ...], teacher_shape: tuple[int, ...], term: str
) -> nn.Module:
    """1x1 conv + BN for maps (N, C, H, W), linear + BN for vectors (N, D)."""
    if len(student_shape) != len(teacher_shape) or len(student_shape) not in (2, 4):
        raise InputError(
            f"{term}: cannot adapt a student feature of shape {student_shape} to the teacher's "
            f"{teacher_shape}; tap modules that give maps (N, C, H, W) or vectors (N, D) on both"
        )
    c_in, c_out = student_shape[1], teacher_shape[1]
    if len(student_shape) == 4:
        adapter: nn.Module = nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), GlobalBatchNorm(c_out)
        )
    else:
        adapter = nn.Sequential(nn.Linear(c_in, c_out, bias=False), GlobalBatchNorm(c_out))
    for m in adapter.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
    return adapter
