"""The evaluation harness behind ``fastcam eval`` and ``fastcam explain``:
model loading (:mod:`.models`), image/labels/boxes files (:mod:`.files`),
running methods and metrics in batches with timings (:mod:`.runner`), and the
tables (:mod:`.tables`)."""
from .errors import EvalError
from .files import ImageBatch, load_images, read_boxes, read_labels, transform_boxes
from .models import LoadedModel, load_model, resolve_normalize
from .runner import METRICS, EvalResult, evaluate
from .tables import markdown_table, read_table_csv, t_interval, write_outputs

__all__ = ["EvalError", "ImageBatch", "load_images", "read_boxes", "read_labels", "transform_boxes",
           "LoadedModel", "load_model", "resolve_normalize", "METRICS", "EvalResult", "evaluate",
           "markdown_table", "read_table_csv", "t_interval", "write_outputs"]
