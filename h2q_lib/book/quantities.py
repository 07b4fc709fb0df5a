"""Numbers that must read the same on every page of the book: the registry (``QUANTITIES``:
each quantity with the phrasings that print it) and the check across pages
(``quantity_values``), over each page's visible text (``book.page_text.visible_text``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# a number as the book prints it: 259, 1,684.6, -3.7, \u22123.7 (not the comma after it: "259, 6.9")
_NUMBER = r"[+\-\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_APOS = "['\u2019]"


@dataclass(frozen=True)
class Quantity:
    """A number that must read the same on every page of the book.

    ``patterns`` are regular expressions over a page's visible text (whitespace collapsed to
    single spaces), each with one capture group: the value as printed. ``examples`` are the
    phrasings each pattern was written for, with the value it must capture (a test checks
    them). Values that are numbers agree when one is the other rounded (259 and 258.8);
    other values (a range, ``7.0 to 8.3``) must be equal as text.
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]


QUANTITIES: tuple[Quantity, ...] = (
    Quantity(
        name="claim_word_ppl_test",
        description="the report's loss (1.0828 nats/char) as a perplexity per WikiText-103 test "
                    "word, GPT-2's scale (all words of the split)",
        patterns=(
            r"perplexity of (" + _NUMBER + r") on the WikiText-103 test split",
            r"(" + _NUMBER + r") per test word",
            r"per word of the test split \([^)]*\) the same loss is (" + _NUMBER + r")",
            r"On the test split" + _APOS + r"s words the report" + _APOS + r"s loss is ("
            + _NUMBER + r") per word",
            r"test \(same loss per char\): (" + _NUMBER + r") per word",
        ),
        examples=(
            ("own loss is a perplexity of 259 on the WikiText-103 test split", "259"),
            ("1.562 bits per character; 259 per test word (The report\u2019s claim", "259"),
            ("per word of the test split (all its WikiText words, GPT-2\u2019s count) the same "
             "loss is 259, 6.9 times", "259"),
            ("On the test split\u2019s words the report\u2019s loss is 259 per word", "259"),
            ("= 263.6 per word; test (same loss per char): 258.8 per word.", "258.8"),
        ),
    ),
    Quantity(
        name="claim_ratio_to_gpt2_small",
        description="the claim's test word perplexity over GPT-2 small's published 37.5",
        patterns=(
            r"(\d+(?:\.\d+)?(?: to \d+(?:\.\d+)?)?) times GPT-2 [Ss]mall" + _APOS + r"s",
        ),
        examples=(
            ("split, 6.9 times GPT-2 small\u2019s 37.5: worse, not better", "6.9"),
            ("259 per word, 6.9 times GPT-2 Small\u2019s 37.5.", "6.9"),
            ("a word perplexity of 264, 7.0 times GPT-2 small\u2019s (2.95", "7.0"),
            ("the report\u2019s model has 7.0 to 8.3 times GPT-2 small\u2019s word perplexity",
             "7.0 to 8.3"),
        ),
    ),
    Quantity(
        name="claim_bits_per_character",
        description="the report's best validation loss in bits per character (loss / ln 2)",
        patterns=(
            r"(\d\.\d+) bits per character;",
            r"loss 1\.0828 nats/char = (\d\.\d+) bits/char",
            r"On characters its (\d\.\d+) bits/char",
            r"exp\(1\.0828\) = 2\.95; (\d\.\d+) bits per character",
        ),
        examples=(
            ("exp(1.0828) = 2.95; 1.562 bits per character better than", "1.562"),
            ("perplexity per character 1.562 bits per character; 259 per test word", "1.562"),
            ("loss 1.0828 nats/char = 1.5622 bits/char; validation", "1.5622"),
            ("On characters its 1.56 bits/char compares with 1.11 (enwik8)", "1.56"),
        ),
    ),
    # The bf16 / fp32 speed-up is not registered: every process (a training session, a
    # notebook's execution, a benchmark) times its own probe and prints it as its own
    # "precision reason", so the values differ by design and each is labelled as its process's.
    Quantity(
        name="stated_step100_difference_pct",
        description="the stated recipe's run against the report's Loss at step 100, in percent "
                    "(a sign convention and a reference value: one of them, everywhere)",
        patterns=(
            r"step 100: the report" + _APOS + r"s [\d.]+ against our [\d.]+ \((" + _NUMBER
            + r") ?% of ours\)",
            r"stated: step 100: report [\d.]+ vs ours [\d.]+ \((" + _NUMBER + r") ?%\)",
            r"stated \(reading stated,[^)]*\) (?:reproduces|misses) row 100 \([\d.]+ vs "
            r"[\d.]+, (" + _NUMBER + r") ?%\)",
        ),
        examples=(
            ("step 100: the report\u2019s 2.7180 against our 2.6179 (+3.8% of ours);", "+3.8"),
            ("Found: stated: step 100: report 2.7180 vs ours 2.6179 (-3.7%); step 500", "-3.7"),
            ("stated (reading stated, the report\u2019s schedule, 500 steps trained, 0.78 passes "
             "over its training text) reproduces row 100 (2.618 vs 2.718, -3.7 %);", "-3.7"),
        ),
    ),
    Quantity(
        name="stated_step500_difference_pct",
        description="the stated recipe's run against the report's Loss at step 500, in percent",
        patterns=(
            r"step 500: the report" + _APOS + r"s [\d.]+ against our [\d.]+ \((" + _NUMBER
            + r") ?% of ours\)",
            r"stated: step 100: report [\d.]+ vs ours [\d.]+ \([^)]*\); step 500: report "
            r"[\d.]+ vs ours [\d.]+ \((" + _NUMBER + r") ?%\)",
            r"stated \(reading stated,[^)]*\) (?:reproduces|misses) row 100 \([^)]*\); "
            r"(?:reproduces|misses) row 500 \([\d.]+ vs [\d.]+, (" + _NUMBER + r") ?%\)",
        ),
        examples=(
            ("step 500: the report\u2019s 1.5178 against our 2.2946 (-33.9% of ours).",
             "-33.9"),
            ("stated: step 100: report 2.7180 vs ours 2.6179 (-3.7%); step 500: report 1.5178 "
             "vs ours 2.2946 (+51.2%) |", "+51.2"),
            ("stated (reading stated, the report\u2019s schedule, 500 steps trained) reproduces "
             "row 100 (2.618 vs 2.718, -3.7 %); misses row 500 (2.295 vs 1.518, +51.2 %);",
             "+51.2"),
        ),
    ),
    Quantity(
        name="rerun_wall_minutes",
        description="the wall time of the stated recipe's rerun (the prefix run), in minutes",
        patterns=(
            r"(\d[\d,]*(?:\.\d+)?) minutes of wall time",
        ),
        examples=(
            ("one shared 2-core CPU; 81 minutes of wall time for the rerun.", "81"),
            ("The run processed 8,192,000 tokens in 81 minutes of wall time, an average", "81"),
        ),
    ),
    Quantity(
        name="rerun_tokens_per_s",
        description="the rerun's mean training rate over its wall time, tokens/s",
        patterns=(
            r"an average of (" + _NUMBER + r") tokens/s over the wall time",
            r"mean tokens per s (" + _NUMBER + r")",
        ),
        examples=(
            ("in 81 minutes of wall time, an average of 1,685 tokens/s over the wall time on",
             "1,685"),
            ("elapsed s 4,863.0 mean tokens per s 1,684.6 peak rss GB 1.928", "1,684.6"),
        ),
    ),
    Quantity(
        name="recipe_hours_fastest",
        description="hours the report's whole recipe (6,350 steps) takes at the fastest "
                    "training rate measured here",
        patterns=(
            r"at the fastest rate measured here, (\d+(?:\.\d+)?) hours",
            r"the report" + _APOS + r"s whole recipe would take (\d+(?:\.\d+)?) hours",
        ),
        examples=(
            ("the report\u2019s full 6,350 steps (at the fastest rate measured here, 9.9 hours)",
             "9.9"),
            ("fastest setting) the report\u2019s whole recipe would take 9.9 hours (The", "9.9"),
        ),
    ),
)


