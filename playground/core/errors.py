"""The one exception type that front ends turn into a clear message instead of a traceback."""


class PlaygroundError(Exception):
    """A problem the user can fix: the message says what is wrong and, where possible, what to do."""
