"""The evaluation harness behind ``fastcam eval`` and ``fastcam explain``:
image/labels/boxes files (:mod:`.files`), running methods and metrics in
batches with timings (:mod:`.runner`), committing each part's per-image results
as it finishes so a run resumes (:mod:`.parts`), the tables (:mod:`.tables`),
the published numbers (:mod:`.published`) and the papers' claims judged from
paired intervals (:mod:`.claims`); the model comes from
:func:`fastcam.models.load_model`, the commands are :mod:`fastcam.apps.evaluate`."""
from ..errors import UsageError
from .claims import Claim, ClaimResult, PairedInterval, claims_table, judge, paired_interval, verdict
from .files import ImageBatch, load_images, read_boxes, read_labels, transform_boxes
from .parts import PartStore
from .runner import METRICS, EvalResult, evaluate, predict
from .tables import describe_normalize, markdown_table, read_table_csv, t_interval, write_outputs

#: what the harness raises on a usage error (:class:`fastcam.errors.UsageError`)
EvalError = UsageError

__all__ = ["EvalError", "ImageBatch", "load_images", "read_boxes", "read_labels", "transform_boxes",
           "METRICS", "EvalResult", "evaluate", "predict", "describe_normalize",
           "markdown_table", "read_table_csv", "t_interval", "write_outputs", "PartStore",
           "Claim", "ClaimResult", "PairedInterval", "paired_interval", "verdict", "judge", "claims_table"]
