#!/usr/bin/env python3
"""Makes the broken firmware images of this directory from the valid fixtures in
../../esp_at/firmware/ (made by esptool elf2image, see that folder's make_images.py), by
editing bytes per the ESP image format (docs: esptool's "Firmware Image Format"): a 24-byte
header, segments (load address, length, data), padding so that the checksum byte ends a
16-byte block, the checksum (0xEF XOR every segment data byte), then, when byte 23 is 1, the
SHA-256 of everything before it. No espfleet code is involved. Deterministic.

    python3 make_bad_images.py
"""

import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD = os.path.join(HERE, "..", "..", "esp_at", "firmware")


def layout(img):
    """(offset of the first segment's data, offset just past the checksum byte)."""
    assert img[0] == 0xE9
    at = 24
    first = None
    for _ in range(img[1]):
        _, length = struct.unpack_from("<II", img, at)
        if first is None:
            first = at + 8
        at += 8 + length
    checksum_at = at + (15 - at % 16)
    return first, checksum_at + 1


def main():
    app = bytearray(open(os.path.join(GOOD, "esp32_app.bin"), "rb").read())
    first, end = layout(app)
    assert app[23] == 1  # SHA-256 appended

    # 1. A segment byte changed, SHA-256 recomputed: only the checksum is wrong.
    bad = bytearray(app)
    bad[first + 10] ^= 0x55
    bad[end:end + 32] = hashlib.sha256(bytes(bad[:end])).digest()
    open(os.path.join(HERE, "esp32_app_bad_checksum.bin"), "wb").write(bad)

    # 2. The appended SHA-256 changed: only the digest is wrong.
    bad = bytearray(app)
    bad[end + 31] ^= 0xFF
    open(os.path.join(HERE, "esp32_app_bad_sha256.bin"), "wb").write(bad)

    # 3. Not an image at all: 4096 bytes of SHA-256(counter), not starting with 0xE9.
    noise = b"".join(hashlib.sha256(b"random-app/%d" % i).digest() for i in range(128))
    assert noise[0] != 0xE9
    open(os.path.join(HERE, "random_app.bin"), "wb").write(noise)


if __name__ == "__main__":
    main()
