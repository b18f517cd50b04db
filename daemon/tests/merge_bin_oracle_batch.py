"""Runs many `esptool merge-bin` command lines in one Python process (the oracle of
daemon/tests/merge_bin.rs): starting esptool once per case would dominate the test's time.

stdin: JSON list of {"cwd": DIR, "argv": [esptool arguments]}; argv[1]: a file that receives
the JSON list of exit statuses, one per job, in order (esptool's own output goes to stdout). Each job runs esptool 5.6's own `main(argv)` (click parsing,
`@file` expansion, deprecated spellings, Intel HEX inputs) in its directory.
"""

import contextlib
import io
import json
import os
import sys

import esptool

jobs = json.load(sys.stdin)
results = []
for job in jobs:
    os.chdir(job["cwd"])
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            esptool.main(job["argv"])
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except esptool.FatalError:
        rc = 2
    except Exception:  # an esptool crash: report it like Python would
        rc = 1
    results.append(rc)
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
