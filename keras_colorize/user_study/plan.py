"""Which images a respondent sees, in which order.

Each respondent gets `per_respondent` images, one per source scene (so a real
photo and its colorization never both appear), with the sources as evenly
represented as the folders allow, in a random order. The order is a pure
function of the study seed and the respondent's number (1, 2, ...), so a
study can be re-run with the same assignments.
"""

from __future__ import annotations

import random
from typing import Iterable, Mapping, Sequence


def make_plan(
    available: Mapping[str, Iterable[str]],
    sources: Sequence[str],
    per_respondent: int,
    seed: int,
    respondent_number: int,
) -> list[tuple[str, str]]:
    """Returns the respondent's `(scene, source)` list in display order.

    Args:
      available: `{scene: sources that have an image of it}`.
      sources: all sources, in a fixed order (the order only matters for
        reproducibility).
      per_respondent: number of images; at most the number of scenes.
      seed: study seed.
      respondent_number: 1 for the first respondent, 2 for the next, ...

    Sources get `per_respondent // len(sources)` images each, the remainder
    going to randomly chosen sources; a source with too few scenes left gives
    its share to the others.

    Raises:
      ValueError: if `per_respondent` is not in `[1, number of scenes]`.
    """
    available = {scene: frozenset(have) for scene, have in available.items()}
    scenes = sorted(available)
    if not 1 <= per_respondent <= len(scenes):
        raise ValueError(
            f"per_respondent={per_respondent} must be between 1 and the number of distinct scenes ({len(scenes)})")
    rng = random.Random(f"keras_colorize.user_study:{seed}:{respondent_number}")
    rng.shuffle(scenes)

    quota = {source: per_respondent // len(sources) for source in sources}
    for source in rng.sample(list(sources), per_respondent % len(sources)):
        quota[source] += 1

    chosen: list[tuple[str, str]] = []
    leftovers: list[str] = []
    for scene in scenes:
        candidates = [s for s in sources if s in available[scene] and quota[s] > 0]
        if not candidates:
            leftovers.append(scene)
            continue
        most = max(quota[s] for s in candidates)
        source = rng.choice([s for s in candidates if quota[s] == most])
        quota[source] -= 1
        chosen.append((scene, source))
        if len(chosen) == per_respondent:
            break
    # Sources without enough scenes left their quota unfilled: fill from unused scenes.
    for scene in leftovers:
        if len(chosen) == per_respondent:
            break
        counts = {s: sum(1 for _, c in chosen if c == s) for s in available[scene]}
        fewest = min(counts.values())
        chosen.append((scene, rng.choice(sorted(s for s, n in counts.items() if n == fewest))))
    rng.shuffle(chosen)
    return chosen
