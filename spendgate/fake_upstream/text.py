"""Deterministic output text: one word per token, cycled, precomputed once per app."""

from __future__ import annotations

from dataclasses import dataclass

TOKENS_PER_DELTA = 4  # stream deltas carry a few tokens each, like the real APIs

ANSWER_TEXT = (
    "This is a deterministic reply from the Spendgate fake upstream. It stands in for a real model"
    " answer so that tests, demos and benchmarks see realistic streams of tokens with stable usage."
)

THINKING_TEXT = (
    "Let me think about this request step by step. The user wants an answer, so I will plan it"
    " briefly, check the constraints, then write a short and clear reply without any surprises."
)


@dataclass(frozen=True, slots=True)
class Corpus:
    """Text for ``n`` tokens, and the same text cut into stream deltas, without per-request joins."""

    cycle: str  # every word with a leading space
    prefixes: tuple[str, ...]  # prefixes[i]: the first i words of the cycle
    deltas: tuple[str, ...]  # the cycle cut into TOKENS_PER_DELTA-word pieces

    @classmethod
    def build(cls, text: str) -> Corpus:
        words = text.split()
        # A whole number of deltas per cycle keeps every full delta identical across cycles.
        if len(words) % TOKENS_PER_DELTA:
            words = words + words[: TOKENS_PER_DELTA - len(words) % TOKENS_PER_DELTA]
        pieces = [" " + w for w in words]
        prefixes = tuple("".join(pieces[:i]) for i in range(len(pieces) + 1))
        deltas = tuple(
            "".join(pieces[i : i + TOKENS_PER_DELTA]) for i in range(0, len(pieces), TOKENS_PER_DELTA)
        )
        return cls(cycle=prefixes[-1], prefixes=prefixes, deltas=deltas)

    @property
    def words(self) -> int:
        return len(self.prefixes) - 1

    def text(self, tokens: int) -> str:
        full, rest = divmod(max(tokens, 0), self.words)
        return (self.cycle * full + self.prefixes[rest])[1:]

    def delta_count(self, tokens: int) -> int:
        return -(-max(tokens, 0) // TOKENS_PER_DELTA)

    def delta(self, tokens: int, i: int) -> str:
        """Text of delta ``i`` of a ``tokens``-token output (the first one loses its leading space)."""
        per_cycle = len(self.deltas)
        start = i * TOKENS_PER_DELTA
        if start + TOKENS_PER_DELTA <= tokens:
            piece = self.deltas[i % per_cycle]
        else:
            offset = start % self.words
            piece = self.prefixes[offset + tokens - start][len(self.prefixes[offset]) :]
        return piece[1:] if i == 0 else piece
