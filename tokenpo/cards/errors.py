"""Errors about model cards and publishing (bad input, not a bug): one line, exit 2."""

from tokenpo.core.errors import UserError


class CardError(UserError):
    """A run folder, result or upload that a card or a push cannot be made from."""
