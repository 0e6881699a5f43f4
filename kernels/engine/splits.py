"""Which split each image of an upload belongs to: stratified per label, fixed by the images' content.

Within a label, the distinct image contents are ranked by their SHA-256; the first tenth (at least one
once the label has 3) is test, the next tenth val, the rest train. So:

- the splits depend only on each label's set of image contents, never on file names or order;
- every label with 3 or more distinct images has at least one image in val and one in test, and
  each split holds about 10/10/80 percent of every label;
- identical files of a label share a split, so a duplicate cannot put a training image into test;
- adding one image to a label moves at most three of that label's existing images to another split
  (at most one across each boundary, and one more when the label's quota grows), and never moves an
  image of another label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from headstart.kernels.errors import Invalid

__all__ = ["MIN_IMAGES_FOR_TEST", "SPLIT_POLICY", "assign_splits", "check_test_split", "quotas"]

SPLIT_POLICY = "stratified-hash"
MIN_IMAGES_FOR_TEST = 3
_SHOWN = 20  # how many labels a message names before "and N more"


def quotas(distinct: int) -> tuple[int, int, int]:
    """(train, val, test) image contents for a label with `distinct` different images."""
    if distinct < MIN_IMAGES_FOR_TEST:
        return distinct, 0, 0
    # A tenth each, rounded half up, and never zero: a label with no test image is never scored.
    held_out = max(1, (distinct + 5) // 10)
    return distinct - 2 * held_out, held_out, held_out


def assign_splits(images: Sequence[tuple[str, bytes]]) -> list[str]:
    """The split of each (label, content digest) pair, in the order given."""
    by_label: dict[str, set[bytes]] = defaultdict(set)
    for label, digest in images:
        by_label[label].add(digest)
    split_of: dict[tuple[str, bytes], str] = {}
    for label, digests in by_label.items():
        _, val, test = quotas(len(digests))
        for rank, digest in enumerate(sorted(digests)):
            split_of[label, digest] = "test" if rank < test else "val" if rank < test + val else "train"
    return [split_of[image] for image in images]


def check_test_split(
    test_counts: Mapping[str, int], label_sizes: Mapping[str, int], *, folders: bool
) -> None:
    """Refuse a dataset whose test split would be empty: its leaderboard could score nothing.

    `test_counts` is the number of test images per label; `label_sizes` what each label holds in all
    (distinct images for the hash split, files for split folders), which the message names.
    """
    if any(test_counts.values()):
        return
    if folders:
        raise Invalid(
            "the test split would be empty: the upload's test/ folder holds no usable image, and a "
            "leaderboard scores the test split; put images in test/<label>/ or upload label folders "
            "without split folders",
            detail={"test": dict(test_counts)},
        )
    sizes = [f"{label}: {count}" for label, count in sorted(label_sizes.items())]
    shown = ", ".join(sizes[:_SHOWN]) + (f" and {len(sizes) - _SHOWN} more" if len(sizes) > _SHOWN else "")
    raise Invalid(
        f"the test split would be empty: no label has {MIN_IMAGES_FOR_TEST} different images, the "
        f"fewest that give one to train, val and test ({shown})",
        detail=dict(label_sizes),
    )
