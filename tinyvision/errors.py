"""The one exception type users see: its message names the file and what is wrong."""


class TinyVisionError(Exception):
    """Bad input or an impossible request. The CLI prints the message and exits 2."""
