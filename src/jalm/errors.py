"""The one error type a user can cause: the CLI prints it as a single line, never a traceback."""


class JalmError(Exception):
    """A problem with the user's input, files or configuration, explained in one line.

    Messages name the file (and line, where there is one) and the problem, e.g.
    ``corpus.jsonl:17: not valid JSON (Expecting value)``.
    """
