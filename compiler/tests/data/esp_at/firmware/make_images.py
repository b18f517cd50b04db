#!/usr/bin/env python3
"""Makes synthetic but valid ESP bootloader/app images with an independent tool.

A minimal ELF32 file (section headers only, deterministic pseudo-random contents from SHA-256
of fixed seeds) is written for each image, then converted with `esptool elf2image` (PyPI
esptool 5.6.0, run with the same Python that runs this script). No espfleet code is involved.

    python make_images.py                 # test fixtures, next to this script
    python make_images.py --examples DIR  # ESP-AT-like part sets in DIR/<chip>/

The images are not runnable firmware: their code bytes are random. They have the exact
structure esptool and the ROM expect (magic, segments, checksum, optional SHA-256).
"""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

# Memory map per chip: (e_machine, iram, dram, drom, irom).
CHIPS = {
    "esp32": (0x5E, 0x40080000, 0x3FFB0000, 0x3F400020, 0x400D0020),
    "esp32c3": (0xF3, 0x40380000, 0x3FC80000, 0x3C000020, 0x42000020),
}


def noise(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def write_elf(path, machine, entry, sections):
    """sections: list of (name, addr, data); all SHT_PROGBITS, SHF_ALLOC|SHF_EXECINSTR."""
    shstr = b"\0" + b"".join(name.encode() + b"\0" for name, _, _ in sections) + b".shstrtab\0"
    body = bytearray()
    offsets = []
    for _, _, data in sections:
        while (0x34 + len(body)) % 4:
            body += b"\0"
        offsets.append(0x34 + len(body))
        body += data
    shstr_off = 0x34 + len(body)
    body += shstr
    while (0x34 + len(body)) % 4:
        body += b"\0"
    shoff = 0x34 + len(body)
    ident = b"\x7fELF\x01\x01\x01" + b"\0" * 9
    nsec = len(sections) + 2
    header = struct.pack("<16sHHLLLLLHHHHHH", ident, 2, machine, 1, entry, 0, shoff, 0, 0x34, 0x20, 0, 0x28, nsec, nsec - 1)
    shdrs = struct.pack("<LLLLLLLLLL", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    name_off = 1
    for (name, addr, data), off in zip(sections, offsets):
        shdrs += struct.pack("<LLLLLLLLLL", name_off, 1, 0x6, addr, off, len(data), 0, 0, 4, 0)
        name_off += len(name) + 1
    shdrs += struct.pack("<LLLLLLLLLL", name_off, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)
    with open(path, "wb") as f:
        f.write(header + bytes(body) + shdrs)


def elf2image(chip, elf, out, mode, freq, size, digest):
    cmd = [sys.executable, "-m", "esptool", "--chip", chip, "elf2image", "--flash-mode", mode,
           "--flash-freq", freq, "--flash-size", size, "-o", out]
    if not digest:
        cmd.append("--dont-append-digest")
    subprocess.run(cmd + [elf], check=True, stdout=subprocess.DEVNULL)


def bootloader_sections(chip, seed, scale=1):
    _, iram, dram, _, _ = CHIPS[chip]
    return [(".iram_loader.text", iram, noise(seed + "/iram", 3000 * scale + 12)),
            (".dram0.data", dram, noise(seed + "/dram", 700 * scale + 4))]


def app_sections(chip, seed, irom_len):
    _, iram, dram, drom, irom = CHIPS[chip]
    return [(".flash.rodata", drom, noise(seed + "/drom", 9000)),
            (".dram0.data", dram, noise(seed + "/dram", 2048)),
            (".iram0.text", iram, noise(seed + "/iram", 6000)),
            (".flash.text", irom, noise(seed + "/irom", irom_len))]


def build(chip, kind, out, mode, freq, size, digest, irom_len=4096):
    machine, iram, *_ = CHIPS[chip]
    sections = bootloader_sections(chip, f"{chip}/{kind}") if kind == "bootloader" else app_sections(chip, f"{chip}/{kind}", irom_len)
    with tempfile.TemporaryDirectory() as tmp:
        elf = os.path.join(tmp, "image.elf")
        write_elf(elf, machine, iram + 4, sections)
        elf2image(chip, elf, out, mode, freq, size, digest)


def fixtures(here):
    for chip in CHIPS:
        # Header flash settings deliberately differ from the dio/40m/4MB a merge writes, so
        # the merge has to patch bytes 2-3 (and recompute the digest when present).
        build(chip, "bootloader", os.path.join(here, f"{chip}_bootloader.bin"), "qio", "80m", "2MB", True)
        build(chip, "bootloader", os.path.join(here, f"{chip}_bootloader_nodigest.bin"), "qio", "80m", "2MB", False)
        build(chip, "app", os.path.join(here, f"{chip}_app.bin"), "dio", "40m", "4MB", True)


def examples(root):
    offsets = {"esp32": (0x1000, 0x100000), "esp32c3": (0x0, 0x60000)}
    otadata = {"esp32": 0x10000, "esp32c3": 0xD000}
    for chip in CHIPS:
        d = os.path.join(root, chip)
        os.makedirs(os.path.join(d, "bootloader"), exist_ok=True)
        build(chip, "bootloader", os.path.join(d, "bootloader", "bootloader.bin"), "dio", "40m", "4MB", True)
        build(chip, "esp-at", os.path.join(d, "esp-at.bin"), "dio", "40m", "4MB", True, irom_len=160 * 1024)
        with open(os.path.join(d, "ota_data_initial.bin"), "wb") as f:
            f.write(b"\xff" * 0x2000)
        boot, app = offsets[chip]
        parts = [("bootloader", boot, "bootloader/bootloader.bin"),
                 ("otadata", otadata[chip], "ota_data_initial.bin"),
                 ("app", app, "esp-at.bin")]
        args = {
            "write_flash_args": ["--flash_mode", "dio", "--flash_size", "4MB", "--flash_freq", "40m"],
            "flash_settings": {"flash_mode": "dio", "flash_size": "4MB", "flash_freq": "40m"},
            "flash_files": {hex(o): f for _, o, f in parts},
        }
        for name, o, f in parts:
            args[name] = {"offset": hex(o), "file": f, "encrypted": "false"}
        args["extra_esptool_args"] = {"after": "hard_reset", "before": "default_reset", "stub": True, "chip": chip}
        with open(os.path.join(d, "flasher_args.json"), "w") as f:
            json.dump(args, f, indent=4)
            f.write("\n")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", metavar="DIR", help="write ESP-AT-like part sets into DIR/<chip>/ instead")
    a = p.parse_args()
    if a.examples:
        examples(a.examples)
    else:
        fixtures(os.path.dirname(os.path.abspath(__file__)))
