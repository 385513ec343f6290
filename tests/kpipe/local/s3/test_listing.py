"""Listings through the front: v1 and v2, prefixes, delimiters, pages and odd keys, in order."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kpipe.local.s3.conftest import QUIET

pytestmark = pytest.mark.slow

# Names that sort below "/" beside a folder: the order SeaweedFS got wrong.
KEYS = sorted(
    ["a-b/1.jpg", "a.txt", "a/1.jpg", "a/2/3.jpg", "a0", "b c/ü.png", "b+c.jpg", "z%2F.jpg"]
)


@pytest.fixture
def bucket(s3: Any) -> str:
    for key in KEYS:
        s3.put_object(Bucket=QUIET, Key=key, Body=key.encode())
    return QUIET


@pytest.mark.parametrize("version", [1, 2])
def test_everything_is_listed_in_byte_order(s3: Any, bucket: str, version: int) -> None:
    list_objects = s3.list_objects if version == 1 else s3.list_objects_v2
    assert [o["Key"] for o in list_objects(Bucket=bucket)["Contents"]] == KEYS


@pytest.mark.parametrize("version", [1, 2])
def test_pages_of_two_add_up_to_the_listing(s3: Any, bucket: str, version: int) -> None:
    name = "list_objects" if version == 1 else "list_objects_v2"
    pages = s3.get_paginator(name).paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys == KEYS


def test_a_delimiter_groups_folders(s3: Any, bucket: str) -> None:
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["a.txt", "a0", "b+c.jpg", "z%2F.jpg"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a-b/", "a/", "b c/"]


def test_a_prefix_and_a_delimiter(s3: Any, bucket: str) -> None:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/1.jpg"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/2/"]


def test_url_encoded_listing_decodes_to_the_keys(s3: Any, bucket: str) -> None:
    # boto3 asks for EncodingType=url and decodes the answer itself.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="b")
    assert [o["Key"] for o in listed["Contents"]] == ["b c/ü.png", "b+c.jpg"]
