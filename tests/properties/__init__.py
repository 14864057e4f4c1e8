"""Property-based tests: hostile input never crashes a parser or leaves partial state."""

from hypothesis import settings


def scaled(examples: int) -> int:
    """A per-test example count for slow (database) properties, multiplied under the ci profile."""
    return examples * 5 if settings.default.max_examples >= 400 else examples
