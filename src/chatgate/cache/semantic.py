"""The semantic cache's index: answers found again for prompts that mean the same.

Entries live in *partitions* — requests equal in everything but what the user wrote (model,
parameters, system prompt, earlier turns; and the key, unless the cache is shared) — and hold
the user text's unit embedding and the exact cache key of the answer. A new prompt reuses an
answer when its cosine similarity to an entry reaches the threshold *and* the two texts pass
guards that embeddings are known to blur: the same numbers (digits or number words), the same
negations, and content words not merely reordered ("is Python faster than Java?" vs "is Java
faster than Python?" embed at 0.99). The index is per process and bounded (least recently used
entries go first); the answers themselves stay in the response cache.
"""

from __future__ import annotations

import re
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SemanticIndex", "compatible"]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CARDINALS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_ORDINALS = "zeroth first second third fourth fifth sixth seventh eighth ninth tenth"
_NUMBERS = {word: str(value) for value, word in enumerate(_CARDINALS.split())}
_NUMBERS.update({word: str(value) for value, word in enumerate(_ORDINALS.split())})
_NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "without", "neither", "nor"})
_FUNCTION_WORDS = """a an the is are was were be been being do does did can could would should
    will shall may might must i you he she it we they me my your our their this that these those
    what which
    who whom whose how why when where there here of in on at to for from by with about as into
    than then and or but if so please me us it's what's"""
_FUNCTION = frozenset(_FUNCTION_WORDS.split())
_ROMAN = re.compile(r"\b(?:II|III|IV|VI|VII|VIII|IX|XI|XII)\b")


@dataclass(frozen=True, slots=True)
class _Signature:
    numbers: Counter[str]
    negated: bool
    content: tuple[str, ...]


def _signature(text: str) -> _Signature:
    romans = _ROMAN.findall(text)
    words = _WORD.findall(text.lower())
    numbers: Counter[str] = Counter(romans)
    negations = 0
    content: list[str] = []
    for raw in words:
        word = raw
        if word.endswith("n't"):
            negations += 1
            word = word[:-3]
        if word.isdigit() or word in _NUMBERS:
            numbers[_NUMBERS.get(word, word.lstrip("0") or "0")] += 1
        elif word in _NEGATIONS:
            negations += 1
        elif word not in _FUNCTION:
            content.append(word.rstrip("s") if len(word) > 3 else word)
    return _Signature(numbers, negations % 2 == 1, tuple(content))


def compatible(a: str, b: str) -> bool:
    """Whether two prompts similar by embedding may share an answer (see the module doc)."""
    first, second = _signature(a), _signature(b)
    if first.numbers != second.numbers or first.negated != second.negated:
        return False
    same_words = Counter(first.content) == Counter(second.content)
    return not (same_words and first.content != second.content)


@dataclass(slots=True)
class _Entry:
    partition: str
    text: str
    vector: np.ndarray
    key: str
    expires: float


@dataclass(slots=True)
class _Partition:
    ids: list[int] = field(default_factory=list)
    matrix: np.ndarray | None = None  # rows of the entries in ``ids``, rebuilt when it changes


class SemanticIndex:
    def __init__(self, threshold: float, max_entries: int):
        self.threshold = threshold
        self._max = max_entries
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._partitions: dict[str, _Partition] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, partition: str, vector: np.ndarray, text: str) -> tuple[str, float] | None:
        """The cache key of an answer to a prompt that means the same, and its similarity."""
        part = self._partitions.get(partition)
        if part is None or not part.ids:
            return None
        now = time.time()
        if part.matrix is None:
            part.matrix = np.vstack([self._entries[i].vector for i in part.ids])
        similarities = part.matrix @ vector
        for row in np.argsort(-similarities):
            similarity = float(similarities[row])
            if similarity < self.threshold:
                return None
            entry = self._entries[part.ids[row]]
            if entry.expires > now and compatible(entry.text, text):
                self._entries.move_to_end(part.ids[row])
                return entry.key, similarity
        return None

    def add(self, partition: str, vector: np.ndarray, text: str, key: str, ttl: float) -> None:
        part = self._partitions.setdefault(partition, _Partition())
        for i in part.ids:
            if self._entries[i].key == key:  # the same prompt again: refresh it
                self._entries[i].expires = time.time() + ttl
                self._entries.move_to_end(i)
                return
        entry_id, self._next = self._next, self._next + 1
        self._entries[entry_id] = _Entry(partition, text, vector, key, time.time() + ttl)
        part.ids.append(entry_id)
        part.matrix = None
        while len(self._entries) > self._max:
            self._drop(*self._entries.popitem(last=False))

    def _drop(self, entry_id: int, entry: _Entry) -> None:
        part = self._partitions[entry.partition]
        part.ids.remove(entry_id)
        part.matrix = None
        if not part.ids:
            del self._partitions[entry.partition]
