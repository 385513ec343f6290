from __future__ import annotations

import pytest

from router import keys


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cat.jpg", "p/cat.jpg"),
        ("2026/03/cat photo.jpg", "p/2026/03/cat photo.jpg"),
        ("a+b%20c.jpg", "p/a+b%20c.jpg"),
        ("ünïcödé/猫.jpg", "p/ünïcödé/猫.jpg"),
        ("../../etc/passwd", "p/__/__/etc/passwd"),
        ("/leading//double/./dot.png", "p/leading/double/dot.png"),
        ("weird..name.jpg", "p/weird__name.jpg"),
        ("ctrl\x00\x1fchar.jpg", "p/ctrl__char.jpg"),
        # the runs' intermediates live under p/_runs/: no upload may write there
        ("_runs/0f3a/resize/cat.jpg", "p/__runs/0f3a/resize/cat.jpg"),
        ("/_runs/cat.jpg", "p/__runs/cat.jpg"),
        ("a/_runs/cat.jpg", "p/a/_runs/cat.jpg"),
    ],
)
def test_final_key_stays_under_the_pipeline(source: str, expected: str) -> None:
    assert keys.final_key("p", source) == expected


@pytest.mark.parametrize("length", [1000, 1024, 5000])
def test_long_keys_are_shortened_to_the_s3_limit(length: int) -> None:
    key = keys.final_key("pipeline", "d/" + "x" * length + ".jpg")
    assert len(key.encode()) <= keys.MAX_KEY_BYTES
    assert key.startswith("pipeline/")
    assert key.endswith(".jpg")
    assert ".." not in key


def test_long_keys_stay_distinct() -> None:
    a = keys.final_key("p", "a" + "x" * 2000 + ".jpg")
    b = keys.final_key("p", "b" + "x" * 2000 + ".jpg")
    assert a != b


def test_several_terminal_steps_get_their_own_folder() -> None:
    assert keys.final_key("p", "a/b.jpg", step="thumb") == "p/thumb/a/b.jpg"


def test_intermediate_key_is_per_run_and_step() -> None:
    assert keys.intermediate_key("p", "r1", "small", "a/b/c.jpg") == "p/_runs/r1/small/c.jpg"


def test_run_id_is_stable_per_object_version() -> None:
    first = keys.run_id("p", 1, "uploads", "a.jpg", "etag1")
    assert first == keys.run_id("p", 1, "uploads", "a.jpg", "etag1")
    assert first != keys.run_id("p", 1, "uploads", "a.jpg", "etag2")
    assert first != keys.run_id("p", 2, "uploads", "a.jpg", "etag1")


@pytest.mark.parametrize(
    ("key", "like", "expected"),
    [
        ("p/a.jpg", "x/y.png", "p/a.png"),
        ("p/a", "x/y.webp", "p/a.webp"),
        ("p/a.jpg", "x/noext", "p/a"),
        ("p.d/a", "y.png", "p.d/a.png"),
    ],
)
def test_with_extension_of(key: str, like: str, expected: str) -> None:
    assert keys.with_extension_of(key, like) == expected
