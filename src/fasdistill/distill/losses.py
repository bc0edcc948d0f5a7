"""Distillation losses as pure functions of tensors.

Conventions: logits are (N, C) with class 0 = bona fide, labels are int64 (N,), features are
(N, C, H, W) maps or (N, D) vectors. Every function computes in float32 (inputs are cast with
``.float()``, so bf16 autocast outputs are safe) and returns a scalar averaged over the batch
unless its docstring says otherwise. Teacher tensors are expected to be detached by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

# Decoupled KD's defaults (the paper's CIFAR-100 settings); a recipe's dkd term uses them too.
DKD_ALPHA, DKD_BETA, DKD_TEMPERATURE = 1.0, 8.0, 4.0

# --------------------------------------------------------------------------- logit methods


def kd_per_sample(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """Per-sample ``KL(softmax(z_t/T) || softmax(z_s/T))``, shape (N,), without the T² factor."""
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    """Hinton KD: ``T² · KL(softmax(z_t/T) || softmax(z_s/T))``, summed over classes, batch mean.

    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS DL Workshop
    2015. The T² factor keeps the gradient scale roughly independent of T. The full Hinton
    objective ``α·CE + (1−α)·KD`` is formed by the objective: its cross-entropy weight gives α
    and this term's weight gives (1−α).
    """
    return temperature**2 * kd_per_sample(student_logits, teacher_logits, temperature).mean()


def _standardize(logits: Tensor, eps: float) -> Tensor:
    """``(z − mean_c z) / (std_c z + eps)`` per sample, with the unbiased (N−1) std."""
    z = logits.float()
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + eps)


def kd_standardized(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0, eps: float = 1e-7
) -> Tensor:
    """Logit-standardisation KD: ``kd_kl(Z(z_s), Z(z_t), T)`` with ``Z`` a per-sample z-score.

    Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024.
    ``Z(z) = (z − mean_c z) / (std_c z + eps)``; the std is the unbiased one (divides by C−1),
    as ``Tensor.std`` in the authors' code. The T² factor is included.
    """
    return kd_kl(_standardize(student_logits, eps), _standardize(teacher_logits, eps), temperature)


def _non_target(logits: Tensor, labels: Tensor) -> Tensor:
    """The (N, C−1) logits left after removing each sample's target class (a gather, no sync)."""
    n, c = logits.shape
    index = torch.arange(c - 1, device=logits.device).expand(n, c - 1)
    index = index + (index >= labels.long().unsqueeze(1)).long()
    return logits.gather(1, index)


def dkd_parts(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    temperature: float = DKD_TEMPERATURE,
) -> tuple[Tensor, Tensor]:
    """Per-sample (N,) TCKD and NCKD of Decoupled KD, without the T² factor.

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022. With ``p = softmax(z/T)``:
    ``TCKD = KL(b_t || b_s)`` with ``b = [p_gt, 1 − p_gt]``; ``NCKD = KL(p̂_t || p̂_s)`` with
    ``p̂ = softmax`` over the non-target logits only. All in log space (``log(1 − p_gt)`` is a
    log-sum-exp over the non-target logits). Identity: ``KL(p_t||p_s) = TCKD + (1 − p_t,gt)·NCKD``.
    With two classes NCKD is identically zero.
    """
    labels = labels.long().unsqueeze(1)
    z_s = student_logits.float() / temperature
    z_t = teacher_logits.float() / temperature

    def binary_and_rest(z: Tensor) -> tuple[Tensor, Tensor]:
        rest = _non_target(z, labels.squeeze(1))
        log_all = torch.logsumexp(z, dim=1, keepdim=True)
        log_gt = z.gather(1, labels) - log_all
        log_not_gt = torch.logsumexp(rest, dim=1, keepdim=True) - log_all
        return torch.cat([log_gt, log_not_gt], dim=1), F.log_softmax(rest, dim=1)

    log_b_s, log_hat_s = binary_and_rest(z_s)
    log_b_t, log_hat_t = binary_and_rest(z_t)
    tckd = (log_b_t.exp() * (log_b_t - log_b_s)).sum(dim=1)
    nckd = (log_hat_t.exp() * (log_hat_t - log_hat_s)).sum(dim=1)
    return tckd, nckd


def dkd(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    alpha: float = DKD_ALPHA,
    beta: float = DKD_BETA,
    temperature: float = DKD_TEMPERATURE,
) -> Tensor:
    """Decoupled KD: ``T² · mean_i(alpha·TCKD_i + beta·NCKD_i)`` (Zhao et al., CVPR 2022)."""
    tckd, nckd = dkd_parts(student_logits, teacher_logits, labels, temperature)
    return temperature**2 * (alpha * tckd + beta * nckd).mean()