def _as_number(value: str) -> Decimal | None:
    try:
        return Decimal(value.replace(",", "").replace("\u2212", "-"))
    except InvalidOperation:
        return None


def _agree(a: str, b: str) -> bool:
    """Whether two printed values are one value: equal numbers, or one the other rounded
    (259 and 258.8; 1.56 and 1.5622); otherwise equal text."""
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return " ".join(a.split()) == " ".join(b.split())
    coarsest = max(int(x.as_tuple().exponent), int(y.as_tuple().exponent))
    return abs(x - y) <= Decimal(5) * Decimal(10) ** (coarsest - 1)


def find_quantities(pages_text: Mapping[str, str],
                    registry: Iterable[Quantity] = QUANTITIES) -> dict[str, dict[str, list[str]]]:
    """For each quantity, each value found and the pages it was found on (in page order)."""
    found: dict[str, dict[str, list[str]]] = {}
    for quantity in registry:
        values: dict[str, list[str]] = {}
        for page, text in pages_text.items():
            flat = " ".join(text.split())
            for pattern in quantity.patterns:
                for match in re.finditer(pattern, flat):
                    pages = values.setdefault(match.group(1), [])
                    if page not in pages:
                        pages.append(page)
        found[quantity.name] = values
    return found


def quantity_values(pages_text: Mapping[str, str],
                    registry: Iterable[Quantity] = QUANTITIES) -> list[str]:
    """Registered quantities that read two ways across the book: one problem per quantity,
    listing each value with its pages. ``pages_text`` maps a page name to its visible text
    (``visible_text``). Values agree when one is the other rounded."""
    problems = []
    for name, values in find_quantities(pages_text, registry).items():
        printed = list(values)
        if all(_agree(a, b) for i, a in enumerate(printed) for b in printed[i + 1:]):
            continue
        listed = "; ".join(f"{value} ({', '.join(pages)})" for value, pages in values.items())
        problems.append(f"{name} has {len(values)} values: {listed}")
    return problems
