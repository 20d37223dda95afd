"""The Verbatim engine: corpus → passages → embeddings → search → quoted answers.

Nothing in this package imports Discord; the front ends in `bot/` call into it.
"""

__version__ = "0.1.0"
