"""A dataset that survives damaged files met mid-training.

Headers are checked before training starts, but a file whose body is damaged (a truncated
JPEG, a cut download) only fails when it is decoded, which may be hours in. ``SkipUnreadable``
replaces such a sample by the next readable one, logs one warning line naming the file (once
per file and process) and counts the replaced samples in a counter shared with loader worker
processes; the engine writes the count to ``metrics.jsonl``. The step and the data order go on
unchanged, so nothing since the last checkpoint is lost.
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

from torch.utils.data import Dataset

from translate.errors import DataError

log = logging.getLogger("translate.data")


class SkipUnreadable(Dataset[Any]):
    """Wraps ``dataset`` (indexed by ``i`` or ``(i, seed)``): an item that raises
    ``DataError`` is replaced by item ``i + 1`` (same seed), and so on; ``skipped`` counts the
    replacements. Other attributes are the wrapped dataset's."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._skipped = multiprocessing.Value("q", 0)
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "_skipped", "_warned") or name.startswith("__"):
            raise AttributeError(name)  # during unpickling, before __init__'s fields exist
        return getattr(self.dataset, name)

    @property
    def skipped(self) -> int:
        """Samples replaced so far, in this process and its loader workers."""
        return int(self._skipped.value)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, seed = key if isinstance(key, tuple) else (key, None)
        n = len(self.dataset)
        problems: list[str] = []
        for offset in range(n):
            j = (index + offset) % n
            try:
                return self.dataset[j if seed is None else (j, seed)]
            except DataError as exc:
                message = str(exc)
                problems.append(message)
                with self._skipped.get_lock():
                    self._skipped.value += 1
                if message not in self._warned:
                    self._warned.add(message)
                    log.warning("skipped a sample: %s", message)
        raise DataError(f"no readable sample left ({problems[0] if problems else 'empty'})")
