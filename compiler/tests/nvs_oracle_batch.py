"""Runs esp-idf-nvs-partition-gen on many cases in ONE Python process (the differential test).

Usage: python nvs_oracle_batch.py CASES.json RESULTS.json

CASES.json: [{"dir": ..., "inputs": [...], "output": "oracle.bin", "size": "0x6000",
              "version": 2, "inputkey": null | "keys.bin"}, ...]
Each case runs with the working directory set to its "dir" (relative `file` rows resolve there).
RESULTS.json: [{"ok": bool, "error": str}, ...]; on success the image is <dir>/<output>.
"""
import contextlib
import io
import json
import os
import sys
from types import SimpleNamespace

from esp_idf_nvs_partition_gen import nvs_partition_gen as gen


def run_case(case):
    os.chdir(case["dir"])
    args = SimpleNamespace(
        input=case["inputs"], output=case["output"], size=case["size"], version=case["version"],
        outdir=os.getcwd(), keygen=False, inputkey=case.get("inputkey"), keyfile=None,
        key_protect_hmac=False, kp_hmac_keygen=False, kp_hmac_keyfile=None, kp_hmac_inputkey=None,
    )
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            if case.get("inputkey"):
                gen.encrypt(args)
            else:
                gen.generate(args)
    except SystemExit as e:
        if e.code not in (0, None):
            return {"ok": False, "error": "exit %s: %s" % (e.code, buf.getvalue().strip()[-300:])}
        if not os.path.exists(case["output"]):
            return {"ok": False, "error": "exit 0 without output: " + buf.getvalue().strip()[-300:]}
    except BaseException as e:  # noqa: B902 - the generator crashes with many exception types
        return {"ok": False, "error": "%s: %s" % (type(e).__name__, str(e)[:300])}
    return {"ok": True, "error": ""}


def main():
    cases = json.load(open(sys.argv[1]))
    results = [run_case(c) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
