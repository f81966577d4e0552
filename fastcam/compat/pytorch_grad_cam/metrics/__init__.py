"""pytorch-grad-cam's ``metrics`` (confidence change of the map-multiplied image, ROAD),
batched on the input's device. Submodules mirror grad-cam's: ``cam_mult_image``,
``perturbation_confidence``, ``road``."""
from .cam_mult_image import CamMultImageConfidenceChange, DropInConfidence, IncreaseInConfidence
from .perturbation_confidence import PerturbationConfidenceMetric
from .road import (NoisyLinearImputer, ROADCombined, ROADLeastRelevantFirst, ROADLeastRelevantFirstAverage,
                   ROADMostRelevantFirst, ROADMostRelevantFirstAverage)

__all__ = ["CamMultImageConfidenceChange", "DropInConfidence", "IncreaseInConfidence",
           "PerturbationConfidenceMetric", "NoisyLinearImputer", "ROADMostRelevantFirst",
           "ROADLeastRelevantFirst", "ROADMostRelevantFirstAverage", "ROADLeastRelevantFirstAverage",
           "ROADCombined"]
