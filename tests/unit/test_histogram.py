"""Fixed log buckets: each duration lands in the bucket whose bounds hold it, and histograms
made apart add up to the one made of all their durations, quantiles included."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from drumbeat.histogram import BOUNDS, BUCKETS, FLOOR, GROWTH, Histogram, bucket

durations = st.lists(st.floats(min_value=0.0, max_value=1000.0), max_size=200)


def made_of(seconds: list[float]) -> Histogram:
    histogram = Histogram()
    for s in seconds:
        histogram.add(s, items=2)
    return histogram


def test_each_bound_belongs_to_its_own_bucket_and_the_last_holds_the_rest() -> None:
    assert bucket(0.0) == bucket(FLOOR) == 0
    for index, bound in enumerate(BOUNDS):
        assert bucket(bound) == index
        assert bucket(bound * 1.0001) == index + 1
    assert bucket(10_000.0) == BUCKETS - 1
    assert 100 < BOUNDS[-1] < 200  # about two minutes


@given(durations, durations)
def test_two_histograms_merged_are_the_histogram_of_all_their_durations(
    a: list[float], b: list[float]
) -> None:
    merged = made_of(a)
    merged.merge(made_of(b))
    whole = made_of(a + b)
    assert merged.buckets == whole.buckets
    assert (merged.count, merged.items, merged.maximum) == (whole.count, whole.items, whole.maximum)
    for q in (0.5, 0.99):
        assert merged.quantile(q) == whole.quantile(q)


@given(st.lists(st.floats(min_value=1e-6, max_value=100.0), min_size=1, max_size=200))
def test_a_quantile_is_at_most_a_bucket_above_the_true_one_and_never_above_the_max(
    seconds: list[float],
) -> None:
    histogram = made_of(seconds)
    ordered = sorted(seconds)
    for q in (0.5, 0.99):
        true = ordered[max(1, math.ceil(q * len(ordered))) - 1]  # the rank-th duration
        found = histogram.quantile(q)
        assert true <= found <= max(true * GROWTH * (1 + 1e-9), FLOOR)
        assert found <= max(seconds)


def test_export_and_load_give_back_the_same_histogram() -> None:
    histogram = made_of([0.001, 0.002, 0.5, 0.5])
    assert Histogram.load(histogram.export()) == histogram
    assert histogram.export()["buckets"] == {
        str(bucket(0.001)): 1,
        str(bucket(0.002)): 1,
        str(bucket(0.5)): 2,
    }


def test_an_empty_histogram_has_zero_quantiles() -> None:
    assert Histogram().quantile(0.5) == 0.0
