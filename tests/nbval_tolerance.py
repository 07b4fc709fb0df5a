"""nbval compares numbers at a stated tolerance instead of character for character.

nbval re-executes the regression notebooks and compares each output with the stored one as
text. Losses, bits and perplexities depend on the CPU's kernels (AVX2 and AVX-512 sum in a
different order, and the precision rule picks bf16 only where it is native), so two correct
runs differ in the last printed digits. Here every sanitized output becomes a ``Tolerant``
string, whose equality is:

- the text with numbers taken out is identical (whitespace runs count as one space, so a
  column that widens by a digit still aligns);
- every integer (no decimal point, no exponent) is identical: counts, token totals,
  parameter counts, table shapes stay exact;
- every other number agrees within ``REL_TOL`` of the larger one, plus one unit of its last
  printed digit (``0.1234`` may be off by 0.0001, the rounding of the print itself).

``REL_TOL`` is 1% (``H2Q_NBVAL_REL_TOL`` overrides it, e.g. to show a check failing).
``test_book.py::test_the_tolerance_absorbs_other_kernels_and_catches_another_seed`` measures
both sides of it: AVX2 against AVX-512 kernels must move the smoke run's losses by less than
a tenth of it, a different seed by more than all of it.
"""

from __future__ import annotations

import os
import re

REL_TOL = float(os.environ.get("H2Q_NBVAL_REL_TOL", "0.01"))
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?")


def _value(token: str) -> tuple[float, bool, float]:
    """(value, is_integer, unit of the last printed digit) of a number token."""
    text = token.rstrip("%").replace(",", "")
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    unit = 10.0 ** (-decimals + (int(exponent) if exponent else 0))
    return float(text), "." not in mantissa and not exponent, unit


def split_numbers(text: str) -> tuple[str, list[str]]:
    """The text with each number replaced by ``#`` (whitespace collapsed), and the numbers."""
    numbers = NUMBER.findall(text)
    skeleton = re.sub(r"\s+", " ", NUMBER.sub("#", text)).strip()
    return skeleton, numbers


def numbers_agree(a: str, b: str, rel_tol: float = REL_TOL) -> bool:
    """Two printed numbers are equal (integers) or close (everything else), as above."""
    va, int_a, unit_a = _value(a)
    vb, int_b, unit_b = _value(b)
    if int_a or int_b:  # an integer, or a number whose printed form changed kind
        return int_a == int_b and va == vb
    return abs(va - vb) <= rel_tol * max(abs(va), abs(vb)) + max(unit_a, unit_b)


def texts_agree(a: str, b: str, rel_tol: float = REL_TOL) -> bool:
    skel_a, nums_a = split_numbers(a)
    skel_b, nums_b = split_numbers(b)
    return (skel_a == skel_b and len(nums_a) == len(nums_b)
            and all(numbers_agree(x, y, rel_tol) for x, y in zip(nums_a, nums_b, strict=True)))


class Tolerant(str):
    """A string that compares equal to another when ``texts_agree``."""

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return texts_agree(str(self), str(other))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = str.__hash__


def install() -> None:
    """Make nbval's sanitized outputs ``Tolerant`` (called from ``conftest.py``)."""
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell, "_h2q_tolerant", False):
        return
    original = IPyNbCell.sanitize

    def sanitize(self, s):
        out = original(self, s)
        return Tolerant(out) if isinstance(out, str) else out

    IPyNbCell.sanitize = sanitize
    IPyNbCell._h2q_tolerant = True


def pytest_configure(config):
    """Also usable as a plugin of its own: ``pytest -p nbval_tolerance --nbval ...``."""
    if config.pluginmanager.hasplugin("nbval"):
        install()
