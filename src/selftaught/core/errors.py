"""Errors for bad input: they name the file, the line and the field (or the params key)."""


class InputError(Exception):
    def __init__(self, path, message, line=None, field=None):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = self.path + (f", line {line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")

    def __reduce__(self):             # pickled whole: a vLLM data-parallel rank raises it in the stage
        return InputError, (self.path, self.message, self.line, self.field)


class ParamError(Exception):
    """A bad value in the params file, naming the key (`judge.samples`) or the file itself (key "")."""

    def __init__(self, key, message, source="params.yaml"):
        self.key, self.message, self.source = key, message, str(source)

    def __reduce__(self):
        return ParamError, (self.key, self.message, self.source)

    def __str__(self):
        return f"{self.source}: {self.key + ': ' if self.key else ''}{self.message}"


def os_error(e: OSError) -> InputError:
    """An OSError that reached the top (a full disk, a missing or unreadable path) as one InputError naming
    the path, without the traceback."""
    where = e.filename if e.filename is not None else "(no path)"
    extra = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    return InputError(f"{where}{extra}", e.strerror or str(e))
