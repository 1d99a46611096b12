"""The error hierarchy: every failure a user can cause or fix is a LegalRagError.

The CLI turns these into one readable line and a non-zero exit; the UI into a visible
message. Each carries what is at fault (file, line, value) and, where one exists, the fix.
"""

from __future__ import annotations


class LegalRagError(Exception):
    """Base class: a problem with input, configuration or state that the user can fix.

    ``code`` names the kind of problem for code that reacts to it (the UI's Chinese
    wording, the CLI's exit status): callers match on the type or the code, never on the
    English message. ``detail`` carries the values a caller may show (article, line …).
    """

    code = "error"

    def __init__(self, message: str, *, fix: str | None = None, code: str | None = None,
                 detail: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        if code is not None:
            self.code = code
        self.detail = dict(detail or {})

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.fix})" if self.fix else self.message


class ConfigError(LegalRagError):
    """A setting is missing or invalid."""

    code = "config"


class InputFileError(LegalRagError):
    """An input file cannot be used; names the file, the line (0: the whole file) and why."""

    code = "input_file"

    def __init__(self, path: str, line: int, reason: str, *, fix: str | None = None,
                 code: str | None = None, detail: dict | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}", fix=fix, code=code, detail=detail)
        self.path = path
        self.line = line
        self.reason = reason


class CorpusError(InputFileError):
    """A statute file cannot be used."""

    code = "corpus"


class IndexMissingError(LegalRagError):
    """No index has been built yet."""

    code = "index_missing"


class IndexMismatchError(LegalRagError):
    """The index on disk was built with another model or segmenter than configured."""

    code = "index_mismatch"


class IndexCorruptError(LegalRagError):
    """An index file is missing, truncated or fails its checksum."""

    code = "index_corrupt"


class IndexBusyError(LegalRagError):
    """Another build or update holds the index lock."""

    code = "index_busy"


class QueryError(LegalRagError):
    """A question or query cannot be answered as given (empty, too long, ...)."""

    code = "query"


class ModelError(LegalRagError):
    """The chat model cannot be found, assembled or loaded."""

    code = "model"
