"""The data stage: readers, item text, splits, stats and the prepared-dataset store."""

from recalign.data.prepare import prepare_dataset
from recalign.data.split import LeaveOneOut, leave_one_out, split_sequence
from recalign.data.store import DatasetRecord, PreparedDataset, load_prepared, write_prepared

__all__ = [
    "DatasetRecord",
    "LeaveOneOut",
    "PreparedDataset",
    "leave_one_out",
    "load_prepared",
    "prepare_dataset",
    "split_sequence",
    "write_prepared",
]
