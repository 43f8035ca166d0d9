#!/usr/bin/env python3
"""Rebuilds tests/data/ and the full traces in workloads/ from the original files.

Usage, from the project root:

    python3 tests/data/cut.py SRC

where SRC is a folder laid out like the original shared/data/ (see tests/data/README.md):
SRC/profiling/vidur/{compute,network}/..., SRC/serving/, SRC/specdec/, SRC/hardware/,
SRC/traces/azure2023/, SRC/traces/mooncake/.

What it does:
- Vidur compute profiles (mlp.csv): keeps only the columns servesim reads (the model shape,
  num_tokens, num_tensor_parallel_workers and every time_stats.<op>.median), with Vidur's
  header names, column order, row order and value strings unchanged, then gzips.
- Vidur network profiles (all_reduce.csv, send_recv.csv): the same, keeping num_workers,
  size, collective, devices_per_node and time_stats.<collective>.median.
- The Azure 2023 traces and the Mooncake conversation trace: gzipped whole, unchanged.
- Everything else (serving/, specdec/, hardware/): copied unchanged.

Gzip output carries no file name and a zero timestamp, so rerunning gives the same bytes
with the same zlib.
"""

import csv
import gzip
import io
import shutil
import sys
from pathlib import Path

COMPUTE_KEEP = {
    "n_head",
    "n_kv_head",
    "n_embd",
    "n_expanded_embd",
    "vocab_size",
    "use_gated_mlp",
    "num_tokens",
    "num_tensor_parallel_workers",
}
NETWORK_KEEP = {"num_workers", "size", "collective", "devices_per_node"}

TRACES = [
    ("traces/azure2023/AzureLLMInferenceTrace_conv.csv", "workloads/AzureLLMInferenceTrace_conv.csv.gz"),
    ("traces/azure2023/AzureLLMInferenceTrace_code.csv", "workloads/AzureLLMInferenceTrace_code.csv.gz"),
    ("traces/mooncake/conversation_trace.jsonl", "workloads/mooncake_conversation_trace.jsonl.gz"),
]
COPIED = ["serving", "specdec", "hardware"]


def write_gz(data: bytes, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as gz:
            gz.write(data)


def cut_columns(src: Path, out: Path, keep) -> None:
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    columns = [i for i, name in enumerate(rows[0]) if keep(name)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([row[i] for i in columns])
    write_gz(buffer.getvalue().encode(), out)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    src = Path(sys.argv[1])
    root = Path(__file__).resolve().parents[2]
    data = root / "tests" / "data"
    vidur = src / "profiling" / "vidur"
    median = lambda name: name.startswith("time_stats.") and name.endswith(".median")
    for path in sorted((vidur / "compute").rglob("mlp.csv")):
        out = data / "vidur" / path.relative_to(vidur)
        cut_columns(path, out.with_name(out.name + ".gz"), lambda n: n in COMPUTE_KEEP or median(n))
    for path in sorted((vidur / "network").rglob("*.csv")):
        out = data / "vidur" / path.relative_to(vidur)
        cut_columns(path, out.with_name(out.name + ".gz"), lambda n: n in NETWORK_KEEP or median(n))
    for original, out in TRACES:
        write_gz((src / original).read_bytes(), root / out)
    for folder in COPIED:
        for path in sorted((src / folder).iterdir()):
            (data / folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, data / folder / path.name)


if __name__ == "__main__":
    main()
