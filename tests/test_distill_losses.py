"""Distillation losses against independent NumPy references, plus their defining properties."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from fasdistill.distill import losses as L

RNG = np.random.default_rng(1234)
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Each test draws the same numbers whether it runs alone or with the others."""
    global RNG
    RNG = np.random.default_rng(1234)
    torch.manual_seed(0)


def t32(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def np64(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(sum(pi * np.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0))


def smooth_l1(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(np.where(d < 1, 0.5 * d**2, d - 0.5).mean())


def logits(n: int = 7, c: int = 4, scale: float = 2.0) -> torch.Tensor:
    return t32(RNG.normal(0, scale, (n, c)))


def labels(n: int = 7, c: int = 4) -> torch.Tensor:
    return torch.tensor(RNG.integers(0, c, n), dtype=torch.int64)


def ref_kd(s: torch.Tensor, t: torch.Tensor, temp: float) -> float:
    ps, pt = softmax(np64(s) / temp), softmax(np64(t) / temp)
    return temp**2 * np.mean([kl(pt[i], ps[i]) for i in range(len(ps))])


# ---------------------------------------------------------------- logit losses


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_kd_kl_matches_reference(temp: float) -> None:
    s, t = logits(), logits()
    assert_close(L.kd_kl(s, t, temp).item(), ref_kd(s, t, temp), **TOL)


def test_kd_kl_gradient_magnitude_roughly_constant_in_temperature() -> None:
    s0, t = logits(8, 5, scale=1.0), logits(8, 5, scale=1.0)
    norms = []
    for temp in (2.0, 4.0, 8.0, 16.0):
        s = s0.clone().requires_grad_(True)
        L.kd_kl(s, t, temp).backward()
        norms.append(s.grad.norm().item())
    assert max(norms) / min(norms) < 2.0


def test_kd_standardized_matches_reference_with_unbiased_std() -> None:
    s, t = logits(), logits()
    z = [
        (a - a.mean(1, keepdims=True)) / (a.std(1, ddof=1, keepdims=True) + 1e-7)
        for a in (np64(s), np64(t))
    ]
    assert_close(L.kd_standardized(s, t, 2.0).item(), ref_kd(t32(z[0]), t32(z[1]), 2.0), **TOL)
    # Standardisation removes each sample's shift and scale.
    assert_close(L.kd_standardized(3 * s + 5, t), L.kd_standardized(s, t), rtol=1e-4, atol=1e-5)


def ref_dkd_parts(
    s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, temp: float
) -> tuple[np.ndarray, np.ndarray]:
    tckd, nckd = [], []
    for zs, zt, g in zip(np64(s) / temp, np64(t) / temp, y.tolist(), strict=True):
        ps, pt = softmax(zs), softmax(zt)
        tckd.append(kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]]))
        nckd.append(kl(softmax(np.delete(zt, g)), softmax(np.delete(zs, g))))
    return np.array(tckd), np.array(nckd)


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_dkd_parts_and_dkd_match_reference(temp: float) -> None:
    s, t, y = logits(c=5), logits(c=5), labels(c=5)
    tckd, nckd = L.dkd_parts(s, t, y, temp)
    ref_t, ref_n = ref_dkd_parts(s, t, y, temp)
    assert_close(np64(tckd), ref_t, **TOL)
    assert_close(np64(nckd), ref_n, **TOL)
    expected = temp**2 * np.mean(0.5 * ref_t + 3.0 * ref_n)
    assert_close(L.dkd(s, t, y, alpha=0.5, beta=3.0, temperature=temp).item(), expected, **TOL)


@pytest.mark.parametrize("temp", [1.0, 3.0])
def test_dkd_decomposes_kl_into_tckd_plus_weighted_nckd(temp: float) -> None:
    s, t, y = logits(c=4), logits(c=4), labels(c=4)
    tckd, nckd = L.dkd_parts(s, t, y, temp)
    p_gt = torch.softmax(t / temp, dim=1).gather(1, y[:, None]).squeeze(1)
    assert_close(L.kd_per_sample(s, t, temp), tckd + (1 - p_gt) * nckd, rtol=1e-5, atol=1e-6)