def _pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``, shape (rows,)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist(
    student_logits: Tensor,
    teacher_logits: Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 1.0,
) -> Tensor:
    """DIST: ``T² · (beta·inter + gamma·intra)`` on ``y = softmax(z/T)``.

    Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022.
    ``inter = 1 − mean_i pearson(y_s[i, :], y_t[i, :])`` (class relations within a sample),
    ``intra = 1 − mean_j pearson(y_s[:, j], y_t[:, j])`` (sample relations within a class);
    pearson is a cosine similarity of mean-centred vectors with ``eps = 1e-8`` in the denominator.
    """
    y_s = F.softmax(student_logits.float() / temperature, dim=1)
    y_t = F.softmax(teacher_logits.float() / temperature, dim=1)
    inter = 1.0 - _pearson_rows(y_s, y_t).mean()
    intra = 1.0 - _pearson_rows(y_s.t(), y_t.t()).mean()
    return temperature**2 * (beta * inter + gamma * intra)


def camkd_weights(teacher_logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """CA-MKD's per-sample teacher weights, (K, N): ``(1 − softmax_k(CE_k,i)) / (K − 1)``.

    ``CE_k,i`` is the cross-entropy of teacher k's logits (temperature 1) against
    the label of sample i; a teacher that is more confident in the right class gets
    more weight, and each sample's weights sum to 1. For K = 2 this equals
    ``softmax_k(−CE_k,i)``; for K > 2 it does not (no teacher gets more than
    1/(K − 1)). One teacher gets weight 1. No gradient flows through the weights.
    """
    ce = torch.stack(
        [F.cross_entropy(t.float(), labels.long(), reduction="none") for t in teacher_logits]
    ).detach()
    k = ce.shape[0]
    if k == 1:
        return torch.ones_like(ce)
    return (1.0 - F.softmax(ce, dim=0)) / (k - 1)


def multi_teacher_kd(
    student_logits: Tensor,
    teacher_logits: Sequence[Tensor],
    labels: Tensor,
    temperature: float = 4.0,
    weights: Sequence[float] | None = None,
    adaptive: bool = False,
) -> Tensor:
    """KD from several teachers, with fixed or per-sample confidence weights.

    Fixed (``adaptive=False``): ``sum_k w_k · kd_kl(z_s, z_t^k, T)``, ``w`` uniform by default
    and normalised to sum 1. Adaptive: ``T² · mean_i sum_k w_k,i · KL_i(p_t^k || p_s)`` with
    :func:`camkd_weights` (Zhang, Chen & Wang, "Confidence-Aware Multi-Teacher Knowledge
    Distillation", ICASSP 2022: their weighting of the logit term; their code also divides
    the loss by K, a constant factor left to the term's weight).
    """
    if len(teacher_logits) == 0:
        raise ValueError("multi_teacher_kd: teacher_logits is empty; pass at least one teacher")
    for k, logits in enumerate(teacher_logits):
        if logits.shape != student_logits.shape:
            raise ValueError(
                f"multi_teacher_kd: teacher {k} logits have shape {tuple(logits.shape)}, "
                f"the student's have {tuple(student_logits.shape)}; they must match"
            )
    per_teacher = torch.stack(
        [kd_per_sample(student_logits, t, temperature) for t in teacher_logits]
    )  # (K, N)
    if adaptive:
        if weights is not None:
            raise ValueError("multi_teacher_kd: pass either weights or adaptive=True, not both")
        w = camkd_weights(teacher_logits, labels)
        return temperature**2 * (w * per_teacher).sum(dim=0).mean()
    if weights is None:
        weights = [1.0] * len(teacher_logits)
    if len(weights) != len(teacher_logits):
        raise ValueError(
            f"multi_teacher_kd: {len(weights)} weights for {len(teacher_logits)} teachers; "
            "give one weight per teacher"
        )
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"multi_teacher_kd: weights {list(weights)} must be non-negative and not all zero"
        )
    w = per_teacher.new_tensor([float(x) / sum(weights) for x in weights])
    return temperature**2 * (w @ per_teacher.mean(dim=1))


# --------------------------------------------------------------------------- feature methods


