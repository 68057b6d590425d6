"""User-facing errors: the CLI prints their message as one line and exits with code 2."""


class WavecutError(Exception):
    """A mistake in the user's input (file, field or argument); never a bug in wavecut."""


class SpecError(WavecutError):
    """A GPU spec file or GPU name that cannot be used."""


class OpError(WavecutError):
    """An operator whose shape is impossible (zero channels, groups not dividing channels...)."""


class OutputError(WavecutError):
    """An output path that cannot be written (a directory, a path under a file, a full disk...)."""
