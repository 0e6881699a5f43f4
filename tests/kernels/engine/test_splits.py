"""The stratified hash split: quotas per label, order independence, stability, and the refusal."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headstart.kernels.engine.splits import assign_splits, check_test_split, quotas
from headstart.kernels.errors import Invalid


def digest(n: int) -> bytes:
    return hashlib.sha256(str(n).encode()).digest()


# Per label, how many distinct images and how many extra copies of one of them.
labels_strategy = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3)), min_size=1, max_size=6)


def upload(sizes: list[tuple[int, int]]) -> list[tuple[str, bytes]]:
    images = []
    for number, (distinct, copies) in enumerate(sizes):
        label = f"label-{number}"
        contents = [digest(number * 1000 + n) for n in range(distinct)]
        images += [(label, content) for content in contents] + [(label, contents[0])] * copies
    return images


@settings(max_examples=300, deadline=None)
@given(labels_strategy, st.randoms(use_true_random=False))
def test_every_label_of_three_gets_val_and_test_in_its_share(
    sizes: list[tuple[int, int]], rng: random.Random
) -> None:
    images = upload(sizes)
    rng.shuffle(images)
    splits = assign_splits(images)
    for number, (distinct, _) in enumerate(sizes):
        label = f"label-{number}"
        per_split = {
            split: {d for (lab, d), s in zip(images, splits, strict=True) if lab == label and s == split}
            for split in ("train", "val", "test")
        }
        counts = (len(per_split["train"]), len(per_split["val"]), len(per_split["test"]))
        assert counts == quotas(distinct)
        if distinct >= 3:
            assert counts[1] >= 1 and counts[2] >= 1
            # About a tenth each: never off by more than half an image, except the floor of one.
            assert abs(counts[2] - distinct / 10) <= 0.5 or counts[2] == 1
        else:
            assert counts == (distinct, 0, 0)
    # Identical files of a label share a split.
    seen: dict[tuple[str, bytes], str] = {}
    for image, split in zip(images, splits, strict=True):
        assert seen.setdefault(image, split) == split


@settings(max_examples=200, deadline=None)
@given(labels_strategy, st.randoms(use_true_random=False))
def test_the_split_does_not_depend_on_order(sizes: list[tuple[int, int]], rng: random.Random) -> None:
    images = upload(sizes)
    shuffled = images[:]
    rng.shuffle(shuffled)
    first = dict(zip(images, assign_splits(images), strict=True))
    again = dict(zip(shuffled, assign_splits(shuffled), strict=True))
    assert first == again


@settings(max_examples=300, deadline=None)
@given(labels_strategy, st.integers(0, 5), st.integers(0, 10**9))
def test_adding_an_image_moves_at_most_three_of_its_label(
    sizes: list[tuple[int, int]], which: int, new: int
) -> None:
    images = upload(sizes)
    label = f"label-{which % len(sizes)}"
    grown = [*images, (label, hashlib.sha256(f"new {new}".encode()).digest())]
    before = dict(zip(images, assign_splits(images), strict=True))
    after = dict(zip(grown, assign_splits(grown), strict=True))
    moved = [image for image in before if before[image] != after[image]]
    assert len(moved) <= 3
    assert all(lab == label for lab, _ in moved)


@pytest.mark.parametrize(
    ("distinct", "expected"),
    [
        (1, (1, 0, 0)),
        (2, (2, 0, 0)),
        (3, (1, 1, 1)),
        (10, (8, 1, 1)),
        (14, (12, 1, 1)),
        (15, (11, 2, 2)),
        (6000, (4800, 600, 600)),
    ],
)
def test_quotas(distinct: int, expected: tuple[int, int, int]) -> None:
    assert quotas(distinct) == expected


def test_the_refusal_names_the_labels() -> None:
    check_test_split({"a": 0, "b": 1}, {"a": 2, "b": 3}, folders=False)  # one test image is enough
    many = {f"label-{n:02d}": 2 for n in range(25)}
    with pytest.raises(Invalid) as refused:
        check_test_split(dict.fromkeys(many, 0), many, folders=False)
    assert refused.value.message.endswith(
        "(label-00: 2, label-01: 2, " + ", ".join(f"label-{n:02d}: 2" for n in range(2, 20)) + " and 5 more)"
    )
    assert "\n" not in refused.value.message
    assert Counter(refused.value.detail.values()) == {2: 25}
