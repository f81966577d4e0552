"""Evaluation metrics of the saliency papers. Each takes
``(model, x, maps, targets, *, normalize=None, batch_size=...)`` and returns a
(B,) tensor of per-image values; the papers' figures are the means (×100 for
percentages). The localisation metrics (:func:`pointing_game`,
:func:`energy_pointing_game`, :func:`relevance_mass_accuracy`,
:func:`relevance_rank_accuracy`) take ``(maps, boxes)``: they need no model, nor do
the complexity metrics :func:`sparseness` and :func:`complexity` (``maps`` alone);
:func:`randomisation_sanity` (Adebayo et al. 2018) compares a method's maps on
the trained model with those on progressively re-initialised copies. :func:`road`
(Rong et al. 2022) removes pixels by noisy linear imputation; :func:`arcc` combines
it with coherency and the maps' L1 norm."""
from .arcc import arcc
from .avx import avx, avx_components, avx_of_pairs
from .confidence import (average_drop, average_drop_in_deletion, average_gain, average_increase,
                         confidence_changes)
from .insertion_deletion import auc, deletion_auc, insertion_auc, rise_blur, saliency_rank
from .complexity import complexity, sparseness
from .localisation import (boxes_mask, energy_pointing_game, pointing_game, relevance_mass_accuracy,
                           relevance_rank_accuracy)
from .road import road, road_changes
from .sanity import SanityResult, randomisation_sanity, spearman, ssim

__all__ = ["confidence_changes", "average_drop", "average_increase", "average_gain",
           "average_drop_in_deletion",
           "insertion_auc", "deletion_auc", "auc", "rise_blur", "saliency_rank", "avx",
           "avx_components", "avx_of_pairs", "pointing_game", "energy_pointing_game", "boxes_mask",
           "relevance_mass_accuracy", "relevance_rank_accuracy", "sparseness", "complexity",
           "randomisation_sanity", "SanityResult", "spearman", "ssim", "road", "road_changes", "arcc"]
