"""Photos: decompression bombs are refused from their header, big photos decode at a reduced
scale, and the process's memory stays bounded (measured in a process of its own)."""

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from app.attachments import images

MEASURE = """
import sys
from app.attachments.images import NotAnImage, process
try:
    photo = process(open(sys.argv[1], "rb").read())
    print("served", photo.width, photo.height)
except NotAnImage as refusal:
    print("refused", refusal)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(int(peak.split()[1]) // 1024)
"""


def _encoded(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 0).save(out, format=fmt)
    return out.getvalue()


def _peak_mb(data: bytes, tmp_path: Path) -> tuple[str, int]:
    """What processing `data` gave, and the peak memory (MB) of a fresh process doing it."""
    path = tmp_path / "photo.bin"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    outcome, peak = done.stdout.strip().splitlines()
    return outcome, int(peak)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_decompression_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    baseline = _peak_mb(_encoded("L", (10, 10), "PNG"), tmp_path)[1]
    bomb = _encoded("RGB", (7000, 7000), "PNG")  # 147 MB decoded, from a few hundred KB
    assert len(bomb) < 1_000_000

    outcome, peak = _peak_mb(bomb, tmp_path)

    assert outcome.startswith("refused the image has too many pixels")
    assert peak < baseline + 20, (peak, baseline)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_big_jpeg_is_decoded_at_a_reduced_scale(tmp_path: Path) -> None:
    baseline = _peak_mb(_encoded("L", (10, 10), "PNG"), tmp_path)[1]

    outcome, peak = _peak_mb(_encoded("RGB", (8000, 6000), "JPEG"), tmp_path)  # 144 MB whole

    assert outcome == "served 2048 1536"
    assert peak < baseline + 120, (peak, baseline)


def test_phones_mpo_jpegs_are_accepted() -> None:
    first, second = Image.new("RGB", (64, 48), (200, 0, 0)), Image.new("RGB", (64, 48))
    out = io.BytesIO()
    first.save(out, format="MPO", save_all=True, append_images=[second])

    photo = images.process(out.getvalue())

    assert (photo.media_type, photo.width, photo.height) == ("image/jpeg", 64, 48)


async def test_a_process_works_on_two_photos_at_a_time() -> None:
    busy = most = 0

    async def work() -> None:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0)
        busy -= 1

    await asyncio.gather(*(images.limit_concurrency(work) for _ in range(6)))

    assert most == images.PHOTOS_AT_ONCE == 2
