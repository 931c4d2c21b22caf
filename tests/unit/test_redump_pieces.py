"""The restore test's piece-by-piece re-dump verdict (pure): same verdict as the whole hash,
and the table that differs is named."""

from __future__ import annotations

from mysqlops.restore.redump import CopyContent, compare_pieces

EXPECTED = CopyContent(
    "shop",
    "f" * 64,
    {
        ("shop", "structure", "a"): "1" * 64,
        ("shop", "data", "a"): "2" * 64,
        ("shop", "data", "b`q"): "3" * 64,
        ("shop", "triggers", "b`q"): "4" * 64,
        ("shop", "other", ""): "5" * 64,
    },
)


def test_every_piece_equal_passes_one_check() -> None:
    (check,) = compare_pieces("shop", EXPECTED, dict(EXPECTED.pieces), {}, early=2)
    assert check.passed and check.name == "shop: re-dump content hash"
    assert "2 table(s)" in check.detail and "2 while others loaded" in check.detail


def test_a_differing_piece_fails_naming_its_table_only() -> None:
    restored = {**EXPECTED.pieces, ("shop", "data", "b`q"): "9" * 64}
    checks = compare_pieces("shop", EXPECTED, restored, {}, early=0)
    assert [(c.name, c.passed) for c in checks] == [
        ("shop: re-dump content hash", False),
        ("shop.b`q: re-dump content hash", False),
    ]
    assert "`b``q`" in checks[0].detail and checks[1].detail.startswith("rows of `b``q`: sha256 9999")


def test_missing_extra_and_failed_pieces_fail() -> None:
    restored = dict(EXPECTED.pieces)
    del restored[("shop", "data", "a")]
    restored[("shop", "structure", "new")] = "6" * 64
    restored[("shop", "other", "")] = "7" * 64
    checks = compare_pieces(
        "shop", EXPECTED, restored, {("shop", "data", "a"): "re-dump failed: boom"}, early=0
    )
    failed = {c.name: c.detail for c in checks if not c.passed}
    assert failed["shop.a: re-dump content hash"] == "rows of `a`: re-dump failed: boom"
    assert failed["shop.new: re-dump content hash"] == "structure of `new`: not in the backup"
    assert "views, routines, events" in failed["shop (views, routines, events): re-dump content hash"]
    assert not any(c.passed for c in checks)
