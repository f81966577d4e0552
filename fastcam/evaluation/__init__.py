"""The evaluation harness behind ``fastcam eval`` and ``fastcam explain``:
image/labels/boxes files (:mod:`.files`), running methods and metrics in
batches with timings (:mod:`.runner`), the tables (:mod:`.tables`) and the
published numbers (:mod:`.published`); the model comes from
:func:`fastcam.models.load_model`, the commands are :mod:`fastcam.apps.evaluate`."""
from ..errors import UsageError
from .files import ImageBatch, load_images, read_boxes, read_labels, transform_boxes
from .runner import METRICS, EvalResult, evaluate, predict
from .tables import describe_normalize, markdown_table, read_table_csv, t_interval, write_outputs

#: what the harness raises on a usage error (:class:`fastcam.errors.UsageError`)
EvalError = UsageError

__all__ = ["EvalError", "ImageBatch", "load_images", "read_boxes", "read_labels", "transform_boxes",
           "METRICS", "EvalResult", "evaluate", "predict", "describe_normalize",
           "markdown_table", "read_table_csv", "t_interval", "write_outputs"]
