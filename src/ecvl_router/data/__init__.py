"""Response Score Dataset: storage, validation, statistics, pair views and splits."""

from ecvl_router.data.problems import Problem, RSDValidationError
from ecvl_router.data.rsd import RSD, DatasetInfo, PairView
from ecvl_router.data.storage import check_dataset, load_rsd, write_interchange, write_parquet

__all__ = [
    "RSD",
    "DatasetInfo",
    "PairView",
    "Problem",
    "RSDValidationError",
    "check_dataset",
    "load_rsd",
    "write_interchange",
    "write_parquet",
]
