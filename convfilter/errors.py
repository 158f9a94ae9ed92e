"""The errors a user can cause, each with the exit status the command line gives it."""


class ConvFilterError(ValueError):
    """Base of every error a user can cause; the message is one line meant for them."""

    exit_code = 1


class UsageError(ConvFilterError):
    """A bad option or combination of options, found before any image is written."""

    exit_code = 2


class ArgumentError(UsageError):
    """An argument of ``convolve`` is invalid (the engine's own error; a ``UsageError`` to the
    command line)."""


class KernelError(UsageError):
    """A kernel file, kernel name or kernel option is invalid."""


class ImageError(ConvFilterError):
    """An image could not be read, decoded or written."""

    exit_code = 1
