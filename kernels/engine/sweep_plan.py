"""Which heads a sweep trains, with no Keras: the service checks a grid with it before anything
starts, and the sweep widget counts the heads as the user edits the lists.
"""

from __future__ import annotations

import math
import random

from pydantic import ValidationError

from headstart.kernels.errors import Invalid
from headstart.kernels.schemas import SweepGrid, TrainingConfig

AXES = tuple(SweepGrid.model_fields)


def _axes(grid: SweepGrid) -> dict[str, list]:
    """The lists given, each without repeats, in the grid's field order."""
    given = {axis: values for axis, values in grid.model_dump().items() if values is not None}
    if not given:
        raise Invalid(f"a sweep's grid needs at least one list of values: {', '.join(AXES)}")
    empty = [axis for axis, values in given.items() if not values]
    if empty:
        raise Invalid(f"the sweep's {', '.join(empty)} list is empty")
    return {axis: list(dict.fromkeys(values)) for axis, values in given.items()}


def sweep_size(grid: SweepGrid, draws: int | None = None) -> int:
    """How many heads the grid makes: its combinations, or `draws` of them when fewer."""
    combinations = math.prod(len(values) for values in _axes(grid).values())
    return combinations if draws is None else min(draws, combinations)


def sweep_configs(
    grid: SweepGrid, base: TrainingConfig, *, draws: int | None = None, limit: int
) -> list[TrainingConfig]:
    """The configs of every head: the base config with each combination of the grid's values.

    With `draws`, that many distinct combinations are picked at random (seeded by the base's seed).
    More heads than `limit` is refused before anything is built.
    """
    count = sweep_size(grid, draws)
    if count > limit:
        raise Invalid(
            f"the sweep makes {count} heads, over the limit of {limit}; give fewer values or --draws",
            detail={"limit": limit, "heads": count},
        )
    if not base.frozen_body:
        raise Invalid("a sweep trains heads on cached features, so fine_tune_layers must be 0")
    given = _axes(grid)
    axes, lists = list(given), list(given.values())
    sizes = [len(values) for values in lists]
    total = math.prod(sizes)
    picked = range(total) if count == total else sorted(random.Random(base.seed).sample(range(total), count))
    configs = []
    for number in picked:
        values = {}
        for axis, values_of, size in zip(reversed(axes), reversed(lists), reversed(sizes), strict=True):
            number, position = divmod(number, size)
            values[axis] = values_of[position]
        try:
            configs.append(TrainingConfig(**{**base.model_dump(), **values}))
        except ValidationError as error:
            first = error.errors()[0]
            raise Invalid(f"the sweep's {first['loc'][0]} value is refused: {first['msg']}") from error
    return configs
