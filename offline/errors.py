"""The offline package's errors."""

from vahini.errors import VahiniError


class TrainingSetError(VahiniError):
    """A training set that cannot be built as asked."""