def match_spatial(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Bring two 4-D maps to a common H×W by adaptive average pooling of the larger one.

    Each map is pooled to ``(min H, min W)`` (so a map larger in both dimensions is pooled to the
    other's size). Returns the inputs unchanged when they already agree or are not both 4-D.
    """
    if a.dim() != 4 or b.dim() != 4 or a.shape[-2:] == b.shape[-2:]:
        return a, b
    size = (min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1]))
    if a.shape[-2:] != size:
        a = F.adaptive_avg_pool2d(a, size)
    if b.shape[-2:] != size:
        b = F.adaptive_avg_pool2d(b, size)
    return a, b


def fitnet(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """FitNets hint: ``MSE(adapted student map, teacher map)`` after :func:`match_spatial`.

    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015. Channel counts must already
    agree (the caller's adapter maps the student to the teacher's width).
    """
    s, t = match_spatial(student_feature.float(), teacher_feature.float())
    if s.shape != t.shape:
        raise ValueError(
            f"fitnet: student feature {tuple(s.shape)} and teacher feature {tuple(t.shape)} "
            "differ; add an adapter so the student matches the teacher's channels"
        )
    return F.mse_loss(s, t)


def attention_map(feature: Tensor, p: float = 2.0) -> Tensor:
    """Spatial attention ``normalize(mean_c |F|^p)``, flattened to (N, H*W), unit L2 per sample."""
    if feature.dim() != 4:
        raise ValueError(f"attention_map: expected an (N, C, H, W) map, got {tuple(feature.shape)}")
    return F.normalize(feature.float().abs().pow(p).mean(dim=1).flatten(1), dim=1)


def attention_transfer(student_feature: Tensor, teacher_feature: Tensor, p: float = 2.0) -> Tensor:
    """Attention transfer: ``mean_{n, pos} (A_s − A_t)²`` with ``A = attention_map(F, p)``.

    Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017. The larger map is
    pooled to the smaller one's size before the attention maps are formed; channel counts may
    differ because attention averages over channels.
    """
    s, t = match_spatial(student_feature.float(), teacher_feature.float())
    return (attention_map(s, p) - attention_map(t, p)).pow(2).mean()


def _pairwise_geometry(feature: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor, Tensor]:
    """Gram matrix, pairwise distances and the positive-distance mask of flattened, centred rows.

    Centring (translation invariant anyway) reduces cancellation in ``|x_i|² + |x_j|² − 2 x_i·x_j``.
    Distances for identical rows and the diagonal are exactly zero and masked out.
    """
    x = feature.float().flatten(1)
    x = x - x.mean(dim=0, keepdim=True)
    gram = x @ x.t()
    sq = gram.diagonal()
    d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2.0 * gram).clamp(min=0.0)
    positive = d2 > eps
    positive.fill_diagonal_(False)
    d = torch.where(positive, d2.clamp(min=eps).sqrt(), torch.zeros_like(d2))
    return gram, d, positive


def _normalized_distances(feature: Tensor) -> Tensor:
    _, d, positive = _pairwise_geometry(feature)
    return d / (d.sum() / positive.sum().clamp(min=1))


def _angles(feature: Tensor, eps: float = 1e-12) -> Tensor:
    """(N, N, N) tensor ``[j, i, k] = cos`` of the angle at x_j between x_i − x_j and x_k − x_j.

    Uses ``<x_i − x_j, x_k − x_j> = G_ik − G_ij − G_jk + G_jj`` so memory is O(N³), not O(N²·D).
    Degenerate triplets (i = j, k = j or duplicated samples) give 0, as normalising a zero vector.
    """
    gram, d, positive = _pairwise_geometry(feature)
    g_jj = gram.diagonal().view(-1, 1, 1)
    dot = gram.unsqueeze(0) - gram.unsqueeze(2) - gram.unsqueeze(1) + g_jj
    norm = d.unsqueeze(2) * d.unsqueeze(1)
    valid = positive.unsqueeze(2) & positive.unsqueeze(1)
    return torch.where(valid, dot / norm.clamp(min=eps), torch.zeros_like(dot))


def rkd_distance(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """RKD distance: ``smooth_l1(ψ_D(s), ψ_D(t))``, ``ψ_D`` = pairwise distances / their mean.

    Park et al., "Relational Knowledge Distillation", CVPR 2019. Features are flattened to
    (N, D), D may differ between student and teacher; the mean is over off-diagonal positive
    distances; Huber with beta 1, averaged over the N×N entries.
    """
    return F.smooth_l1_loss(
        _normalized_distances(student_feature), _normalized_distances(teacher_feature)
    )


def rkd_angle(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """RKD angle: ``smooth_l1`` between the N×N×N triplet-angle cosines (Park et al., CVPR 2019).

    ``cos∠(i, j, k) = <e_ij, e_kj>`` with ``e_ij = normalize(x_i − x_j)``.
    """
    return F.smooth_l1_loss(_angles(student_feature), _angles(teacher_feature))


def rkd(
    student_feature: Tensor,
    teacher_feature: Tensor,
    distance_weight: float = 25.0,
    angle_weight: float = 50.0,
) -> Tensor:
    """RKD: ``distance_weight · rkd_distance + angle_weight · rkd_angle`` (Park et al., CVPR 2019).

    Invariant to rotation, uniform scaling and translation of either feature set.
    """
    distance = rkd_distance(student_feature, teacher_feature)
    angle = rkd_angle(student_feature, teacher_feature)
    return distance_weight * distance + angle_weight * angle


def _pkt_conditional(feature: Tensor) -> Tensor:
    x = F.normalize(feature.float().flatten(1), dim=1)
    sim = (x @ x.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True)


def pkt(student_feature: Tensor, teacher_feature: Tensor, eps: float = 1e-7) -> Tensor:
    """Probabilistic knowledge transfer: KL between cosine-similarity conditionals.

    Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer",
    ECCV 2018. Rows are L2-normalised, ``s = (cos + 1)/2``, each row divided by its sum, then
    ``mean_i sum_j t_ij · log((t_ij + eps) / (s_ij + eps))``.
    """
    s = _pkt_conditional(student_feature)
    t = _pkt_conditional(teacher_feature)
    return (t * torch.log((t + eps) / (s + eps))).sum(dim=1).mean()


def similarity_preserving(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """Similarity-preserving KD: ``‖normalize(G_s) − normalize(G_t)‖²_F / N²``, ``G = F Fᵀ``.

    Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019. Features are
    flattened to (N, D) and each row of the N×N Gram matrix is L2-normalised.
    """

    def gram(feature: Tensor) -> Tensor:
        x = feature.float().flatten(1)
        return F.normalize(x @ x.t(), dim=1)

    n = student_feature.shape[0]
    return (gram(student_feature) - gram(teacher_feature)).pow(2).sum() / n**2


def pixel_map(student_map_logits: Tensor, teacher_map: Tensor) -> Tensor:
    """Pixel-map distillation: ``MSE(sigmoid(student map logits), teacher bona fide map)``.

    The bona fide pixel maps of DeepPixBiS (George & Marcel, "Deep Pixel-wise Binary Supervision
    for Face Presentation Attack Detection", ICB 2019). The student map is logits (N, 1, h, w);
    the teacher map holds probabilities in [0, 1], (N, 1, H, W) or (N, H, W). The teacher map is
    adaptive-average-pooled to h×w when it is at least as large in both dimensions, otherwise
    bilinearly interpolated (``align_corners=False``).
    """
    s = student_map_logits.float()
    t = teacher_map.float()
    if s.dim() == 3:
        s = s.unsqueeze(1)
    if t.dim() == 3:
        t = t.unsqueeze(1)
    size = tuple(s.shape[-2:])
    if tuple(t.shape[-2:]) != size:
        if t.shape[-2] >= size[0] and t.shape[-1] >= size[1]:
            t = F.adaptive_avg_pool2d(t, size)
        else:
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    if s.shape != t.shape:
        raise ValueError(
            f"pixel_map: student map {tuple(s.shape)} and teacher map {tuple(t.shape)} differ "
            "after resizing; both must have one channel and the same batch size"
        )
    return F.mse_loss(torch.sigmoid(s), t)


def _pooled_pair(
    student_feature: Tensor, teacher_feature: Tensor, name: str
) -> tuple[Tensor, Tensor]:
    def pool(feature: Tensor) -> Tensor:
        x = feature.float()
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1)

    s, t = pool(student_feature), pool(teacher_feature)
    if s.shape != t.shape:
        raise ValueError(
            f"{name}: pooled student feature {tuple(s.shape)} (from {tuple(student_feature.shape)})"
            f" and teacher feature {tuple(t.shape)} (from {tuple(teacher_feature.shape)}) differ; "
            "add an adapter so the student matches the teacher's channels"
        )
    return s, t


def one_class_kd(student_feature: Tensor, teacher_feature: Tensor, bonafide: Tensor) -> Tensor:
    """One-class KD: ``mean over bona fide samples of (1 − cos(f_s, f_t))``.

    Li et al., "One-Class Knowledge Distillation for Face Presentation Attack Detection",
    IEEE TIFS 2022. 4-D maps are global-average-pooled to (N, D); D must agree. ``bonafide`` is a
    boolean (N,) mask; attack samples do not contribute. Without any bona fide sample the result
    is a zero that still depends on the student, so backward works (no host sync either way).
    """
    if bonafide.dtype != torch.bool or bonafide.shape != student_feature.shape[:1]:
        raise ValueError(
            f"one_class_kd: bonafide must be a boolean mask of shape ({student_feature.shape[0]},),"
            f" got {bonafide.dtype} {tuple(bonafide.shape)}; pass e.g. labels == 0"
        )
    s, t = _pooled_pair(student_feature, teacher_feature, "one_class_kd")
    distance = 1.0 - F.cosine_similarity(s, t, dim=1)
    distance = torch.where(bonafide, distance, torch.zeros_like(distance))
    return distance.sum() / bonafide.sum().clamp(min=1)


def one_class_score(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """Test-time one-class score (N,): cosine similarity of the pooled features (Li et al. 2022).

    Higher means more bona fide, like every score in this package.
    """
    s, t = _pooled_pair(student_feature, teacher_feature, "one_class_score")
    return F.cosine_similarity(s, t, dim=1)
