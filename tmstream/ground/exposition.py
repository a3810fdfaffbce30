"""Reading a ``/metrics`` page (Prometheus text exposition) with ``prometheus_client``'s parser.

For whoever reads a worker's counters without a Prometheus in between: the tests of the real
pipeline and the stream benchmarks.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse_samples(text: str) -> list[Sample]:
    """Every sample of an exposition page (a counter's ``_total`` and ``_created``, a histogram's
    ``_bucket``, ``_count`` and ``_sum``, each its own sample name)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def scrape_samples(url: str, timeout: float = 5) -> list[Sample]:
    """Every sample of the page at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_samples(response.read().decode())


def sample_sum(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none does)."""
    return sum(
        (
            sample.value
            for sample in samples
            if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items())
        ),
        0.0,
    )
