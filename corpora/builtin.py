"""Corpora the project generates itself: no download, no copied data, the same bytes on every machine.

`builtin-names` invents a few thousand pronounceable first names from a small syllable grammar (one per
line, like makemore's names.txt); `builtin-stories` writes short English-like fables from sentence
templates. Both use their own tiny PRNG (splitmix64), so the output never depends on Python's `random`.
"""
import re
from dataclasses import dataclass
from typing import Callable

MASK64 = (1 << 64) - 1


class SplitMix64:
    """A 64-bit PRNG in pure integer arithmetic: the same sequence on every Python and platform."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def pick(self, items):
        """One item; a string item "x:3" counts three times (a cheap weighting)."""
        return items[self.below(len(items))]

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent


def _weighted(spec: str) -> list[str]:
    """'a:3 b c:2' -> ['a','a','a','b','c','c'] ('_' stands for the empty string)."""
    out = []
    for item in spec.split():
        text, _, weight = item.partition(":")
        out += [text.replace("_", "")] * int(weight or 1)
    return out


# --- builtin-names: onset + vowel (+ coda) syllables, then a name-like ending ------------------------------
ONSETS = _weighted("_:3 b:2 br c:2 ch d:3 dr f g:2 gr h:2 j:3 k:3 kr l:4 m:4 n:3 p pr r:3 s:3 sh:2 st t:3 "
                   "th tr v:2 w z:2")
MIDDLE_ONSETS = _weighted("b d:2 l:5 m:2 n:4 r:5 s:2 t:2 v z th ch")
VOWELS = _weighted("a:8 e:6 i:5 o:4 u:2 ai ea ie ay")
CODAS = _weighted("_:12 n:3 l:2 r:2 s m th nd rt x")
ENDINGS_AFTER_CONSONANT = _weighted("_:4 a:6 ia:2 elle ine:2 on:2 er:2 en:2 ey:2 ie:2 is an:2 ina:2 ella "
                                    "o:2 us iel ah:2 ette")
ENDINGS_AFTER_VOWEL = _weighted("_:6 n:4 l:2 h:2 ley:2 lyn:2 ra:2 na:2 th r:2 s ssa ya line nne rd")
VOWEL_LETTERS = set("aeiouy")


def invent_name(rng: SplitMix64) -> str:
    """One invented name: 1-3 syllables and an optional ending, e.g. 'maryn', 'delora', 'thaxen'."""
    name = rng.pick(ONSETS) + rng.pick(VOWELS)
    for _ in range(rng.below(3)):
        name += rng.pick(MIDDLE_ONSETS) + rng.pick(VOWELS)
    name += rng.pick(CODAS)
    ending = ENDINGS_AFTER_VOWEL if name[-1] in VOWEL_LETTERS else ENDINGS_AFTER_CONSONANT
    return name + rng.pick(ending)


def _pronounceable(name: str) -> bool:
    """At most two vowels or two consonants in a row (th/ch/sh count as one), 3 to 10 letters."""
    letters = re.sub("th|ch|sh", "T", name)
    return 3 <= len(name) <= 10 and not re.search(r"[aeiouy]{3}|[^aeiouy]{3}|(.)\1\1", letters)


def generate_names(count: int = 30000, seed: int = 2024) -> str:
    """`count` distinct invented names, one per line, in generation order."""
    rng, seen, names = SplitMix64(seed), set(), []
    while len(names) < count:
        name = invent_name(rng)
        if name not in seen and _pronounceable(name):
            seen.add(name)
            names.append(name)
    return "\n".join(names) + "\n"


# --- builtin-stories: short fables from sentence templates -------------------------------------------------
ANIMALS = "fox hare owl badger heron mouse wolf crow otter deer bear goat cat dog lark frog".split()
ADJECTIVES = "old young clever hungry quiet brave tired proud little grey curious gentle lonely".split()
PLACES = ["the river", "the old mill", "the forest", "the hill", "the village", "the marsh", "the orchard",
          "the meadow", "the well", "the stone bridge"]
THINGS = ["a silver key", "a loaf of bread", "a red apple", "a lost boot", "a bright stone", "an old map",
          "a basket of plums", "a broken bell", "a jar of honey", "a long rope"]
SHELTERS = ["a big oak", "the stone bridge", "a thick hedge", "the mill roof", "a fallen log", "an old cart"]
FEELINGS = "happy afraid sad surprised angry glad worried".split()
OPENINGS = ["Once upon a time, a {adj} {a} lived near {place}.",
            "Long ago, there was a {adj} {a} who lived by {place}.",
            "In a small house near {place} lived a {adj} {a}."]
MIDDLES = ["One morning the {a} found {thing} under a tree.",
           "Every day the {a} walked to {place} and back again.",
           "One evening the {a} met a {adj2} {b} on the road.",
           "The {a} wanted {thing} more than anything in the world.",
           "The {b} told the {a} a story about {place}.",
           "When the rain came, the {a} hid under {shelter} with the {b}.",
           "The {a} was {feeling}, because the {b} had taken {thing}."]
ENDS = ["In the end, the {a} and the {b} became good friends.",
        "So the {a} learned that it is better to share than to keep.",
        "And from that day on, the {a} never went to {place} alone.",
        "The {b} laughed, and the {a} went home {feeling}.",
        "That is why the {a} still sings at night near {place}."]


def tell_story(rng: SplitMix64) -> str:
    """One fable of 3-6 sentences, with one animal as hero and another as companion."""
    a = rng.pick(ANIMALS)
    b = rng.pick([x for x in ANIMALS if x != a])
    words = dict(a=a, b=b, adj=rng.pick(ADJECTIVES), adj2=rng.pick(ADJECTIVES), place=rng.pick(PLACES),
                 shelter=rng.pick(SHELTERS), thing=rng.pick(THINGS),
                 feeling=rng.pick(FEELINGS))
    middles = list(MIDDLES)
    events = [middles.pop(rng.below(len(middles))) for _ in range(1 + rng.below(4))]  # no sentence twice
    sentences = [rng.pick(OPENINGS)] + events + [rng.pick(ENDS)]
    text = " ".join(s.format(**words) for s in sentences)
    return text.replace(" a o", " an o").replace(" a a", " an a")


def generate_stories(count: int = 1500, seed: int = 7) -> str:
    """`count` fables, each a paragraph followed by a blank line."""
    rng = SplitMix64(seed)
    return "".join(tell_story(rng) + "\n\n" for _ in range(count))


@dataclass(frozen=True)
class BuiltinCorpus:
    """A corpus generated on first use and written to the cache folder (it is regenerated if edited)."""
    name: str
    filename: str
    generate: Callable[[], str]
    description: str
    docs: bool = False
    licence: str = "generated by this project (MIT)"


BUILTINS: dict[str, BuiltinCorpus] = {b.name: b for b in [
    BuiltinCorpus("builtin-names", "builtin-names.txt", generate_names,
                  "30,000 invented first names from a syllable grammar, one per line (no download)", docs=True),
    BuiltinCorpus("builtin-stories", "builtin-stories.txt", generate_stories,
                  "1,500 short generated animal fables in simple English (no download)"),
]}
