"""Which variant of an operator's wire a peer speaks, where two variants cannot both be sent.

`clients` is the wire as public client code shows the operators (the default); `model` is
the wire of Sika's first model, kept so that tolerance of both stays exercised. The
adapters read every variant whatever their dialect; the dialect only decides what they
write (docs/operators.md, "Dialects").
"""

from __future__ import annotations

from enum import StrEnum


class Dialect(StrEnum):
    """A variant of the operators' wire, chosen by `SIKA_FLOOZ_DIALECT` / `SIKA_TMONEY_DIALECT`."""

    CLIENTS = "clients"
    MODEL = "model"