def test_dkd_with_two_classes_has_zero_nckd_and_warns_nothing() -> None:
    s, t, y = logits(c=2), logits(c=2), labels(c=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, nckd = L.dkd_parts(s, t, y)
        L.dkd(s, t, y).item()
    assert torch.all(nckd == 0)


@pytest.mark.parametrize("temp", [1.0, 4.0])
def test_dist_matches_reference_with_numpy_corrcoef(temp: float) -> None:
    s, t = logits(), logits()
    ys, yt = softmax(np64(s) / temp), softmax(np64(t) / temp)
    inter = 1 - np.mean([np.corrcoef(ys[i], yt[i])[0, 1] for i in range(len(ys))])
    intra = 1 - np.mean([np.corrcoef(ys[:, j], yt[:, j])[0, 1] for j in range(ys.shape[1])])
    expected = temp**2 * (2.0 * inter + 0.5 * intra)
    assert_close(L.dist(s, t, beta=2.0, gamma=0.5, temperature=temp).item(), expected, **TOL)


def test_multi_teacher_kd_uniform_identical_teachers_equals_kd_kl() -> None:
    s, t, y = logits(), logits(), labels()
    assert_close(L.multi_teacher_kd(s, [t, t, t], y), L.kd_kl(s, t))


def test_multi_teacher_kd_fixed_weights_are_normalised() -> None:
    s, t1, t2, y = logits(), logits(), logits(), labels()
    expected = (1 * ref_kd(s, t1, 4.0) + 3 * ref_kd(s, t2, 4.0)) / 4
    assert_close(L.multi_teacher_kd(s, [t1, t2], y, weights=[1, 3]).item(), expected, **TOL)


def test_multi_teacher_kd_adaptive_matches_reference_and_favours_correct_teacher() -> None:
    y = labels()
    onehot = torch.nn.functional.one_hot(y, 4).float()
    right, wrong = 4 * onehot + logits(scale=0.3), 4 * onehot.roll(1, dims=1) + logits(scale=0.3)
    s = logits()
    ce = [-np.log(softmax(np64(z))[np.arange(7), y.numpy()]) for z in (right, wrong)]
    w = softmax(-np.stack(ce, axis=1))  # (N, K)
    per = [
        [kl(softmax(np64(z) / 4)[i], softmax(np64(s) / 4)[i]) for z in (right, wrong)]
        for i in range(7)
    ]
    expected = 16 * np.mean((w * np.array(per)).sum(axis=1))
    assert_close(L.multi_teacher_kd(s, [right, wrong], y, adaptive=True).item(), expected, **TOL)
    assert w[:, 0].min() > 0.9
    loss_like_right = L.multi_teacher_kd(right, [right, wrong], y, adaptive=True)
    loss_like_wrong = L.multi_teacher_kd(wrong, [right, wrong], y, adaptive=True)
    assert loss_like_right < loss_like_wrong


def camkd_reference(
    s: torch.Tensor, teachers: list[torch.Tensor], y: torch.Tensor, temp: float
) -> tuple[float, np.ndarray]:
    """CA-MKD's logit term from the paper's formula, in float64 NumPy: weights
    ``w_k,i = (1 - exp(CE_k,i) / sum_j exp(CE_j,i)) / (K - 1)`` and the loss
    ``T^2 mean_i sum_k w_k,i KL(p_t^k,i || p_s,i)``."""
    rows = np.arange(len(y))
    ce = np.stack([-np.log(softmax(np64(z))[rows, y.numpy()]) for z in teachers])  # (K, N)
    e = np.exp(ce)
    w = (1.0 - e / e.sum(axis=0)) / (len(teachers) - 1)
    ps = softmax(np64(s) / temp)
    per = np.array([[kl(softmax(np64(z) / temp)[i], ps[i]) for i in rows] for z in teachers])
    return temp**2 * float((w * per).sum(axis=0).mean()), w


@pytest.mark.parametrize("k", [2, 3, 4])
def test_multi_teacher_kd_adaptive_is_camkd_for_k_teachers(k: int) -> None:
    s, y = logits(), labels()
    teachers = [logits() for _ in range(k)]
    expected, w = camkd_reference(s, teachers, y, 3.0)
    loss = L.multi_teacher_kd(s, teachers, y, 3.0, adaptive=True)
    assert_close(loss.item(), expected, **TOL)
    weights = L.camkd_weights(teachers, y)
    assert_close(np64(weights), w, **TOL)
    assert_close(np64(weights.sum(dim=0)), np.ones(len(y)), **TOL)


def test_camkd_weights_equal_softmax_of_minus_ce_only_for_two_teachers() -> None:
    """The earlier weighting, softmax_k(-CE), is CA-MKD's for K = 2 and not beyond."""
    y = labels(50)
    ts = [logits(50) for _ in range(3)]
    ce = torch.stack([torch.nn.functional.cross_entropy(t, y, reduction="none") for t in ts])
    softmax_of_minus_ce = torch.softmax(-ce, dim=0)
    torch.testing.assert_close(
        L.camkd_weights(ts[:2], y), softmax_of_minus_ce[:2] / softmax_of_minus_ce[:2].sum(0)
    )
    ratio = L.camkd_weights(ts, y) / softmax_of_minus_ce
    assert ratio.min() < 0.8 and ratio.max() > 1.2
    assert L.camkd_weights(ts, y).max() <= 0.5 + 1e-6  # 1 / (K - 1): no teacher dominates


@pytest.mark.parametrize(
    ("teachers", "weights", "message"),
    [
        (0, None, "empty"),
        (2, [1.0], "2 teachers"),
        (2, [1.0, -1.0], "non-negative"),
        (2, [0, 0], "not all zero"),
    ],
)
def test_multi_teacher_kd_rejects_bad_teachers_or_weights(teachers, weights, message) -> None:
    s, y = logits(), labels()
    with pytest.raises(ValueError, match=message):
        L.multi_teacher_kd(s, [logits() for _ in range(teachers)], y, weights=weights)


# ---------------------------------------------------------------- feature losses


def block_mean(a: np.ndarray, size: int) -> np.ndarray:
    n, c, h, w = a.shape
    return a.reshape(n, c, size, h // size, size, w // size).mean(axis=(3, 5))


def test_match_spatial_pools_the_larger_map_only() -> None:
    a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 4, 4)
    pa, pb = L.match_spatial(a, b)
    assert pa.shape == (2, 3, 4, 4) and pb is b
    assert_close(np64(pa), block_mean(np64(a), 4))
    assert L.match_spatial(b, a)[1].shape == (2, 3, 4, 4)
    v = torch.randn(2, 3)
    assert L.match_spatial(v, v) == (v, v)


def test_fitnet_matches_reference_after_pooling() -> None:
    s, t = RNG.normal(size=(6, 3, 4, 4)), RNG.normal(size=(6, 3, 8, 8))
    expected = ((s - block_mean(t, 4)) ** 2).mean()
    assert_close(L.fitnet(t32(s), t32(t)).item(), expected, **TOL)
    with pytest.raises(ValueError, match="adapter"):
        L.fitnet(torch.randn(6, 2, 4, 4), t32(t))


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_attention_transfer_matches_reference_across_channels_and_sizes(p: float) -> None:
    s, t = RNG.normal(size=(6, 8, 4, 4)), RNG.normal(size=(6, 32, 8, 8))

    def att(f: np.ndarray) -> np.ndarray:
        a = (np.abs(f) ** p).mean(axis=1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = ((att(s) - att(block_mean(t, 4))) ** 2).mean()
    assert_close(L.attention_transfer(t32(s), t32(t), p).item(), expected, **TOL)
    assert L.attention_map(t32(s), p).shape == (6, 16)


def ref_rkd(s: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    def distances(x: np.ndarray) -> np.ndarray:
        d = np.array([[np.linalg.norm(a - b) for b in x] for a in x])
        return d / d[~np.eye(len(x), dtype=bool)].mean()

    def angles(x: np.ndarray) -> np.ndarray:
        n = len(x)
        out = np.zeros((n, n, n))
        for i, j, k in np.ndindex(n, n, n):
            if i != j and k != j:
                u, v = x[i] - x[j], x[k] - x[j]
                out[i, j, k] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
        return out

    s, t = s.reshape(len(s), -1), t.reshape(len(t), -1)
    return smooth_l1(distances(s), distances(t)), smooth_l1(angles(s), angles(t))


def test_rkd_matches_reference_with_different_widths() -> None:
    s, t = RNG.normal(size=(6, 2, 2, 2)), RNG.normal(size=(6, 5))
    dist_ref, angle_ref = ref_rkd(s, t)
    assert_close(L.rkd_distance(t32(s), t32(t)).item(), dist_ref, **TOL)
    assert_close(L.rkd_angle(t32(s), t32(t)).item(), angle_ref, **TOL)
    assert_close(L.rkd(t32(s), t32(t), 2.0, 3.0).item(), 2 * dist_ref + 3 * angle_ref, **TOL)


@pytest.mark.parametrize("side", ["student", "teacher"])
def test_rkd_is_invariant_to_rotation_scale_and_translation(side: str) -> None:
    s, t = RNG.normal(size=(7, 6)), RNG.normal(size=(7, 6))
    q, _ = np.linalg.qr(RNG.normal(size=(6, 6)))
    moved = 3.7 * s @ q + RNG.normal(size=(1, 6))
    pair = (t32(moved), t32(t)) if side == "student" else (t32(t), t32(moved))
    base = (t32(s), t32(t)) if side == "student" else (t32(t), t32(s))
    assert_close(L.rkd(*pair), L.rkd(*base), rtol=1e-4, atol=1e-5)


def test_pkt_matches_reference() -> None:
    s, t = RNG.normal(size=(6, 3, 2, 2)), RNG.normal(size=(6, 7))

    def cond(x: np.ndarray) -> np.ndarray:
        x = x.reshape(len(x), -1)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = (x @ x.T + 1) / 2
        return sim / sim.sum(axis=1, keepdims=True)

    ps, pt = cond(s), cond(t)
    expected = np.mean([sum(pt[i] * np.log((pt[i] + 1e-7) / (ps[i] + 1e-7))) for i in range(6)])
    assert_close(L.pkt(t32(s), t32(t)).item(), expected, **TOL)


def test_similarity_preserving_matches_reference() -> None:
    s, t = RNG.normal(size=(6, 3, 4, 4)), RNG.normal(size=(6, 10))
    gs, gt = [(f.reshape(6, -1) @ f.reshape(6, -1).T) for f in (s, t)]
    gs, gt = [g / np.sqrt((g**2).sum(axis=1, keepdims=True)) for g in (gs, gt)]
    expected = sum((gs[i, j] - gt[i, j]) ** 2 for i in range(6) for j in range(6)) / 36
    assert_close(L.similarity_preserving(t32(s), t32(t)).item(), expected, **TOL)


def bilinear_1d(n_in: int, n_out: int) -> np.ndarray:
    """Interpolation matrix (n_out, n_in) of PyTorch's bilinear with align_corners=False."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(np.floor(src))
        i1, frac = min(i0 + 1, n_in - 1), src - i0
        m[o, i0] += 1 - frac
        m[o, i1] += frac
    return m


def test_pixel_map_pools_larger_and_interpolates_smaller_teacher_maps() -> None:
    s = RNG.normal(size=(6, 1, 4, 4))
    sig = 1 / (1 + np.exp(-s))
    big, small = RNG.uniform(size=(6, 8, 8)), RNG.uniform(size=(6, 1, 2, 2))
    expected_big = ((sig - block_mean(big[:, None], 4)) ** 2).mean()
    assert_close(L.pixel_map(t32(s), t32(big)).item(), expected_big, **TOL)
    m = bilinear_1d(2, 4)
    up = np.einsum("oh,nchw,pw->ncop", m, small, m)
    assert_close(L.pixel_map(t32(s), t32(small)).item(), ((sig - up) ** 2).mean(), **TOL)


def test_one_class_kd_uses_bona_fide_only_and_matches_reference() -> None:
    s, t = RNG.normal(size=(6, 4, 3, 3)), RNG.normal(size=(6, 4, 3, 3))
    bonafide = torch.tensor([True, False, True, True, False, False])
    ps, pt = s.mean(axis=(2, 3)), t.mean(axis=(2, 3))
    cos = (ps * pt).sum(1) / (np.linalg.norm(ps, axis=1) * np.linalg.norm(pt, axis=1))
    assert_close(
        L.one_class_kd(t32(s), t32(t), bonafide).item(), (1 - cos[[0, 2, 3]]).mean(), **TOL
    )
    assert_close(np64(L.one_class_score(t32(s), t32(t))), cos, **TOL)
    s_changed = s.copy()
    s_changed[~bonafide.numpy()] = RNG.normal(size=(3, 4, 3, 3))
    assert_close(
        L.one_class_kd(t32(s_changed), t32(t), bonafide), L.one_class_kd(t32(s), t32(t), bonafide)
    )


def test_one_class_kd_without_bona_fide_is_zero_and_backward_works() -> None:
    s = torch.randn(4, 5, 2, 2, requires_grad=True)
    loss = L.one_class_kd(s, torch.randn(4, 5, 2, 2), torch.zeros(4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and s.grad is not None and torch.all(s.grad == 0)


def test_one_class_kd_rejects_mismatched_widths_and_non_boolean_masks() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        L.one_class_kd(
            torch.randn(4, 5, 2, 2), torch.randn(4, 6, 2, 2), torch.ones(4, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="boolean"):
        L.one_class_kd(torch.randn(4, 5), torch.randn(4, 5), torch.zeros(4, dtype=torch.int64))


# ---------------------------------------------------------------- properties shared by all


Case = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
ALL: dict[str, tuple[Case, bool]] = {  # name: (loss of student, teacher, labels; takes logits)
    "kd_kl": (lambda s, t, y: L.kd_kl(s, t), True),
    "kd_standardized": (lambda s, t, y: L.kd_standardized(s, t), True),
    "dkd": (L.dkd, True),
    "dist": (lambda s, t, y: L.dist(s, t), True),
    "multi_teacher_kd": (lambda s, t, y: L.multi_teacher_kd(s, [t, t], y), True),
    "multi_teacher_adaptive": (lambda s, t, y: L.multi_teacher_kd(s, [t], y, adaptive=True), True),
    "fitnet": (lambda s, t, y: L.fitnet(s, t), False),
    "attention_transfer": (lambda s, t, y: L.attention_transfer(s, t), False),
    "rkd": (lambda s, t, y: L.rkd(s, t), False),
    "pkt": (lambda s, t, y: L.pkt(s, t), False),
    "similarity_preserving": (lambda s, t, y: L.similarity_preserving(s, t), False),
    "one_class_kd": (lambda s, t, y: L.one_class_kd(s, t, y == 0), False),
    "pixel_map": (lambda s, t, y: L.pixel_map(s[:, :1], torch.sigmoid(t[:, :1])), False),
}


def inputs(is_logits: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    y = torch.tensor([0, 1, 2, 3, 0, 2])
    if is_logits:
        return logits(6, 4), logits(6, 4), y
    return torch.randn(6, 4, 4, 4), torch.randn(6, 4, 4, 4), y


@pytest.mark.parametrize("name", sorted(ALL))
def test_loss_is_minimal_when_student_equals_teacher(name: str) -> None:
    fn, is_logits = ALL[name]
    _, t, y = inputs(is_logits)
    same = fn(t, t, y)
    assert same.dim() == 0 and abs(same.item()) < 1e-5
    assert fn(t + 0.5 * torch.randn_like(t), t, y) > same


@pytest.mark.parametrize("name", sorted(ALL))
def test_bf16_inputs_give_finite_float32_losses_and_gradients(name: str) -> None:
    fn, is_logits = ALL[name]
    s, t, y = inputs(is_logits)
    s = s.bfloat16().requires_grad_(True)
    loss = fn(s, t.bfloat16(), y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert s.grad is not None and torch.isfinite(s.grad).all()
