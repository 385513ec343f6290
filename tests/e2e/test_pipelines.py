"""End to end through the real local stack: real uploads, real parts, real Triton."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from tests.conftest import encode
from tests.e2e.conftest import Stack
from tests.router.conftest import privacy_blur

pytestmark = [pytest.mark.slow, pytest.mark.stack]

# Where the Haar cascade finds the astronaut's face in scikit-image's photo.
FACE = (slice(66, 161), slice(177, 272))


def sharpness(pixels: npt.NDArray[np.uint8]) -> float:
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


# The README's spec: resize -> detect faces -> blur the faces.
PRIVACY = privacy_blur()


def test_the_stack_is_healthy(stack: Stack) -> None:
    with stack.client() as api:
        health = api.get("/healthz").json()
    assert health["status"] == "ok"
    assert {"database", "object-store", "triton", "broker", "resize", "detect_text"} <= set(
        health["components"]
    )


def test_an_uploaded_photo_comes_out_with_the_face_blurred(
    stack: Stack, astronaut: npt.NDArray[np.uint8]
) -> None:
    stack.apply(PRIVACY)
    original = encode(astronaut, "JPEG", quality=95)
    etag = stack.upload("people/astronaut photo.jpg", original)
    run = stack.wait_run("privacy-blur", "people/astronaut photo.jpg")
    assert run["status"] == "succeeded", run
    assert run["etag"].strip('"') == etag.strip('"')
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 3
    assert run["steps"][1]["metadata"]["count"] == 1
    assert run["outputs"] == [
        {"bucket": "processed", "key": "privacy-blur/people/astronaut photo.jpg"}
    ]
    out = np.array(Image.open(io.BytesIO(stack.read("processed", run["outputs"][0]["key"]))))
    assert out.shape == astronaut.shape
    # the face is blurred; elsewhere the photo keeps its detail
    assert sharpness(out[FACE]) < 0.1 * sharpness(astronaut[FACE])
    rest = (slice(300, 500), slice(0, 170))
    assert sharpness(out[rest]) > 0.7 * sharpness(astronaut[rest])
    # the original upload is untouched
    assert stack.read("uploads", "people/astronaut photo.jpg") == original


def test_fan_out_fan_in_and_conditions(stack: Stack, cat: npt.NDArray[np.uint8]) -> None:
    stack.apply(
        {
            "name": "catalog",
            "trigger": {"bucket": "uploads", "prefix": "cats/"},
            "output": {"bucket": "processed"},
            "steps": [
                {"id": "small", "function": "resize", "params": {"max_side": 200}},
                {"id": "faces", "function": "detect_faces", "after": ["small"]},
                {
                    "id": "webp",
                    "function": "convert",
                    "after": ["small"],
                    "params": {"format": "webp", "quality": 80},
                },
                {
                    "id": "blur",
                    "function": "blur",
                    "after": ["faces", "webp"],
                    "when": "faces.count > 0",
                },
            ],
        },
    )
    stack.upload("cats/chelsea.jpg", encode(cat))
    run = stack.wait_run("catalog", "cats/chelsea.jpg")
    assert run["status"] == "succeeded", run
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["faces"]["metadata"]["count"] == 0
    assert steps["blur"]["status"] == "skipped"
    # a skipped last step still leaves the output in place
    assert len(run["outputs"]) >= 1
    for ref in run["outputs"]:
        assert ref["key"].startswith("catalog/")
        image = Image.open(io.BytesIO(stack.read(ref["bucket"], ref["key"])))
        assert max(image.size) == 200


def test_a_broken_upload_fails_its_run_and_says_why(
    stack: Stack, astronaut: npt.NDArray[np.uint8]
) -> None:
    stack.apply(PRIVACY)
    truncated = encode(astronaut)[:5000]
    stack.upload("broken.jpg", truncated)
    run = stack.wait_run("privacy-blur", "broken.jpg")
    assert run["status"] == "failed"
    assert run["error"]["code"] == "bad_image"
    assert "uploads/broken.jpg" in run["error"]["message"]
    assert run["error"]["step"] == "small"
    assert stack.read("uploads", "broken.jpg") == truncated


def test_text_detection_runs_on_triton(stack: Stack, text_page: npt.NDArray[np.uint8]) -> None:
    stack.apply(
        {
            "name": "find-text",
            "trigger": {"bucket": "uploads", "prefix": "docs/"},
            "output": {"bucket": "processed"},
            "steps": [
                {"id": "text", "function": "detect_text"},
                {"id": "boxes", "function": "annotate", "after": ["text"]},
            ],
        },
    )
    rgb = np.stack([text_page] * 3, axis=-1)
    stack.upload("docs/page.png", encode(rgb, "PNG"))
    run = stack.wait_run("find-text", "docs/page.png")
    assert run["status"] == "succeeded", run
    text = run["steps"][0]["metadata"]
    assert text["count"] >= 3
    assert all(d["label"] == "text" for d in text["detections"])
    assert run["outputs"][0]["key"] == "find-text/docs/page.png"


def test_boto3_uploads_trigger_runs_too(stack: Stack, astronaut: npt.NDArray[np.uint8]) -> None:
    import boto3

    stack.apply(PRIVACY)
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{stack.s3_endpoint}",
        aws_access_key_id="minioadmin",
        aws_secret_access_key="minioadmin",
        region_name="us-east-1",
    )
    s3.put_object(Bucket="uploads", Key="boto/astronaut.jpg", Body=encode(astronaut))
    run = stack.wait_run("privacy-blur", "boto/astronaut.jpg")
    assert run["status"] == "succeeded", run


def test_a_fused_pipeline_makes_the_same_output_without_intermediates(
    stack: Stack, astronaut: npt.NDArray[np.uint8]
) -> None:
    steps = [
        {"id": "small", "function": "resize", "params": {"max_side": 300}},
        {"id": "faces", "function": "detect_faces", "after": ["small"]},
        {"id": "blur", "function": "blur", "after": ["faces"], "params": {"method": "pixelate"}},
    ]
    for name, fuse in (("routed", False), ("fused", True)):
        stack.apply(
            {
                "name": name,
                "fuse": fuse,
                "steps": steps,
                "trigger": {"bucket": "uploads", "prefix": "same/"},
                "output": {"bucket": "processed"},
            },
        )
    stack.upload("same/astronaut.png", encode(astronaut, "PNG"))
    routed = stack.wait_run("routed", "same/astronaut.png")
    fused = stack.wait_run("fused", "same/astronaut.png")
    assert routed["status"] == fused["status"] == "succeeded"
    assert [s["metadata"].get("count") for s in fused["steps"]] == [None, 1, None]
    # lossless intermediates, so the pixels must agree exactly
    outputs = [
        np.array(
            Image.open(io.BytesIO(stack.read(r["outputs"][0]["bucket"], r["outputs"][0]["key"])))
        )
        for r in (routed, fused)
    ]
    assert outputs[0].shape == (300, 300, 3)
    assert np.array_equal(outputs[0], outputs[1])
    # the fused run wrote no intermediate objects
    fused_objects = [
        o.object_name
        for o in stack.minio().list_objects("processed", prefix="fused/", recursive=True)
    ]
    assert fused_objects == ["fused/same/astronaut.png"]
