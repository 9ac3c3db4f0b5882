"""One exception type for mistakes a user can fix; the CLIs print its message as one line."""


class UserError(Exception):
    """Bad input, a missing file, a refused overwrite: printed without a traceback, exit code 2."""
