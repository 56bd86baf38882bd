"""One error type for bad input: it names the file, the line and the field."""


class InputError(Exception):
    def __init__(self, path, message, line=None, field=None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path + (f", line {line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


class ParamError(Exception):
    """An out-of-range or unknown value in params.yaml, naming the key."""

    def __init__(self, key, message):
        self.key = key
        super().__init__(f"params.yaml: {key}: {message}")
