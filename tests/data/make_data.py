"""Write the edge-case input files under tests/data/<format>/ again:

    python tests/data/make_data.py

Each file is small, benign (generated colours, placeholder hashes) and
deterministic; tests read them in place. They are the hostile shapes a
seizure or a supplier's list can take, kept as files because a fixed file
reads better in a test than the bytes that make it: names that are not
UTF-8, duplicate names, a member cut short, a damaged central directory, a
cut JPEG, a bank list with one bad row. Cases whose point is their size (a
30,000 x 30,000 PNG, 64 MiB tar headers, 256 GiB zip nests) stay generated
in the tests that need them (tests/builders.py).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/, for builders.py

from builders import png, png_chunk, set_utf8_flag, tar_member, tar_of, zip_of  # noqa: E402

MD5 = ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f8f8f0cee0f4a84f06370a22038f67f0b36e2ed596221e1d33e6b39c4e9c9b22"

#: the pictures the archives hold: (file name under png/, seed); 16 x 16 random colours, under 1 KB each
PICTURES = {"p0.png": 1, "p1.png": 2, "p2.png": 3}


def picture(name: str) -> bytes:
    return png(PICTURES[name], side=16)


def text_lists() -> dict[str, bytes]:
    return {
        # Every line shape a text list may have: bare hashes, signal and category, a comment.
        "hash-list.txt": (
            f"# a hash list\n{MD5[0]}\n{SHA1}\nmd5 {MD5[1]} A\npdq {PDQ} B\nSHA256 {SHA256.upper()}   # trailing comment\n"
        ).encode(),
        "bad-line.txt": f"{MD5[0]}\nnot-a-hash\n".encode(),
    }


def csv_lists() -> dict[str, bytes]:
    return {
        # Row 3 (line 3) has an md5 one character short: the whole file is refused.
        "bad-row.csv": f"md5,category,id\n{MD5[0]},A1,vic-1\n{MD5[1][:-1]},B1,vic-2\n".encode(),
    }


def vics_files() -> dict[str, bytes]:
    records = [
        {"MediaID": 101, "Category": 1, "MD5": MD5[0].upper(), "SHA1": SHA1.upper(), "MediaSize": 1234},
        {
            "MediaID": 102,
            "Category": 3,
            "MD5": MD5[1],
            "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "AAAA"}, {"HashName": "PDQ", "HashValue": PDQ}],
        },
        # Only a PhotoDNA hash: cannot be used, so rejected.
        {"MediaID": 103, "Category": 0, "AlternativeHashes": [{"HashName": "PhotoDNA", "HashValue": "BBBB"}]},
    ]
    v1 = {"odata.metadata": "http://example.invalid/1.3/$metadata#Media", "value": records}
    v2 = {"@odata.context": "http://example.invalid/2.0/$metadata#Media", "value": records}
    return {
        "hash-set-v1.json": json.dumps(v1, indent=1).encode(),
        "hash-set-v2.json": json.dumps(v2, indent=1).encode(),
        # Found by fuzzing: a key that is not UTF-8.
        "not-utf8.json": b'{"\xc0\x91data": 1, "value": []}',
    }


def zip_files() -> dict[str, bytes]:
    pictures = [picture(name) for name in PICTURES]
    # Written with an ASCII placeholder, then the same number of bytes put in its place.
    plain = zip_of([("caf?.png", pictures[0]), ("ok.png", pictures[1])])
    latin1 = plain.replace(b"caf?.png", b"caf\xe9.png")
    whole = zip_of([(name, picture(name)) for name in PICTURES], zipfile.ZIP_STORED)
    damaged_directory = bytearray(zip_of([(name, picture(name)) for name in PICTURES]))
    second_record = damaged_directory.find(b"PK\x01\x02", damaged_directory.find(b"PK\x01\x02") + 4)
    damaged_directory[second_record : second_record + 4] = b"XXXX"
    needs_version_9 = bytearray(zip_of([("a.txt", b"benign")], zipfile.ZIP_STORED))
    needs_version_9[needs_version_9.rfind(b"PK\x01\x02") + 6] = 90  # "version needed to extract": 9.0
    empty_name = io.BytesIO()
    with zipfile.ZipFile(empty_name, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"benign")
    return {
        "latin1-name.zip": latin1,  # a Latin-1 name, no UTF-8 flag
        "utf8-flag-latin1-name.zip": set_utf8_flag(latin1),  # flagged UTF-8, and not UTF-8
        "cut-inside-last-member.zip": whole[: whole.find(b"p2.png") + 100],  # stored: p0, p1 whole; no directory
        "damaged-central-directory.zip": bytes(damaged_directory),  # p1's directory record unreadable
        "needs-version-9.zip": bytes(needs_version_9),
        "empty-member-name.zip": empty_name.getvalue(),
    }


def tar_files() -> dict[str, bytes]:
    p0, p1, p2 = (picture(name) for name in PICTURES)
    damaged = bytearray(tar_member("p1.png", p1))
    damaged[148:156] = b"0000000\0"  # a wrong header checksum
    return {
        "duplicate-names.tar": tar_member("same.png", p0) + tar_member("same.png", p1) + bytes(1024),
        "damaged-header.tar": tar_member("p0.png", p0) + bytes(damaged) + tar_member("p2.png", p2) + bytes(1024),
        "latin1-name.tar": tar_of([(b"photo-\xe9\xff.png", p0)]),
    }


def jpeg_files() -> dict[str, bytes]:
    pixels = np.random.default_rng(4).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((64, 48)).save(buffer, format="JPEG", quality=80)
    whole = buffer.getvalue()
    return {"whole.jpg": whole, "truncated.jpg": whole[: len(whole) // 2]}


def png_files() -> dict[str, bytes]:
    def declared(width: int, height: int) -> bytes:
        """A grey PNG declaring width x height whose image data is damaged: a few bytes."""
        header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
        return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"not zlib") + png_chunk(b"IEND", b"")

    return {
        **{name: picture(name) for name in PICTURES},
        "damaged-20000x10000.png": declared(20000, 10000),  # 200 M pixels: under the pixel limit
        "damaged-20000x15000.png": declared(20000, 15000),  # 300 M pixels: over it
    }


def gzip_files() -> dict[str, bytes]:
    # Found by fuzzing: deflate block type 3 (reserved) in the first block.
    return {"damaged-first-block.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + bytes(16)}


FORMATS = {
    "text": text_lists,
    "csv": csv_lists,
    "vics": vics_files,
    "zip": zip_files,
    "tar": tar_files,
    "jpeg": jpeg_files,
    "png": png_files,
    "gzip": gzip_files,
}


def main() -> None:
    for folder, make in FORMATS.items():
        for name, data in make().items():
            path = HERE / folder / name
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)


if __name__ == "__main__":
    main()
