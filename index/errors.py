"""Errors a user can act on. Each message says what happened and what to do next."""


class VerbatimError(Exception):
    """Base class: str(error) is safe and useful to show to a user."""


class IndexMissingError(VerbatimError):
    def __init__(self, index_dir: object) -> None:
        super().__init__(
            f"No index found in {index_dir}. Build it with `verbatim index build` "
            "(or `make run`, which builds it when it is missing)."
        )


class IndexMismatchError(VerbatimError):
    def __init__(self, what: str, built_with: object, configured: object) -> None:
        super().__init__(
            f"The index was built with {what} {built_with!r} but the settings say {configured!r}. "
            "Rebuild it with `verbatim index build`, or change the setting back."
        )


class IndexFormatError(IndexMismatchError):
    """The index on disk was written in a layout this version of Verbatim does not read."""

    def __init__(self, found: object, reads: int, unknown_fields: list[str] | None = None) -> None:
        newer = isinstance(found, int) and found > reads or bool(unknown_fields)
        shown = "none recorded" if found is None else found
        extra = f" with fields {', '.join(unknown_fields)}" if unknown_fields else ""
        VerbatimError.__init__(
            self,
            f"This index was built by {'a newer' if newer else 'an older'} version of Verbatim "
            f"(format {shown}{extra}, this version reads {reads}). Rebuild it with `verbatim index build`.",
        )


class IndexCorruptError(VerbatimError):
    pass


class InvalidQuestionError(VerbatimError):
    pass


class CorpusError(VerbatimError):
    pass


class ReindexInProgressError(VerbatimError):
    def __init__(self) -> None:
        super().__init__("A re-index is already running; the current index keeps answering until it ends.")


class IndexUnavailableError(VerbatimError):
    """The database holding the index (DATABASE_URL) cannot be reached or used right now."""
