"""Stop-sequence matching on token pieces (pure logic, no model)."""

from __future__ import annotations

from chatgate.providers.local.stops import Piece, StopMatcher


def run(stops: list[str], pieces: list[str]) -> tuple[str, bool, list[str]]:
    matcher: StopMatcher[int] = StopMatcher(stops)
    emitted: list[Piece[int]] = []
    for i, text in enumerate(pieces):
        emitted += matcher.feed(Piece(text, i))
        if matcher.stopped:
            break
    else:
        emitted += matcher.flush()
    return "".join(p.text for p in emitted), matcher.stopped, [str(p.meta) for p in emitted]


def test_no_stops_passes_through() -> None:
    assert run([], ["a", "b"]) == ("ab", False, ["0", "1"])


def test_stop_inside_one_piece() -> None:
    assert run(["END"], ["hello END there"])[:2] == ("hello ", True)


def test_stop_spanning_pieces_is_never_emitted() -> None:
    text, stopped, _ = run(["\n\n"], ["one", "\n", "\n", "two"])
    assert (text, stopped) == ("one", True)


def test_partial_match_is_released_when_it_fails() -> None:
    text, stopped, metas = run(["abc"], ["x", "ab", "d"])
    assert (text, stopped) == ("xabd", False)
    assert metas == ["0", "1", "2"]


def test_earliest_of_several_stops_wins() -> None:
    assert run(["zz", "b"], ["a", "bzz"])[:2] == ("a", True)


def test_held_back_text_flushes_at_the_end() -> None:
    assert run(["STOP"], ["go", "ST"])[:2] == ("goST", False)
