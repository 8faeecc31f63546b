"""One exception type for mistakes a user can fix.

The CLI turns it into a single line on stderr and exit code 2, never a traceback. Anything else that
escapes is a bug in astroedge and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: the message names the file, field or value and says how to fix it."""
