"""The step SDK's run_request on a real S3 server: outputs, fusing, refusals."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from minio import Minio
from PIL import Image

from eventing.contract import ObjectRef, StepRequest
from eventing.objectstore import ObjectMissing, ObjectStore, SourceChanged
from functions.catalog import UnknownFunction
from functions.errors import BadParams
from functions.runtime import StepRuntime
from functions.step import UnsafeOutput, output_ref, run_request
from tests.functions.conftest import CONTEXT

BUCKET, OUTPUT_BUCKET = "uploads", "processed"
Upload = Callable[[str, bytes], ObjectRef]
MakeRequest = Callable[..., StepRequest]


def _image(raw_s3: Minio, ref: ObjectRef) -> Image.Image:
    return Image.open(io.BytesIO(raw_s3.get_object(ref.bucket, ref.key).read()))


@pytest.mark.parametrize(
    ("requested", "extension", "expected"),
    [
        ("runs/r1/s1/photo.jpg", ".png", "runs/r1/s1/photo.png"),
        ("runs/r1/s1/photo", ".jpg", "runs/r1/s1/photo.jpg"),
        ("runs/v1.2/photo.tar.jpeg", ".webp", "runs/v1.2/photo.tar.webp"),
    ],
)
def test_output_ref_replaces_only_the_extension(
    requested: str, extension: str, expected: str
) -> None:
    assert output_ref(ObjectRef("out", requested), extension) == ObjectRef("out", expected)


def test_resize_writes_its_output(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    completed = run_request(make_request(source, ("resize", {"max_side": 128})), runtime, CONTEXT)
    (output,) = completed.result.outputs
    assert output == ObjectRef(OUTPUT_BUCKET, "p/_runs/r1/out.jpg")
    assert _image(raw_s3, output).size == (128, 128)
    assert completed.result.metadata["image"] == {"width": 128, "height": 128}
    assert completed.duration_ms > 0
    # what it cost: CPU of its thread (decode, resize, encode), and no Triton
    assert completed.cpu_ms is not None
    assert completed.cpu_ms > 0
    assert completed.inference_ms == 0
    assert raw_s3.get_object(BUCKET, "in/astronaut.jpg").read() == astronaut_jpeg


def test_convert_changes_the_extension(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    cat: npt.NDArray[np.uint8],
) -> None:
    source = upload("in/cat.jpg", _jpeg(cat))
    completed = run_request(make_request(source, ("convert", {"format": "png"})), runtime, CONTEXT)
    (output,) = completed.result.outputs
    assert output.key == "p/_runs/r1/out.png"
    assert raw_s3.stat_object(OUTPUT_BUCKET, output.key).content_type == "image/png"
    assert _image(raw_s3, output).format == "PNG"


def test_redelivery_overwrites_the_same_key(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    request = make_request(source, ("resize", {"width": 64}))
    first = run_request(request, runtime, CONTEXT)
    second = run_request(replace(request, attempt=2), runtime, CONTEXT)
    assert first.result.outputs == second.result.outputs
    assert [
        o.object_name for o in raw_s3.list_objects(OUTPUT_BUCKET, "p/_runs/", recursive=True)
    ] == ["p/_runs/r1/out.jpg"]


def test_detector_passes_its_input_through(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    # Haar: a detector on the CPU, so no Triton is needed to test the step SDK.
    completed = run_request(
        make_request(source, ("detect_faces", {"model": "haar"})), runtime, CONTEXT
    )
    assert completed.result.outputs == (source,)
    assert completed.result.metadata["count"] == 1
    assert list(raw_s3.list_objects(OUTPUT_BUCKET, "p/_runs/", recursive=True)) == []


def test_final_detector_copies_its_input(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    source = upload("in/astronaut.jpeg", astronaut_jpeg)
    request = make_request(
        source, ("detect_faces", {"model": "haar"}), output_key="p/out.png", final=True
    )
    completed = run_request(request, runtime, CONTEXT)
    (output,) = completed.result.outputs
    assert output == ObjectRef(OUTPUT_BUCKET, "p/out.jpeg")  # the input's extension
    assert raw_s3.get_object(OUTPUT_BUCKET, output.key).read() == astronaut_jpeg


def test_fused_steps_run_in_memory(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    astronaut_jpeg: bytes,
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    request = make_request(
        source,
        ("resize", {"max_side": 256}),
        ("detect_faces", {"model": "haar", "min_size": 12}),
        ("blur", {"labels": ["face"]}),
        output_key="p/_runs/r1/fused.jpg",
    )
    completed = run_request(request, runtime, CONTEXT)
    metadata = completed.result.metadata
    assert metadata["blurred"] == 1  # the last step's keys at top level
    assert set(metadata["steps"]) == {"s0", "s1", "s2"}
    (face,) = metadata["steps"]["s1"]["detections"]
    assert face["box"] == pytest.approx([88, 33, 136, 80], abs=3)  # in the resized picture
    assert completed.result.outputs == (ObjectRef(OUTPUT_BUCKET, "p/_runs/r1/fused.jpg"),)
    assert _image(raw_s3, completed.result.outputs[0]).size == (256, 256)
    # Only the group's output was written: no intermediate objects.
    assert [
        o.object_name for o in raw_s3.list_objects(OUTPUT_BUCKET, "p/_runs/", recursive=True)
    ] == ["p/_runs/r1/fused.jpg"]


@pytest.mark.parametrize(
    ("call", "error"),
    [(("sharpen", {}), UnknownFunction), (("resize", {}), BadParams)],
    ids=["unknown", "bad-params"],
)
def test_calls_are_checked_before_any_io(
    runtime: StepRuntime,
    make_request: MakeRequest,
    call: tuple[str, dict[str, object]],
    error: type[Exception],
) -> None:
    # The input does not exist: the call is refused before it is fetched.
    with pytest.raises(error):
        run_request(make_request(ObjectRef(BUCKET, "missing.jpg"), call), runtime, CONTEXT)


def test_missing_input(runtime: StepRuntime, make_request: MakeRequest) -> None:
    with pytest.raises(ObjectMissing):
        run_request(
            make_request(ObjectRef(BUCKET, "missing.jpg"), ("resize", {"width": 9})),
            runtime,
            CONTEXT,
        )


def test_output_never_overwrites_an_input(
    runtime: StepRuntime, upload: Upload, make_request: MakeRequest, astronaut_jpeg: bytes
) -> None:
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    first = run_request(make_request(source, ("resize", {"width": 9})), runtime, CONTEXT)
    middle = first.result.outputs[0]
    request = replace(
        make_request(source, ("resize", {"width": 5}), output_key=middle.key), inputs=(middle,)
    )
    with pytest.raises(UnsafeOutput):
        run_request(request, runtime, CONTEXT)


def _jpeg(pixels: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


# -- the source version a run was started for (issue 17) ----------------------


@pytest.fixture
def pinned(upload: Upload, raw_s3: Minio, astronaut_jpeg: bytes) -> tuple[ObjectRef, str]:
    """An upload and its etag: the version a run is started for."""
    source = upload("in/astronaut.jpg", astronaut_jpeg)
    return source, str(raw_s3.stat_object(source.bucket, source.key).etag).strip('"')


def test_a_step_reads_the_source_version_its_run_was_started_for(
    runtime: StepRuntime, make_request: MakeRequest, pinned: tuple[ObjectRef, str]
) -> None:
    source, etag = pinned
    request = replace(make_request(source, ("resize", {"width": 16})), source_etag=etag)
    assert run_request(request, runtime, CONTEXT).result.outputs  # the pinned version reads


def test_an_overwritten_source_fails_its_old_run_and_writes_nothing(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    pinned: tuple[ObjectRef, str],
    cat: npt.NDArray[np.uint8],
) -> None:
    source, etag = pinned
    upload("in/astronaut.jpg", _jpeg(cat))  # a newer upload while the old run waits
    request = replace(make_request(source, ("resize", {"width": 16})), source_etag=etag)
    with pytest.raises(SourceChanged) as raised:
        run_request(request, runtime, CONTEXT)
    assert raised.value.code == "source_changed"
    assert not raised.value.retryable
    assert "in/astronaut.jpg" in str(raised.value)
    assert list(raw_s3.list_objects(OUTPUT_BUCKET, recursive=True)) == []


class _OverwrittenAfterRead:
    """The real store, with the source overwritten right after the step read it."""

    def __init__(self, store: ObjectStore, overwrite: Callable[[], object]) -> None:
        self._store, self._overwrite = store, overwrite

    def get(self, ref: ObjectRef, if_match: str | None = None) -> bytes:
        data = self._store.get(ref, if_match)
        self._overwrite()
        return data

    def etag(self, ref: ObjectRef) -> str:
        return self._store.etag(ref)

    def put(self, ref: ObjectRef, data: bytes, content_type: str) -> str:
        return self._store.put(ref, data, content_type)

    def copy(self, src: ObjectRef, dst: ObjectRef) -> None:
        self._store.copy(src, dst)


def test_a_final_write_never_replaces_the_output_of_a_newer_upload(
    runtime: StepRuntime,
    raw_s3: Minio,
    upload: Upload,
    make_request: MakeRequest,
    pinned: tuple[ObjectRef, str],
    cat: npt.NDArray[np.uint8],
) -> None:
    source, etag = pinned
    racing = replace(
        runtime, store=_OverwrittenAfterRead(runtime.store, lambda: upload(source.key, _jpeg(cat)))
    )
    request = make_request(source, ("resize", {"width": 16}), output_key="p/in/astronaut.jpg")
    request = replace(request, final=True, source_etag=etag)
    with pytest.raises(SourceChanged):
        run_request(request, racing, CONTEXT)
    assert list(raw_s3.list_objects(OUTPUT_BUCKET, recursive=True)) == []
